"""Verification on degraded photos: the LFW 10-fold protocol on degraded copies of the pair images.

For each named condition of :mod:`faceprint.degrade` both images of every pair are degraded
(each seeded by the condition, the image's ``Name/Name_0001.jpg`` path and the run's seed, so a
run is reproducible), then detected, aligned and embedded exactly as ``faceprint eval lfw``
does (:func:`~faceprint.evaluate.lfw.embed_images_detailed`: the detector, else the fallback
detector, else the central box; the images not found by the first detector are counted as
``no_face``). Each condition gets the LFW row (accuracy over 10 folds with the threshold chosen
on the other nine, VAL at FAR 1e-3, AUC, EER).

"All degraded" pools the pairs of every selected condition except ``clean`` into one set (a pair
appears once per condition), each keeping its original fold, and runs the same 10-fold protocol
on it: one threshold per fold for all conditions together, as a deployed system would have.

FaceNet's figures (:data:`FACENET_TABLE4`) are from Schroff, Kalenichenko and Philbin, "FaceNet:
A Unified Embedding for Face Recognition and Clustering", CVPR 2015, Table 4 (VAL at 1e-3 FAR of
their NN1 model). They were measured on the first split of Google's own hold-out set, not on LFW,
and their pixel counts are those of the face thumbnail given to the network (see
:func:`faceprint.degrade.pixels`): set beside ours they show the shape of the curve, not a
like-for-like score.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from .._resources import cache_dir
from ..decide import paired_distances
from ..degrade import Condition, get_condition, list_conditions, seed_for
from ..pipeline import FacePipeline
from .lfw import embed_images_detailed, pair_image_index, read_lfw_pairs, subset_pairs
from .metrics import verification_summary

__all__ = ["FACENET_TABLE4", "evaluate_degraded", "markdown_table", "write_degraded_report"]

FACENET_TABLE4: Mapping[str, float] = MappingProxyType(
    {
        # JPEG quality (images of 220 x 220 px, the network's input)
        "jpeg10": 0.673, "jpeg20": 0.814, "jpeg30": 0.839, "jpeg50": 0.855, "jpeg70": 0.861, "jpeg90": 0.865,
        # pixels of the face thumbnail: 40^2, 80^2, 120^2, 160^2, 256^2
        "px1600": 0.378, "px6400": 0.795, "px14400": 0.845, "px25600": 0.857, "px65536": 0.864,
    }
)  # fmt: skip
FACENET_SOURCE = (
    "FaceNet (Schroff et al., CVPR 2015), Table 4: VAL at 1e-3 FAR, NN1, their hold-out set (not LFW)"
)

_ROW_KEYS = ("accuracy_mean", "accuracy_std", "val_at_far_1e-3", "roc_auc", "eer", "threshold", "folds")


def evaluate_degraded(
    pipe: FacePipeline,
    root: str | Path,
    pairs_file: str | Path,
    conditions: Sequence[str] | None = None,
    *,
    fallback: FacePipeline | None = None,
    out: str | Path | None = None,
    cache: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    metric: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score the pairs of ``pairs_file`` under each degradation in ``conditions`` (default: all).

    out: the report folder (written by :func:`write_degraded_report`, not here).
    cache: the folder of the per-condition descriptor caches (default ``out/cache``, else
        ``degraded/`` in the faceprint cache folder), so a run that stops resumes where it left.
    limit: about this many pairs, spread over every fold and class (:func:`subset_pairs`).
    seed: the run's seed, mixed into every image's own seed.

    Returns the JSON-ready summary: "conditions" (one row per condition: condition, description,
    params, the LFW metrics, pairs, images, no_face, found_by, quality_mean, facenet_val_at_far_1e-3),
    "all_degraded" (the pooled row, None without a degraded condition), pairs, seed, limit, metric,
    settings, and under "_per_pair" the arrays of every (condition, pair): condition, pair (index
    in the evaluated pairs), fold, issame, distance, quality_a/b, how_a/b, name/index a/b.
    """
    names = list(conditions) if conditions else list_conditions()
    conds = [get_condition(n) for n in dict.fromkeys(names)]  # unknown names fail before any work
    pairs = subset_pairs(read_lfw_pairs(pairs_file), limit)
    paths, ia, ib = pair_image_index(root, pairs)
    metric = metric or pipe.spec.metric
    y = np.array([p.same for p in pairs])
    f = np.array([p.fold for p in pairs])
    if cache is not None:
        cache_root = Path(cache)
    else:
        cache_root = Path(out) / "cache" if out is not None else cache_dir("degraded")
    rows: list[dict[str, Any]] = []
    per_pair: dict[str, list[np.ndarray]] = {}
    clean = get_condition("clean")
    for cond in conds:
        # a condition that leaves every photo as it is (LFW's faces hold ~12,900 px, so the
        # 14,400 px row and up) shares the clean photos' descriptors instead of computing them again
        source = clean if cond.name != clean.name and _unchanged(pipe, cond, paths, seed) else cond
        done = embed_images_detailed(
            pipe,
            paths,
            fallback=fallback,
            load=_Loader(pipe, source, seed),
            cache_file=cache_root / f"{source.name}-{_digest(pipe, source, seed)}.npz",
            progress=progress,
            desc=cond.name,
        )
        d = paired_distances(done.vectors[ia], done.vectors[ib], metric)
        q = done.quality
        rows.append(
            {
                "condition": cond.name,
                "description": cond.description,
                "params": _jsonable(cond.params),
                **verification_summary(d, y, f),
                "pairs": len(pairs),
                "images": len(paths),
                "no_face": int(sum(h != "detector" for h in done.how)),
                "found_by": {k: done.how.count(k) for k in sorted(set(done.how))},
                "quality_mean": float(np.nanmean(q)) if np.isfinite(q).any() else None,
                "facenet_val_at_far_1e-3": FACENET_TABLE4.get(cond.name),
            }
        )
        how = np.array(done.how)
        for key, value in (
            ("condition", np.full(len(pairs), cond.name)), ("pair", np.arange(len(pairs))), ("fold", f),
            ("issame", y), ("distance", d), ("quality_a", q[ia]), ("quality_b", q[ib]),
            ("how_a", how[ia]), ("how_b", how[ib]),
        ):  # fmt: skip
            per_pair.setdefault(key, []).append(value)
    arrays = {k: np.concatenate(v) for k, v in per_pair.items()}
    arrays["name_a"] = np.tile([p.name_a for p in pairs], len(conds))
    arrays["index_a"] = np.tile([p.index_a for p in pairs], len(conds))
    arrays["name_b"] = np.tile([p.name_b for p in pairs], len(conds))
    arrays["index_b"] = np.tile([p.index_b for p in pairs], len(conds))
    degraded = [c.name for c in conds if c.name != "clean"]
    pooled = None
    if degraded:
        pick = np.isin(arrays["condition"], degraded)
        pooled = {
            "condition": "all degraded",
            "conditions": degraded,
            **verification_summary(arrays["distance"][pick], arrays["issame"][pick], arrays["fold"][pick]),
            "pairs": int(pick.sum()),
            "no_face": int(sum(r["no_face"] for r in rows if r["condition"] in degraded)),
        }
        pooled["error_versus_discard"] = error_versus_discard(
            arrays["distance"][pick], arrays["issame"][pick],
            np.fmin(arrays["quality_a"][pick], arrays["quality_b"][pick]),
        )  # fmt: skip
    return {
        "conditions": rows,
        "all_degraded": pooled,
        "pairs": len(pairs),
        "limit": limit,
        "seed": seed,
        "metric": metric,
        "settings": pipe.settings(),
        "facenet_source": FACENET_SOURCE,
        "_per_pair": arrays,
    }


