"""Fit faceprint.quality's coefficients: which faces are decided correctly, from their cues.

    nice .venv/bin/python benchmarks/fit_quality.py [--pairs 1400] [--seed 0] [--cache /tmp/q.npz]

Data: LFW View 1's training pairs (pairsDevTrain.txt; never View 2's pairs.txt, which the accuracy
figures come from), a seeded random subset of ``--pairs`` (half same, half different). Each image
is degraded with a seeded mix of Gaussian blur, downscaling (fewer pixels), JPEG compression and
under/over-exposure (the first image of a pair with probability 0.3, the second with 0.85;
:mod:`faceprint.degrade`, or the same operations in OpenCV where it is missing), then
goes through the default pipeline (model, detector and threshold as ``FacePipeline()`` has them).
A pair is labelled correct when ``distance <= threshold`` agrees with same/different, and is
described by the worse value of each cue over its two faces (the worse face limits the pair).
Pairs where a face is not found are left out (quality is only ever computed for found faces).

Fits a logistic regression (scikit-learn, standardised cues) of correctness on the cues, kept
monotone: a cue whose weight comes out with the wrong sign (a sharper face counting against it,
which only collinearity with the detector's score can produce) is dropped and the fit repeated, so
no cue can push the score the wrong way on photos unlike the fitting mix. Reports its 5-fold
out-of-fold ROC AUC and log-loss next to each single cue's and the old score's (detector
confidence x size), a reliability table, and what a floor refuses at several values. Prints the
coefficients, in raw-cue units, to paste into ``src/faceprint/quality.py``; saves JSON under
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from common import data_root, save, table

from faceprint import FacePipeline, select_face
from faceprint.decide import paired_distances
from faceprint.evaluate.lfw import lfw_image_path, read_lfw_pairs
from faceprint.imageio import load_image
from faceprint.quality import COEFFICIENTS, NORM_MEMBER, face_cues, norm_member

CUES = list(COEFFICIENTS)
HIGHER_IS_BETTER = {"log2_iod", "sharpness", "contrast", "score", "log_norm"}  # the others: lower is better


def degrade(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
    """One random mix of at least one degradation: blur -> exposure -> fewer pixels -> JPEG.

    Fewer pixels: the face keeps about n pixels (40 x 40 ... 9 x 9 px faces), either enlarged back
    to the photo's size (detail lost at the usual scale) or left small (a small face in pixels).
    """
    ops = {k: rng.random() < p for k, p in (("blur", 0.5), ("exposure", 0.4), ("pixels", 0.5), ("jpeg", 0.4))}
    if not any(ops.values()):
        ops[str(rng.choice(list(ops)))] = True
    out, how = image, {}
    if ops["blur"]:
        how["blur_sigma"] = float(rng.uniform(0.5, 4.0))
        out = _blur(out, how["blur_sigma"])
    if ops["exposure"]:
        dark = rng.random() < 0.5
        how["gain"] = float(rng.uniform(0.08, 0.4) if dark else rng.uniform(1.8, 4.0))
        how["gamma"] = float(rng.uniform(1.0, 1.8) if dark else rng.uniform(0.6, 1.0))
        out = _exposure(out, how["gain"], how["gamma"])
    if ops["pixels"]:
        how["face_pixels"] = float(np.exp(rng.uniform(np.log(80), np.log(1600))))
        how["restore"] = float(rng.random() < 0.5)
        out = _pixels(out, int(how["face_pixels"]), bool(how["restore"]))
    if ops["jpeg"]:
        how["jpeg_quality"] = int(rng.integers(5, 41))
        out = _jpeg(out, how["jpeg_quality"])
    return np.ascontiguousarray(out), how


try:  # the library's degradations (issue 15); the same operations in OpenCV where it is older
    from faceprint import degrade as _degrade

    DEGRADE = "faceprint.degrade"
    _blur, _exposure, _jpeg = _degrade.blur, _degrade.exposure, _degrade.jpeg

    def _pixels(image: np.ndarray, n: int, restore: bool) -> np.ndarray:
        return _degrade.pixels(image, n, restore=restore)

except ImportError:
    DEGRADE = "opencv"

    def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
        return cv2.GaussianBlur(image, (0, 0), sigma)

    def _exposure(image: np.ndarray, gain: float, gamma: float) -> np.ndarray:
        return np.round(255 * np.clip(gain * (image / 255.0) ** gamma, 0, 1)).astype(np.uint8)

    def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def _pixels(image: np.ndarray, n: int, restore: bool) -> np.ndarray:
        h, w = image.shape[:2]
        s = min(1.0, float(np.sqrt(n / (min(h, w) / 2.2) ** 2)))  # the face: LFW's central 1/2.2
        small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) if restore else small


def measure(pipe: FacePipeline, images: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Per image: the central face's descriptor, cues, SFace's descriptor length (NaN where the
    model has no SFace) and old quality (NaN rows: no face)."""
    dim, k = pipe.spec.embedding_size, norm_member(pipe.embedder.member_specs)
    n = len(images)
    vec, cues = np.full((n, dim), np.nan, np.float32), np.full((n, len(CUES)), np.nan)
    norm, old = np.full(n, np.nan), np.full(n, np.nan)
    for start in range(0, n, 32):
        batch = images[start : start + 32]
        for i, (image, dets) in enumerate(zip(batch, pipe.detect_batch(batch)), start):
            if not dets:
                continue
            d = dets[select_face(dets, image.shape, "center")]
            v, lengths = pipe.embedder.embed_with_norms(pipe.member_chips(image, [d]))
            vec[i], cues[i] = v[0], face_cues(image, d).vector()
            norm[i] = np.nan if k is None else lengths[0, k]
            old[i] = min(max(d.score, 0.0), 1.0) * min(1.0, min(d.width, d.height) / 100.0)
        print(f"  {min(start + 32, n)}/{n} images", flush=True)
    return vec, cues, norm, old


