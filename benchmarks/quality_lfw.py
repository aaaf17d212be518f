"""LFW verification on degraded photos (issue 15): `faceprint eval quality` on every condition of
faceprint.degrade, with the default pipeline, FaceNet's Table 4 beside the JPEG and pixel rows.

    nice .venv/bin/python benchmarks/quality_lfw.py [--conditions jpeg10,px1600] [--limit 200] [--seed 0]

All 6000 pairs of pairs.txt per condition (``--limit N``: about N, spread over the folds and
classes), each image degraded with a seed made of the condition, its Name/file path and
``--seed``; then the library's rule for each image (the model's detector, the ``mmod-up1``
fallback, the central box). The "all degraded" row pools every degraded condition's pairs,
folds kept, one threshold per fold for all of them.

Descriptors are cached per condition under ``<faceprint cache>/degraded/`` (the run resumes
after an interruption). Cost: ~5 images/s on 2 cores, so ~7,700 images x 19 conditions is most
of a working day; the ``small`` condition also runs the fallback detector on 1920 x 1080 frames
for the few faces YuNet misses (~9 s each).

Writes benchmarks/results/quality-lfw[-limitN][-Kcond]-<machine>.json (the summary) and a folder of
the same name with report.md, quality.png, quality.json and pairs.npz (not committed; per pair and condition:
distance, issame, fold, quality of both faces, how each was found: for error-versus-discard curves).
"""

from __future__ import annotations

import argparse
import time

from common import RESULTS, data_root, machine, save

from faceprint._resources import cache_dir
from faceprint.degrade import list_conditions
from faceprint.evaluate.robustness import evaluate_degraded, markdown_table, write_degraded_report
from faceprint.pipeline import FacePipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conditions", default=",".join(list_conditions()), help="Comma-separated (default: all).")
    ap.add_argument("--limit", type=int, default=None, help="About N pairs per condition (default: all 6000).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fallback", default="mmod-up1", help="Second detector, as `faceprint eval lfw` (empty: none).")
    args = ap.parse_args()

    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    lfw = data_root() / "lfw"
    pipe = FacePipeline()
    fb = None
    if args.fallback:
        fb = FacePipeline(detector=args.fallback)
        fb.embedder = pipe.embedder  # one network in memory, as `faceprint eval lfw`
    name = "quality-lfw" + (f"-limit{args.limit}" if args.limit else "")
    name += "" if conditions == list_conditions() else f"-{len(conditions)}cond"
    out = RESULTS / f"{name}-{machine()}"
    t0 = time.perf_counter()
    result = evaluate_degraded(
        pipe, lfw / "lfw-deepfunneled", lfw / "pairs.txt", conditions, fallback=fb, out=out,
        cache=cache_dir("degraded"), limit=args.limit, seed=args.seed,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    files = write_degraded_report(result, out)
    print(markdown_table(result))
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    payload = {**public, "seconds": round(seconds, 1), "machine": machine(),
               "report": str(files["markdown"].relative_to(RESULTS.parent.parent))}  # fmt: skip
    print(f"{seconds:.0f} s; saved {save(name, payload)} and {out}/")


if __name__ == "__main__":
    main()
