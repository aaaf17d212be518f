"""Clustering and classifiers on LFW and the 5-celebrity set (issue 7).

Sets (LFW deep-funneled, one descriptor per image: the face nearest the centre, as the LFW
protocol does; descriptors cached by faceprint.evaluate.lfw.embed_images):

* lfw5: every person with >= 5 images (the issue's first set);
* lfw5+single: lfw5 plus every single-image person, who should come out as noise/singletons;
* a seeded half of the people tunes each method's threshold (best mean pairwise F1 of its lfw5
  and lfw5+single parts on a grid); the other half is held out and scored alone, so the full-set
  figures (half tuned on) can be checked against untouched people;
* albums: 40 random sets of k = 1, 2, 4, 8 held-out people (up to 20 photos each) and 3 held-out
  strangers, the size of a real photo folder, where LFW's hundreds of people are not typical.

For each method at its tuned threshold: pairwise P/R/F1, BCubed F1, clusters found (>= 2 faces)
vs true, noise and time; then time against the number of faces (random subsets of lfw5+single).
Classifiers: seed 004 (SVM on 5-celebrity train -> val accuracy), and LFW people with >= 10 images,
a stratified 75/25 split (seed 0), plus the share of single-image strangers rejected by the
distance rule. With --plots DIR, the 5-celebrity pictures are written there.

    nice .venv/bin/python benchmarks/bench_cluster.py [--quick] [--plots DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_root, save, table  # noqa: E402

from faceprint.classify import KNNFaceClassifier, SVMFaceClassifier  # noqa: E402
from faceprint.cluster import CLUSTER_METHODS, DEFAULT_CLUSTER_METHOD, cluster_embeddings  # noqa: E402
from faceprint.evaluate.clustering import clustering_metrics, lfw_people  # noqa: E402
from faceprint.evaluate.lfw import embed_images  # noqa: E402
from faceprint.pipeline import FacePipeline  # noqa: E402

GRID = [round(t, 3) for t in np.arange(0.35, 0.6501, 0.025)]
MIN_SIZE = 2  # the library default: lone faces are noise (pairwise/BCubed figures treat them as singletons)


def lfw_vectors(pipe: FacePipeline, fallback: FacePipeline) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every LFW image: (N, D) descriptors, person, and that person's image count."""
    paths, names = lfw_people(data_root() / "lfw" / "lfw-deepfunneled")
    vectors, _ = embed_images(pipe, paths, fallback=fallback)
    people, inverse, counts = np.unique(names, return_inverse=True, return_counts=True)
    return vectors, np.array(names), counts[inverse]


def run(vectors: np.ndarray, names: np.ndarray, method: str, threshold: float | None) -> dict[str, float | int]:
    t0 = time.perf_counter()
    labels = cluster_embeddings(vectors, method, threshold, min_size=MIN_SIZE)
    seconds = time.perf_counter() - t0
    return {**clustering_metrics(names, labels), "seconds": seconds, "threshold": threshold}


def tune(vectors: np.ndarray, names: np.ndarray, masks: list[np.ndarray]) -> dict[str, dict[str, object]]:
    """Per method, the grid threshold with the best mean pairwise F1 over the tuning sets (masks)."""
    tuned: dict[str, dict[str, object]] = {}
    for method, default in CLUSTER_METHODS.items():
        if default is None:  # scale-free (HDBSCAN): nothing to tune
            tuned[method] = {"threshold": None, "grid": []}
            continue
        grid = [
            {"threshold": t, "pairwise_f1": float(np.mean([run(vectors[m], names[m], method, t)["pairwise_f1"] for m in masks]))}
            for t in GRID
        ]
        best = max(grid, key=lambda r: r["pairwise_f1"])
        tuned[method] = {"threshold": best["threshold"], "grid": grid}
        print(f"tune {method}: " + ", ".join(f"{r['threshold']:.3f}:{r['pairwise_f1']:.3f}" for r in grid), flush=True)
    return tuned


