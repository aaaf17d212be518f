"""faceprint.degrade on real LFW photos: shapes, determinism, and that each degradation does what it says."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceprint import degrade
from faceprint.degrade import CONDITIONS, encode_jpeg, get_condition, jpeg, mask, pixels, rotate, seed_for
from faceprint.detect import Detector, get_detector
from faceprint.errors import UnknownNameError
from faceprint.imageio import load_image
from faceprint.pipeline import select_face

PHOTOS = ["Colin_Powell/Colin_Powell_0001.jpg", "Serena_Williams/Serena_Williams_0001.jpg"]


@pytest.fixture(scope="module")
def photo(data_dir: Path) -> np.ndarray:
    return load_image(data_dir / "lfw" / "lfw-deepfunneled" / PHOTOS[0])


@pytest.fixture(scope="module")
def yunet() -> Detector:
    return get_detector("yunet")


def test_registry_names() -> None:
    expected = {"clean", "jpeg10", "jpeg20", "jpeg30", "jpeg50", "jpeg70", "jpeg90", "px1600", "px6400",
                "px14400", "px25600", "px65536", "rot90", "rot180", "gray", "under", "over", "blur", "mask", "small"}  # fmt: skip
    assert set(degrade.list_conditions()) == expected
    assert all(c.description for c in CONDITIONS.values())
    with pytest.raises(UnknownNameError, match="jpeg10"):
        get_condition("jpeg11")


@pytest.mark.parametrize("name", list(CONDITIONS))
def test_condition_shape_dtype_and_determinism(photo: np.ndarray, name: str) -> None:
    cond = get_condition(name)
    before = photo.copy()
    out = cond(photo, rng=7)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert out.shape == ((1080, 1920, 3) if name == "small" else photo.shape)
    assert (photo == before).all()  # the input is never changed
    assert (cond(photo, rng=7) == out).all()  # same seed, same pixels
    if cond.random:
        assert (cond(photo, rng=8) != out).any()
    if name not in ("clean", "px14400", "px25600", "px65536"):  # LFW's face has ~12,900 px: those are clean
        assert out.shape != photo.shape or (out != photo).any()


def test_seed_for_is_stable_across_processes() -> None:
    assert seed_for("jpeg10/Colin_Powell/Colin_Powell_0001.jpg") == 178861573403544019
    assert seed_for("x", 1) != seed_for("x", 2)


def test_jpeg_quality_lowers_size_and_fidelity(photo: np.ndarray) -> None:
    qualities = [10, 20, 30, 50, 70, 90]
    sizes = [len(encode_jpeg(photo, q)) for q in qualities]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    errors = [np.abs(jpeg(photo, q).astype(float) - photo).mean() for q in qualities]
    assert errors == sorted(errors, reverse=True)
    with pytest.raises(ValueError, match="1..100"):
        jpeg(photo, 0)


@pytest.mark.parametrize("n", [1600, 6400])
def test_pixels_gives_the_stated_face_pixel_count(photo: np.ndarray, n: int) -> None:
    small = pixels(photo, n, restore=False)
    face_side = min(small.shape[:2]) * degrade.LFW_FACE_FRACTION  # the face box at the new scale
    assert abs(face_side**2 - n) / n < 0.03
    restored = pixels(photo, n)
    assert restored.shape == photo.shape
    # detail is gone: the restored photo is smoother than the original
    assert np.abs(np.diff(restored.astype(float), axis=1)).mean() < np.abs(np.diff(photo.astype(float), axis=1)).mean()
    box = (50.0, 50.0, 150.0, 150.0)  # an explicit face box of 100 x 100 px
    assert abs((100 * pixels(photo, n, box=box, restore=False).shape[0] / 250) ** 2 - n) / n < 0.03
    assert (pixels(photo, 20_000) == photo).all()  # more than the face has: nothing to remove


def test_rotate_round_trips(photo: np.ndarray) -> None:
    tall = photo[:, :200]
    assert rotate(tall, 90).shape == (200, 250, 3)
    assert (rotate(rotate(tall, 90), 270) == tall).all()
    assert (rotate(rotate(tall, 180), 180) == tall).all()
    assert (rotate(tall, 90)[0, :] == tall[:, -1]).all()  # counter-clockwise: the right column goes on top
    with pytest.raises(ValueError, match="90"):
        rotate(tall, 45)


def test_colour_exposure_blur(photo: np.ndarray) -> None:
    grey = degrade.grayscale(photo)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    under, over = get_condition("under")(photo), get_condition("over")(photo)
    assert under.mean() < 0.5 * photo.mean() and over.mean() > 1.2 * photo.mean()
    assert (over == 255).mean() > 5 * max((photo == 255).mean(), 0.01)  # highlights burnt
    sharpness = lambda im: cv2.Laplacian(im.astype(np.float32), cv2.CV_32F).var()
    assert sharpness(get_condition("blur")(photo)) < 0.1 * sharpness(photo)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("placement", ["landmarks", "default box"])
def test_mask_covers_nose_and_mouth_not_the_eyes(data_dir: Path, yunet: Detector, name: str, placement: str) -> None:
    image = load_image(data_dir / "lfw" / "lfw-deepfunneled" / name)
    dets = yunet.detect(image)
    pts = dets[select_face(dets, image.shape)].landmarks
    out = mask(image, pts if placement == "landmarks" else None, rng=3)
    changed = np.abs(out.astype(int) - image).max(axis=2) > 0
    eye_dist = float(np.hypot(*(pts[1] - pts[0])))
    for k, (x, y) in enumerate(pts):
        r = int(0.12 * eye_dist)
        patch = changed[int(y) - r : int(y) + r + 1, int(x) - r : int(x) + r + 1]
        if k < 2:
            assert not patch.any(), f"eye {k} is covered"
        else:
            assert patch.all(), f"landmark {k} (nose or mouth) is not covered"
    # the mask is a face-sized patch, not a tint of the photo
    assert 0.04 < changed.mean() < 0.3


def test_mask_from_a_box_and_colour(photo: np.ndarray) -> None:
    box = (70.0, 60.0, 180.0, 190.0)
    out = mask(photo, box=box, colour=(255, 0, 0))
    changed = (out != photo).any(axis=2)
    rows, cols = np.nonzero(changed)
    assert box[1] + 0.3 * 130 < rows.min() and rows.max() <= box[3] + 5  # under the eyes to about the chin
    assert box[0] - 5 <= cols.min() and cols.max() <= box[2] + 5
    assert out[int(box[1] + 0.75 * 130), 125, 0] > 200  # red-ish: the colour given, shaded
    with pytest.raises(ValueError, match="degenerate"):
        mask(photo, np.zeros((5, 2)))


def test_small_face_is_a_small_detectable_face_in_a_big_frame(photo: np.ndarray, yunet: Detector) -> None:
    out = degrade.small_face(photo, face_side=64, rng=1)
    assert out.shape == (1080, 1920, 3)
    dets = yunet.detect(out)
    assert len(dets) >= 1
    best = max(dets, key=lambda d: d.score)
    assert 35 < best.width < 90  # YuNet's box is ~0.83 x LFW's face box
    with pytest.raises(ValueError, match="does not fit"):
        degrade.small_face(photo, face_side=1000)