def error_versus_discard(
    distances: np.ndarray,
    issame: np.ndarray,
    quality: np.ndarray,
    fractions: Sequence[float] = (0.0, 0.05, 0.10, 0.20),
    far: float = 1e-3,
) -> list[dict[str, float]]:
    """The quality score's error-versus-discard curve (ISO/IEC 29794-1): the threshold is fixed at
    ``far`` on all (n,) pairs' impostor distances; then the lowest-quality ``fraction`` of pairs
    (a pair's quality: its worse face's; a face never found counts as 0) is discarded and the false
    non-match rate of the genuine pairs left is measured. Rows: fraction, pairs kept, FNMR, FMR."""
    d = np.asarray(distances, np.float64)
    same = np.asarray(issame, bool)
    q = np.nan_to_num(np.asarray(quality, np.float64), nan=0.0)
    impostor = np.sort(d[~same])
    k = int(np.floor(far * len(impostor)))  # false matches allowed at this FAR
    thr = float(impostor[k]) if len(impostor) else float("inf")  # accept d < thr: at most k impostors
    order = np.argsort(q, kind="stable")
    rows = []
    for fraction in fractions:
        keep = np.ones(len(d), bool)
        keep[order[: int(round(fraction * len(d)))]] = False
        genuine, other = keep & same, keep & ~same
        rows.append({
            "discarded": float(fraction), "pairs": int(keep.sum()), "threshold": thr,
            "fnmr": float(np.mean(d[genuine] >= thr)) if genuine.any() else float("nan"),
            "fmr": float(np.mean(d[other] < thr)) if other.any() else float("nan"),
        })  # fmt: skip
    return rows


