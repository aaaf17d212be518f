"""How well a clustering groups faces by person: pairwise and BCubed precision/recall/F1, group counts.

Conventions, for ``truth`` (person per face) and ``predicted`` (group per face, -1 = noise):

* a noise face is a group of its own: it puts no pair together, and for BCubed its group is itself;
* **pairwise**: precision = same-person pairs inside predicted groups / all pairs inside predicted
  groups; recall = same-person pairs inside predicted groups / all same-person pairs. With no
  predicted (or no true) pair the ratio is 1.0: nothing was claimed (or nothing could be missed);
* **BCubed** (Bagga & Baldwin 1998; Amigó et al. 2009): per face, precision = share of its predicted
  group that is its person, recall = share of its person that is in its predicted group, averaged
  over faces. Unlike pairwise figures it is not dominated by the few people with hundreds of photos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FaceprintError
from ..pipeline import IMAGE_SUFFIXES

__all__ = ["clustering_metrics", "lfw_people"]


def _pairs(n: np.ndarray) -> float:
    return float((n * (n - 1) / 2).sum())


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def clustering_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float | int]:
    """Scores of one clustering of N faces: truth (N,) person ids (any type), predicted (N,) ints, -1 noise.

    Returns pairwise_precision/recall/f1, bcubed_precision/recall/f1 (fractions), clusters (groups
    found, noise excluded), clusters_2plus (found groups of >= 2 faces), true_clusters (people),
    true_clusters_2plus (people with >= 2 faces), noise (faces labelled -1) and faces.
    """
    t = np.asarray(truth)
    p = np.asarray(predicted).astype(np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"truth and predicted must be two (N,) arrays of the same length, got {t.shape} and {p.shape}")
    n = len(t)
    _, t_id = np.unique(t, return_inverse=True)
    noise = p < 0
    # Each noise face becomes its own group, numbered after the real ones.
    g = p.copy()
    g[noise] = p.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    _, g_id = np.unique(g, return_inverse=True)
    # Contingency counts n_ij of (group, person) cells, sparse as (cell, count).
    _, cell_of, n_ij = np.unique(g_id * (t_id.max(initial=0) + 1) + t_id, return_inverse=True, return_counts=True)
    size_g = np.bincount(g_id)
    size_t = np.bincount(t_id)
    together = _pairs(n_ij)
    claimed, real = _pairs(size_g), _pairs(size_t)
    pw_p = together / claimed if claimed else 1.0
    pw_r = together / real if real else 1.0
    # BCubed per face: |own cell| / |own group| and |own cell| / |own person|.
    cell_count = n_ij[cell_of]
    bc_p = float((cell_count / size_g[g_id]).mean()) if n else 1.0
    bc_r = float((cell_count / size_t[t_id]).mean()) if n else 1.0
    found = np.bincount(p[~noise]) if (~noise).any() else np.zeros(0, np.int64)
    found = found[found > 0]
    return {
        "pairwise_precision": pw_p,
        "pairwise_recall": pw_r,
        "pairwise_f1": _f1(pw_p, pw_r),
        "bcubed_precision": bc_p,
        "bcubed_recall": bc_r,
        "bcubed_f1": _f1(bc_p, bc_r),
        "clusters": int(len(found)),
        "clusters_2plus": int((found >= 2).sum()),
        "true_clusters": int(len(size_t)),
        "true_clusters_2plus": int((size_t >= 2).sum()),
        "noise": int(noise.sum()),
        "faces": int(n),
    }


def lfw_people(root: str | Path, min_images: int = 1, max_images: int | None = None) -> tuple[list[Path], list[str]]:
    """(image paths, person per path) of the LFW people (``root/Name/*.jpg``) with that many images.

    People are taken in sorted folder order, their images in sorted file order.
    """
    root = Path(root)
    if not root.is_dir():
        raise FaceprintError(f"LFW folder not found: {root}")
    paths: list[Path] = []
    names: list[str] = []
    for person in sorted(d for d in root.iterdir() if d.is_dir()):
        images = sorted(f for f in person.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if len(images) >= min_images and (max_images is None or len(images) <= max_images):
            paths += images
            names += [person.name] * len(images)
    return paths, names
