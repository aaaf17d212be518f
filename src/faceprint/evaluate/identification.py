"""LFW 1:N identification: closed-set rank-k accuracy and open-set DIR at a false-accept rate.

Protocol (:func:`evaluate_lfw_identification`), on the LFW image folders ``root/Name/Name_0001.jpg``:

* every folder is a person; its images are taken in sorted file-name order;
* a person with two or more images is **enrolled** with the first image (the gallery, one
  image per person) and each of the other images is a **genuine probe** of that person;
* a person with exactly one image is a **stranger**: an open-set probe whose person is not in
  the gallery and which must be rejected.

Figures (:func:`identification_metrics`), with "distance to a person" = the smallest distance
to any of that person's gallery images:

* **rank-k** (closed set, genuine probes only): the fraction of genuine probes whose own person
  is among the k nearest enrolled people. Ties count against the probe: another person at the
  same distance as the true one ranks ahead of it.
* **DIR @ FAR** (open set, detection and identification rate): the threshold ``t`` is set on the
  strangers so that the fraction of strangers whose nearest gallery distance is ``<= t`` equals
  the FAR (at most the FAR where ties or the finite count of strangers make it inexact; the
  FAR actually reached is reported). DIR is the fraction of genuine probes that are rank-1
  correct *and* within ``t`` of their own person.
* at a **fixed threshold** (the model's decision threshold, if given): the same DIR ("rank-1
  at threshold"), the false-accept rate of the strangers, and the fraction of genuine probes
  accepted as the wrong person.

:func:`rank1_vs_gallery_size` shows how rank-1 falls as the gallery grows: for each size, a
random subset of that many enrolled people (nested subsets of one seeded permutation), scored
on the genuine probes of the people in the subset only.

Distances are computed in row chunks, so 13k probes against 6k gallery images stay small in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..decide import distances
from ..errors import FaceprintError
from ..pipeline import FacePipeline
from .lfw import embed_images

__all__ = [
    "evaluate_lfw_identification",
    "identification_metrics",
    "lfw_identification_split",
    "rank1_vs_gallery_size",
]

_CHUNK_CELLS = 4_000_000  # distances per chunk: 32 MB of float64


def _check(gallery: np.ndarray, gallery_ids: np.ndarray, probes: np.ndarray, probe_ids: np.ndarray):  # noqa: ANN202
    g = np.asarray(gallery, np.float64)
    p = np.asarray(probes, np.float64)
    gid = np.asarray(gallery_ids)
    pid = np.asarray(probe_ids)
    if g.ndim != 2 or p.ndim != 2:
        raise ValueError(f"gallery and probes must be 2-D (N, D) arrays, got {g.shape} and {p.shape}")
    if g.shape[0] == 0:
        raise ValueError("the gallery is empty")
    if p.shape[1] != g.shape[1]:
        raise ValueError(f"descriptor sizes differ: gallery {g.shape[1]}, probes {p.shape[1]}")
    if gid.shape != (g.shape[0],):
        raise ValueError(f"gallery_ids must have one id per gallery row: {gid.shape} for {g.shape[0]} rows")
    if pid.shape != (p.shape[0],):
        raise ValueError(f"probe_ids must have one id per probe row: {pid.shape} for {p.shape[0]} rows")
    return g, gid, p, pid


def _by_person(gallery: np.ndarray, gallery_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gallery rows sorted by person: (rows, people, start of each person's run)."""
    people, inverse = np.unique(gallery_ids, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(people)))
    return gallery[order], people, starts


