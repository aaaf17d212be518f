"""Jitter test-time augmentation: dlib's jitter_image recipe, and Embedder(jitter=N)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from faceprint import Embedder, FacePipeline
from faceprint.align import jitter_chip


@pytest.fixture(scope="module")
def chips(data_dir: Path) -> np.ndarray:
    """Real 150x150 chips of two LFW faces."""
    pipe = FacePipeline(model="dlib-resnet-v1", flip=False)
    root = data_dir / "lfw" / "lfw-deepfunneled"
    images = [pipe.load(root / n / f"{n}_0001.jpg") for n in ("Colin_Powell", "Serena_Williams")]
    return np.stack([faces[0].chip.pixels for faces in pipe.faces_batch(images, keep_chips=True)])


def test_jitter_chip_is_a_small_seeded_perturbation(chips: np.ndarray) -> None:
    chip = chips[0]
    a = jitter_chip(chip, np.random.default_rng(7))
    b = jitter_chip(chip, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)  # same generator state, same copy
    assert a.shape == chip.shape and a.dtype == np.uint8
    copies = [jitter_chip(chip, np.random.default_rng(s)) for s in range(8)]
    assert len({c.tobytes() for c in copies}) == 8
    # a few pixels of shift/turn/zoom, possibly mirrored: still the same face, not another picture
    mirrored = chip[:, ::-1]
    for c in copies:
        err = min(np.abs(c.astype(int) - chip).mean(), np.abs(c.astype(int) - mirrored).mean())
        assert 1.0 < err < 30.0


def test_jitter_descriptor_is_the_mean_of_all_views(chips: np.ndarray) -> None:
    plain = Embedder(flip=False)
    jittered = Embedder(flip=True, jitter=2)
    views = [chips, np.ascontiguousarray(chips[:, :, ::-1])]
    rngs = [np.random.default_rng(zlib.crc32(c.tobytes())) for c in chips]
    for _ in range(2):
        views.append(np.stack([jitter_chip(c, r) for c, r in zip(chips, rngs)]))
    expected = np.mean([plain.embed(v) for v in views], axis=0)
    np.testing.assert_allclose(jittered.embed(chips), expected, atol=1e-5)


def test_jitter_depends_on_the_chip_not_its_place_in_the_batch(chips: np.ndarray) -> None:
    emb = Embedder(flip=False, jitter=3, batch_size=1)
    together = emb.embed(chips)
    np.testing.assert_allclose(emb.embed(chips[1:]), together[1:], atol=1e-6)
    np.testing.assert_allclose(emb.embed(chips[::-1]), together[::-1], atol=1e-6)
    # and stays the same face: far closer to the plain descriptor than dlib's 0.6 threshold
    assert np.linalg.norm(together - Embedder(flip=False).embed(chips), axis=1).max() < 0.15


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_jitter_must_be_a_whole_number(bad: object) -> None:
    with pytest.raises(ValueError, match="jitter"):
        Embedder(jitter=bad)  # type: ignore[arg-type]


def test_pipeline_settings_record_jitter() -> None:
    assert FacePipeline(jitter=2).settings()["jitter"] == 2
