"""Issue 15: fine-tune dlib's ResNet for faces in masks, then LFW before / after.

    nice .venv/bin/python benchmarks/mask_finetune.py              # build, then evaluate
    nice .venv/bin/python benchmarks/mask_finetune.py --skip-train # evaluate the weights in the cache

1. Build: runs the registry's own build command for ``dlib-resnet-v1-mask`` (the line that the
   missing-weights error prints), so the figures are those of what users build. Split by fold:
   View 2's ten folds hold disjoint people, so the people of pairs.txt's folds 5-9 (``--exclude-folds``
   in that command) are the test people, never trained on; training uses every other LFW person
   (those of folds 0-4 and the 1,468 in no pair; at most 10 photos each; people with one photo pair it
   with its own masked copy), validation (model selection only) every 8th of them with 2+ photos.
2. Evaluate, on the 3,000 pairs of folds 5-9 (5-fold cross-validation: each fold's threshold
   chosen on the other four), the default ``dlib-resnet-v1+sface`` and ``dlib-resnet-v1-mask+sface``
   (and their dlib members alone), on the default's pipeline (YuNet, rotation search, no mirror
   pass; the central box where no face is found):
   * clean: both photos as they are;
   * masked: first photo clean, second in a synthetic surgical mask (``faceprint.degrade.mask``,
     seeded per photo exactly as ``evaluate_degraded``'s ``mask`` condition: key ``mask/Name/file``).
   Each member embeds once; the fused vectors are the members' unit vectors scaled by
   sqrt(weight) side by side, as ``FusedEmbedder`` does (checked on a sample of photos here).
   Fusion weights of the new fusion: a logistic regression on the members' cosine distances over
   the build's validation people (clean pairs and masked-second pairs), never the test folds, as
   the default's were fitted on View 1's training pairs; the default's members refitted the same
   way are reported too, so the gain of the fine-tune and that of the weights are told apart.
3. Calibration of the new models, as the registry's: threshold = mean of the test folds' best
   thresholds on clean pairs; FAR table = quantiles of the impostor distances among one photo (the
   first in the pairs) of each test person (the training people left out).

Writes benchmarks/results/mask-finetune-<machine>.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_root, machine, save, table

from faceprint import FacePipeline, get_model_spec
from faceprint._resources import cache_dir, sha256_file
from faceprint.decide import distances, paired_distances
from faceprint.degrade import get_condition, seed_for
from faceprint.evaluate.lfw import embed_images_detailed, pair_image_index, read_lfw_pairs
from faceprint.evaluate.metrics import verification_summary

MASK = "dlib-resnet-v1-mask"
REFIT = "dlib-resnet-v1+sface, weights refitted"
FUSIONS = {"dlib-resnet-v1+sface": "before (default)", f"{MASK}+sface": "after"}
FARS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)


def build_args(lfw: Path) -> list[str]:
    """The registered build command as arguments, with $LFW set."""
    command = get_model_spec(MASK).weights.build or ""
    command = command.split(";", 1)[1].strip()  # drop the "LFW=/path/to/lfw" placeholder
    return shlex.split(command.replace("$LFW", str(lfw)))


def test_folds(lfw: Path) -> set[int]:
    """The folds whose people the build leaves out (its --exclude-folds): the test folds."""
    args = build_args(lfw)
    if "--exclude-folds" not in args:
        return set(range(10))
    folds: set[int] = set()
    for part in args[args.index("--exclude-folds") + 1].split(","):
        first, _, last = part.partition("-")
        folds.update(range(int(first), int(last or first) + 1))
    return folds


def build(lfw: Path, out: Path) -> dict:
    """Run the registered build command with $LFW set; returns its summary and wall time."""
    args = build_args(lfw)
    args[args.index("--out") + 1] = str(out)
    exe = Path(sys.executable).with_name("faceprint")
    t0 = time.perf_counter()
    done = subprocess.run([str(exe), *args[1:], "--json"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"build failed ({done.returncode}):\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout)
    return {
        "command": shlex.join(["faceprint", *args[1:]]),
        "seconds": time.perf_counter() - t0,
        "summary": summary,
    }


class MaskLoader:
    """Load a photo and put a mask on it, seeded as evaluate_degraded's "mask" condition (seed 0)."""

    def __init__(self, pipe: FacePipeline, seed: int = 0) -> None:
        self.pipe, self.seed, self.cond = pipe, seed, get_condition("mask")

    def __call__(self, path: Path) -> np.ndarray:
        key = f"mask/{path.parent.name}/{path.name}"
        return self.cond(self.pipe.load(path), rng=seed_for(key, self.seed))


def member_pipeline(name: str) -> FacePipeline:
    """One member of the default fusion on the fusion's pipeline (its detector, no mirror pass)."""
    return FacePipeline(model=name, detector="yunet-upright", flip=False)


