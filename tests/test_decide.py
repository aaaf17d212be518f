"""Decisions on hand-made embeddings with known answers."""

import numpy as np
import pytest

from faceprint.decide import KnownFaces, distances, identify_embeddings, paired_distances, verify_embeddings
from faceprint.errors import FaceprintError


def test_distances_euclidean_and_cosine() -> None:
    q = np.array([[3.0, 4.0]])
    r = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    np.testing.assert_allclose(distances(q, r)[0], [5.0, 0.0, 5.0], atol=1e-9)
    np.testing.assert_allclose(distances(q, r, "cosine")[0, 1:], [0.0, 0.0], atol=1e-9)
    with pytest.raises(FaceprintError, match="different models"):
        distances(np.zeros((1, 3)), np.zeros((1, 4)))


def test_verify_threshold_is_inclusive() -> None:
    v = verify_embeddings(np.array([0.0, 0.0]), np.array([0.6, 0.0]), threshold=0.6)
    assert v.same and v.distance == pytest.approx(0.6)
    assert not verify_embeddings(np.array([0.0, 0.0]), np.array([0.61, 0.0]), threshold=0.6).same


def test_identify_uses_nearest_sample_per_person_and_unknown() -> None:
    known = KnownFaces.from_pairs(
        [("ann", np.array([0.0, 0.0])), ("bob", np.array([1.0, 0.0])), ("ann", np.array([0.0, 1.0]))]
    )
    out = identify_embeddings(np.array([[0.1, 0.9], [0.9, 0.0], [5.0, 5.0]]), known, threshold=0.5, top_k=2)
    assert [m[0].identity for m in out] == ["ann", "bob", None]
    assert out[0][0].distance == pytest.approx(np.hypot(0.1, 0.1))  # ann's second photo is nearer
    assert [m.identity for m in out[1]] == ["bob", "ann"]  # one entry per person, ranked
    assert out[2][0].distance > 0.5


def test_identify_empty_inputs() -> None:
    assert identify_embeddings(np.zeros((0, 2)), KnownFaces.from_pairs([]), 0.6) == []
    out = identify_embeddings(np.zeros((1, 2)), KnownFaces.from_pairs([]), 0.6)
    assert out[0][0].identity is None


def test_paired_distances_match_the_matrix_diagonal() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    for metric in ("euclidean", "cosine"):
        np.testing.assert_allclose(paired_distances(a, b, metric), np.diag(distances(a, b, metric)), atol=1e-9)
    with pytest.raises(ValueError, match="unknown metric"):
        paired_distances(a, b, "manhattan")
