"""Contract tests over every registered embedding model."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint import Embedder, UnknownNameError, get_model_spec, list_models
from faceprint.errors import InvalidImageError, LicenceNotAcceptedError


@pytest.mark.parametrize("name", list_models())
def test_registered_model_honours_its_contract(name: str) -> None:
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
    chips = np.random.default_rng(0).integers(0, 256, (3, spec.chip_size, spec.chip_size, 3), dtype=np.uint8)
    out = emb.embed(chips)
    assert out.shape == (3, spec.embedding_size) and out.dtype == np.float32 and np.isfinite(out).all()
    assert emb.embed(chips[:0]).shape == (0, spec.embedding_size)
    with pytest.raises(InvalidImageError, match=str(spec.chip_size)):
        emb.embed(chips[:, :-1])


def test_flip_is_the_mean_of_both_views() -> None:
    chips = np.random.default_rng(1).integers(0, 256, (2, 150, 150, 3), dtype=np.uint8)
    plain, flipped = Embedder(flip=False), Embedder(flip=True)
    mirrored = plain.embed(np.ascontiguousarray(chips[:, :, ::-1]))
    np.testing.assert_allclose(flipped.embed(chips), (plain.embed(chips) + mirrored) / 2, atol=1e-5)


def test_unknown_model_lists_the_registered_ones() -> None:
    with pytest.raises(UnknownNameError, match="dlib-resnet-v1"):
        get_model_spec("facenet-nope")
