"""Alignment: similarity fit, dlib chip geometry and resampling, generic warp."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from faceprint import align
from faceprint.align import (
    DLIB_5PT_TEMPLATE,
    DLIB_68PT_TEMPLATE,
    dlib_chip_transform,
    extract_dlib_chip,
    similarity_transform,
    warp_chip,
)
from faceprint.errors import InvalidImageError
from faceprint.types import Detection

# dlib 5-point landmarks (dlib 20.0.1 on its HOG boxes) of two shared test images.
LFW_NAME = "lfw/lfw-deepfunneled/Brenda_Magana/Brenda_Magana_0001.jpg"
LFW_POINTS = np.array([[155, 111], [137, 114], [94, 112], [112, 114], [124, 148]])
OBAMA_POINTS = np.array([[571, 217], [529, 215], [424, 217], [464, 216], [496, 295]])


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts, np.float64) @ m[:, :2].T + m[:, 2]


@pytest.fixture(scope="module")
def lfw(data_dir: Path) -> np.ndarray:
    return _rgb(data_dir / LFW_NAME)


# -- similarity_transform ---------------------------------------------------------------------


@pytest.mark.parametrize("angle", [0.0, 0.3, -2.5, math.pi])
def test_similarity_transform_recovers_known_transform(angle: float) -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(-50, 150, (7, 2))
    scale, t = 1.7, np.array([12.5, -40.0])
    m = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    want = np.hstack([m, t[:, None]])
    got = similarity_transform(src, _apply(want, src))
    assert got.shape == (2, 3) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, atol=1e-9)
    # least squares under noise: close, and a mirrored target still gives a rotation (det > 0)
    noisy = similarity_transform(src, _apply(want, src) + rng.normal(0, 0.5, src.shape))
    np.testing.assert_allclose(noisy, want, atol=0.5)
    mirrored = similarity_transform(src, src * [-1, 1])
    assert np.linalg.det(mirrored[:, :2]) >= 0


def test_similarity_transform_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        similarity_transform(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError):
        similarity_transform(np.zeros((3, 3)), np.zeros((3, 3)))


# -- dlib chip geometry -------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "padding"), [(150, 0.25), (150, 0.0), (200, 0.2), (80, 0.25)])
def test_chip_transform_maps_landmarks_to_template(size: int, padding: float) -> None:
    m = dlib_chip_transform(LFW_POINTS, size, padding)
    assert m.shape == (2, 3)
    inv = cv2.invertAffineTransform(m)
    in_chip = _apply(inv, LFW_POINTS)
    template = (padding + DLIB_5PT_TEMPLATE) / (1 + 2 * padding) * size
    # the fit is least squares and dlib's sampling grid is offset by ~half a pixel
    assert np.abs(in_chip - template).max() < 0.04 * size
    # the chip is upright: its x axis runs along the eye line
    eyes = LFW_POINTS[0] - LFW_POINTS[2]
    assert abs(math.atan2(m[1, 0], m[0, 0]) - math.atan2(eyes[1], eyes[0])) < 0.1


def test_chip_transform_68_points_uses_the_mean_face() -> None:
    rng = np.random.default_rng(1)
    m = np.array([[2.0, -0.3, 40.0], [0.3, 2.0, 25.0]])
    pts68 = rng.uniform(0, 1, (68, 2))
    pts68[align.DLIB_68PT_INDICES] = DLIB_68PT_TEMPLATE
    pts68 = _apply(m, (0.25 + pts68) / 1.5 * 150)
    got = dlib_chip_transform(pts68, 150, 0.25)
    # the chip pixel grid spans the fitted square: chip centre ~ fitted centre, same rotation
    np.testing.assert_allclose(_apply(got, [[74.5, 74.5]]), _apply(m, [[75, 75]]), atol=1.5)
    np.testing.assert_allclose(math.atan2(got[1, 0], got[0, 0]), math.atan2(0.3, 2.0), atol=1e-9)
    with pytest.raises(ValueError):
        dlib_chip_transform(np.zeros((7, 2)))


# -- dlib chip resampling -----------------------------------------------------------------------


def test_chip_basic_properties(lfw: np.ndarray) -> None:
    chip = extract_dlib_chip(lfw, LFW_POINTS)
    assert chip.pixels.shape == (150, 150, 3) and chip.pixels.dtype == np.uint8
    assert chip.pixels.flags.c_contiguous
    np.testing.assert_array_equal(chip.transform, dlib_chip_transform(LFW_POINTS))
    # padding passes through float32 as in dlib's Python binding
    np.testing.assert_array_equal(
        extract_dlib_chip(lfw, LFW_POINTS, 200, 0.2).pixels,
        extract_dlib_chip(lfw, LFW_POINTS, 200, float(np.float32(0.2))).pixels,
    )
    # gray in, gray chip out (all three channels equal, same as the RGB path on gray)
    gray = np.asarray(Image.fromarray(lfw).convert("L"))
    g = extract_dlib_chip(gray, LFW_POINTS).pixels
    np.testing.assert_array_equal(g, extract_dlib_chip(np.dstack([gray] * 3), LFW_POINTS).pixels)
    with pytest.raises(InvalidImageError):
        extract_dlib_chip(lfw.astype(np.float32), LFW_POINTS)


def test_chip_samples_bilinear_with_truncation(lfw: np.ndarray) -> None:
    chip = extract_dlib_chip(lfw, LFW_POINTS, 80, 0.25)
    m = chip.transform
    img = lfw.astype(np.float64)
    for col, row in [(0, 0), (79, 0), (13, 57), (40, 40), (79, 79)]:
        x, y = _apply(m, [[col, row]])[0]
        l, t = math.floor(x), math.floor(y)
        fx, fy = x - l, y - t
        top = (1 - fx) * img[t, l] + fx * img[t, l + 1]
        bottom = (1 - fx) * img[t + 1, l] + fx * img[t + 1, l + 1]
        v = (1 - fy) * top + fy * bottom
        # the map is rebuilt from the crop in extract_dlib_chip, so allow a last-bit difference
        assert np.abs(chip.pixels[row, col].astype(int) - np.trunc(v)).max() <= 1


def test_chip_of_rotated_image_matches(lfw: np.ndarray) -> None:
    base = extract_dlib_chip(lfw, LFW_POINTS).pixels.astype(int)
    h, w = lfw.shape[:2]
    # exact 90 degree rotation (counter-clockwise): (x, y) -> (y, w - 1 - x)
    rot = np.ascontiguousarray(np.rot90(lfw))
    pts = np.stack([LFW_POINTS[:, 1], w - 1 - LFW_POINTS[:, 0]], axis=1)
    assert np.abs(extract_dlib_chip(rot, pts).pixels - base).mean() < 1.0
    # arbitrary rotation: interpolated twice, so only close
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 23.0, 1.0)
    rot = cv2.warpAffine(lfw, m, (w, h), flags=cv2.INTER_LINEAR)
    diff = np.abs(extract_dlib_chip(rot, _apply(m, LFW_POINTS)).pixels - base)
    assert diff.mean() < 6.0


def test_large_face_goes_through_the_pyramid(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    obama = _rgb(data_dir / "misc" / "obama.jpg")
    big = cv2.resize(obama, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    levels: list[tuple[int, ...]] = []
    pyr = align._pyr_down2

    def spy(img: np.ndarray) -> np.ndarray:
        levels.append(img.shape)
        return pyr(img)

    monkeypatch.setattr(align, "_pyr_down2", spy)
    small_chip = extract_dlib_chip(obama, OBAMA_POINTS).pixels.astype(int)
    n_small = len(levels)
    big_chip = extract_dlib_chip(big, OBAMA_POINTS * 3 + 1).pixels.astype(int)
    assert len(levels) - n_small >= 2 > n_small  # the 3x face needs two pyramid levels, 1x at most one
    assert big_chip.shape == (150, 150, 3)
    assert np.abs(big_chip - small_chip).mean() < 6.0
    # gray images take the same path
    gray = np.ascontiguousarray(big[:, :, 1])
    g = extract_dlib_chip(gray, OBAMA_POINTS * 3 + 1).pixels
    np.testing.assert_array_equal(g[:, :, 0], g[:, :, 2])


def test_pyr_down2_matches_integer_definition() -> None:
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (23, 18, 3), dtype=np.uint8)
    k = np.array([1, 4, 6, 4, 1])
    kk = np.outer(k, k)
    oh, ow = (23 - 3) // 2, (18 - 3) // 2
    want = np.empty((oh, ow, 3), np.uint8)
    for y in range(oh):
        for x in range(ow):
            block = img[2 * y : 2 * y + 5, 2 * x : 2 * x + 5].astype(np.int64)
            want[y, x] = (block * kk[:, :, None]).sum(axis=(0, 1)) // 256
    np.testing.assert_array_equal(align._pyr_down2(img), want)
    assert align._pyr_down2(img[:8]).size == 0


def test_chip_partly_or_wholly_outside_is_black(lfw: np.ndarray) -> None:
    shifted = LFW_POINTS - [120, 0]  # face centre near the left edge
    chip = extract_dlib_chip(lfw, shifted).pixels
    assert (chip[:, :20] == 0).all() and chip[:, 100:].any()
    gone = extract_dlib_chip(lfw, LFW_POINTS + 5000).pixels
    assert gone.shape == (150, 150, 3) and not gone.any()


# -- generic warp and adapters ------------------------------------------------------------------


def test_warp_chip_places_landmarks_on_template(lfw: np.ndarray) -> None:
    template = (0.25 + DLIB_5PT_TEMPLATE) / 1.5 * 112
    chip = warp_chip(lfw, LFW_POINTS, template, 112)
    assert chip.pixels.shape == (112, 112, 3) and chip.pixels.dtype == np.uint8
    np.testing.assert_allclose(_apply(chip.transform, template), LFW_POINTS, atol=2.5)
    # near dlib's chip of the same template (other fit direction, pixel-centre convention, rounding)
    dlib_chip = extract_dlib_chip(lfw, LFW_POINTS, 112, 0.25).pixels.astype(int)
    assert np.abs(chip.pixels.astype(int) - dlib_chip).mean() < 8.0
    gray = warp_chip(lfw[:, :, 0], LFW_POINTS, template, 112).pixels
    assert gray.shape == (112, 112, 3)
    with pytest.raises(ValueError):
        warp_chip(lfw, LFW_POINTS, template[:4], 112)


def test_adapters() -> None:
    det = Detection(box=(67.0, 80.0, 176.0, 188.0), score=1.0)
    assert align.dlib_rect(det) == (67, 80, 175, 187)
    # MTCNN points of a face exactly on the mean face give dlib's template back
    m = np.array([[100.0, -8.0, 30.0], [8.0, 100.0, 20.0]])
    mtcnn = _apply(m, align._MTCNN_IN_DLIB_FRAME)
    np.testing.assert_allclose(align.mtcnn_to_dlib5(mtcnn), _apply(m, DLIB_5PT_TEMPLATE), atol=1e-9)
