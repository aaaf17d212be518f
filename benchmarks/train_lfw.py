"""Fine-tune (or train from scratch) on LFW identities, verify on disjoint held-out identities.

Split (LFW View 1, disjoint by construction and checked here):
* training: peopleDevTrain.txt identities with 2 or more photos (at most --max-per-identity each),
  except every 10th one (sorted by name), which is
* validation: the epoch kept as model.pt is the one with the best accuracy on all same-identity
  pairs of these identities plus as many random different pairs (epoch 0, the starting weights,
  included), so model selection never looks at the test identities;
* test (held out, reported before/after): pairsDevTest.txt (500 same + 500 different pairs of
  peopleDevTest.txt identities, 10 interleaved folds for cross-validated accuracy) plus every pair
  among those same photos ("all pairs": ~1k same vs ~1.2M different, for VAL at small FAR).

    nice .venv/bin/python benchmarks/train_lfw.py                     # fine-tune the dlib ResNet
    nice .venv/bin/python benchmarks/train_lfw.py --init scratch --model openface-nn4-small2-v1 ...

Writes benchmarks/results/train-lfw-<tag>-<machine>.json and .png (loss curve + held-out figures).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, data_root, machine, save, table

from faceprint.decide import distances
from faceprint.embed import Embedder
from faceprint.evaluate.lfw import lfw_image_path, read_lfw_pairs
from faceprint.evaluate.metrics import roc_auc, val_at_far
from faceprint.pipeline import FacePipeline
from faceprint.train import (
    PairSet,
    TrainConfig,
    Trainer,
    evaluate_pairs,
    hold_out_identities,
    load_identity_folder,
)


def people(path: Path) -> dict[str, int]:
    rows = [ln.split() for ln in path.read_text().split("\n")[1:] if ln.strip()]
    return {r[0]: int(r[1]) for r in rows if len(r) == 2}


def all_pairs(trainer: Trainer, val: PairSet, names: list[str]) -> dict[str, float]:
    """Every same / different pair among the held-out photos: VAL at FAR 1e-3 and 1e-4, AUC."""
    net = trainer.net
    net.eval()
    vec = Embedder(trainer.spec, net=net, batch_size=64).embed(val.chips)
    net.train()
    d = distances(vec, vec, trainer.spec.metric)
    lab = np.array(names)
    iu = np.triu_indices(len(lab), 1)
    dd, same = d[iu], (lab[:, None] == lab[None, :])[iu]
    return {
        "same_pairs": int(same.sum()),
        "different_pairs": int((~same).sum()),
        "val_at_far_1e-3": val_at_far(dd, same, 1e-3)[0],
        "val_at_far_1e-4": val_at_far(dd, same, 1e-4)[0],
        "roc_auc": roc_auc(dd, same),
    }


def plot(history: list[dict], steps: list[dict], test: tuple[dict, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    x = [s["step"] for s in steps]
    loss = np.array([s["loss"] for s in steps])
    ax1.plot(x, loss, alpha=0.3, label="batch loss")
    w = max(1, len(loss) // 20)
    if len(loss) >= w:
        ax1.plot(x[w - 1 :], np.convolve(loss, np.ones(w) / w, "valid"), label=f"moving mean ({w} steps)")
    ax1b = ax1.twinx()
    ax1b.plot(x, [s["active_fraction"] for s in steps], color="gray", alpha=0.4, lw=0.8)
    ax1b.set_ylabel("fraction of active triplets", color="gray")
    ax1.set_xlabel("step")
    ax1.set_ylabel("triplet loss")
    ax1.legend(loc="upper right")
    epochs = [h["epoch"] for h in history]
    ax2.plot(
        epochs,
        [100 * h["val"]["accuracy"] for h in history],
        "o-",
        label="validation accuracy (DevTrain ids held back)",
    )
    ax2.plot(
        epochs, [100 * h["val"]["val_at_far_1e-2"] for h in history], "s-", label="validation VAL@FAR=1e-2"
    )
    before, after = test
    ax2.axhline(
        100 * before["accuracy"],
        color="gray",
        ls=":",
        label=f"test accuracy before {100 * before['accuracy']:.1f}%",
    )
    ax2.axhline(
        100 * after["accuracy"],
        color="black",
        ls="--",
        label=f"test accuracy after {100 * after['accuracy']:.1f}%",
    )
    ax2.set_xlabel("epoch (0 = before training)")
    ax2.set_ylabel("%")
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="dlib-resnet-v1")
    ap.add_argument("--init", default="pretrained", choices=["pretrained", "scratch"])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--p", type=int, default=16)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--margin", type=float, default=0.2)
    ap.add_argument("--miner", default="semi-hard")
    ap.add_argument("--freeze", action="append", default=None, help="fnmatch patterns of frozen parameters")
    ap.add_argument("--max-per-identity", type=int, default=8)
    ap.add_argument(
        "--max-identities", type=int, default=None, help="first N training identities (quick runs)"
    )
    ap.add_argument("--steps-per-epoch", type=int, default=None)
    ap.add_argument("--tag", default="dlib-finetune")
    ap.add_argument("--out", type=Path, default=Path("/tmp/faceprint-train-lfw"))
    args = ap.parse_args()

    lfw = data_root() / "lfw"
    root = lfw / "lfw-deepfunneled"
    train_people = people(lfw / "peopleDevTrain.txt")
    test_people = people(lfw / "peopleDevTest.txt")
    overlap = set(train_people) & set(test_people)
    if overlap:
        sys.exit(f"split is not disjoint: {sorted(overlap)[:5]}")
    ids = sorted(n for n, c in train_people.items() if c >= 2)[: args.max_identities]
    freeze = (
        args.freeze
        if args.freeze is not None
        else (["stem.*", "blocks.[0-6].*"] if args.model == "dlib-resnet-v1" else [])
    )
    cfg = TrainConfig(
        model=args.model, init=args.init, epochs=args.epochs, p=args.p, k=args.k, optimizer=args.optimizer,
        lr=args.lr, margin=args.margin, miner=args.miner, freeze=freeze, steps_per_epoch=args.steps_per_epoch,
        schedule="cosine", seed=0,
    )  # fmt: skip
    pipe = FacePipeline(model=args.model)
    t0 = time.perf_counter()
    everyone = load_identity_folder(
        root, pipe, identities=ids, min_images=2, max_per_identity=args.max_per_identity
    )
    train, held_back = hold_out_identities(everyone, 10)
    val = PairSet.from_labels(held_back.chips, held_back.labels)
    test = PairSet.from_lfw(root, lfw / "pairsDevTest.txt", pipe)
    pairs = read_lfw_pairs(lfw / "pairsDevTest.txt")
    paths = sorted(
        {lfw_image_path(root, p.name_a, p.index_a) for p in pairs}
        | {lfw_image_path(root, p.name_b, p.index_b) for p in pairs}
    )
    held_names = [p.parent.name for p in paths]  # PairSet.from_lfw orders its chips the same way
    if set(held_names) & (set(train.classes) | set(held_back.classes)) or set(train.classes) & set(
        held_back.classes
    ):
        sys.exit("held-out identities overlap the training identities")
    prep = time.perf_counter() - t0
    print(
        f"chips ready in {prep:.0f} s: {len(train)} training photos of {len(train.classes)} identities "
        f"({len(train.skipped)} without a face), validation {len(val.a)} pairs of {len(held_back.classes)} identities, "
        f"test {len(test.chips)} photos of {len(set(held_names))} identities"
    )

    trainer = Trainer(cfg, train, args.out, val=val)
    before = evaluate_pairs(trainer.net, trainer.spec, test)
    before_all = all_pairs(trainer, test, held_names)
    t1 = time.perf_counter()
    summary = trainer.fit()
    train_s = time.perf_counter() - t1
    after = evaluate_pairs(trainer.net, trainer.spec, test)  # the kept epoch's weights
    after_all = all_pairs(trainer, test, held_names)
    history = trainer.history
    steps = [json.loads(ln) for ln in (args.out / "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s["type"] == "step"]
    result = {
        "machine": machine(),
        "config": {**vars(args), "out": str(args.out), "freeze": freeze},
        "split": {
            "train": f"peopleDevTrain.txt identities with >= 2 photos, <= {args.max_per_identity} each",
            "train_identities": len(train.classes), "train_photos": len(train), "no_face_skipped": len(everyone.skipped),
            "validation": "every 10th DevTrain identity (sorted): all same pairs + as many random different pairs",
            "validation_identities": len(held_back.classes), "validation_pairs": len(val.a), "kept_epoch": summary["epoch"],
            "held_out": "pairsDevTest.txt (peopleDevTest.txt identities; 10 interleaved folds) + all pairs of its photos",
            "held_out_identities": len(set(held_names)), "held_out_photos": len(test.chips), "overlap": 0,
        },
        "before": {"pairsDevTest": before, "all_pairs": before_all},
        "after": {"pairsDevTest": after, "all_pairs": after_all},
        "history": history,
        "seconds": {"chips": prep, "training_incl_validation": train_s, "total": time.perf_counter() - t0},
        "export": summary.get("export"),
    }  # fmt: skip
    name = f"train-lfw-{args.tag}"
    path = save(name, result)
    png = RESULTS / f"{name}-{machine()}.png"
    plot(
        history,
        steps,
        (before, after),
        png,
        f"{args.model} ({args.init}) on LFW DevTrain; test: DevTest identities (kept epoch {summary['epoch']})",
    )
    rows = []
    for label, v in (("before", result["before"]), ("after", result["after"])):
        p, a = v["pairsDevTest"], v["all_pairs"]
        rows.append([label, 100 * p["accuracy"], 100 * p["val_at_far_1e-3"], 100 * p["val_at_far_1e-2"],
                     100 * a["val_at_far_1e-3"], 100 * a["val_at_far_1e-4"], a["roc_auc"]])  # fmt: skip
    print(
        table(
            [
                "",
                "acc % (DevTest)",
                "VAL@1e-3 %",
                "VAL@1e-2 %",
                "all-pairs VAL@1e-3 %",
                "all-pairs VAL@1e-4 %",
                "AUC",
            ],
            rows,
        )
    )
    print(f"training {train_s / 60:.1f} min, chips {prep / 60:.1f} min; wrote {path} and {png}")


if __name__ == "__main__":
    main()
