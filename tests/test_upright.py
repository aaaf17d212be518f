"""Rotation search: sideways and upside-down photos without an EXIF tag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceprint import FacePipeline, get_detector, load_image


@pytest.mark.parametrize("k", [1, 2, 3])
def test_turned_face_is_found_where_it_is(data_dir: Path, k: int) -> None:
    image = load_image(data_dir / "misc" / "rot_r0.jpg")
    [ref] = get_detector("mtcnn").detect(image)
    turned = np.ascontiguousarray(np.rot90(image, k))
    [found] = get_detector("mtcnn-upright").detect(turned)
    # Map the upright reference into the turned image: rot90 by k moves centre (x, y) like this.
    h, w = image.shape[:2]
    x, y = ref.center
    expected = {1: (y, w - x), 2: (w - x, h - y), 3: (h - y, x)}[k]
    np.testing.assert_allclose(found.center, expected, atol=0.08 * ref.width)
    # The landmarks turned with the face: the eyes are still the two points nearest each other
    # across the face's own horizontal, so the aligned chip is upright and matches the reference.
    pipe = FacePipeline(detector="mtcnn-upright")
    a = pipe.faces(image)[0].embedding.vector
    b = pipe.faces(turned)[0].embedding.vector
    assert np.linalg.norm(a - b) < 0.25


def test_upright_search_keeps_ordinary_results_and_empty_images(data_dir: Path) -> None:
    image = load_image(data_dir / "misc" / "two_people.jpg")
    plain = get_detector("mtcnn").detect(image)
    assert [d.box for d in get_detector("mtcnn-upright").detect(image)] == [d.box for d in plain]
    assert get_detector("mtcnn-upright").detect(load_image(data_dir / "misc" / "blank_white.png")) == []
    assert get_detector("haar-upright").name == "haar-upright"