def embed_member(name: str, paths: list[Path], masked: list[Path]) -> dict[str, np.ndarray]:
    pipe = member_pipeline(name)
    clean = embed_images_detailed(pipe, paths, desc=f"{name} clean")
    key = json.dumps(pipe.settings(), sort_keys=True)
    digest = __import__("hashlib").sha256(key.encode()).hexdigest()[:12]
    if pipe.spec.weights.build:  # weights built here: key the cache by their own hash too
        digest += "-" + sha256_file(pipe.spec.weights.resolve())[:12]
    cache = cache_dir("bench") / f"mask-second-{name}-{digest}.npz"
    mask = embed_images_detailed(pipe, masked, load=MaskLoader(pipe), cache_file=cache, desc=f"{name} masked")
    return {"clean": clean.vectors, "masked": mask.vectors, "how_clean": np.array(clean.how),
            "how_masked": np.array(mask.how)}  # fmt: skip


def build_option(lfw: Path, name: str) -> str:
    args = build_args(lfw)
    return args[args.index(name) + 1]


def fit_weights(lfw: Path, folds: set[int]) -> dict:
    """Fusion weights (dlib member, sface) fitted on the build's validation people: the people its
    --val-every rule holds back (every N-th training person with 2+ photos, sorted by name)."""
    from sklearn.linear_model import LogisticRegression

    from faceprint.train import PairSet, identity_images

    test = {n for p in read_lfw_pairs(lfw / "pairs.txt") if p.fold in folds for n in (p.name_a, p.name_b)}
    items = identity_images(lfw / "lfw-deepfunneled", exclude=sorted(test), min_images=1,
                            max_per_identity=int(build_option(lfw, "--max-per-identity")))  # fmt: skip
    names = sorted({n for n, _ in items})
    counts = {n: 0 for n in names}
    for n, _ in items:
        counts[n] += 1
    held = [n for n in names if counts[n] >= 2][:: int(build_option(lfw, "--val-every"))]
    photos = [(n, p) for n, p in items if n in set(held)]
    paths = [p for _, p in photos]
    labels = np.array([held.index(n) for n, _ in photos])
    dummy = np.zeros((len(paths), 1))
    pairs = PairSet.from_labels(dummy, labels, degraded=[dummy])  # clean pairs, then masked-second
    out: dict = {"people": len(held), "photos": len(paths), "pairs": len(pairs.a)}
    units = {}
    for m in ("sface", "dlib-resnet-v1", MASK):
        v = embed_member(m, paths, paths)
        both = np.concatenate([v["clean"], v["masked"]])
        units[m] = both / np.linalg.norm(both, axis=1, keepdims=True)
    for first in ("dlib-resnet-v1", MASK):
        feats = np.stack(
            [paired_distances(units[m][pairs.a], units[m][pairs.b], "cosine") for m in (first, "sface")], 1
        )
        lr = LogisticRegression(C=1e4, max_iter=10_000).fit(feats, pairs.same)
        w = np.maximum(-lr.coef_[0], 1e-6)
        out[first] = [round(float(x), 4) for x in w / w.sum()]
    return out


def fuse(parts: list[tuple[np.ndarray, float]]) -> np.ndarray:
    unit = [np.sqrt(w) * v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12) for v, w in parts]
    return np.concatenate(unit, axis=1).astype(np.float32)


