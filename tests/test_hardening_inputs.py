"""Issue 14, memory and storage: a tiny huge image decodes within a stated memory bound; a zip-bombed
or malformed gallery export is refused in one line and changes nothing; a read-only, locked or full
gallery answers 503/507 with what to do, not 500."""

from __future__ import annotations

import errno
import importlib.util
import io
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image, ImageOps

from faceprint.errors import GalleryError, InvalidImageError, StorageError, StorageFullError
from faceprint.gallery import Gallery
from faceprint.gallery import gallery as gallery_module
from faceprint.imageio import DECODE_BUDGET_BYTES, load_image

REPO = Path(__file__).resolve().parents[1]
LFW_FACE = "lfw/lfw-deepfunneled/George_W_Bush/George_W_Bush_0001.jpg"
MB = 1e6


def _bench() -> Any:
    """benchmarks/bench_upload_memory.py, for its PNG writer (one generator for the test and the benchmark)."""
    spec = importlib.util.spec_from_file_location("bench_upload_memory", REPO / "benchmarks" / "bench_upload_memory.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------ memory per request


@pytest.fixture(scope="module")
def png16(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """The issue's upload: a ~25 MP (6000 x 4166) RGB PNG of 16-bit samples, a few hundred KB."""
    bench = _bench()
    path = tmp_path_factory.mktemp("png16") / "big16.png"
    bench.write_png16(path, bench.WIDTH, bench.HEIGHT)
    return path, bench.WIDTH, bench.HEIGHT


# Run in a fresh interpreter, so its peak RSS (VmHWM, reset before decoding) is the decode's own.
_MEASURE = r"""
import json, sys, threading
from pathlib import Path
from faceprint.imageio import load_image

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

data, threads = Path(sys.argv[1]).read_bytes(), int(sys.argv[2])
load_image(Path(sys.argv[3]).read_bytes())  # warm up: Pillow's plugins, first allocations
before = status("VmRSS")
try:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
except OSError:
    pass
shapes, corners = [], []
def one():
    img = load_image(data, max_pixels=25_000_000)
    shapes.append(img.shape); corners.append([img[0, 0].tolist(), img[-1, -1].tolist()])
workers = [threading.Thread(target=one) for _ in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
print(json.dumps({"before": before, "peak": status("VmHWM"), "shapes": shapes, "corners": corners}))
"""


def _decode_peak(png: Path, threads: int, small: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(png), str(threads), str(small)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_png16_25mp_decodes_within_its_bound(png16: tuple[Path, int, int], data_dir: Path) -> None:
    """Bound (imageio's docstring): Pillow's image (4 B/pixel for RGB) + the result (3 B/pixel) +
    strips, i.e. 7 B/pixel + 40 MB: 215 MB for this image. Before: ~250 MB + (tobytes + copy)."""
    path, width, height = png16
    result = _decode_peak(path, 1, data_dir / LFW_FACE)
    assert result["shapes"] == [[height, width, 3]]
    # the samples are ramps: R 0 -> 65535 across, G 0 -> 65535 down, B 65535 -> 0 across
    assert result["corners"] == [[[0, 0, 255], [255, 255, 0]]]
    bound = width * height * 7 + 40 * MB
    peak = result["peak"] - result["before"]
    assert peak < bound, f"decoding peaked at {peak / MB:.0f} MB over its start, bound {bound / MB:.0f} MB"


@pytest.mark.slow
def test_concurrent_decodes_share_one_budget(png16: tuple[Path, int, int], data_dir: Path) -> None:
    """6 threads decode the same upload at once and drop the result (the service's decode step): at
    most DECODE_BUDGET_BYTES of Pillow images at a time, plus the results being written. Before:
    each thread its own ~250 MB at once (1.5 GB)."""
    path, width, height = png16
    result = _decode_peak(path, 6, data_dir / LFW_FACE)
    assert result["shapes"] == [[height, width, 3]] * 6
    bound = DECODE_BUDGET_BYTES + 3 * width * height * 3 + 40 * MB
    peak = result["peak"] - result["before"]
    assert peak < bound, f"6 concurrent decodes peaked at {peak / MB:.0f} MB, bound {bound / MB:.0f} MB"


@pytest.fixture(scope="module")
def gray8(data_dir: Path) -> np.ndarray:
    with Image.open(data_dir / LFW_FACE) as im:
        return np.asarray(im.convert("L"))


def test_int32_tiff_of_8bit_data_is_not_black(gray8: np.ndarray, tmp_path: Path) -> None:
    """8-bit data saved as a 32-bit integer TIFF (mode "I"): was scaled as 16-bit, i.e. to 0..1, black."""
    path = tmp_path / "face32.tif"
    Image.fromarray(gray8.astype(np.int32)).save(path)
    with Image.open(path) as im:
        assert im.mode == "I"
    np.testing.assert_array_equal(load_image(path), np.repeat(gray8[:, :, None], 3, axis=2))


def test_int32_tiff_beyond_16_bits_is_stretched(gray8: np.ndarray, tmp_path: Path) -> None:
    """Samples beyond 16 bits (24-bit data with a negative offset): stretched min..max, not refused."""
    path = tmp_path / "face24.tif"
    Image.fromarray(gray8.astype(np.int32) * 65793 - 2**23).save(path)
    img = load_image(path)
    lo, hi = int(gray8.min()), int(gray8.max())
    expected = (gray8.astype(np.float64) - lo) * (255.0 / (hi - lo))
    assert np.abs(img[:, :, 0] - expected).max() <= 0.5 + 1e-6
    assert (img[:, :, 0] == img[:, :, 2]).all() and img.mean() > 60


def _exif_png(im: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, "PNG", exif=exif.tobytes())
    return buf.getvalue()


def _reference(data: bytes) -> np.ndarray:
    """What load_image gave before strips: Pillow's exif_transpose, then a whole-image conversion."""
    with Image.open(io.BytesIO(data)) as im:
        up = ImageOps.exif_transpose(im)
        target = "RGBA" if up.mode in ("RGBA", "LA", "PA") or "transparency" in up.info else "RGB"
        arr = np.asarray(up.convert(target)).astype(np.uint16)
    if arr.shape[2] == 4:  # over white, rounded: imageio's documented rule
        arr = (arr[:, :, :3] * arr[:, :, 3:] + 255 * (255 - arr[:, :, 3:]) + 127) // 255
    return arr.astype(np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L"])
def test_strips_and_orientation_give_identical_pixels(mode: str, orientation: int) -> None:
    """An image of several strips (1300 x 1100 > 1 MP), in every EXIF orientation: the strip-wise
    conversion into an upright view equals Pillow's exif_transpose + convert."""
    rng = np.random.default_rng(orientation)
    rgba = rng.integers(0, 256, (1100, 1300, 4), dtype=np.uint8)
    im = Image.fromarray(rgba, "RGBA")
    im = im.convert(mode) if mode != "P" else im.convert("RGB").quantize(64)
    if mode == "P":
        im.info["transparency"] = 3
    data = _exif_png(im, orientation)
    np.testing.assert_array_equal(load_image(data), _reference(data))


def test_16bit_gray_and_float_images_in_strips(tmp_path: Path) -> None:
    """16-bit and float images larger than one strip keep their exact scaling, and a float image's
    error counts every bad value, not one strip's."""
    values = np.random.default_rng(0).integers(0, 65536, (1200, 1000), dtype=np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    np.testing.assert_array_equal(load_image(path)[:, :, 1], ((values.astype(np.uint32) + 128) // 257).astype(np.uint8))
    floats = values.astype(np.float32) / 65535
    np.testing.assert_array_equal(load_image(Image.fromarray(floats, "F"))[:, :, 0], np.rint(floats * 255).astype(np.uint8))
    floats[0, 0] = floats[-1, -1] = np.nan
    with pytest.raises(InvalidImageError, match="holds 2 NaN"):
        load_image(Image.fromarray(floats, "F"))


# ------------------------------------------------------------------------------ gallery exports


@pytest.fixture
def gallery(tmp_path: Path) -> Gallery:
    """A gallery of 3 samples (no networks: descriptors added directly)."""
    with Gallery(tmp_path / "g.db") as g:
        dim = g.spec.embedding_size
        g.add_embeddings(["ann", "bob", "ann"], np.random.default_rng(0).normal(size=(3, dim)).astype(np.float32),
                         sources=["a.jpg", None, "c.jpg"])
        yield g


def _state(g: Gallery) -> tuple:
    return g.people(), [(s.id, s.person, s.source, s.sha256) for s in g.samples()], g.store.generation()


def _parts(path: Path) -> tuple[dict[str, Any], np.ndarray]:
    with np.load(path) as z:
        return json.loads(str(z["manifest"])), z["vectors"]


def _write(path: Path, manifest: object, vectors: object, **extra: object) -> Path:
    text = manifest if isinstance(manifest, (str, bytes)) else json.dumps(manifest)
    np.savez(path, manifest=np.array(text), vectors=vectors, **extra)
    return path


def _mutations() -> dict[str, Callable[[dict[str, Any], np.ndarray, Path], Path]]:
    """name -> (manifest, vectors, out path) -> a malformed export written at the path."""

    def edit(change: Callable[[dict[str, Any]], object]) -> Callable[[dict[str, Any], np.ndarray, Path], Path]:
        def make(m: dict[str, Any], v: np.ndarray, out: Path) -> Path:
            change(m)
            return _write(out, m, v)
        return make

    def sample(key: str, value: object) -> Callable[[dict[str, Any], np.ndarray, Path], Path]:
        return edit(lambda m: m["samples"][0].__setitem__(key, value))

    def only_manifest(m: dict[str, Any], v: np.ndarray, out: Path) -> Path:
        np.savez(out, manifest=np.array(json.dumps(m)))
        return out

    def nan(m: dict[str, Any], v: np.ndarray, out: Path) -> Path:
        v = v.copy()
        v[1, 5] = np.nan
        return _write(out, m, v)

    def wrong_dim(m: dict[str, Any], v: np.ndarray, out: Path) -> Path:
        m["dim"] = v.shape[1] - 1  # consistent with itself, not with the gallery's model
        return _write(out, m, v[:, :-1])

    def truncated(m: dict[str, Any], v: np.ndarray, out: Path) -> Path:
        data = _write(out, m, v).read_bytes()
        out.write_bytes(data[: len(data) // 2])
        return out

    return {
        "missing vectors": only_manifest,
        "extra member": lambda m, v, out: _write(out, m, v, extra=np.zeros(3)),
        "integer vectors": lambda m, v, out: _write(out, m, v.astype(np.int32)),
        "1-D vectors": lambda m, v, out: _write(out, m, v.ravel()),
        "pickled vectors": lambda m, v, out: _write(out, m, np.array(list(v), dtype=object)),
        "non-finite vector": nan,
        "vectors of the wrong dim": wrong_dim,
        "vectors not matching dim": lambda m, v, out: _write(out, m, v[:, :-1]),
        "fewer vectors than samples": lambda m, v, out: _write(out, m, v[:-1]),
        "manifest not JSON": lambda m, v, out: _write(out, "{not json", v),
        "manifest a JSON list": lambda m, v, out: _write(out, "[1, 2]", v),
        "manifest as bytes": lambda m, v, out: _write(out, json.dumps(m).encode(), v),
        "other format": edit(lambda m: m.__setitem__("format", "other/1")),
        "no samples": edit(lambda m: m.pop("samples")),
        "samples not a list": edit(lambda m: m.__setitem__("samples", {"0": m["samples"][0]})),
        "sample not an object": edit(lambda m: m["samples"].__setitem__(0, "ann")),
        "dim a string": edit(lambda m: m.__setitem__("dim", str(m["dim"]))),
        "no model": edit(lambda m: m.pop("model_id")),
        "person a number": sample("person", 42),
        "person empty": sample("person", ""),
        "person with spaces": sample("person", " ann"),
        "source a number": sample("source", 5),
        "box text": sample("box", "abc"),
        "box of 3": sample("box", [1, 2, 3]),
        "landmarks of 3 values": sample("landmarks", [[1, 2, 3]]),
        "quality a boolean": sample("quality", True),
        "added infinite": sample("added", float("inf")),
        "people not names": edit(lambda m: m.__setitem__("people", [1])),
        "people not a list": edit(lambda m: m.__setitem__("people", "ann")),
        "truncated file": truncated,
    }


@pytest.mark.parametrize("name", list(_mutations()))
def test_malformed_export_is_refused_and_changes_nothing(gallery: Gallery, tmp_path: Path, name: str) -> None:
    good = tmp_path / "good.npz"
    gallery.export(good)
    manifest, vectors = _parts(good)
    with Gallery(tmp_path / "target.db") as target:
        target.add_embeddings(["zed"], np.ones((1, vectors.shape[1]), np.float32))
        before = _state(target)
        bad = _mutations()[name](manifest, vectors, tmp_path / "bad.npz")
        with pytest.raises(GalleryError) as info:
            target.import_file(bad)
        message = str(info.value)
        assert "\n" not in message and str(bad) in message, message
        assert _state(target) == before
        assert target.import_file(good) == {"added": 3, "duplicates": 0}  # the good one still imports


def _bomb(path: Path, manifest: dict[str, Any], vectors_shape: tuple[int, int], manifest_pad: int = 0) -> Path:
    """An export whose members are deflated zeros (or JSON padded with spaces): a few hundred KB on
    disk that inflate to vectors_shape float32 (+ manifest_pad characters, 4 bytes each)."""
    text = json.dumps(manifest)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        chars = len(text) + manifest_pad
        with zf.open("manifest.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": f"<U{chars}", "fortran_order": False, "shape": ()})
            f.write(text.encode("utf-32-le"))
            for start in range(0, manifest_pad, 2**20):
                f.write(" ".encode("utf-32-le") * min(2**20, manifest_pad - start))
        with zf.open("vectors.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": vectors_shape})
            rows = 2**20 // (4 * vectors_shape[1]) or 1
            for start in range(0, vectors_shape[0], rows):
                f.write(bytes(4 * vectors_shape[1] * min(rows, vectors_shape[0] - start)))
    return path


def _peak_while(fn: Callable[[], object]) -> tuple[int, BaseException | None]:
    """Peak traced Python + numpy memory (bytes) while ``fn`` runs, and what it raised."""
    tracemalloc.start()
    try:
        fn()
        raised = None
    except Exception as exc:  # noqa: BLE001 - returned to the test
        raised = exc
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, raised


@pytest.mark.parametrize("where", ["vectors", "manifest"])
def test_zip_bomb_is_refused_from_the_directory(gallery: Gallery, tmp_path: Path, where: str) -> None:
    """A ~0.5 MB export whose vectors (or manifest, valid JSON padded with spaces) inflate to 512 MB:
    refused before inflating anything. Before: loaded whole (512 MB+), then imported or refused."""
    gallery.export(tmp_path / "good.npz")
    manifest, vectors = _parts(tmp_path / "good.npz")
    dim = vectors.shape[1]
    if where == "vectors":
        bomb = _bomb(tmp_path / "bomb.npz", manifest, (512 * 2**20 // (4 * dim), dim))
    else:
        bomb = _bomb(tmp_path / "bomb.npz", {**manifest, "samples": [], "people": []}, (0, dim), manifest_pad=2**27)
    assert bomb.stat().st_size < 4 * 2**20
    before = _state(gallery)
    peak, raised = _peak_while(lambda: gallery.import_file(bomb))
    assert isinstance(raised, GalleryError) and "zip bomb" in str(raised) and "\n" not in str(raised), raised
    assert peak < 16 * 2**20, f"refusing the bomb took {peak / MB:.0f} MB"
    assert _state(gallery) == before


def test_manifest_over_its_cap_is_refused_from_its_header(
    gallery: Gallery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest's size is capped by the number of descriptors (16 Mi + 4 Ki characters each;
    shrunk here to show the check without writing 64 MB)."""
    good = tmp_path / "good.npz"
    gallery.export(good)
    monkeypatch.setattr(gallery_module, "_MANIFEST_CHARS", (100, 10))
    with pytest.raises(GalleryError, match=r"manifest is [\d,]+ characters, more than the 130"):
        gallery.import_file(good)


def test_lying_member_sizes_are_refused(gallery: Gallery, tmp_path: Path) -> None:
    """A stored vectors member whose header promises more rows than it holds."""
    gallery.export(tmp_path / "good.npz")
    manifest, vectors = _parts(tmp_path / "good.npz")
    out = tmp_path / "short.npz"
    with zipfile.ZipFile(out, "w") as zf:
        buf = io.BytesIO()
        np.save(buf, np.array(json.dumps(manifest)))
        zf.writestr("manifest.npy", buf.getvalue())
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**6, vectors.shape[1])})
        zf.writestr("vectors.npy", buf.getvalue() + vectors.astype("<f4").tobytes())
    with pytest.raises(GalleryError, match="header promises"):
        gallery.import_file(out)


# ------------------------------------------------------------------------------ storage failures


def _locked_error(db: Path) -> sqlite3.OperationalError:
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        other = sqlite3.connect(db, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError) as info:
            other.execute("BEGIN IMMEDIATE")
        other.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    return info.value


def test_storage_errors_from_real_sqlite_and_os_errors(gallery: Gallery, tmp_path: Path) -> None:
    db = gallery.path
    assert db is not None
    ro = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as info:
        ro.execute("INSERT INTO people (name, added) VALUES ('x', 0)")
    ro.close()
    readonly = StorageError.of(info.value)
    assert type(readonly) is StorageError and "readonly" in str(readonly) and "writable" in str(readonly)

    small = sqlite3.connect(tmp_path / "small.db", isolation_level=None)
    small.execute("CREATE TABLE t (b BLOB)")
    small.execute(f"PRAGMA max_page_count = {small.execute('PRAGMA page_count').fetchone()[0] + 1}")
    with pytest.raises(sqlite3.OperationalError) as info:
        small.execute("INSERT INTO t VALUES (zeroblob(1000000))")
    small.close()
    full = StorageError.of(info.value)
    assert isinstance(full, StorageFullError) and "Free disk space" in str(full)

    locked = StorageError.of(_locked_error(db))
    assert type(locked) is StorageError and "Retry in a few seconds" in str(locked)

    for code, cls in [(errno.ENOSPC, StorageFullError), (errno.EDQUOT, StorageFullError), (errno.EFBIG, StorageFullError),
                      (errno.EROFS, StorageError), (errno.EACCES, StorageError)]:
        found = StorageError.of(OSError(code, os.strerror(code), "/gallery.photos/x.jpg.tmp"))
        assert type(found) is cls, (code, found)
        assert "/gallery.photos" not in str(found)  # clients are not told server paths
    # SQLite rolls back by itself after an I/O error; the ROLLBACK that follows fails: judged by the first
    try:
        try:
            raise sqlite3.OperationalError("disk I/O error")
        except sqlite3.OperationalError:
            raise sqlite3.OperationalError("cannot rollback - no transaction is active")  # noqa: B904
    except sqlite3.OperationalError as exc:
        assert type(StorageError.of(exc)) is StorageError
    for other in (sqlite3.OperationalError("no such table: t"), OSError(errno.ENOENT, "No such file"), ValueError("x")):
        assert StorageError.of(other) is None


def test_import_into_a_readonly_gallery_says_so(gallery: Gallery, tmp_path: Path) -> None:
    """A gallery opened read-only (SQLite's mode=ro, as a read-only folder or mount gives it):
    StorageError in one line, not a bare sqlite3 traceback."""
    good = tmp_path / "good.npz"
    gallery.export(good)
    with Gallery(tmp_path / "target.db") as target:
        writable = target.store.db
        target.store.db = sqlite3.connect(f"file:{target.path}?mode=ro", uri=True, isolation_level=None)
        try:
            with pytest.raises(StorageError, match="readonly database.*writable"):
                target.import_file(good)
        finally:
            target.store.db.close()
            target.store.db = writable
        assert target.people() == []


def _server_process(url: str) -> Any:
    """The `faceprint serve` child of this process listening at ``url``."""
    import psutil

    port = str(urlsplit(url).port)
    for child in psutil.Process().children(recursive=True):
        cmd = child.cmdline()
        if "serve" in cmd and port in cmd:
            return child
    raise RuntimeError(f"no server process for {url}")


@pytest.mark.slow
def test_service_full_disk_is_507_and_failing_database_503(tmp_path: Path, data_dir: Path) -> None:
    """A real server whose file-size limit (RLIMIT_FSIZE, set on it from here) stops every write past
    4 KiB: the kept photo's write fails with EFBIG (507 insufficient_storage), the database's WAL
    append with SQLite's "disk I/O error" (503 storage_unavailable). Lifting the limit, both work and
    the gallery holds exactly what was acknowledged. Before: 500 internal_error for both."""
    httpx = pytest.importorskip("httpx")
    from faceprint.service.testing import running_server

    photos = sorted((data_dir / "5-celebrity-faces" / "train" / "madonna").glob("*.jpg"))
    assert photos[0].stat().st_size > 4096
    with running_server(tmp_path / "gallery.db") as url, httpx.Client(base_url=url, timeout=120) as c:
        pid = _server_process(url).pid
        madonna = c.post("/v1/people", json={"name": "madonna"}).json()["id"]
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        try:
            r = c.post(f"/v1/people/{madonna}/faces", files={"image": photos[0].read_bytes()})
            assert r.status_code == 507, r.text
            assert r.json()["error"]["code"] == "insufficient_storage"
            assert "Free disk space" in r.json()["error"]["message"]
            r = c.post("/v1/people", json={"name": "never"})
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "storage_unavailable" and "disk" in r.json()["error"]["message"]
            assert c.get("/v1/people").status_code == 200  # reads still answer
        finally:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        assert c.post(f"/v1/people/{madonna}/faces", files={"image": photos[0].read_bytes()}).status_code == 201
        assert c.post("/v1/people", json={"name": "later"}).status_code == 201
        people = {p["name"]: p["samples"] for p in c.get("/v1/people").json()["people"]}
        assert people == {"madonna": 1, "later": 0}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient` is deprecated")  # httpx2 is not installed
def test_service_readonly_gallery_is_503(tmp_path: Path) -> None:
    """The app in-process, its gallery connection reopened read-only (SQLite mode=ro: what a
    read-only folder or mount gives): a write answers 503 storage_unavailable, reads still work."""
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from faceprint.service import Settings, create_app

    db = tmp_path / "gallery.db"
    with TestClient(create_app(Settings(db=db)), base_url="http://127.0.0.1") as c:
        assert c.post("/v1/people", json={"name": "ann"}).status_code == 201
        store = c.app.state.engine.gallery.store
        writable = store.db
        store.db = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        try:
            r = c.post("/v1/people", json={"name": "bob"})
            assert r.status_code == 503, r.text
            body = r.json()["error"]
            assert body["code"] == "storage_unavailable" and "readonly database" in body["message"]
            assert "writable" in body["message"]
            assert [p["name"] for p in c.get("/v1/people").json()["people"]] == ["ann"]
        finally:
            store.db.close()
            store.db = writable
