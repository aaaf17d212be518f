"""Decisions on embeddings: 1:1 verification and 1:K open-set identification."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import FaceprintError
from .types import Match, Verification

__all__ = [
    "KnownFaces",
    "distances",
    "identify_embeddings",
    "open_set",
    "quality_floor",
    "paired_distances",
    "rank_people",
    "verify_embeddings",
]


def _check_metric(metric: str) -> None:
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"unknown metric {metric!r}: use 'euclidean' or 'cosine'")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _as_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = np.atleast_2d(np.asarray(a, np.float64))
    r = np.atleast_2d(np.asarray(b, np.float64))
    if q.shape[1] != r.shape[1]:
        raise FaceprintError(
            f"embedding sizes differ ({q.shape[1]} vs {r.shape[1]}): they come from different models"
        )
    return q, r


def distances(queries: np.ndarray, refs: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """(Q, D) x (R, D) -> (Q, R) float64 distances: Euclidean, or cosine distance 1 - cos."""
    _check_metric(metric)
    q, r = _as_pair(queries, refs)
    if metric == "cosine":
        return 1.0 - _unit(q) @ _unit(r).T
    # Expanded form is fast for many refs; clip the tiny negatives it produces by cancellation.
    d2 = (q * q).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2.0 * q @ r.T
    return np.sqrt(np.maximum(d2, 0.0))


def paired_distances(a: np.ndarray, b: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Row i of (N, D) ``a`` against row i of (N, D) ``b`` -> (N,) float64 distances."""
    _check_metric(metric)
    p, q = _as_pair(a, b)
    if metric == "cosine":
        return 1.0 - (_unit(p) * _unit(q)).sum(1)
    return np.linalg.norm(p - q, axis=1)


def verify_embeddings(
    a: np.ndarray,
    b: np.ndarray,
    threshold: float,
    metric: str = "euclidean",
    *,
    quality: float | None = None,
    min_quality: float = 0.0,
) -> Verification:
    """Same person when the distance between two (D,) descriptors is at most the threshold.

    quality: the worse of the two faces' qualities; below ``min_quality`` the answer is "too
    poor to decide" (``too_poor`` True, ``same`` False) whatever the distance.
    """
    d = float(paired_distances(a, b, metric)[0])
    poor = quality is not None and quality < min_quality
    q = None if quality is None else float(quality)
    return Verification(
        distance=d, threshold=float(threshold), same=d <= threshold and not poor, quality=q, too_poor=poor
    )


@dataclass(frozen=True)
class KnownFaces:
    """The people to recognise: one row per enrolled photo, several rows per person allowed.

    names: (M,) person of each row; vectors: (M, D) float32 descriptors; sources: where each came from.
    """

    names: tuple[str, ...]
    vectors: np.ndarray
    sources: tuple[str, ...] = ()
    model_id: str = ""

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, np.ndarray]], model_id: str = "") -> KnownFaces:
        items = list(pairs)
        if not items:
            return cls((), np.zeros((0, 0), np.float32), (), model_id)
        names, vecs = zip(*items)
        return cls(tuple(names), np.stack(vecs).astype(np.float32), (), model_id)

    @property
    def people(self) -> list[str]:
        return sorted(set(self.names))

    def __len__(self) -> int:
        return len(self.names)


def identify_embeddings(
    queries: np.ndarray,
    known: KnownFaces,
    threshold: float,
    metric: str = "euclidean",
    top_k: int = 1,
) -> list[list[Match]]:
    """Rank known people for each (Q, D) query by their nearest enrolled sample.

    Returns Q lists of up to ``top_k`` Matches, nearest first, one per person. A person farther
    than the threshold is reported with identity None ("unknown") in first place only: the
    first entry is the decision, the rest are candidates for display.
    """
    q = np.atleast_2d(np.asarray(queries, np.float32))
    if len(q) == 0:
        return []
    if len(known) == 0:
        return [[Match(None, float("inf"))] for _ in range(len(q))]
    d = distances(q, known.vectors, metric)
    people = known.people
    index = {p: i for i, p in enumerate(people)}
    cols = np.array([index[n] for n in known.names])
    # Per-person best distance: the nearest of that person's photos (several photos help).
    order = np.argsort(cols, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(cols[order]) != 0])
    best = np.minimum.reduceat(d[:, order], starts, axis=1)  # (Q, P), people in sorted order
    results: list[list[Match]] = []
    for row in best:
        ranked = np.argsort(row, kind="stable")[: max(1, top_k)]
        results.append(open_set([Match(people[i], float(row[i])) for i in ranked], threshold))
    return results


def open_set(ranked: list[Match], threshold: float) -> list[Match]:
    """The open-set rule on people ranked nearest first: the first becomes "unknown" (None) past the threshold."""
    if not ranked:
        return [Match(None, float("inf"))]
    if ranked[0].distance > threshold:
        return [Match(None, ranked[0].distance), *ranked[1:]]
    return ranked


def quality_floor(ranked: list[Match], quality: float | None, min_quality: float) -> list[Match]:
    """One face's ranked matches with the quality floor applied: below it, the first entry (the
    decision) becomes "too poor to decide" (identity None, ``too_poor`` True); the rest stay as
    candidates for display."""
    if quality is None or quality >= min_quality:
        return ranked
    first = ranked[0] if ranked else Match(None, float("inf"))
    return [Match(None, first.distance, too_poor=True), *ranked[1:]]


def rank_people(distances_: np.ndarray, people: Sequence[str], threshold: float, top_k: int = 1) -> list[Match]:
    """Open-set ranking of one query's candidate samples: (K,) distances sorted ascending, (K,) owners.

    Each person counts with their nearest sample (per-person best distance), up to ``top_k`` people.
    """
    seen: dict[str, float] = {}
    for d, who in zip(distances_, people):
        if who not in seen:
            seen[who] = float(d)
            if len(seen) == max(1, top_k):
                break
    return open_set([Match(p, d) for p, d in seen.items()], threshold)