class _Loader:
    """Load an LFW image and degrade it, seeded by the condition, its Name/file path and the run seed."""

    def __init__(self, pipe: FacePipeline, cond: Condition, seed: int) -> None:
        self.pipe, self.cond, self.seed = pipe, cond, seed

    def __call__(self, path: Path) -> np.ndarray:
        key = f"{self.cond.name}/{path.parent.name}/{path.name}"
        return self.cond(self.pipe.load(path), rng=seed_for(key, self.seed))


def _unchanged(pipe: FacePipeline, cond: Condition, paths: Sequence[Path], seed: int) -> bool:
    """Whether ``cond`` returns every photo of ``paths`` unchanged (stops at the first change)."""
    degrade = _Loader(pipe, cond, seed)
    return all(np.array_equal(degrade(p), pipe.load(p)) for p in paths)


def _digest(pipe: FacePipeline, cond: Condition, seed: int) -> str:
    key = {"settings": pipe.settings(), "condition": cond.name, "params": _jsonable(cond.params),
           "seed": seed if cond.random else None}  # fmt: skip
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def markdown_table(result: Mapping[str, Any]) -> str:
    """The report's table: one row per condition, then "all degraded"; percentages."""
    lines = [
        "| condition | accuracy % | VAL@FAR=1e-3 % | FaceNet VAL % | AUC | EER % | no face | quality | what |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["conditions"]:
        q = r.get("quality_mean")
        lines.append(
            f"| {r['condition']} | {100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f} "
            f"| {_pct(r['val_at_far_1e-3'])} | {_pct(r.get('facenet_val_at_far_1e-3'))} | {r['roc_auc']:.4f} "
            f"| {100 * r['eer']:.2f} | {r['no_face']} / {r['images']} | {'' if q is None else f'{q:.2f}'} "
            f"| {r['description']} |"
        )
    p = result.get("all_degraded")
    if p:
        lines.append(
            f"| **all degraded** | {100 * p['accuracy_mean']:.2f} ± {100 * p['accuracy_std']:.2f} "
            f"| {_pct(p['val_at_far_1e-3'])} | | {p['roc_auc']:.4f} | {100 * p['eer']:.2f} | {p['no_face']} | "
            f"| {len(p['conditions'])} conditions pooled, {p['pairs']} pairs, folds kept |"
        )
        edc = p.get("error_versus_discard")
        if edc:
            lines += ["", "Error versus discard (all degraded pairs; threshold fixed at FAR = 1e-3 on all of them; "
                      "a pair's quality is its worse face's):", "",
                      "| lowest-quality pairs discarded | pairs kept | FNMR % | FMR % |", "|---|---|---|---|"]  # fmt: skip
            lines += [
                f"| {100 * e['discarded']:.0f}% | {e['pairs']} | {100 * e['fnmr']:.2f} | {100 * e['fmr']:.3f} |"
                for e in edc
            ]
    return "\n".join(lines)


def write_degraded_report(result: Mapping[str, Any], out: str | Path) -> dict[str, Path]:
    """Write quality.json, report.md, pairs.npz and quality.png (VAL vs JPEG quality and vs face
    pixels, beside FaceNet's Table 4) into ``out``; returns {"json", "markdown", "pairs", "plot"}."""
    from ..plot import plot_degradation_curves

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "quality.json", "markdown": out / "report.md", "pairs": out / "pairs.npz",
             "plot": out / "quality.png"}  # fmt: skip
    np.savez_compressed(paths["pairs"], **result["_per_pair"])
    measured = {r["condition"]: r["val_at_far_1e-3"] for r in result["conditions"]}
    plot_degradation_curves(measured, paths["plot"], reference=FACENET_TABLE4)
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    public = {**public, "files": {k: str(v) for k, v in paths.items()}}
    paths["json"].write_text(json.dumps(public, indent=1) + "\n")
    s = result["settings"]
    paths["markdown"].write_text(
        "# Verification on degraded photos (LFW 10-fold protocol)\n\n"
        f"{result['pairs']} pairs per condition (limit {result['limit']}), seed {result['seed']}, "
        f"model {s['model']}, detector {s['detector']}, {result['metric']} distance.\n\n"
        + markdown_table(result)
        + f"\n\nFaceNet column: {result['facenet_source']}. Percentages; ± is the standard deviation over the "
        "folds. no face: images the detector missed (then the fallback detector, then the central box, as "
        "`faceprint eval lfw`). quality: the mean `Detection.quality` of the faces used.\n\n"
        "![VAL vs image quality](quality.png)\n\nPer-pair data: `pairs.npz` (condition, pair, fold, issame, "
        "distance, quality_a, quality_b, how_a, how_b, name_a, index_a, name_b, index_b).\n"
    )
    return paths
