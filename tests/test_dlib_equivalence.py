"""faceprint's dlib-free port against dlib's own outputs.

The reference numbers in tests/data/dlib_reference.json were written by dlib 20.0.1 itself
(tools/make_dlib_reference.py, run in the peers venv); these tests never need dlib.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from faceprint.align import extract_dlib_chip
from faceprint.detect.mmod import MMODDetector
from faceprint.imageio import load_image
from faceprint.models.dlib_resnet_torch import dlib_resnet_descriptors, load_dlib_resnet
from faceprint.shape_predictor import ShapePredictor

REFERENCE = json.loads((Path(__file__).parent / "data" / "dlib_reference.json").read_text())
CASES = REFERENCE["images"]
IDS = [Path(c["image"]).name for c in CASES]


@pytest.fixture(scope="module")
def resnet():
    return load_dlib_resnet()


@pytest.fixture(scope="module")
def sp5() -> ShapePredictor:
    return ShapePredictor.load()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_mmod_boxes_identical_to_dlib(case: dict, data_dir: Path) -> None:
    image = load_image(data_dir / case["image"])
    got = MMODDetector(upsample=case["upsample"]).detect_rects(image)
    want = case["faces"]
    assert [list(r[:4]) for r in got] == [f["rect"] for f in want]
    np.testing.assert_allclose([r[4] for r in got], [f["confidence"] for f in want], atol=1e-4)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_landmarks_chips_and_descriptors_match_dlib(case: dict, data_dir: Path, sp5, resnet) -> None:
    image = load_image(data_dir / case["image"])
    chips = []
    for face in case["faces"]:
        points = sp5.predict(image, tuple(face["rect"]))
        assert points.tolist() == face["landmarks5"]
        chip = extract_dlib_chip(image, points, size=150, padding=0.25)
        assert hashlib.sha256(np.ascontiguousarray(chip.pixels).tobytes()).hexdigest() == face["chip_sha256"]
        chips.append(chip.pixels)
    got = dlib_resnet_descriptors(resnet, np.stack(chips))
    want = np.array([f["descriptor"] for f in case["faces"]])
    assert np.abs(got - want).max() < 1e-4
