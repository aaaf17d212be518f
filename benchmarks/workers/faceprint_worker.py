"""Timing worker for faceprint, the twin of benchmarks/peers/worker.py: same tasks, same inputs,
same JSON, each in a process of its own so that peak memory (VmHWM) is the system's own.

    python faceprint_worker.py detect --threads N --images set.npz --detector mtcnn
    python faceprint_worker.py embed  --threads N --chips chips.npy
    python faceprint_worker.py e2e    --threads N --images list.txt [--no-flip]
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
    ap.add_argument("--chips")
    ap.add_argument("--images")
    ap.add_argument("--detector", default="mtcnn")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-flip", action="store_true")
    args = ap.parse_args()
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from faceprint import Embedder, FacePipeline, get_detector

    if args.task == "detect":
        images = list(np.load(args.images)["images"])
        det = get_detector(args.detector)
        det.detect(images[0])  # warm-up: weights loaded
        best, faces = float("inf"), 0
        for _ in range(args.repeats):
            t = time.perf_counter()
            faces = sum(len(det.detect(im)) for im in images)
            best = min(best, (time.perf_counter() - t) / len(images))
        print(json.dumps({"ms_per_image": 1000 * best, "faces": faces, "peak_rss_mb": peak_rss_mb()}))
        return

    if args.task == "embed":
        chips = np.load(args.chips)
        out = {}
        for batch in (1, 32):
            emb = Embedder(flip=False, batch_size=batch)
            emb.embed(chips[:batch])
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                emb.embed(chips)
                times.append((time.perf_counter() - t) / len(chips))
            out[f"batch{batch}_ms_per_face"] = 1000 * min(times)
        out["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(out))
        return

    paths = [ln.strip() for ln in open(args.images) if ln.strip()]
    pipe = FacePipeline(flip=not args.no_flip)
    pipe.faces(paths[0])  # warm-up
    t = time.perf_counter()
    faces = 0
    for i in range(0, len(paths), 32):  # the library's batched path: 32 photos per network pass
        faces += sum(len(f) for f in pipe.faces_batch([pipe.load(p) for p in paths[i : i + 32]]))
    dt = time.perf_counter() - t
    print(json.dumps({"images_per_s": len(paths) / dt, "faces": faces, "seconds": dt, "peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    sys.exit(main())
