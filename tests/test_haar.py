"""HaarDetector on real photos: one face, no face, a group; input checks; cascade loading."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceprint.detect import haar
from faceprint.detect.haar import HaarDetector
from faceprint.errors import InvalidImageError, ModelError
from faceprint.imageio import load_image
from faceprint.types import Detection


@pytest.fixture(scope="module")
def detector() -> HaarDetector:
    return HaarDetector()


@pytest.fixture(scope="module")
def obama(data_dir: Path) -> np.ndarray:
    return load_image(data_dir / "misc" / "obama.jpg")


@pytest.fixture(scope="module")
def obama_faces(detector: HaarDetector, obama: np.ndarray) -> list[Detection]:
    return detector.detect(obama)


def test_one_face(obama: np.ndarray, obama_faces: list[Detection]) -> None:
    assert len(obama_faces) == 1
    (face,) = obama_faces
    assert face.detector == "haar" and face.landmarks is None
    assert isinstance(face.score, float) and face.score > 0
    assert all(isinstance(v, float) for v in face.box)
    height, width = obama.shape[:2]
    left, top, right, bottom = face.box
    assert 0 <= left < right <= width and 0 <= top < bottom <= height
    assert 100 < face.width < width  # a portrait: the face is large
    cx, cy = face.center
    assert width * 0.3 < cx < width * 0.7 and cy < height * 0.7  # centred, upper part


def test_no_face_on_blank(detector: HaarDetector, data_dir: Path) -> None:
    assert detector.detect(load_image(data_dir / "misc" / "blank_white.png")) == []


def test_group_photo(detector: HaarDetector, data_dir: Path) -> None:
    faces = detector.detect(load_image(data_dir / "misc" / "group_bbt1.jpg"))
    assert len(faces) >= 3  # 4 men on a sofa
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)


def test_batch_matches_single(
    detector: HaarDetector, obama: np.ndarray, obama_faces: list[Detection]
) -> None:
    blank = np.full((120, 160, 3), 255, np.uint8)
    assert detector.detect_batch([obama, blank]) == [obama_faces, []]
    assert detector.detect_batch([]) == []


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((50, 50), np.uint8),
        np.zeros((50, 50, 4), np.uint8),
        np.zeros((50, 50, 3), np.float32),
        np.zeros((0, 50, 3), np.uint8),
        [[0, 0, 0]],
    ],
)
def test_bad_images(detector: HaarDetector, image: object) -> None:
    with pytest.raises(InvalidImageError, match="HaarDetector"):
        detector.detect(image)  # type: ignore[arg-type]


def test_cascade_loaded_lazily_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []
    real = cv2.CascadeClassifier

    def counting(*args: str) -> cv2.CascadeClassifier:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(haar.cv2, "CascadeClassifier", counting)
    det = HaarDetector()
    assert calls == []
    blank = np.full((40, 40, 3), 128, np.uint8)
    det.detect(blank)
    det.detect_batch([blank, blank])
    assert len(calls) == 1


def test_missing_cascade_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blank = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ModelError, match="opencv-python-headless<5"):
        HaarDetector(cascade="no_such_cascade.xml").detect(blank)
    monkeypatch.delattr(haar.cv2, "data")  # as in OpenCV 5 wheels
    with pytest.raises(ModelError, match="opencv-python-headless<5"):
        HaarDetector().detect(blank)
    bad = tmp_path / "bad.xml"
    bad.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(ModelError, match="could not load"):
        HaarDetector(cascade=str(bad)).detect(blank)


@pytest.mark.parametrize(
    "kwargs", [{"scale_factor": 1.0}, {"min_neighbors": -1}, {"min_size": 0}, {"min_neighbors": 2.5}]
)
def test_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        HaarDetector(**kwargs)