def collect(args: argparse.Namespace) -> dict[str, np.ndarray]:
    root = data_root() / "lfw"
    pairs = read_lfw_pairs(root / "pairsDevTrain.txt")
    rng = np.random.default_rng(args.seed)
    same = [p for p in pairs if p.same]
    diff = [p for p in pairs if not p.same]
    half = args.pairs // 2
    chosen = [same[i] for i in rng.choice(len(same), half, replace=False)] + [
        diff[i] for i in rng.choice(len(diff), half, replace=False)
    ]
    images, degraded, labels = [], [], []
    folder = root / "lfw-deepfunneled"
    for k, p in enumerate(chosen):
        for side, (name, idx, prob) in enumerate(((p.name_a, p.index_a, 0.3), (p.name_b, p.index_b, 0.85))):
            r = np.random.default_rng([args.seed, k, side])
            image = load_image(lfw_image_path(folder, name, idx))
            if r.random() < prob:
                image, _ = degrade(image, r)
                degraded.append(True)
            else:
                degraded.append(False)
            images.append(image)
        labels.append(p.same)
    pipe = FacePipeline()
    t = time.perf_counter()
    vec, cues, norm, old = measure(pipe, images)
    print(f"measured {len(images)} images in {time.perf_counter() - t:.0f} s")
    return {
        "vec": vec, "cues": cues, "norm": norm, "old": old, "same": np.array(labels), "degraded": np.array(degraded),
        "threshold": np.array(pipe.spec.threshold), "metric": np.array(pipe.spec.metric), "model": np.array(pipe.spec.name),
    }


