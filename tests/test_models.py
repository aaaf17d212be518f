"""Contract tests over every registered embedding model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceprint import Embedder, UnknownNameError, get_model_spec, list_models
from faceprint.embed import make_embedder
from faceprint.errors import InvalidImageError, LicenceNotAcceptedError, WeightsNotFoundError
from faceprint.models import LICENCE_ENV
from faceprint.models.dlib_resnet import read_dlib_resnet, write_resnet_layers


def _chips(spec, n: int = 3) -> np.ndarray:  # noqa: ANN001
    return np.random.default_rng(0).integers(0, 256, (n, spec.chip_size, spec.chip_size, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", [n for n in list_models() if not get_model_spec(n).members])
def test_registered_model_honours_its_contract(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LICENCE_ENV, raising=False)
    spec = get_model_spec(name)
    assert spec.metric in {"euclidean", "cosine"} and spec.threshold > 0 and spec.weights.licence
    assert spec.onnx is not None or spec.loader is not None
    accept = spec.weights.terms
    if accept is not None:  # non-commercial weights are refused until their terms are accepted by name
        with pytest.raises(LicenceNotAcceptedError, match=f"--accept-licence {accept}"):
            Embedder(spec)
    if spec.weights.available():
        spec.weights.resolve(verify=True)  # the installed file is the one the registry names (sha256)
        emb = Embedder(spec, accept_licence=accept)
    else:  # weights fetched on first use (no network in tests): the architecture, untrained
        assert spec.arch is not None
        emb = Embedder(spec, net=spec.build_untrained().eval())
    chips = _chips(spec)
    out = emb.embed(chips)
    assert out.shape == (3, spec.embedding_size) and out.dtype == np.float32 and np.isfinite(out).all()
    assert emb.embed(chips[:0]).shape == (0, spec.embedding_size)
    with pytest.raises(InvalidImageError, match=str(spec.chip_size)):
        emb.embed(chips[:, :-1])


@pytest.mark.parametrize("name", [n for n in list_models() if get_model_spec(n).members])
def test_registered_fusion_honours_its_contract(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(LICENCE_ENV, raising=False)
    spec = get_model_spec(name)
    members = [get_model_spec(m) for m, _ in spec.members]
    assert spec.metric == "euclidean" and spec.far_thresholds and abs(sum(w for _, w in spec.members) - 1) < 1e-3
    assert spec.embedding_size == sum(m.embedding_size for m in members)
    accept = spec.weights.terms
    assert accept == next((m.weights.terms for m in members if m.weights.terms), None)  # a member's terms carry over
    if accept is not None:
        with pytest.raises(LicenceNotAcceptedError):
            make_embedder(spec)
    with pytest.raises(ValueError, match="make_embedder"):
        Embedder(spec)
    unbuilt = [m for m in members if m.weights.build and not m.weights.available()]
    if unbuilt:  # weights faceprint trains itself (`faceprint train --save-as`), not built on this machine:
        with pytest.raises(WeightsNotFoundError, match="--save-as"):  # the error gives the command that builds them
            emb = make_embedder(spec, accept_licence=accept)
            emb.embed_members([_chips(m) for m in emb.member_specs])  # weights are read on first use
        # the base network's own weights, in the built file's format, stand in (in a test cache)
        monkeypatch.setenv("FACEPRINT_CACHE", str(tmp_path))
        for m in unbuilt:
            write_resnet_layers(read_dlib_resnet(), m.weights.cache_path())
    emb = make_embedder(spec, accept_licence=accept)
    out = emb.embed_members([_chips(m) for m in emb.member_specs])
    assert out.shape == (3, spec.embedding_size) and np.isfinite(out).all()
    # each member's block is its unit vector scaled by sqrt(weight): the fused vector's norm is 1
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert emb.embed_members([_chips(m, 0) for m in emb.member_specs]).shape == (0, spec.embedding_size)


def test_flip_is_the_mean_of_both_views() -> None:
    chips = np.random.default_rng(1).integers(0, 256, (2, 150, 150, 3), dtype=np.uint8)
    plain, flipped = Embedder("dlib-resnet-v1", flip=False), Embedder("dlib-resnet-v1", flip=True)
    mirrored = plain.embed(np.ascontiguousarray(chips[:, :, ::-1]))
    np.testing.assert_allclose(flipped.embed(chips), (plain.embed(chips) + mirrored) / 2, atol=1e-5)


def test_unknown_model_lists_the_registered_ones() -> None:
    with pytest.raises(UnknownNameError, match="dlib-resnet-v1"):
        get_model_spec("facenet-nope")


def test_pipeline_defaults_follow_the_model_calibration() -> None:
    """A model's threshold holds only on the pipeline it was calibrated with: that is the default."""
    from faceprint import FacePipeline
    from faceprint.detect import list_detectors

    for name in list_models():
        spec = get_model_spec(name)
        assert spec.detector in list_detectors() and isinstance(spec.flip, bool)
    # The default pipeline runs the model's detector, searching turned photos only where it finds
    # no face: on every photo where it does, detections (and so the calibration) are the model's.
    fused = FacePipeline()  # the default model: the fusion fitted on YuNet landmarks, no mirror pass
    assert (fused.detector.inner.name, fused.embedder.flip) == (get_model_spec(fused.spec.name).detector, False)
    assert fused.detector.name == "yunet-upright"
    dlib = FacePipeline(model="dlib-resnet-v1")  # today's pipeline, as its 99.22% was measured
    assert (dlib.detector.name, dlib.embedder.flip) == ("mtcnn-upright", True)
    chosen = FacePipeline(detector="mtcnn", flip=True)  # the caller's choice wins
    assert (chosen.detector.name, chosen.embedder.flip) == ("mtcnn", True)
    assert chosen.settings()["flip"] is True and fused.settings()["detector"] == "yunet-upright"
    assert fused.settings()["detector_params"] == FacePipeline(detector="yunet").settings()["detector_params"]