def far_table(vectors: np.ndarray, metric: str) -> dict[str, float]:
    d = distances(vectors, vectors, metric).astype(np.float32)[np.triu_indices(len(vectors), 1)]
    return {f"{f:g}": round(float(np.quantile(d, f)), 4) for f in FARS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-train", action="store_true", help="evaluate the weights already in the cache")
    ap.add_argument("--out", type=Path, default=Path("/tmp/faceprint-mask-run"))
    ap.add_argument("--check", type=int, default=24, help="photos on which manual fusion is checked")
    args = ap.parse_args()
    lfw = data_root() / "lfw"
    root = lfw / "lfw-deepfunneled"
    folds = test_folds(lfw)
    pairs = [p for p in read_lfw_pairs(lfw / "pairs.txt") if p.fold in folds]
    result: dict = {"machine": machine(), "test_folds": sorted(folds), "pairs": len(pairs)}

    spec = get_model_spec(MASK)
    if args.skip_train:
        if not spec.weights.available():
            sys.exit(f"{MASK} is not built: run without --skip-train")
        earlier = args.out / "summary.json"  # the run folder of the build, when it is still there
        if earlier.is_file():
            summary = json.loads(earlier.read_text())
            result["build"] = {"command": shlex.join(build_args(lfw)), "run_folder": str(args.out),
                               "training_seconds": summary["seconds"], "summary": summary}  # fmt: skip
    else:
        result["build"] = build(lfw, args.out)
        print(f"built in {result['build']['seconds'] / 60:.1f} min: {result['build']['summary']['saved_as']}")
    weights = spec.weights.resolve()
    result["weights"] = {
        "path": str(weights),
        "sha256": sha256_file(weights),
        "recorded_sha256": spec.weights.sha256,
    }
    test_people = {n for p in pairs for n in (p.name_a, p.name_b)}
    others = {
        n for p in read_lfw_pairs(lfw / "pairs.txt") if p.fold not in folds for n in (p.name_a, p.name_b)
    }
    if test_people & others:
        sys.exit(f"folds share people: {sorted(test_people & others)[:5]}")
    train_people = [p.name for p in root.iterdir() if p.is_dir() and p.name not in test_people]
    result["split"] = {"test_people": len(test_people), "train_people": len(train_people), "overlap": 0}

    paths, ia, ib = pair_image_index(root, pairs)
    second = sorted(set(ib.tolist()))
    masked_paths = [paths[i] for i in second]
    row_of = {i: j for j, i in enumerate(second)}
    jb = np.array([row_of[i] for i in ib])
    y = np.array([p.same for p in pairs])
    f = np.array([p.fold for p in pairs])

    t0 = time.perf_counter()
    members = {m: embed_member(m, paths, masked_paths) for m in ("sface", "dlib-resnet-v1", MASK)}
    result["embed_seconds"] = time.perf_counter() - t0
    result["no_face"] = {m: {"clean": int((v["how_clean"] != "detector").sum()),
                             "masked": int((v["how_masked"] != "detector").sum())} for m, v in members.items()}  # fmt: skip

    result["fusion_weights"] = fitted = fit_weights(lfw, folds)
    registered = [w for _, w in get_model_spec(f"{MASK}+sface").members]
    if abs(registered[0] - fitted[MASK][0]) > 0.01:
        print(f"note: the registry's {MASK}+sface weights {registered} differ from the fitted {fitted[MASK]}")
    vectors: dict[str, dict[str, np.ndarray]] = {}
    for m in ("dlib-resnet-v1", MASK):
        vectors[m] = {k: members[m][k] for k in ("clean", "masked")}
    for name in FUSIONS:
        fs = get_model_spec(name)
        vectors[name] = {k: fuse([(members[m][k], w) for m, w in fs.members]) for k in ("clean", "masked")}
    w = fitted["dlib-resnet-v1"]  # the default's members, weights refitted like the new fusion's
    vectors[REFIT] = {k: fuse([(members["dlib-resnet-v1"][k], w[0]), (members["sface"][k], w[1])])
                      for k in ("clean", "masked")}  # fmt: skip

    # the manual fusion is the registered fused pipeline's output
    check = {}
    for name in FUSIONS:
        pipe = FacePipeline(model=name)
        sample = paths[: args.check]
        got = embed_images_detailed(pipe, sample, cache=False, progress=False).vectors
        check[name] = float(np.abs(got - vectors[name]["clean"][: args.check]).max())
    result["fusion_check_max_abs_diff"] = check

    rows, figures = [], {}
    first_photo: dict[str, int] = {}
    for i, p in enumerate(paths):
        first_photo.setdefault(p.parent.name, i)
    one_each = np.array(sorted(first_photo.values()))
    for name, v in vectors.items():
        metric = get_model_spec(name).metric if name != REFIT else "euclidean"
        clean = verification_summary(paired_distances(v["clean"][ia], v["clean"][ib], metric), y, f)
        masked = verification_summary(paired_distances(v["clean"][ia], v["masked"][jb], metric), y, f)
        figures[name] = {
            "clean": clean, "masked": masked,
            "threshold_mean_of_folds": round(float(np.mean([r["threshold"] for r in clean["folds"]])), 4),
            "masked_threshold_mean_of_folds": round(float(np.mean([r["threshold"] for r in masked["folds"]])), 4),
            "far_table": far_table(v["clean"][one_each], metric), "far_people": len(one_each),
        }  # fmt: skip
        rows.append([name, 100 * clean["accuracy_mean"], 100 * clean["accuracy_std"], 100 * masked["accuracy_mean"],
                     100 * masked["accuracy_std"], 100 * masked["val_at_far_1e-3"], figures[name]["threshold_mean_of_folds"]])  # fmt: skip
    result["figures"] = figures
    b, a = figures["dlib-resnet-v1+sface"], figures[f"{MASK}+sface"]
    result["delta_points"] = {
        "masked": round(100 * (a["masked"]["accuracy_mean"] - b["masked"]["accuracy_mean"]), 2),
        "clean": round(100 * (a["clean"]["accuracy_mean"] - b["clean"]["accuracy_mean"]), 2),
    }
    path = save("mask-finetune", result)
    print(table(["model", "clean acc %", "±", "masked acc %", "±", "masked VAL@1e-3 %", "threshold"], rows))
    print(f"after - before (fused): masked {result['delta_points']['masked']:+.2f} points, "
          f"clean {result['delta_points']['clean']:+.2f} points; fusion check {check}; wrote {path}")  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
