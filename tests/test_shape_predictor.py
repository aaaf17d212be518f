"""dlib ERT shape predictor port: parsing, evaluation, the .npz cache, real-face sanity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceprint import shape_predictor as spm
from faceprint.errors import InvalidImageError, ModelError
from faceprint.shape_predictor import ShapePredictor

LFW_FACE = ("lfw/lfw-deepfunneled/Brenda_Magana/Brenda_Magana_0001.jpg", (67, 80, 175, 187))


# -- a tiny synthetic model written in dlib's format (dlib-format.md 1 and 5.1) ------------------


def _enc_int(v: int) -> bytes:
    mag = abs(int(v))
    n = max(1, (mag.bit_length() + 7) // 8)
    return bytes([n | (0x80 if v < 0 else 0)]) + mag.to_bytes(n, "little")


def _enc_float(v: float) -> bytes:
    m, e = math.frexp(float(v))
    return _enc_int(int(m * (1 << 24))) + _enc_int(e - 24)  # exact for float32 values


def _enc_column(values: np.ndarray) -> bytes:
    return _enc_int(-len(values)) + _enc_int(-1) + b"".join(_enc_float(x) for x in values)


def _random_model(
    seed: int = 0, parts: int = 3, cascades: int = 3, trees: int = 6, depth: int = 2, feats: int = 9
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ns = 2**depth - 1
    f32 = np.float32
    return {
        "initial": rng.uniform(0.2, 0.8, 2 * parts).astype(f32),
        "idx1": rng.integers(0, feats, (cascades, trees, ns)).astype(np.int32),
        "idx2": rng.integers(0, feats, (cascades, trees, ns)).astype(np.int32),
        "thresh": rng.uniform(-60, 60, (cascades, trees, ns)).astype(f32),
        "leaves": rng.normal(0, 0.02, (cascades, trees, ns + 1, 2 * parts)).astype(f32),
        "anchor": rng.integers(0, parts, (cascades, feats)).astype(np.int32),
        "deltas": rng.normal(0, 0.15, (cascades, feats, 2)).astype(f32),
    }


def _write_dat(path: Path, m: dict[str, np.ndarray]) -> Path:
    out = [_enc_int(1), _enc_column(m["initial"]), _enc_int(len(m["idx1"]))]
    for c in range(len(m["idx1"])):
        out.append(_enc_int(m["idx1"].shape[1]))
        for t in range(m["idx1"].shape[1]):
            out.append(_enc_int(m["idx1"].shape[2]))
            for i1, i2, th in zip(m["idx1"][c, t], m["idx2"][c, t], m["thresh"][c, t]):
                out += [_enc_int(i1), _enc_int(i2), _enc_float(th)]
            out.append(_enc_int(m["leaves"].shape[2]))
            out += [_enc_column(leaf) for leaf in m["leaves"][c, t]]
    out.append(_enc_int(len(m["anchor"])))
    for row in m["anchor"]:
        out += [_enc_int(len(row))] + [_enc_int(a) for a in row]
    out.append(_enc_int(len(m["deltas"])))
    for row in m["deltas"]:
        out += [_enc_int(len(row))] + [_enc_float(v) for d in row for v in d]
    path.write_bytes(b"".join(out))
    return path


def _reference_predict(
    m: dict[str, np.ndarray], image: np.ndarray, rect: tuple[int, int, int, int]
) -> np.ndarray:
    """dlib-format.md 5.2 read literally: one feature and one tree at a time."""
    left, top, right, bottom = rect
    sx, sy = right - left, bottom - top
    h, w = image.shape[:2]
    init = m["initial"].reshape(-1, 2).astype(np.float64)
    cur = m["initial"].copy()
    for c in range(len(m["idx1"])):
        s = init - init.mean(0)
        d = cur.reshape(-1, 2).astype(np.float64)
        d = d - d.mean(0)
        sigma = (s * s).sum()
        a = (d[:, 0] * s[:, 0] + d[:, 1] * s[:, 1]).sum() / sigma
        b = (d[:, 1] * s[:, 0] - d[:, 0] * s[:, 1]).sum() / sigma
        mm = np.array([[a, -b], [b, a]], np.float32)
        feats = []
        for anchor, delta in zip(m["anchor"][c], m["deltas"][c]):
            qx = mm[0, 0] * delta[0] + mm[0, 1] * delta[1] + cur[2 * anchor]
            qy = mm[1, 0] * delta[0] + mm[1, 1] * delta[1] + cur[2 * anchor + 1]
            x = math.floor(float(qx) * sx + left + 0.5)
            y = math.floor(float(qy) * sy + top + 0.5)
            if 0 <= x < w and 0 <= y < h:
                px = image[y, x]
                feats.append(float(int(px[0]) + int(px[1]) + int(px[2])) // 3 if px.ndim else float(px))
            else:
                feats.append(0.0)
        f = np.array(feats, np.float32)
        ns = m["idx1"].shape[2]
        for t in range(m["idx1"].shape[1]):
            node = 0
            while node < ns:
                go_left = f[m["idx1"][c, t, node]] - f[m["idx2"][c, t, node]] > m["thresh"][c, t, node]
                node = 2 * node + 1 if go_left else 2 * node + 2
            cur = (cur + m["leaves"][c, t, node - ns]).astype(np.float32)
    pts = cur.reshape(-1, 2).astype(np.float64)
    return np.floor(pts * [sx, sy] + [left, top] + 0.5).astype(np.int64)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACEPRINT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "dlib"


@pytest.fixture(scope="module")
def sp5(tmp_path_factory: pytest.TempPathFactory) -> ShapePredictor:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEPRINT_CACHE", str(tmp_path_factory.mktemp("sp-cache")))
        return ShapePredictor.load()


@pytest.fixture(scope="module")
def lfw_face(data_dir: Path) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    name, rect = LFW_FACE
    return np.asarray(Image.open(data_dir / name).convert("RGB")), rect


# -- parsing and evaluation ---------------------------------------------------------------------


def test_token_stream_decoding_across_many_blocks() -> None:
    # Long enough for the block-parallel boundary search to need many blocks and fix-ups.
    rng = np.random.default_rng(9)
    values = [int(v) for v in rng.integers(-(2**40), 2**40, 30_000) >> rng.integers(0, 41, 30_000)]
    values += [0, 2**63 - 1, -(2**63 - 1)]
    blob = b"".join(_enc_int(v) for v in values)
    b = np.frombuffer(b"\x01\x07" + blob, np.uint8)  # one leading token to skip
    starts = spm._token_starts(b, 2, "blob")
    np.testing.assert_array_equal(spm._decode_ints(b, starts, "blob"), values)
    with pytest.raises(ModelError):
        spm._token_starts(b[:-1], 2, "blob")  # last number cut short


def test_synthetic_model_parses_exactly(tmp_path: Path, cache: Path) -> None:
    model = _random_model()
    arrays = spm._parse(_write_dat(tmp_path / "sp.dat", model))
    for key, want in model.items():
        np.testing.assert_array_equal(arrays[key], want, err_msg=key)
        assert arrays[key].dtype == want.dtype, key


@pytest.mark.parametrize("gray", [False, True])
def test_vectorised_evaluation_equals_literal_recipe(tmp_path: Path, cache: Path, gray: bool) -> None:
    model = _random_model(seed=3, depth=3)
    sp = ShapePredictor.load(_write_dat(tmp_path / "sp.dat", model))
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (60, 80) if gray else (60, 80, 3), dtype=np.uint8)
    rects = [(10, 12, 50, 48), (-20, -5, 30, 40), (60, 30, 95, 70), (0, 0, 79, 59)]  # 2 cross the border
    got = sp.predict_many(image, rects)
    for rect, pts in zip(rects, got):
        np.testing.assert_array_equal(pts, _reference_predict(model, image, rect))
        np.testing.assert_array_equal(sp.predict(image, rect), pts)
    assert sp.num_parts == 3


def test_real_model_vectorised_equals_literal_recipe(sp5: ShapePredictor, lfw_face) -> None:
    image, rect = lfw_face
    model = {
        "initial": sp5._initial,
        "idx1": sp5._idx1.reshape(sp5.num_cascades, sp5._n_trees, -1),
        "idx2": sp5._idx2.reshape(sp5.num_cascades, sp5._n_trees, -1),
        "thresh": sp5._thresh.reshape(sp5.num_cascades, sp5._n_trees, -1),
        "leaves": sp5._leaves.reshape(sp5.num_cascades, sp5._n_trees, -1, sp5._initial.size),
        "anchor": sp5._anchor_xy[:, 0] // 2,
        "deltas": np.stack([sp5._dx, sp5._dy], axis=-1),
    }
    shifted = (rect[0] + 7, rect[1] - 5, rect[2] + 3, rect[3] - 9)
    for r in (rect, shifted):
        np.testing.assert_array_equal(sp5.predict(image, r), _reference_predict(model, image, r))


# -- real face ---------------------------------------------------------------------------------


def test_landmarks_on_real_face_are_plausible(sp5: ShapePredictor, lfw_face) -> None:
    image, rect = lfw_face
    pts = sp5.predict(image, rect)
    assert pts.shape == (5, 2) and pts.dtype == np.int64 and sp5.num_parts == 5
    left, top, right, bottom = rect
    assert ((pts[:, 0] >= left) & (pts[:, 0] <= right) & (pts[:, 1] >= top) & (pts[:, 1] <= bottom)).all()
    (rx_out, ry_out), (rx_in, _), (lx_out, ly_out), (lx_in, _), (nose_x, nose_y) = pts
    # 0/1: outer/inner corner of the eye on the image right; 2/3 the same on the left; 4 nose base.
    assert lx_out < lx_in < nose_x < rx_in < rx_out
    assert abs(ry_out - ly_out) < 0.1 * (right - left)  # an upright LFW face: eyes level
    assert nose_y - max(ry_out, ly_out) > 0.15 * (bottom - top)
    eye_span = rx_out - lx_out
    assert 0.45 * (right - left) < eye_span < 0.9 * (right - left)


def test_predict_many_gray_and_border(sp5: ShapePredictor, lfw_face) -> None:
    image, rect = lfw_face
    rects = [rect, (rect[0] - 60, rect[1] - 70, rect[2] - 60, rect[3] - 70)]  # second one crosses the edge
    many = sp5.predict_many(image, rects)
    assert len(many) == 2
    for r, pts in zip(rects, many):
        np.testing.assert_array_equal(sp5.predict(image, r), pts)
    assert sp5.predict_many(image, []) == []
    flipped = image[:, ::-1]  # a strided view is read in place, with the same result as a copy
    np.testing.assert_array_equal(sp5.predict(flipped, rect), sp5.predict(flipped.copy(), rect))
    gray = np.asarray(Image.fromarray(image).convert("L"))
    g = sp5.predict(gray, rect)
    assert np.abs(g - many[0]).max() <= 4  # other intensities, same face
    np.testing.assert_array_equal(sp5.predict(gray[:, :, None], rect), g)
    np.testing.assert_array_equal(sp5.predict(gray[::-1], rect), sp5.predict(gray[::-1].copy(), rect))


def test_bad_inputs(sp5: ShapePredictor, lfw_face, tmp_path: Path) -> None:
    image, rect = lfw_face
    with pytest.raises(InvalidImageError):
        sp5.predict(image.astype(np.float32), rect)
    with pytest.raises(InvalidImageError):
        sp5.predict(np.zeros((10, 10, 4), np.uint8), rect)
    with pytest.raises(ValueError):
        sp5.predict(image, (1.5, 2, 3, 4))
    with pytest.raises(ValueError):
        sp5.predict(image, (1, 2, 3))
    with pytest.raises(ModelError):
        ShapePredictor.load(tmp_path / "missing.dat")


# -- cache ---------------------------------------------------------------------------------------


def test_npz_cache_created_reused_and_rebuilt(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dat = _write_dat(tmp_path / "sp.dat", _random_model(seed=7))
    image = np.random.default_rng(2).integers(0, 256, (50, 50, 3), dtype=np.uint8)
    want = ShapePredictor.load(dat).predict(image, (5, 5, 40, 40))
    files = list(cache.glob("shape_predictor-*.npz"))
    assert len(files) == 1 and spm.sha256_file(dat) in files[0].name
    npz = files[0]

    parse = spm._parse
    calls: list[Path] = []

    def counting_parse(path: Path) -> dict[str, np.ndarray]:
        calls.append(path)
        return parse(path)

    monkeypatch.setattr(spm, "_parse", counting_parse)
    stamp = npz.stat().st_mtime_ns
    np.testing.assert_array_equal(ShapePredictor.load(dat).predict(image, (5, 5, 40, 40)), want)
    assert calls == [] and npz.stat().st_mtime_ns == stamp  # reused, not rewritten

    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])  # corrupt: truncated zip
    np.testing.assert_array_equal(ShapePredictor.load(dat).predict(image, (5, 5, 40, 40)), want)
    assert len(calls) == 1
    with np.load(npz) as fresh:  # rebuilt as a complete file
        assert str(fresh["source_sha256"]) in npz.name

    with np.load(npz) as z:
        arrays = dict(z)
    arrays["idx1"] = arrays["idx1"] + 1000  # intact zip, inconsistent content
    np.savez(npz, **arrays)
    np.testing.assert_array_equal(ShapePredictor.load(dat).predict(image, (5, 5, 40, 40)), want)
    assert len(calls) == 2

    with np.load(npz) as z:
        arrays = dict(z)
    arrays["cache_format"] = np.array(-1)  # stale layout
    np.savez(npz, **arrays)
    ShapePredictor.load(dat)
    assert len(calls) == 3
    assert not list(cache.glob("*.tmp"))


def test_corrupt_dat_raises_model_error(tmp_path: Path, cache: Path) -> None:
    good = _write_dat(tmp_path / "sp.dat", _random_model(seed=5)).read_bytes()
    for name, data in [
        ("truncated.dat", good[: len(good) - 3]),
        ("trailing.dat", good + b"\x01\x05"),
        ("garbage.dat", good[:40] + b"\x7f" * 50 + good[90:]),
        ("version.dat", b"\x01\x02" + good[2:]),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ModelError):
            ShapePredictor.load(path)
    assert not list(cache.glob("*.npz"))  # nothing cached for the broken files