def logloss(p: np.ndarray, positive: np.ndarray) -> float:
    from sklearn.metrics import log_loss

    return float(log_loss(positive, p))


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, score))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=None, help="Keep the measured cues here (and reuse them).")
    args = ap.parse_args()
    if args.cache is not None and args.cache.is_file():
        data = dict(np.load(args.cache))
    else:
        data = collect(args)
        if args.cache is not None:
            np.savez(args.cache, **data)
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    has_norm = "norm" in data and np.isfinite(data["norm"]).any()
    names = CUES + (["log_norm"] if has_norm else [])  # log_norm: log of SFace's descriptor length
    per_face = data["cues"] if not has_norm else np.column_stack([data["cues"], np.log(data["norm"])])
    cues = per_face.reshape(-1, 2, len(names))
    old = data["old"].reshape(-1, 2)
    ok = ~np.isnan(cues).any(axis=(1, 2))
    d = paired_distances(data["vec"][0::2][ok], data["vec"][1::2][ok], str(data["metric"]))
    thr = float(data["threshold"])
    same = data["same"][ok]
    correct = (d <= thr) == same
    higher = [c in HIGHER_IS_BETTER for c in names]
    worse = np.where(higher, cues[ok].min(axis=1), cues[ok].max(axis=1))
    old_worse = old[ok].min(axis=1)
    n, errors = len(correct), int((~correct).sum())
    print(f"{n} pairs with both faces found ({int((~ok).sum())} left out: a face not found); {errors} decided wrongly "
          f"at threshold {thr} ({100 * errors / n:.1f}%)")

    signs = np.where(higher, 1, -1)

    def fit(x: np.ndarray, y: np.ndarray, cols: list[int]) -> tuple[list[int], Any]:
        """The monotone fit on columns ``cols``: (columns kept, fitted scaler + regression)."""
        keep = list(cols)
        while keep:
            model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(x[:, keep], y)
            w = model[1].coef_[0] * signs[keep]
            if (w >= 0).all():
                return keep, model
            keep.pop(int(np.argmin(w)))
        return [], None  # no cue points the right way: the base rate

    def out_of_fold(cols: list[int], rows: np.ndarray) -> np.ndarray:
        """Out-of-fold predictions for the pairs ``rows`` (a mask), NaN for the others."""
        oof, x, y = np.full(n, np.nan), worse[rows], correct[rows]
        at = np.flatnonzero(rows)
        for train, test in StratifiedKFold(5, shuffle=True, random_state=args.seed).split(x, y):
            keep, model = fit(x[train], y[train], cols)
            oof[at[test]] = model.predict_proba(x[test][:, keep])[:, 1] if keep else y[train].mean()
        return oof

    def full_fit(cols: list[int], rows: np.ndarray) -> tuple[float, np.ndarray, list[int]]:
        """Intercept and coefficients in raw-cue units (zeros: dropped), and the columns kept."""
        keep, model = fit(worse[rows], correct[rows], cols)
        scaler, lr = model[0], model[1]
        coef = np.zeros(len(cols))
        coef[keep] = lr.coef_[0] / scaler.scale_
        return float(lr.intercept_[0] - np.dot(coef[keep], scaler.mean_)), coef, keep

    # Two scores: from the detection alone (every model; all pairs), and once embedded, with SFace's
    # length, fitted on the genuine pairs: "is this face matched to its own person". Over all pairs
    # that cue reads backwards (AUC 0.37): the sampled impostor pairs, nearly all decided right, have
    # shorter vectors than the genuine ones, while within each kind a short vector marks the errors
    # (AUC 0.94 genuine, 0.99 impostor); the error-versus-discard curve counts genuine pairs only.
    everyone, genuine = np.ones(n, bool), same.astype(bool)
    sets = {"detection": (list(range(len(CUES))), everyone)}
    if has_norm:
        sets["embedded"] = (list(range(len(names))), genuine)
    fits = {k: full_fit(cols, rows) for k, (cols, rows) in sets.items()}
    oofs = {k: out_of_fold(cols, rows) for k, (cols, rows) in sets.items()}
    rows = []
    for k, (_, sel) in sets.items():
        rows.append([f"quality, {k} ({'genuine' if k == 'embedded' else 'all'} pairs, 5-fold out-of-fold)",
                     auc(oofs[k][sel], correct[sel]), logloss(oofs[k][sel], correct[sel])])  # fmt: skip
    rows.append(["old quality (score x size)", auc(old_worse, correct), None])
    for j, c in enumerate(names):
        for label, sel in (("all", everyone), ("genuine", genuine)):
            alone = out_of_fold([j], sel)[sel]
            rows.append([f"cue {c} alone, {label} pairs", auc(signs[j] * worse[sel, j], correct[sel]),
                         logloss(alone, correct[sel])])  # fmt: skip
    print(table(["predictor of a correct decision", "ROC AUC", "log-loss (out-of-fold)"], rows))
    final = "embedded" if has_norm else "detection"  # what the default pipeline reports
    intercept, coef, keep = fits[final]
    sel = sets[final][1]
    oof, correct, worse = oofs[final][sel], correct[sel], worse[sel]
    print(f"cues kept in the {final} score (the others came out with the wrong sign): {', '.join(names[k] for k in keep)}")

    bins = [0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 1.0001]
    rel = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        m = (oof >= lo) & (oof < hi)
        if m.any():
            rel.append([f"{lo:.2f}-{min(hi, 1):.2f}", int(m.sum()), float(1 - oof[m].mean()), float((~correct[m]).mean())])
    print(table(["quality", "pairs", "predicted error", "observed error"], rel))

    # What a floor does: the share of faces it refuses (clean and degraded separately, every found
    # face, from the full fit) and the error rate of the pairs it keeps / refuses.
    found = ~np.isnan(per_face).any(axis=1)
    flat = per_face[found][:, : len(coef)]
    clean = data["degraded"][found] == 0
    q_face = 1 / (1 + np.exp(-(intercept + flat @ coef)))
    qp = 1 / (1 + np.exp(-(intercept + worse[:, : len(coef)] @ coef)))
    floors = []
    for f in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        kept = qp >= f
        floors.append([f, float((q_face[clean] < f).mean()), float((q_face[~clean] < f).mean()),
                       float((~correct[kept]).mean()) if kept.any() else float("nan"),
                       float((~correct[~kept]).mean()) if (~kept).any() else float("nan")])
    print(table(["floor", "clean faces refused", "degraded faces refused", "error kept pairs", "error refused pairs"], floors))
    for k, (b, w, _) in fits.items():
        prefix = "" if k == "detection" else "EMBEDDED_"
        print(f"\n{prefix}INTERCEPT =", round(b, 4))
        print(f"{prefix}COEFFICIENTS = {{" + ", ".join(f'"{c}": {round(float(x), 4)}' for c, x in zip(names, w)) + "}")
    result = {
        "model": str(data["model"]), "threshold": thr, "pairs": n, "left_out": int((~ok).sum()), "errors": errors,
        "auc": {r[0]: r[1] for r in rows}, "log_loss": {r[0]: r[2] for r in rows},
        "cues_kept": [names[k] for k in keep], "reliability": rel, "floors": floors, "score": final,
        "norm_member": NORM_MEMBER if has_norm else None,
        "fits": {k: {"intercept": b, "coefficients": dict(zip(names, map(float, w)))} for k, (b, w, _) in fits.items()},
        "intercept": intercept, "coefficients": dict(zip(names, map(float, coef))), "seed": args.seed,
        "faces": int(len(flat)), "clean_faces": int(clean.sum()), "degradations": DEGRADE,
    }
    print(f"saved {save('quality-fit', result)}")

if __name__ == "__main__":
    main()
