"""LFW figures for every registered model and the fused ones: the table that chose the default,
and the false-accept-rate calibration stored in the registry.

    .venv/bin/python benchmarks/zoo_lfw.py [--models dlib-resnet-v1,sface,arcface-mbf]
        [--accept-licence insightface-non-commercial] [--data ../shared/data]

Every LFW image is detected once (MTCNN, the face nearest the centre; the central box when none),
then each model embeds each face and its mirror image; both are cached under
``<cache>/bench/``, so new combinations cost seconds. Figures:

* verification: all 6000 pairs of ``pairs.txt``, 10 folds, threshold from the other 9; VAL@FAR=1e-3, EER;
* identification: ``faceprint.evaluate.identification`` (1,680 enrolled, 7,484 probes, 4,069 strangers);
* fusion: members' unit vectors scaled by sqrt(weight) and concatenated, so the Euclidean distance
  squared is the weighted sum of the members' cosine distances (x2); weights from a logistic
  regression on View 1's training pairs (``pairsDevTrain.txt``), never on View 2;
* calibration: for each of the 10 people sets of ``people.txt``, thresholds at FAR 1e-2 / 1e-3 set on
  the impostor pairs (one image per person) of the other 9 sets, and the FAR measured on the held-out
  set's impostor pairs; the registry's table comes from all sets together.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from faceprint import FacePipeline, get_model_spec
from faceprint._resources import cache_dir
from faceprint.decide import distances, paired_distances
from faceprint.evaluate.identification import identification_metrics, lfw_identification_split
from faceprint.evaluate.lfw import central_box_detection, lfw_image_path, read_lfw_pairs
from faceprint.evaluate.metrics import eer, kfold_accuracy, val_at_far
from faceprint.imageio import load_image
from faceprint.pipeline import select_face
from faceprint.types import Detection

FARS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6)


def detect_all(paths: list[Path], cache: Path, detector: str = "mtcnn") -> list[Detection]:
    """The central face of every image (cached): box, score, landmarks; central box if none."""
    if cache.exists():
        z = np.load(cache)
        return [
            Detection(tuple(b), float(s), lm if np.isfinite(lm).all() else None, str(k))
            for b, s, lm, k in zip(z["box"], z["score"], z["landmarks"], z["kind"])
        ]
    pipe = FacePipeline(detector=detector)
    out: list[Detection] = []
    t0 = time.perf_counter()
    for start in range(0, len(paths), 32):
        images = [load_image(p) for p in paths[start : start + 32]]
        for image, dets in zip(images, pipe.detector.detect_batch(images)):
            out.append(dets[select_face(dets, image.shape)] if dets else central_box_detection(image.shape))
        print(f"\rdetect {len(out)}/{len(paths)}", end="", file=sys.stderr)
    print(f"\rdetected {len(paths)} images in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    np.savez(
        cache,
        box=np.array([d.box for d in out]),
        score=np.array([d.score for d in out]),
        landmarks=np.array([d.landmarks if d.landmarks is not None else np.full((5, 2), np.nan) for d in out]),
        kind=np.array([d.detector for d in out]),
    )
    return out


def embed_all(model: str, paths: list[Path], dets: list[Detection], cache: Path, accept: str | None,
              detector: str = "mtcnn") -> dict:  # fmt: skip
    """{"plain": (N, D), "mirror": (N, D), "ms_per_face": float} for one model (cached)."""
    if cache.exists():
        z = np.load(cache)
        return {k: z[k] for k in z.files}
    pipe = FacePipeline(detector=detector, model=model, flip=False, accept_licence=accept)
    plain, mirror, spent = [], [], 0.0
    for start in range(0, len(paths), 64):
        chips = np.stack([
            pipe.align(load_image(p), [d])[0].pixels for p, d in zip(paths[start : start + 64], dets[start : start + 64])
        ])  # fmt: skip
        t0 = time.perf_counter()
        plain.append(pipe.embedder.embed(chips))
        mirror.append(pipe.embedder.embed(np.ascontiguousarray(chips[:, :, ::-1])))
        spent += time.perf_counter() - t0
        print(f"\r{model} {start + len(chips)}/{len(paths)}", end="", file=sys.stderr)
    out = {"plain": np.concatenate(plain), "mirror": np.concatenate(mirror),
           "ms_per_face": np.float64(spent / (2 * len(paths)) * 1000)}  # fmt: skip
    print(f"\r{model}: {out['ms_per_face']:.1f} ms per view", file=sys.stderr)
    np.savez(cache, **out)
    return out


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def verification(vectors: np.ndarray, pairs: dict, metric: str) -> dict:
    d = paired_distances(vectors[pairs["a"]], vectors[pairs["b"]], metric)
    folds = kfold_accuracy(d, pairs["same"], pairs["fold"])
    accs = np.array([r.accuracy for r in folds])
    return {
        "accuracy_mean": float(accs.mean()), "accuracy_std": float(accs.std()),
        "val_at_far_1e-3": val_at_far(d, pairs["same"], 1e-3)[0], "eer": eer(d, pairs["same"]),
        "threshold": float(np.mean([r.threshold for r in folds])), "errors": int(round((1 - accs.mean()) * 6000)),
    }  # fmt: skip


def identification(vectors: np.ndarray, split: dict, metric: str) -> dict:
    r = identification_metrics(
        vectors[split["gallery"]], split["ids"][split["gallery"]], vectors[split["probe"]],
        split["ids"][split["probe"]], vectors[split["stranger"]], metric=metric, fars=(1e-2, 1e-3),
    )  # fmt: skip
    dirs = r["dir_at_far"]
    return {"rank1": r["rank1"], "rank5": r["rank5"], "dir_1e-2": dirs["0.01"]["dir"], "dir_1e-3": dirs["0.001"]["dir"]}


def impostor_distances(vectors: np.ndarray, metric: str) -> np.ndarray:
    """All pairwise distances among rows (one image per person), upper triangle, float32."""
    d = distances(vectors, vectors, metric).astype(np.float32)
    return d[np.triu_indices(len(vectors), 1)]


def calibration(vectors: np.ndarray, sets: list[np.ndarray], metric: str) -> dict:
    """Cross-validated FAR calibration over people sets, and the table from all sets."""
    held: dict[str, list[float]] = {"1e-2": [], "1e-3": []}
    accepted = {k: 0 for k in held}
    total = 0
    for k in range(len(sets)):
        train = np.concatenate([s for j, s in enumerate(sets) if j != k])
        d_train = impostor_distances(vectors[train], metric)
        d_test = impostor_distances(vectors[sets[k]], metric)
        total += len(d_test)
        for key in held:
            t = float(np.quantile(d_train, float(key)))
            held[key].append(t)
            accepted[key] += int((d_test <= t).sum())
    d_all = impostor_distances(vectors[np.concatenate(sets)], metric)
    return {
        "held_out_far": {k: accepted[k] / total for k in held},
        "held_out_pairs": total,
        "table": {f"{f:g}": float(np.quantile(d_all, f)) for f in FARS},
        "impostor_pairs": int(len(d_all)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="dlib-resnet-v1,sface,arcface-mbf")
    ap.add_argument("--accept-licence", default="insightface-non-commercial")
    ap.add_argument("--detector", default="mtcnn", help="whose 5 points align every model (mtcnn, yunet, scrfd)")
    ap.add_argument("--data", default=os.environ.get("FACEPRINT_DATA", str(Path(__file__).parents[1] / "../shared/data")))
    ap.add_argument("--out", default=None, help="result JSON (default: benchmarks/results/zoo-lfw[-DETECTOR]-<machine>.json)")
    args = ap.parse_args()
    lfw = Path(args.data) / "lfw"
    root = lfw / "lfw-deepfunneled"
    if not root.is_dir():
        sys.exit(f"LFW not found under {lfw}: set FACEPRINT_DATA or --data")
    paths, names, roles = lfw_identification_split(root)  # every LFW image, person by person
    row = {p: i for i, p in enumerate(paths)}
    pairs_list = read_lfw_pairs(lfw / "pairs.txt")
    pairs = {
        "a": np.array([row[lfw_image_path(root, p.name_a, p.index_a)] for p in pairs_list]),
        "b": np.array([row[lfw_image_path(root, p.name_b, p.index_b)] for p in pairs_list]),
        "same": np.array([p.same for p in pairs_list]), "fold": np.array([p.fold for p in pairs_list]),
    }  # fmt: skip
    dev = read_lfw_pairs(lfw / "pairsDevTrain.txt")
    dev_pairs = {
        "a": np.array([row[lfw_image_path(root, p.name_a, p.index_a)] for p in dev]),
        "b": np.array([row[lfw_image_path(root, p.name_b, p.index_b)] for p in dev]),
        "same": np.array([p.same for p in dev]),
    }
    ids, role = np.array(names), np.array(roles)
    split = {"ids": ids, "gallery": role == "gallery", "probe": role == "probe", "stranger": role == "stranger"}
    first = {}
    for i, n in enumerate(names):
        first.setdefault(n, i)
    sets, current = [], None
    for line in (lfw / "people.txt").read_text().split("\n")[1:]:
        parts = line.split()
        if len(parts) == 1:
            current = []
            sets.append(current)
        elif len(parts) == 2 and current is not None:
            current.append(first[parts[0]])
    sets = [np.array(s) for s in sets]

    bench = cache_dir("bench")
    tag = "" if args.detector == "mtcnn" else f"-{args.detector}"
    dets = detect_all(paths, bench / f"zoo-lfw-{args.detector}-detections.npz", args.detector)
    views = {m: embed_all(m, paths, dets, bench / f"zoo-lfw{tag}-{m}.npz", args.accept_licence, args.detector)
             for m in args.models.split(",")}  # fmt: skip

    rows = []
    unit_flip = {}
    for m, v in views.items():
        spec = get_model_spec(m)
        for flip in (False, True):
            vec = (v["plain"] + v["mirror"]) / 2 if flip else v["plain"]
            if flip:
                unit_flip[m] = unit(vec)
            rows.append({"model": m, "flip": flip, "metric": spec.metric, "ms_per_face": float(v["ms_per_face"]) * (2 if flip else 1),
                         **verification(vec, pairs, spec.metric), **identification(vec, split, spec.metric)})  # fmt: skip
    # fusion: weights from View 1 (logistic regression on the members' cosine distances)
    from sklearn.linear_model import LogisticRegression

    members = [m for m in views]
    fusions = {}
    unit_plain = {m: unit(v["plain"]) for m, v in views.items()}
    for i, m1 in enumerate(members):
        for m2 in members[i + 1 :]:
            for f1, f2 in ((True, True), (True, False), (False, False)):
                u1 = unit_flip[m1] if f1 else unit_plain[m1]
                u2 = unit_flip[m2] if f2 else unit_plain[m2]
                feats = np.stack([paired_distances(u[dev_pairs["a"]], u[dev_pairs["b"]], "cosine") for u in (u1, u2)],
                                 axis=1)  # fmt: skip
                lr = LogisticRegression(C=1e4, max_iter=10_000).fit(feats, dev_pairs["same"])
                w = np.maximum(-lr.coef_[0], 1e-6)
                w = w / w.sum()
                vec = np.concatenate([np.sqrt(w[0]) * u1, np.sqrt(w[1]) * u2], axis=1)
                name = f"{m1}+{m2}" + ("" if f1 and f2 else f" (flip {'yes' if f1 else 'no'}/{'yes' if f2 else 'no'})")
                fusions[name] = vec
                cost = sum(float(views[m]["ms_per_face"]) * (2 if f else 1) for m, f in ((m1, f1), (m2, f2)))
                rows.append({"model": name, "flip": f1 and f2, "metric": "euclidean", "weights": w.tolist(),
                             "ms_per_face": cost, **verification(vec, pairs, "euclidean"),
                             **identification(vec, split, "euclidean")})  # fmt: skip
    calib = {}
    for r in rows:
        if not r["flip"] and r["model"] not in fusions:
            continue
        vec = fusions.get(r["model"])
        if vec is None:
            v = views[r["model"]]
            vec = (v["plain"] + v["mirror"]) / 2
        calib[r["model"]] = calibration(vec, sets, r["metric"])
        r["calibration"] = calib[r["model"]]

    print(f"\n{'model':<28} {'flip':<5} {'LFW %':<14} {'VAL@1e-3':>8} {'EER %':>6} {'thr':>7} {'rank-1':>7} "
          f"{'DIR@1e-2':>8} {'ms/face':>7} {'FAR@1e-2':>9} {'FAR@1e-3':>9}")  # fmt: skip
    for r in rows:
        far = r.get("calibration", {}).get("held_out_far", {})
        dir2 = r["dir_1e-2"]
        print(f"{r['model']:<28} {str(r['flip']):<5} {100 * r['accuracy_mean']:6.2f} ± {100 * r['accuracy_std']:4.2f} "
              f"{100 * r['val_at_far_1e-3']:8.1f} {100 * r['eer']:6.2f} {r['threshold']:7.4f} {100 * r['rank1']:7.2f} "
              f"{100 * dir2:8.1f} {r['ms_per_face']:7.1f} "
              f"{far.get('1e-2', float('nan')):9.2e} {far.get('1e-3', float('nan')):9.2e}")  # fmt: skip
    args.out = args.out or str(Path(__file__).parent / "results" / f"zoo-lfw{tag}-{platform.machine()}-{os.cpu_count()}cpu.json")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "cpu": platform.processor() or platform.machine()}, indent=1, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
