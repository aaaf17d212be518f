"""Verification metrics on distances: k-fold accuracy with thresholds chosen on training folds.

Convention: a smaller distance means "more likely the same person"; a pair is predicted same
when distance <= threshold. Labels are True for same-person pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FoldResult", "best_threshold", "kfold_accuracy", "roc_auc", "val_at_far", "verification_summary"]


@dataclass(frozen=True)
class FoldResult:
    fold: int
    threshold: float  # chosen on the other folds only
    accuracy: float  # on this fold


def _candidates(d: np.ndarray) -> np.ndarray:
    """Thresholds that realise every distinct split of the sorted distances (midpoints)."""
    u = np.unique(d)
    return np.concatenate([[u[0] - 1e-9], (u[:-1] + u[1:]) / 2.0, [u[-1] + 1e-9]])


def best_threshold(distances: np.ndarray, labels: np.ndarray) -> float:
    """The threshold maximising accuracy on these pairs (ties: the smallest such threshold)."""
    d = np.asarray(distances, np.float64)
    y = np.asarray(labels, bool)
    cand = _candidates(d)
    order = np.argsort(d, kind="stable")
    ds, ys = d[order], y[order]
    # For each candidate t: same-pairs with d <= t are right, different-pairs with d > t are right.
    k = np.searchsorted(ds, cand, side="right")
    same_below = np.concatenate([[0], np.cumsum(ys)])[k]
    diff_below = k - same_below
    correct = same_below + ((~ys).sum() - diff_below)
    return float(cand[int(np.argmax(correct))])


def kfold_accuracy(distances: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> list[FoldResult]:
    """Per-fold accuracy, each fold's threshold chosen on the pairs of all *other* folds."""
    d = np.asarray(distances, np.float64)
    y = np.asarray(labels, bool)
    f = np.asarray(folds)
    results = []
    for k in np.unique(f):
        train, test = f != k, f == k
        t = best_threshold(d[train], y[train])
        acc = float(((d[test] <= t) == y[test]).mean())
        results.append(FoldResult(int(k), t, acc))
    return results


def roc_curve(distances: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FAR, TAR, thresholds) for every threshold, FAR ascending."""
    d = np.asarray(distances, np.float64)
    y = np.asarray(labels, bool)
    t = _candidates(d)
    ds_same, ds_diff = np.sort(d[y]), np.sort(d[~y])
    tar = np.searchsorted(ds_same, t, side="right") / max(len(ds_same), 1)
    far = np.searchsorted(ds_diff, t, side="right") / max(len(ds_diff), 1)
    return far, tar, t


def roc_auc(distances: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (probability a same pair is closer than a different pair)."""
    far, tar, _ = roc_curve(distances, labels)
    return float(np.trapezoid(tar, far))


def val_at_far(distances: np.ndarray, labels: np.ndarray, far_target: float = 1e-3) -> tuple[float, float]:
    """(VAL, threshold): the largest true-accept rate whose false-accept rate is <= far_target."""
    far, tar, t = roc_curve(distances, labels)
    ok = far <= far_target
    i = int(np.flatnonzero(ok)[-1])
    return float(tar[i]), float(t[i])


def eer(distances: np.ndarray, labels: np.ndarray) -> float:
    """Equal error rate: where the false-accept rate meets the false-reject rate."""
    far, tar, _ = roc_curve(distances, labels)
    frr = 1.0 - tar
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2.0)


def verification_summary(distances: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> dict[str, object]:
    """The LFW-style row: accuracy_mean/std over the folds (each fold's threshold chosen on the
    others), val_at_far_1e-3, roc_auc, eer, threshold (best on all pairs, for reference) and the
    per-fold thresholds and accuracies under "folds". Fractions, JSON-ready."""
    d = np.asarray(distances, np.float64)
    y = np.asarray(labels, bool)
    per_fold = kfold_accuracy(d, y, folds)
    accs = np.array([r.accuracy for r in per_fold])
    val, _ = val_at_far(d, y, 1e-3)
    return {
        "accuracy_mean": float(accs.mean()),
        "accuracy_std": float(accs.std()),
        "val_at_far_1e-3": val,
        "roc_auc": roc_auc(d, y),
        "eer": eer(d, y),
        "threshold": best_threshold(d, y),
        "folds": [{"fold": r.fold, "threshold": r.threshold, "accuracy": r.accuracy} for r in per_fold],
    }
