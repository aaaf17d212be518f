"""Human-readable report of an LFW evaluation: per-pair CSV, ROC, distance histogram, worst pairs.

matplotlib is imported inside :func:`write_lfw_report` only, so importing faceprint never needs it.
Figures are drawn on the Agg canvas directly (no pyplot, no global figure state, nothing to close).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .lfw import LfwPair, lfw_image_path
from .metrics import best_threshold, eer, roc_auc, roc_curve, val_at_far

__all__ = ["write_lfw_report"]

FAR_TARGET = 1e-3


def write_lfw_report(
    result: dict[str, Any], pairs: Sequence[LfwPair], root: Path, out: Path, *, worst: int = 12
) -> dict[str, Path]:
    """Write pairs.csv, roc.png, distances.png, worst_pairs.png and report.md into ``out``.

    result: what :func:`faceprint.evaluate.lfw.evaluate_lfw` returns (the private ``_distances``,
        ``_labels`` and ``_folds`` arrays and the ``folds`` list with each fold's threshold are required).
    pairs: the pairs in the same order as ``result["_distances"]`` (``read_lfw_pairs(pairs_file)``).
    root: the LFW image folder, for the worst-pairs sheet.
    worst: how many pairs to show on the sheet, the most wrong first (by distance beyond the
        fold's threshold); when fewer pairs are wrong, the nearest-to-wrong correct pairs follow.

    Returns {"csv", "roc", "distances", "worst_pairs", "report"} -> the written paths.
    """
    import matplotlib  # noqa: F401  (fail early and clearly when it is missing)

    d = np.asarray(result["_distances"], np.float64)
    y = np.asarray(result["_labels"], bool)
    f = np.asarray(result["_folds"])
    if not (len(d) == len(y) == len(f) == len(pairs)):
        raise ValueError(f"result has {len(d)} distances but {len(pairs)} pairs were given")
    if any(p.same != bool(s) or p.fold != int(k) for p, s, k in zip(pairs, y, f)):
        raise ValueError("pairs do not match the result's labels/folds: pass the pairs.txt that was evaluated")
    thresholds = {int(r["fold"]): float(r["threshold"]) for r in result["folds"]}
    missing = sorted(set(int(k) for k in f) - set(thresholds))
    if missing:
        raise ValueError(f"result['folds'] has no threshold for fold(s) {missing}")
    t = np.array([thresholds[int(k)] for k in f]) if len(f) else np.zeros(0)
    predicted = d <= t

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": out / "pairs.csv",
        "roc": out / "roc.png",
        "distances": out / "distances.png",
        "worst_pairs": out / "worst_pairs.png",
        "report": out / "report.md",
    }

    with paths["csv"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name_a", "index_a", "name_b", "index_b", "same", "fold", "distance", "predicted_same"])
        for p, dist, pred in zip(pairs, d, predicted):
            w.writerow([p.name_a, p.index_a, p.name_b, p.index_b, int(p.same), p.fold, repr(float(dist)), int(pred)])

    auc = float(result["roc_auc"] if "roc_auc" in result else roc_auc(d, y))
    val = float(result["val_at_far_1e-3"] if "val_at_far_1e-3" in result else val_at_far(d, y, FAR_TARGET)[0])
    mean_t = float(np.mean(list(thresholds.values())))

    _plot_roc(d, y, auc, val, paths["roc"])
    _plot_distances(d, y, mean_t, paths["distances"], str(result.get("metric", "")))
    _plot_worst(pairs, d, t, predicted, Path(root), worst, paths["worst_pairs"])
    paths["report"].write_text(_markdown(result, d, y, f, predicted, thresholds, auc, val, paths))
    return paths


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _plot_roc(d: np.ndarray, y: np.ndarray, auc: float, val: float, path: Path) -> None:
    fig = _figure(6, 4.5)
    ax = fig.add_subplot()
    n_diff = int((~y).sum())
    floor = 0.5 / max(n_diff, 1)  # FAR=0 has no place on a log axis: draw it at half the smallest step
    if y.any() and (~y).any():
        far, tar, _ = roc_curve(d, y)
        ax.step(np.maximum(far, floor), tar, where="post", color="C0", lw=1.8,
                label=f"ROC (AUC {auc:.4f}, VAL@FAR=1e-3 {100 * val:.2f}%)")
    ax.axvline(FAR_TARGET, color="0.5", ls="--", lw=1, label="FAR = 1e-3")
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (FAR, log scale)")
    ax.set_ylabel("true accept rate (TAR)")
    ax.set_title("LFW verification ROC")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)
    fig.savefig(path)


def _plot_distances(d: np.ndarray, y: np.ndarray, threshold: float, path: Path, metric: str) -> None:
    fig = _figure(6, 4.5)
    ax = fig.add_subplot()
    if len(d):
        lo, hi = float(min(d.min(), threshold)), float(max(d.max(), threshold))
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 51)
        if y.any():
            ax.hist(d[y], bins=bins, alpha=0.6, color="C2", label=f"same person ({int(y.sum())})")
        if (~y).any():
            ax.hist(d[~y], bins=bins, alpha=0.6, color="C3", label=f"different people ({int((~y).sum())})")
    ax.axvline(threshold, color="k", ls="--", lw=1.5, label=f"mean fold threshold {threshold:.4f}")
    ax.set_xlabel(f"{metric} distance".strip())
    ax.set_ylabel("pairs")
    ax.set_title("Distances of LFW pairs")
    ax.legend(fontsize=9)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)
    fig.savefig(path)


def _worst_order(same: np.ndarray, d: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Pair indices by how far each is on the wrong side of its fold's threshold, most wrong first."""
    wrongness = np.where(same, d - t, t - d)  # > 0: wrong; < 0: right by that margin
    return np.argsort(-wrongness, kind="stable")


def _plot_worst(
    pairs: Sequence[LfwPair], d: np.ndarray, t: np.ndarray, predicted: np.ndarray, root: Path, worst: int, path: Path
) -> None:
    from ..imageio import load_image

    same = np.array([p.same for p in pairs], bool)
    chosen = _worst_order(same, d, t)[: max(int(worst), 0)]
    cols = 3
    rows = max(math.ceil(len(chosen) / cols), 1)
    head = 0.8  # inches above the first row: the sheet's title, then the first row's two-line titles
    height = 2.55 * rows + head
    fig = _figure(4.0 * cols, height)
    fig.suptitle(f"The {len(chosen)} most wrong pairs (distance vs the fold's threshold)", fontsize=12,
                 y=1 - 0.08 / height, va="top")
    if not len(chosen):
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no pairs", ha="center", va="center")
    for k, i in enumerate(chosen):
        p = pairs[int(i)]
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(np.concatenate([_face(load_image, root, p.name_a, p.index_a),
                                  _face(load_image, root, p.name_b, p.index_b)], axis=1))
        ax.set_xticks([])
        ax.set_yticks([])
        right = bool(predicted[i]) == p.same
        verdict = "correct" if right else ("FALSE REJECT" if p.same else "FALSE ACCEPT")
        truth = "same" if p.same else "different"
        ax.set_title(
            f"{p.name_a} {p.index_a} | {p.name_b} {p.index_b}\n"
            f"d={d[i]:.4f} t={t[i]:.4f}  {truth}: {verdict}",
            fontsize=8, color="C2" if right else "C3",
        )
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - head / height,
                        wspace=0.04, hspace=0.35)
    fig.savefig(path)


def _face(load_image: Any, root: Path, name: str, index: int, size: int = 160) -> np.ndarray:
    """The LFW image resized to size x size (a grey tile with an X when it cannot be read)."""
    from PIL import Image

    try:
        image = load_image(lfw_image_path(root, name, index))
    except (OSError, ValueError):
        tile = np.full((size, size, 3), 200, np.uint8)
        r = np.arange(size)
        tile[r, r] = tile[r, size - 1 - r] = 90
        return tile
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def _markdown(
    result: dict[str, Any], d: np.ndarray, y: np.ndarray, f: np.ndarray, predicted: np.ndarray,
    thresholds: dict[int, float], auc: float, val: float, paths: dict[str, Path],
) -> str:
    accs = {int(r["fold"]): float(r["accuracy"]) for r in result["folds"]}
    mean = float(result.get("accuracy_mean", np.mean(list(accs.values())) if accs else float("nan")))
    std = float(result.get("accuracy_std", np.std(list(accs.values())) if accs else float("nan")))
    rate = float(result["eer"] if "eer" in result else eer(d, y))
    wrong = predicted != y
    lines = [
        "# LFW verification report",
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy (mean ± std over folds) | {_pct(mean)} ± {_pct(std)} |",
        f"| VAL@FAR=1e-3 | {_pct(val)} |",
        f"| ROC AUC | {auc:.4f} |",
        f"| EER | {_pct(rate)} |",
        f"| threshold on all pairs | {float(result['threshold'] if 'threshold' in result else best_threshold(d, y)):.4f} |",
        f"| mean fold threshold | {float(np.mean(list(thresholds.values()))):.4f} |",
        f"| pairs | {len(d)} ({int(y.sum())} same, {int((~y).sum())} different) |",
        f"| wrong pairs | {int(wrong.sum())} ({int((wrong & y).sum())} false rejects, "
        f"{int((wrong & ~y).sum())} false accepts) |",
        f"| images | {result.get('images', '?')} |",
        f"| no face by the detector | {result.get('no_face', '?')} |",
        f"| found by | {', '.join(f'{k}: {v}' for k, v in (result.get('found_by') or {}).items()) or '?'} |",
        f"| metric | {result.get('metric', '?')} |",
        "",
        "## Folds",
        "",
        "Each fold's threshold is chosen on the other folds; accuracy is on the fold itself.",
        "",
        "| fold | threshold | accuracy | pairs | wrong |",
        "|---|---|---|---|---|",
    ]
    for k in sorted(thresholds):
        m = f == k
        lines.append(f"| {k} | {thresholds[k]:.4f} | {_pct(accs[k])} | {int(m.sum())} | {int(wrong[m].sum())} |")
    lines += [
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(result.get("settings", {}), indent=2, sort_keys=True, default=str),
        "```",
        "",
        "## Figures",
        "",
        f"- [per-pair distances and verdicts]({paths['csv'].name})",
        "",
        f"![ROC curve]({paths['roc'].name})",
        "",
        f"![distance histogram]({paths['distances'].name})",
        "",
        f"![worst pairs]({paths['worst_pairs'].name})",
        "",
    ]
    return "\n".join(lines)