def albums(
    vectors: np.ndarray, names: np.ndarray, counts: np.ndarray, tuned: dict[str, dict[str, object]],
    sizes: tuple[int, ...] = (1, 2, 4, 8), n: int = 40, seed: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    """Photo-album-like sets: k people of lfw5 (up to 20 photos each) and 3 single-image strangers.

    LFW's sets hold hundreds of people; an album often holds one or two. Mean pairwise and BCubed
    F1 over ``n`` random albums per k, for each method at its tuned threshold.
    """
    rng = np.random.default_rng(seed)
    people = np.unique(names[counts >= 5])
    strangers = np.flatnonzero(counts == 1)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for k in sizes:
        scores: dict[str, list[tuple[float, float]]] = {m: [] for m in CLUSTER_METHODS}
        for _ in range(n):
            idx = [rng.choice(np.flatnonzero(names == p), min(20, int((names == p).sum())), replace=False)
                   for p in rng.choice(people, k, replace=False)]
            pick = np.concatenate([*idx, rng.choice(strangers, 3, replace=False)])
            for method in CLUSTER_METHODS:
                labels = cluster_embeddings(vectors[pick], method, tuned[method]["threshold"], min_size=MIN_SIZE)  # type: ignore[arg-type]
                m = clustering_metrics(names[pick], labels)
                scores[method].append((m["pairwise_f1"], m["bcubed_f1"]))
        out[f"{k} people"] = {
            method: {"pairwise_f1": float(np.mean([a for a, _ in v])), "bcubed_f1": float(np.mean([b for _, b in v]))}
            for method, v in scores.items()
        }
        print(f"albums of {k}:", {m: round(v["pairwise_f1"], 3) for m, v in out[f"{k} people"].items()}, flush=True)
    return out


def classifiers(pipe: FacePipeline, vectors: np.ndarray, names: np.ndarray, counts: np.ndarray) -> dict[str, object]:
    from sklearn.model_selection import train_test_split

    out: dict[str, object] = {}
    celeb = data_root() / "5-celebrity-faces"
    train = pipe.known_faces(celeb / "train", on_error="skip")
    val = pipe.known_faces(celeb / "val", on_error="skip")
    thr = pipe.spec.threshold
    for name, clf in (("svm", SVMFaceClassifier()), ("knn", KNNFaceClassifier())):  # the seed's recipe and k-NN
        clf.fit(train.vectors, list(train.names))
        acc = float((clf.predict(val.vectors) == np.array(val.names)).mean())
        out[f"celeb5_{name}_val_accuracy"] = acc
    out["celeb5_train_faces"], out["celeb5_val_faces"] = len(train), len(val)
    out["celeb5_skipped"] = len(pipe.skipped)

    keep = counts >= 10
    x, y = vectors[keep], names[keep]
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    out["lfw10_svm_cv"] = svm_c_by_cv(xtr, ytr)
    strangers = vectors[counts == 1]
    for name, clf in (("svm_C1", SVMFaceClassifier(C=1.0)), ("svm", SVMFaceClassifier()), ("knn", KNNFaceClassifier())):
        t0 = time.perf_counter()
        clf.fit(xtr, ytr)
        fit_s = time.perf_counter() - t0
        row: dict[str, object] = {
            "people": int(len(np.unique(y))),
            "train": int(len(ytr)),
            "test": int(len(yte)),
            "accuracy": float((clf.predict(xte) == yte).mean()),
            "fit_seconds": fit_s,
        }
        # Open set: the same test faces and every single-image person as a stranger.
        for t in (thr, 0.5):
            clf.set_params(unknown_distance=t)
            row[f"accuracy_unknown_{t:g}"] = float((clf.predict(xte) == yte).mean())
            row[f"strangers_rejected_{t:g}"] = float((clf.predict(strangers) == "unknown").mean())
        out[f"lfw10_{name}"] = row
    return out


def svm_c_by_cv(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """5-fold accuracy of the linear SVM for each C on the training part only (the default's evidence).

    The bare SVC on unit vectors: the calibration keeps its ranking, so accuracy is the same.
    """
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    return {f"{c:g}": float(cross_val_score(SVC(kernel="linear", C=c), unit, y, cv=5).mean()) for c in (1.0, 10.0, 100.0)}


def plots(pipe: FacePipeline, folder: Path) -> list[str]:
    from faceprint.decide import verify_embeddings
    from faceprint.pipeline import select_face
    from faceprint.plot import plot_distance_matrix, plot_embedding_map, plot_pair

    celeb = data_root() / "5-celebrity-faces"
    vecs, people, subsets = [], [], []
    for part in ("train", "val"):
        known = pipe.known_faces(celeb / part, on_error="skip")
        vecs.append(known.vectors)
        people += list(known.names)
        subsets += [part] * len(known)
    v = np.concatenate(vecs)
    written = [
        plot_embedding_map(v, people, folder / "celeb5_tsne.png", markers=subsets),
        plot_distance_matrix(v, people, folder / "celeb5_distances.png", threshold=pipe.spec.threshold),
    ]
    pairs = {
        "same": (celeb / "val/madonna", celeb / "train/madonna"),
        "different": (celeb / "val/ben_afflek", celeb / "val/jerry_seinfeld"),
    }
    for kind, (a_dir, b_dir) in pairs.items():
        faces = []
        for d in (a_dir, b_dir):
            path = sorted(d.iterdir())[0]
            image = pipe.load(path)
            found = pipe.faces_batch([image], keep_chips=True)[0]
            faces.append((path, found[select_face([f.detection for f in found], image.shape)]))
        v_ab = verify_embeddings(faces[0][1].embedding.vector, faces[1][1].embedding.vector, pipe.spec.threshold)
        written.append(plot_pair(faces[0][1].chip.pixels, faces[1][1].chip.pixels, v_ab, folder / f"celeb5_pair_{kind}.png",
                                 titles=(faces[0][0].parent.name, faces[1][0].parent.name)))
    return [str(p) for p in written]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Skip the time-vs-size sweep.")
    ap.add_argument("--plots", type=Path, help="Write the 5-celebrity plots into this folder.")
    args = ap.parse_args()

    pipe = FacePipeline()
    fallback = FacePipeline(detector="mmod-up1")
    fallback.embedder = pipe.embedder  # one network in memory
    vectors, names, counts = lfw_vectors(pipe, fallback)
    # A seeded half of the people (of lfw5 and of the single-image ones) tunes the thresholds;
    # the other half is held out: scored alone and as the source of the albums.
    people = np.unique(names)
    half = set(np.random.default_rng(0).permutation(people)[: len(people) // 2].tolist())
    tune_half = np.array([n in half for n in names])
    big, single = counts >= 5, counts == 1
    sets = {
        "lfw5": big,
        "lfw5+single": big | single,
        "tune: lfw5 half": big & tune_half,
        "tune: lfw5+single half": (big | single) & tune_half,
        "held out: lfw5 half": big & ~tune_half,
        "held out: lfw5+single half": (big | single) & ~tune_half,
    }
    result: dict[str, object] = {
        "sets": {k: {"faces": int(m.sum()), "people": int(len(np.unique(names[m])))} for k, m in sets.items()},
        "min_size": MIN_SIZE,
        "default_method": DEFAULT_CLUSTER_METHOD,
        "settings": pipe.settings(),
    }
    tuned = tune(vectors, names, [sets["tune: lfw5 half"], sets["tune: lfw5+single half"]])
    result["tuned"] = tuned
    rows, scores = [], {}
    for set_name in ("lfw5", "lfw5+single", "held out: lfw5 half", "held out: lfw5+single half"):
        m = sets[set_name]
        for method in CLUSTER_METHODS:
            r = run(vectors[m], names[m], method, tuned[method]["threshold"])  # type: ignore[arg-type]
            scores[f"{set_name}/{method}"] = r
            thr = "-" if r["threshold"] is None else f"{r['threshold']:.3f}"
            rows.append([set_name, method + (" *" if method == DEFAULT_CLUSTER_METHOD else ""), thr,
                         f"{r['pairwise_precision']:.4f}", f"{r['pairwise_recall']:.4f}", f"{r['pairwise_f1']:.4f}",
                         f"{r['bcubed_f1']:.4f}", f"{r['clusters_2plus']} / {r['true_clusters_2plus']}",
                         r["noise"], f"{r['seconds']:.1f}"])
            print(rows[-1], flush=True)
    result["clustering"] = scores
    print(table(["set", "method", "threshold", "pairwise P", "pairwise R", "pairwise F1", "BCubed F1",
                 "clusters found / true (>= 2 faces)", "noise", "seconds"], rows))
    held = ~tune_half
    result["albums"] = alb = albums(vectors[held], names[held], counts[held], tuned)
    print(table(["album", *CLUSTER_METHODS], [
        [k, *(f"{v[m]['pairwise_f1']:.3f} / {v[m]['bcubed_f1']:.3f}" for m in CLUSTER_METHODS)] for k, v in alb.items()
    ]))

    if not args.quick:
        m = np.flatnonzero(sets["lfw5+single"])
        rng = np.random.default_rng(0)
        sizes = [1000, 2500, 5000, len(m)]
        timing = []
        for n in sizes:
            pick = np.sort(rng.choice(m, n, replace=False)) if n < len(m) else m
            row: dict[str, object] = {"faces": int(n)}
            for method in CLUSTER_METHODS:
                row[method] = run(vectors[pick], names[pick], method, tuned[method]["threshold"])["seconds"]  # type: ignore[arg-type]
            timing.append(row)
            print(row, flush=True)
        result["time_vs_faces"] = timing
        print(table(["faces", *CLUSTER_METHODS], [[r["faces"], *(f"{r[k]:.2f}" for k in CLUSTER_METHODS)] for r in timing]))

    result["classifiers"] = cls = classifiers(pipe, vectors, names, counts)
    print(f"seed 004, 5-celebrity val accuracy: SVM {100 * cls['celeb5_svm_val_accuracy']:.1f}%, "
          f"k-NN {100 * cls['celeb5_knn_val_accuracy']:.1f}% ({cls['celeb5_train_faces']} train / {cls['celeb5_val_faces']} val faces)")
    print("LFW >= 10 images, SVM 5-fold CV accuracy on the training part by C:", cls["lfw10_svm_cv"])
    for name in ("svm_C1", "svm", "knn"):
        r = cls[f"lfw10_{name}"]
        print(f"LFW >= 10 images, {name}: accuracy {100 * r['accuracy']:.2f}% ({r['people']} people, {r['test']} test faces), "
              f"fit {r['fit_seconds']:.1f} s; " + ", ".join(
                  f"unknown at {t}: accuracy {100 * r[f'accuracy_unknown_{t}']:.2f}%, strangers rejected "
                  f"{100 * r[f'strangers_rejected_{t}']:.1f}%" for t in ("0.6", "0.5")))
    if args.plots:
        result["plots"] = plots(pipe, args.plots)
        print("plots:", *result["plots"])
    print("saved", save("cluster", result))


if __name__ == "__main__":
    main()