def _person_distances(queries: np.ndarray, rows: np.ndarray, starts: np.ndarray, metric: str):  # noqa: ANN202
    """Yield (slice, (q, people) distances), the min over each person's gallery rows, by chunks."""
    step = max(1, _CHUNK_CELLS // max(rows.shape[0], 1))
    for a in range(0, queries.shape[0], step):
        d = distances(queries[a : a + step], rows, metric)
        yield slice(a, a + step), np.minimum.reduceat(d, starts, axis=1)


def _genuine_scores(
    probes: np.ndarray, probe_ids: np.ndarray, rows: np.ndarray, people: np.ndarray, starts: np.ndarray, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per genuine probe: (rank of its own person, 1 = nearest; distance to its own person)."""
    col = np.searchsorted(people, probe_ids)
    col = np.minimum(col, len(people) - 1)
    unknown = people[col] != probe_ids
    if unknown.any():
        raise ValueError(
            f"{int(unknown.sum())} probe(s) belong to no enrolled person, e.g. {probe_ids[unknown][0]!r}: "
            "pass people without a gallery image as strangers"
        )
    rank = np.zeros(len(probe_ids), np.int64)
    own = np.zeros(len(probe_ids), np.float64)
    for sl, d in _person_distances(probes, rows, starts, metric):
        c = col[sl]
        mine = d[np.arange(len(c)), c]
        # Pessimistic ties: every other person at or below the true distance ranks ahead.
        rank[sl] = (d <= mine[:, None]).sum(1)
        own[sl] = mine
    return rank, own


def _nearest(queries: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    out = np.zeros(queries.shape[0], np.float64)
    step = max(1, _CHUNK_CELLS // max(rows.shape[0], 1))
    for a in range(0, queries.shape[0], step):
        out[a : a + step] = distances(queries[a : a + step], rows, metric).min(1)
    return out


def _threshold_at_far(nearest: np.ndarray, far: float) -> tuple[float, float]:
    """(threshold, FAR reached): the largest threshold accepting at most ``far`` of the strangers."""
    s = np.sort(nearest)
    n = len(s)
    k = int(np.floor(far * n + 1e-9))  # strangers we may accept
    if k == 0:
        t = float(np.nextafter(s[0], -np.inf))
    else:
        t = float(s[k - 1])
        if k < n and s[k] == s[k - 1]:  # a tie would accept more than k: step below the tie
            t = float(np.nextafter(s[k - 1], -np.inf))
    reached = float(np.searchsorted(s, t, side="right") / n)
    return t, reached


def identification_metrics(
    gallery: np.ndarray,
    gallery_ids: np.ndarray,
    probes: np.ndarray,
    probe_ids: np.ndarray,
    strangers: np.ndarray,
    *,
    metric: str = "euclidean",
    fars: Sequence[float] = (1e-2, 1e-3),
    threshold: float | None = None,
) -> dict[str, object]:
    """Closed-set rank-1/rank-5 and open-set DIR at each FAR on precomputed descriptors.

    ``gallery`` (G, D) with ``gallery_ids`` (G,) — several rows per person are allowed, the
    nearest counts; ``probes`` (P, D) with ``probe_ids`` (P,), every id enrolled; ``strangers``
    (S, D), people not in the gallery. See the module docstring for the definitions. With no
    strangers the open-set figures are None. Raises ValueError on inconsistent inputs.
    """
    g, gid, p, pid = _check(gallery, gallery_ids, probes, probe_ids)
    s = np.asarray(strangers, np.float64)
    if s.ndim != 2 or (s.shape[0] and s.shape[1] != g.shape[1]):
        raise ValueError(f"strangers must be a (S, {g.shape[1]}) array, got {s.shape}")
    if p.shape[0] == 0:
        raise ValueError("no genuine probes")
    fars = [float(f) for f in fars]
    if any(not 0.0 < f < 1.0 for f in fars):
        raise ValueError(f"each FAR must be in (0, 1), got {fars}")

    rows, people, starts = _by_person(g, gid)
    rank, own = _genuine_scores(p, pid, rows, people, starts, metric)
    correct = rank == 1
    result: dict[str, object] = {
        "rank1": float(correct.mean()),
        "rank5": float((rank <= 5).mean()),
        "metric": metric,
        "gallery_people": int(len(people)),
        "gallery_images": int(g.shape[0]),
        "probes": int(p.shape[0]),
        "strangers": int(s.shape[0]),
    }
    nearest = _nearest(s, rows, metric) if s.shape[0] else np.zeros(0)
    dir_at: dict[str, object] = {}
    for far in fars:
        key = f"{far:g}"
        if not s.shape[0]:
            dir_at[key] = None
            continue
        t, reached = _threshold_at_far(nearest, far)
        dir_at[key] = {"dir": float((correct & (own <= t)).mean()), "threshold": t, "far": reached}
    result["dir_at_far"] = dir_at
    if threshold is not None:
        t = float(threshold)
        # A genuine probe accepted as someone else: its nearest person is wrong and within t.
        wrong_accept = ~correct & (_nearest(p, rows, metric) <= t)
        result["at_threshold"] = {
            "threshold": t,
            "rank1": float((correct & (own <= t)).mean()),
            "false_accept_rate": float((nearest <= t).mean()) if s.shape[0] else None,
            "wrong_person_rate": float(wrong_accept.mean()),
        }
    return result


def rank1_vs_gallery_size(
    gallery: np.ndarray,
    gallery_ids: np.ndarray,
    probes: np.ndarray,
    probe_ids: np.ndarray,
    sizes: Sequence[int | str | None],
    seed: int = 0,
    *,
    metric: str = "euclidean",
) -> list[dict[str, object]]:
    """Rank-1 against random galleries of ``sizes`` enrolled people (None or "all" = everyone).

    For a size n the gallery is the first n people of one permutation seeded by ``seed`` (so a
    smaller gallery is a subset of a larger one) and only the probes of those n people are
    scored. A size above the number of people means everyone. Probes of people who are not
    enrolled at all raise ValueError.
    """
    g, gid, p, pid = _check(gallery, gallery_ids, probes, probe_ids)
    rows, people, starts = _by_person(g, gid)
    col = np.minimum(np.searchsorted(people, pid), len(people) - 1)
    if (people[col] != pid).any():
        raise ValueError("some probes belong to no enrolled person: pass only probes of enrolled people")
    perm = np.random.default_rng(seed).permutation(len(people))
    plans = []
    for size in sizes:
        if size is None or (isinstance(size, str) and size.lower() == "all"):
            n = len(people)
        elif isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size >= 1:
            n = min(int(size), len(people))
        else:
            raise ValueError(f"gallery size must be a positive integer or 'all', got {size!r}")
        member = np.zeros(len(people), bool)
        member[perm[:n]] = True
        plans.append((size, n, member))
    hits = np.zeros(len(plans), np.int64)
    counts = np.zeros(len(plans), np.int64)
    for sl, d in _person_distances(p, rows, starts, metric):
        c = col[sl]
        mine = d[np.arange(len(c)), c]
        for j, (_, _, member) in enumerate(plans):
            keep = member[c]
            if not keep.any():
                continue
            ahead = ((d[keep] <= mine[keep, None]) & member[None, :]).sum(1)
            hits[j] += int((ahead == 1).sum())
            counts[j] += int(keep.sum())
    return [
        {
            "size": "all" if size is None or isinstance(size, str) else int(size),
            "people": n,
            "probes": int(counts[j]),
            "rank1": float(hits[j] / counts[j]) if counts[j] else None,
        }
        for j, (size, n, _) in enumerate(plans)
    ]


def lfw_identification_split(root: str | Path) -> tuple[list[Path], list[str], list[str]]:
    """(paths, person per path, role per path: "gallery", "probe" or "stranger") under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FaceprintError(f"LFW folder not found: {root}")
    paths: list[Path] = []
    names: list[str] = []
    roles: list[str] = []
    for person in sorted(d for d in root.iterdir() if d.is_dir()):
        images = sorted(person.glob("*.jpg"))
        if not images:
            continue
        if len(images) == 1:
            paths.append(images[0])
            names.append(person.name)
            roles.append("stranger")
            continue
        for k, img in enumerate(images):
            paths.append(img)
            names.append(person.name)
            roles.append("gallery" if k == 0 else "probe")
    if not paths:
        raise FaceprintError(f"no LFW images (Name/Name_0001.jpg) under {root}")
    return paths, names, roles


def evaluate_lfw_identification(
    pipe: FacePipeline,
    root: str | Path,
    *,
    fallback: FacePipeline | None = None,
    sizes: Sequence[int | str | None] = (100, 1000, None),
    seed: int = 0,
    metric: str | None = None,
    threshold: float | None = None,
    fars: Sequence[float] = (1e-2, 1e-3),
    progress: bool = True,
) -> dict[str, object]:
    """Embed every LFW image (cached) and score the identification protocol of this module.

    Returns the JSON-ready dict of :func:`identification_metrics`, plus "gallery_size" (the list
    of :func:`rank1_vs_gallery_size`), images, found_by, seed and the pipeline settings.
    ``threshold`` defaults to the model's decision threshold.
    """
    paths, names, roles = lfw_identification_split(root)
    vectors, how = embed_images(pipe, paths, fallback=fallback, progress=progress)
    ids = np.array(names)
    role = np.array(roles)
    gal, prb, stg = role == "gallery", role == "probe", role == "stranger"
    metric = metric or pipe.spec.metric
    thr = pipe.spec.threshold if threshold is None else threshold
    result = identification_metrics(
        vectors[gal], ids[gal], vectors[prb], ids[prb], vectors[stg], metric=metric, fars=fars, threshold=thr
    )
    result["gallery_size"] = rank1_vs_gallery_size(
        vectors[gal], ids[gal], vectors[prb], ids[prb], sizes, seed, metric=metric
    )
    result.update(
        images=len(paths),
        found_by={k: how.count(k) for k in sorted(set(how))},
        seed=seed,
        settings=pipe.settings(),
    )
    return result
