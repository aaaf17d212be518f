"""End-to-end behaviour of the facade on real faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceprint import get_model_spec
from faceprint.models import DEFAULT_MODEL

from faceprint import FacePipeline, InvalidImageError, NoFaceError, select_face
from faceprint.types import Detection

LFW = "lfw/lfw-deepfunneled"


@pytest.fixture(scope="module")
def pipe() -> FacePipeline:
    return FacePipeline()


def test_same_person_closer_than_threshold(pipe: FacePipeline, data_dir: Path) -> None:
    a = data_dir / LFW / "Colin_Powell" / "Colin_Powell_0001.jpg"
    b = data_dir / LFW / "Colin_Powell" / "Colin_Powell_0005.jpg"
    c = data_dir / LFW / "Serena_Williams" / "Serena_Williams_0001.jpg"
    same, diff = pipe.verify(a, b), pipe.verify(a, c)
    assert same.same and same.distance < 0.8 * same.threshold
    assert not diff.same and diff.distance > 1.1 * same.threshold
    assert same.threshold == pipe.spec.threshold == get_model_spec(DEFAULT_MODEL).threshold


def test_faces_batch_equals_single(pipe: FacePipeline, data_dir: Path) -> None:
    paths = [data_dir / "misc" / "two_people.jpg", data_dir / LFW / "Colin_Powell" / "Colin_Powell_0001.jpg"]
    images = [pipe.load(p) for p in paths]
    batched = pipe.faces_batch(images)
    assert [len(f) for f in batched] == [2, 1]
    for image, faces in zip(images, batched):
        single = pipe.faces_batch([image])[0]
        np.testing.assert_allclose(
            np.stack([f.embedding.vector for f in faces]), np.stack([f.embedding.vector for f in single]), atol=1e-5
        )


def test_identify_known_folder_and_strangers(pipe: FacePipeline, data_dir: Path, tmp_path: Path) -> None:
    # Known: one sub-folder per person with two photos each; the probe is a third photo.
    for person in ("Colin_Powell", "Serena_Williams"):
        (tmp_path / person).mkdir()
        for k in (2, 3):
            src = data_dir / LFW / person / f"{person}_000{k}.jpg"
            (tmp_path / person / src.name).write_bytes(src.read_bytes())
    known = pipe.known_faces(tmp_path)
    assert known.people == ["Colin_Powell", "Serena_Williams"] and len(known) == 4
    [(face, matches)] = pipe.identify(data_dir / LFW / "Colin_Powell" / "Colin_Powell_0001.jpg", known)
    assert matches[0].identity == "Colin_Powell"
    [(face, matches)] = pipe.identify(data_dir / LFW / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg", known)
    assert matches[0].identity is None and matches[0].distance > pipe.spec.threshold


def test_no_face_and_invalid_inputs(pipe: FacePipeline, data_dir: Path) -> None:
    assert pipe.faces(data_dir / "misc" / "blank_white.png") == []
    with pytest.raises(NoFaceError, match="blank_white.png"):
        pipe.face(data_dir / "misc" / "blank_white.png")
    for name in ("corrupted.png", "empty.png", "truncated.jpg"):
        with pytest.raises(InvalidImageError, match=name):
            pipe.faces(data_dir / "misc" / "invalid" / name)


def test_select_face_rules() -> None:
    dets = [
        Detection((0, 0, 50, 50), 0.99),
        Detection((80, 80, 120, 120), 0.9),
        Detection((140, 0, 250, 110), 0.95),
    ]
    assert select_face(dets, (200, 200, 3), "center") == 1
    assert select_face(dets, (200, 200, 3), "largest") == 2
    assert select_face(dets, (200, 200, 3), "best") == 0
    with pytest.raises(NoFaceError):
        select_face([], (10, 10, 3))


def test_enrolment_skips_bad_files_and_says_why(pipe: FacePipeline, data_dir: Path, tmp_path: Path) -> None:
    hh = data_dir / "happy-house" / "images"
    (tmp_path / "kian.jpg").write_bytes((hh / "kian.jpg").read_bytes())
    (tmp_path / "broken.jpg").write_bytes((data_dir / "misc" / "invalid" / "truncated.jpg").read_bytes())
    (tmp_path / "wall.png").write_bytes((data_dir / "misc" / "blank_white.png").read_bytes())
    with pytest.raises(InvalidImageError, match="broken.jpg"):
        pipe.known_faces(tmp_path)
    known = pipe.known_faces(tmp_path, on_error="skip")
    assert known.people == ["kian"]
    assert sorted(Path(p).name for p, _ in pipe.skipped) == ["broken.jpg", "wall.png"]
    assert any("no face" in why for _, why in pipe.skipped)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="landmarks"):
        FacePipeline(landmarks="eyes")  # type: ignore[arg-type]
