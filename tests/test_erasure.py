"""Erasure and writers that race (issue 14): a deleted person's bytes leave every file of the
gallery; kept photos go with their samples and keep no EXIF; a process holding the old model after
a re-embedding is refused instead of mixing two models' vectors."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceprint import Gallery, GalleryError, ModelMismatchError
from faceprint.gallery.store import NewSample
from faceprint.service.photos import strip_metadata

NAME = "Zelda Quintessa-Erasure"


def gallery_files(db: Path, photos: Path) -> list[Path]:
    """Every file that holds the gallery: the database, its WAL and shared memory, the saved index,
    kept photos."""
    return [p for p in [*db.parent.glob(db.name + "*"), *photos.glob("*")] if p.is_file()]


def test_a_deleted_person_leaves_no_bytes_behind(tmp_path: Path) -> None:
    db, photos = tmp_path / "g.db", tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(7)
    others = rng.standard_normal((3000, 128)).astype(np.float32)
    mine = rng.standard_normal((3, 128)).astype(np.float32)
    kept = photos / "zelda.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(kept)
    with Gallery(db, model="dlib-resnet-v1", index="ivf") as g:
        g.keep_photos_in(photos)
        g.add_embeddings([f"p{i % 600}" for i in range(3000)], others)
        g.store.add([NewSample(NAME, v, source=str(kept) if i == 0 else None) for i, v in enumerate(mine)])
        assert g.identify_vectors(mine[:1])[0][0].identity == NAME  # the IVF index is built...
        g._save_index()  # ...and saved beside the file, as a clean shutdown leaves it
        import faiss

        ivf = g._index._index  # the codes as the index stores them: float16 residuals to the cell centre
        cells = ivf.quantizer.assign(mine, 1).ravel()
        centres = np.stack([ivf.quantizer.reconstruct(int(c)) for c in cells])
        codes = faiss.ScalarQuantizer(128, faiss.ScalarQuantizer.QT_fp16).compute_codes(mine - centres)
        needles = [NAME.encode(), *(v.tobytes()[:16] for v in mine), *(bytes(c[:16]) for c in codes)]
        assert NAME.encode() in db.with_name("g.db-wal").read_bytes() + db.read_bytes()
        assert mine[0].tobytes()[:16] in db.with_name("g.db-wal").read_bytes() + db.read_bytes()
        assert bytes(codes[0][:16]) in g.index_path.read_bytes()  # there before: the search can find them
        assert g.remove(NAME) == 3
        assert not kept.exists()
        for path in gallery_files(db, photos):  # while the gallery is still open, as a server's would be
            data = path.read_bytes()
            found = [n for n in needles if n in data]
            assert not found, f"{path.name} still holds {found[:1]}"
        assert g.identify_vectors(mine[:1])[0][0].identity != NAME and g.check() == "ok"


def test_kept_photos_go_with_samples_removed_from_the_command_line(tmp_path: Path, data_dir: Path) -> None:
    from typer.testing import CliRunner

    from faceprint.cli import app

    db, photos = tmp_path / "g.db", tmp_path / "photos"
    photos.mkdir()
    kept = photos / "m.jpg"
    shutil.copy(sorted((data_dir / "5-celebrity-faces" / "train" / "madonna").glob("*.jpg"))[0], kept)
    with Gallery(db, model="dlib-resnet-v1") as g:
        g.keep_photos_in(photos)  # what the service records when it starts on this gallery
        assert g.enrol([("madonna", kept)]).enrolled
    res = CliRunner().invoke(app, ["gallery", "--db", str(db), "remove", "madonna"])
    assert res.exit_code == 0, res.output
    assert not kept.exists()


def test_kept_photos_lose_gps_but_keep_orientation_and_pixels() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: must survive, or the kept photo turns sideways
    exif[0x010F] = "SpyCam Inc."  # camera make
    exif[0x8825] = {2: (48.0, 51.0, 30.0), 4: (2.0, 17.0, 40.0)}  # GPS position
    raw = io.BytesIO()
    image.save(raw, format="JPEG", exif=exif, comment=b"secret note")
    data = raw.getvalue()
    assert b"SpyCam" in data and b"secret note" in data
    clean, suffix = strip_metadata(data)
    assert suffix == ".jpeg" and b"SpyCam" not in clean and b"secret note" not in clean
    out = Image.open(io.BytesIO(clean))
    assert out.getexif().get(0x0112) == 6 and 0x8825 not in out.getexif() and 0x010F not in out.getexif()
    np.testing.assert_array_equal(np.asarray(out), np.asarray(Image.open(io.BytesIO(data))))  # not re-encoded
    png = io.BytesIO()
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Location", "48.85N 2.29E")
    image.save(png, format="PNG", pnginfo=info)
    clean, suffix = strip_metadata(png.getvalue())
    assert suffix == ".png" and b"48.85N" not in clean
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(clean))), np.asarray(image))


def test_a_process_with_the_old_model_is_refused_after_a_reembedding(tmp_path: Path, data_dir: Path) -> None:
    db = tmp_path / "g.db"
    photos = sorted((data_dir / "5-celebrity-faces" / "train" / "madonna").glob("*.jpg"))[:2]
    with Gallery(db, model="dlib-resnet-v1") as old:
        old.enrol([("madonna", p) for p in photos])
        probe = old.store.vectors()[1][:1]
        with Gallery(db) as other:  # `faceprint gallery reembed` while a server keeps running
            other.reembed(model="sface")
        with pytest.raises(ModelMismatchError, match="restart"):
            old.add_embeddings(["x"], probe)
        with pytest.raises(ModelMismatchError, match="restart"):
            old.identify_vectors(probe)
    with Gallery(db) as g:
        assert g.spec.name == "sface" and len(g) == 2 and g.check() == "ok"


def test_an_import_cannot_point_a_sample_at_another_persons_kept_photo(tmp_path: Path) -> None:
    db, photos = tmp_path / "g.db", tmp_path / "photos"
    photos.mkdir()
    theirs = photos / "alice.png"
    Image.new("RGB", (8, 8), (9, 9, 9)).save(theirs)
    v = np.random.default_rng(1).standard_normal((2, 128)).astype(np.float32)
    with Gallery(tmp_path / "src.db", model="dlib-resnet-v1") as src:  # the attacker's export
        src.store.add([NewSample("mallory", v[0], source=str(theirs), sha256="e" * 64)])
        src.export(tmp_path / "crafted.npz")
    with Gallery(db, model="dlib-resnet-v1") as g:
        g.keep_photos_in(photos)
        g.store.add([NewSample("alice", v[1], source=str(theirs), sha256="a" * 64)])
        assert g.import_file(tmp_path / "crafted.npz")["added"] == 1
        assert g.samples("mallory")[0].source is None  # not alice's photo
        g.remove("mallory")
        assert theirs.is_file()  # removing the imported sample left alice's kept photo alone


@pytest.mark.parametrize("name", ["ann\x00", "ann\nbob", "\u202eann", "an\u200bn", "a" * 201, " ann"])
def test_names_that_hide_or_reorder_text_are_refused(tmp_path: Path, name: str) -> None:
    with Gallery(tmp_path / "g.db", model="dlib-resnet-v1") as g:
        g.add_embeddings(["ann"], np.ones((1, 128), np.float32))
        with pytest.raises(GalleryError):
            g.add_embeddings([name], np.ones((1, 128), np.float32) * 2)
        with pytest.raises(GalleryError):
            g.rename("ann", name)
        assert g.people() == [("ann", 1)]
    with Gallery(tmp_path / "g.db") as g:
        assert g.people() == [("ann", 1)] and g.check() == "ok"


def test_gallery_files_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)  # the usual default, which made every file world-readable
    try:
        with Gallery(tmp_path / "g.db", model="dlib-resnet-v1", index="ivf") as g:
            g.add_embeddings([f"p{i}" for i in range(200)], np.random.default_rng(0).standard_normal((200, 128)).astype(np.float32))
            g.identify_vectors(np.zeros((1, 128), np.float32))
            g._save_index()
            files = [p for p in tmp_path.iterdir() if p.name.startswith("g.db")]
            assert {p.name for p in files} >= {"g.db", "g.db-wal", "g.db-shm", "g.db.index"}
            for p in files:
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p.name, oct(p.stat().st_mode))
    finally:
        os.umask(old)
