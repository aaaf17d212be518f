"""dlib's CNN (MMOD) face detector port: real photos, geometry, batching, and the dlib rules
(tiled pyramid layout, resize, NMS) that the boxes depend on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceprint.detect import get_detector, mmod
from faceprint.detect.mmod import MMODDetector
from faceprint.errors import InvalidImageError, WeightsNotFoundError
from faceprint.types import Detection

LFW_SMALL = "lfw/lfw-deepfunneled/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"


def load(root: Path, rel: str) -> np.ndarray:
    return np.asarray(Image.open(root / rel).convert("RGB"))


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def det0() -> MMODDetector:
    return MMODDetector()


@pytest.fixture(scope="module")
def det1() -> MMODDetector:
    return MMODDetector(upsample=1)


# ----------------------------------------------------------------------------- real photos
def test_obama_one_face(data_dir: Path, det0: MMODDetector) -> None:
    faces = det0.detect(load(data_dir, "misc/obama.jpg"))  # 910 x 1137
    assert len(faces) == 1
    face = faces[0]
    assert isinstance(face, Detection) and face.detector == "mmod" and face.landmarks is None
    # dlib gives (375, 154, 611, 390) inclusive; the face spans x ~370-615, y ~85-425
    assert iou(face.box, (375.0, 154.0, 612.0, 391.0)) > 0.9
    assert all(float(v).is_integer() for v in face.box)
    assert face.width == face.height  # an 80x80 window scaled up: square
    assert face.score > 0.5


def test_group_photo_finds_everyone(data_dir: Path, det0: MMODDetector) -> None:
    faces = det0.detect(load(data_dir, "misc/group_bbt1.jpg"))
    assert len(faces) >= 4
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    for a in range(len(faces)):  # NMS leaves no overlapping duplicates
        for b in range(a + 1, len(faces)):
            assert iou(faces[a].box, faces[b].box) < 0.3


def test_blank_image_has_no_face(data_dir: Path, det0: MMODDetector) -> None:
    assert det0.detect(load(data_dir, "misc/blank_white.png")) == []


def test_detect_batch_equals_detect(data_dir: Path, det0: MMODDetector) -> None:
    images = [
        load(data_dir, LFW_SMALL),
        load(data_dir, "misc/blank_white.png"),
        load(data_dir, "lfw/lfw-deepfunneled/Tony_Blair/Tony_Blair_0142.jpg"),
    ]
    assert det0.detect_batch(images) == [det0.detect(im) for im in images]
    assert det0.detect_batch([]) == []


def test_upsample_finds_small_faces_in_original_frame(
    data_dir: Path, det0: MMODDetector, det1: MMODDetector
) -> None:
    image = load(data_dir, LFW_SMALL)  # 250 x 250, face ~ 100 px
    small = np.ascontiguousarray(image[::2, ::2])  # 125 x 125: face ~ 50 px, near the 40 px limit
    faces = det1.detect(small)
    assert len(faces) >= 1
    best = faces[0]
    # boxes are in the 125 px image, not the 251 x 252 upsampled one: centred on the face
    cx, cy = best.center
    assert 40 < cx < 85 and 35 < cy < 90
    assert 20 < best.width < 90
    # and they agree with the face found at full size without upsampling
    full = det0.detect(image)
    assert len(full) >= 1
    scaled = tuple(v / 2 for v in full[0].box)
    assert iou(best.box, scaled) > 0.5


def test_max_pixels_shrinks_and_maps_back(data_dir: Path) -> None:
    image = load(data_dir, "misc/obama.jpg")
    shrunk = MMODDetector(max_pixels=455 * 569).detect(image)
    assert len(shrunk) == 1
    # in the original frame, near dlib's full-size box (not the ~half-size one)
    assert iou(shrunk[0].box, (375.0, 154.0, 612.0, 391.0)) > 0.7


def test_detect_rects_is_dlib_format(data_dir: Path, det0: MMODDetector) -> None:
    image = load(data_dir, LFW_SMALL)
    rects = det0.detect_rects(image)
    faces = det0.detect(image)
    assert len(rects) == len(faces) >= 1
    for (l, t, r, b, s), f in zip(rects, faces):
        assert all(isinstance(v, int) for v in (l, t, r, b)) and isinstance(s, float)
        assert f.box == (l, t, r + 1, b + 1) and f.score == s


def test_threshold_and_gray_input(data_dir: Path, det0: MMODDetector) -> None:
    image = load(data_dir, LFW_SMALL)
    loose = MMODDetector(threshold=-0.5).detect(image)
    assert len(loose) >= len(det0.detect(image))
    gray = np.asarray(Image.fromarray(image).convert("L"))
    assert det0.detect(gray) == det0.detect(np.repeat(gray[:, :, None], 3, axis=2))


def test_strips_equal_single_pass(
    data_dir: Path, det0: MMODDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = load(data_dir, LFW_SMALL)
    planes = np.ascontiguousarray(np.moveaxis(image, 2, 0))
    rects, rows, cols = mmod.tiled_pyramid_layout(250, 250)
    canvas = mmod.build_canvas(planes, rects, rows, cols, (122.782, 117.001, 104.298))
    net = det0._get_model().net
    full = mmod._forward(net, canvas)
    monkeypatch.setattr(mmod, "_STRIP_PIXELS", 100_000)  # 5 strips of 25 score rows
    np.testing.assert_allclose(mmod._forward(net, canvas), full, atol=1e-5)


def test_runs_without_torch(data_dir: Path, det0: MMODDetector) -> None:
    # torch is for training only: with every import of it failing, the detector still loads
    # (graph from the cache or rebuilt) and gives the same boxes as in this process
    image_path = data_dir / LFW_SMALL
    code = "\n".join(
        [
            "import json, sys",
            "sys.modules['torch'] = None  # makes any 'import torch' raise ImportError",
            "import numpy as np",
            "from PIL import Image",
            "from faceprint.detect.mmod import MMODDetector",
            f"image = np.asarray(Image.open({str(image_path)!r}).convert('RGB'))",
            "print(json.dumps(MMODDetector(threads=1).detect_rects(image)))",
        ]
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    want = det0.detect_rects(load(data_dir, LFW_SMALL))
    assert len(got) == len(want) >= 1
    assert [r[:4] for r in got] == [list(r[:4]) for r in want]
    np.testing.assert_allclose([r[4] for r in got], [r[4] for r in want], atol=1e-5)


# --------------------------------------------------------------------------- API and errors
def test_registry_and_repr() -> None:
    det = get_detector("mmod")
    assert isinstance(det, MMODDetector) and det.upsample == 0
    assert get_detector("mmod-up1").upsample == 1
    assert "upsample=0" in repr(det)


def test_bad_arguments() -> None:
    det = MMODDetector()
    with pytest.raises(InvalidImageError):
        det.detect(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(InvalidImageError):
        det.detect_batch([np.zeros((10, 10, 4), dtype=np.uint8)])
    with pytest.raises(ValueError):
        MMODDetector(upsample=-1)
    with pytest.raises(ValueError, match="threads"):
        MMODDetector(threads=0)
    with pytest.raises(WeightsNotFoundError):
        MMODDetector(path="/nonexistent/mmod_human_face_detector.dat")
    with pytest.raises(InvalidImageError, match="empty"):  # every stage refuses empty arrays alike
        det.detect(np.zeros((0, 0, 3), dtype=np.uint8))
    assert det.detect(np.zeros((3, 3, 3), dtype=np.uint8)) == []  # smaller than the net's view


# --------------------------------------------------------------------------------- dlib rules
def test_tiled_pyramid_layout_matches_dlib() -> None:
    # dlib: 910 x 1137 -> 29 levels on a 932 x 4139 canvas, level 0 at (11, 11)
    rects, rows, cols = mmod.tiled_pyramid_layout(1137, 910)
    assert (len(rects), rows, cols) == (29, 4139, 932)
    assert tuple(rects[0]) == (11, 11, 920, 1147)
    assert tuple(rects[1]) == (11, 1158, 768, 2104)  # floor(5/6 h), 10 px below level 0
    heights = rects[:, 3] - rects[:, 1] + 1
    assert heights.min() >= 5
    # the right-hand column is right-aligned to level 0's right edge
    assert (rects[rects[:, 0] > 11][:, 2] == 920).all()


def test_resize_identity_and_pyramid_up_size() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    assert np.array_equal(mmod.resize_rgb_u8(img, 37, 53), img)
    f = rng.standard_normal((19, 23, 3)).astype(np.float32)
    assert np.array_equal(mmod.resize_float(f, 19, 23), f)
    up = mmod.pyramid_up(img)
    assert up.shape == (75, 108, 3) and up.dtype == np.uint8
    # corners align: the corner pixels are copied (up to float32 weights summing to ~1)
    assert np.abs(up[0, 0].astype(int) - img[0, 0]).max() <= 1
    assert np.abs(up[-1, -1].astype(int) - img[-1, -1]).max() <= 1


def test_nms_divides_by_the_enclosing_box() -> None:
    thr = 0.3382761351109955  # overlaps_nms iou threshold stored in the file
    # side by side: inter 80x100 = 8000 over the enclosing 120x100 -> suppressed
    boxes = np.array([[0, 0, 99, 99], [20, 0, 119, 99]])
    assert mmod._nms(boxes, np.array([1.0, 2.0]), thr, 1.0).tolist() == [1]
    # diagonal: inter 72x72 = 5184; union IoU 0.35 would suppress it, but dlib divides by the
    # enclosing 128x128 box (0.316) and keeps both
    boxes = np.array([[0, 0, 99, 99], [28, 28, 127, 127]])
    assert mmod._nms(boxes, np.array([1.0, 2.0]), thr, 1.0).tolist() == [1, 0]
    # disjoint boxes never interact; order is by score
    boxes = np.array([[0, 0, 9, 9], [50, 50, 59, 59], [100, 0, 109, 9]])
    assert mmod._nms(boxes, np.array([0.5, 3.0, 1.0]), thr, 1.0).tolist() == [1, 2, 0]


def test_lround_halves_away_from_zero() -> None:
    v = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49999999999999994, -2.4999])
    assert mmod._lround(v).tolist() == [1, 2, 3, -1, -2, 0, -2]
