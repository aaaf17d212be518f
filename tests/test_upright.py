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


class _Spy:
    """A real detector that records the (h, w) of every image it is given."""

    def __init__(self, inner: object) -> None:
        self.inner, self.name, self.shapes = inner, inner.name, []  # type: ignore[attr-defined]

    def detect(self, image: np.ndarray) -> list:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list) -> list:
        self.shapes += [im.shape[:2] for im in images]
        return self.inner.detect_batch(images)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("k", "doubted"), [(0, True), (1, False), (2, True)])
def test_small_face_in_a_large_frame_is_searched_around_it(data_dir: Path, k: int, doubted: bool) -> None:
    """A 64 px face in a 1920 x 1080 frame: YuNet sees it shrunk to 21 px and doubts it; the search
    looks again only in a square around it, upright and turned, at full resolution, and keeps the
    face the right way up (before, an upside-down reading of a doubtful face could win). A frame
    where nothing is found (this face turned sideways) is searched whole, turned, then around the
    face found."""
    from faceprint.degrade import small_face
    from faceprint.detect.upright import CROP_SIDES, UprightSearch

    photo = load_image(data_dir / "lfw" / "lfw-deepfunneled" / "Aaron_Guiel" / "Aaron_Guiel_0001.jpg")
    upright = small_face(photo, rng=0)
    ref = get_detector("yunet", max_side=None).detect(upright)[0]  # the whole frame at full size
    assert ref.score >= 0.9  # sharp at full size
    frame = np.ascontiguousarray(np.rot90(upright, k))
    spy = _Spy(get_detector("yunet"))
    first = spy.inner.detect(frame)  # type: ignore[attr-defined]
    [found] = UprightSearch(spy).detect(frame)
    searched = spy.shapes[1:]
    if doubted:
        assert first and first[0].score < 0.9  # doubtful shrunk (or turned): the search runs
        side = CROP_SIDES * max(first[0].width, first[0].height) + 2
        assert len(searched) == 4 and all(max(s) <= side for s in searched)
    else:
        # the whole frame turned three times, then the square around the turned face found
        whole = sorted([frame.shape[:2][::-1], frame.shape[:2], frame.shape[:2][::-1]])
        assert not first and sorted(searched[:3]) == whole and len(searched) == 7
    assert found.score >= 0.9
    # the reference's points, turned with the frame: rot90 by k moves (x, y) like this
    h, w = upright.shape[:2]
    x, y = ref.landmarks[:, 0], ref.landmarks[:, 1]  # type: ignore[index]
    turned = {0: (x, y), 1: (y, w - x), 2: (w - x, h - y)}[k]
    # the same points in the same order: the face read the right way up, not upside down
    np.testing.assert_allclose(found.landmarks, np.stack(turned, axis=1), atol=0.15 * ref.width)


def test_search_settings_are_in_the_pipeline_settings() -> None:
    """The cache keys of `faceprint eval` follow a change of where and when turns are searched."""
    s = FacePipeline(detector="yunet-upright").settings()
    assert s["search"] == {"crop_sides": 3.0, "min_score": 0.9}
    assert "search" not in FacePipeline(detector="yunet").settings()


def test_crop_sides_none_searches_the_whole_frame(data_dir: Path) -> None:
    """``crop_sides=None``: the earlier search, the whole frame turned three times; bad values fail."""
    from faceprint.degrade import small_face
    from faceprint.detect.upright import UprightSearch

    photo = load_image(data_dir / "lfw" / "lfw-deepfunneled" / "Aaron_Guiel" / "Aaron_Guiel_0001.jpg")
    frame = small_face(photo, rng=0)
    spy = _Spy(get_detector("yunet"))
    UprightSearch(spy, crop_sides=None).detect(frame)
    assert sorted(spy.shapes[1:]) == sorted([(1920, 1080), (1080, 1920), (1920, 1080)])
    with pytest.raises(ValueError, match="crop_sides"):
        UprightSearch(spy, crop_sides=0.5)


def test_small_photo_is_searched_whole_not_around_a_part_of_the_face(data_dir: Path) -> None:
    """LFW photo turned sideways: YuNet's doubtful "face" is a part of the real one; a square
    around it would cut the face off, so a photo this small is searched whole, and the face found
    is the upright photo's."""
    from faceprint.detect.upright import UprightSearch, _window

    image = load_image(data_dir / "lfw" / "lfw-deepfunneled" / "Amram_Mitzna" / "Amram_Mitzna_0002.jpg")
    turned = np.ascontiguousarray(np.rot90(image, 1))
    spy = _Spy(get_detector("yunet"))
    [first] = spy.inner.detect(turned)[:1]  # type: ignore[attr-defined]
    assert first.score < 0.9 and _window(first.box, turned.shape, 3.0) is not None  # a small doubtful box
    UprightSearch(spy).detect(turned)
    assert spy.shapes[1:] == [(250, 250)] * 3  # whole photo, three turns
    pipe = FacePipeline()
    a = pipe.faces(image)[0].embedding.vector
    b = pipe.faces(turned)[0].embedding.vector
    assert np.linalg.norm(a - b) < 0.25
