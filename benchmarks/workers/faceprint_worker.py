"""Timing worker for faceprint, the twin of benchmarks/peers/worker.py: same tasks, same inputs,
same JSON, each in a process of its own so that peak memory (VmHWM) is the system's own.

    python faceprint_worker.py detect --threads N --images set.npz --detector mtcnn
    python faceprint_worker.py embed  --threads N --images list.txt --model sface
    python faceprint_worker.py e2e    --threads N --images list.txt [--model M] [--detector D] [--[no-]flip]

Without --detector / --flip the pipeline takes the model's own (the ones it was calibrated with).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from memory import peak_rss_mb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=["detect", "embed", "e2e"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images")
    ap.add_argument("--detector", default=None)
    ap.add_argument("--model", default=None, help="embedding model (default: faceprint's default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--accept-licence", default=None)
    args = ap.parse_args()
    import numpy as np

    from faceprint import FacePipeline, get_detector
    from faceprint.models import DEFAULT_MODEL
    from faceprint.runtime import set_default_threads

    set_default_threads(args.threads)
    model = args.model or DEFAULT_MODEL

    if args.task == "detect":
        images = list(np.load(args.images)["images"])
        det = get_detector(args.detector or "mtcnn")
        det.detect(images[0])  # warm-up: weights loaded
        best, faces = float("inf"), 0
        for _ in range(args.repeats):
            t = time.perf_counter()
            faces = sum(len(det.detect(im)) for im in images)
            best = min(best, (time.perf_counter() - t) / len(images))
        print(json.dumps({"ms_per_image": 1000 * best, "faces": faces, "peak_rss_mb": peak_rss_mb()}))
        return

    paths = [ln.strip() for ln in open(args.images) if ln.strip()]
    if args.task == "embed":  # ready chips in the model's own geometry; the networks alone are timed
        pipe = FacePipeline(model=model, flip=False, accept_licence=args.accept_licence)
        members = [[] for _ in pipe.embedder.member_specs]
        for p in paths:
            image = pipe.load(p)
            dets = pipe.detector.detect(image)[:1]
            for chips, more in zip(members, pipe.member_chips(image, dets)):
                chips.extend(c.pixels for c in more)
        chips = [np.stack(c) for c in members]
        out = {"faces": len(chips[0])}
        for batch in (1, 32):
            for emb in getattr(pipe.embedder, "members", [pipe.embedder]):
                emb.batch_size = batch
            pipe.embedder.embed_members([c[:batch] for c in chips])  # warm-up
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                for i in range(0, len(chips[0]), batch):
                    pipe.embedder.embed_members([c[i : i + batch] for c in chips])
                times.append((time.perf_counter() - t) / len(chips[0]))
            out[f"batch{batch}_ms_per_face"] = 1000 * min(times)
        out["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(out))
        return

    pipe = FacePipeline(detector=args.detector, model=model, flip=args.flip, accept_licence=args.accept_licence)
    pipe.faces(paths[0])  # warm-up
    t = time.perf_counter()
    faces = 0
    for i in range(0, len(paths), 32):  # the library's batched path: 32 photos per network pass
        faces += sum(len(f) for f in pipe.faces_batch([pipe.load(p) for p in paths[i : i + 32]]))
    dt = time.perf_counter() - t
    print(json.dumps({"images_per_s": len(paths) / dt, "faces": faces, "seconds": dt, "peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    sys.exit(main())
