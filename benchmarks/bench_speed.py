"""Speed of faceprint against dlib / face_recognition on the same machine, in one run.

    benchmarks/peers/setup.sh                 # once: dlib + face_recognition in their own venv
    .venv/bin/python benchmarks/bench_speed.py [--images 200]

1. Embedding ms/face (ready 150x150 chips) at batch 1 and 32, on 1 and 2 threads, vs dlib's
   compute_face_descriptor.
2. End to end (decode, detect, landmarks, chip, descriptor) images/s on LFW images vs
   face_recognition's default pipeline (HOG, upsample 1, 5-point), 2 threads.
Prints a Markdown table with ratios and saves JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import lfw_sample, peers_available, run_peer, save, table

from faceprint import FacePipeline


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--chips", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--detector", default="mtcnn")
    args = ap.parse_args()

    paths = lfw_sample(args.images)
    pipe = FacePipeline(detector=args.detector)
    images = [pipe.load(p) for p in paths[: args.chips]]
    chips = np.stack([f.chip.pixels for faces in pipe.faces_batch(images, keep_chips=True) for f in faces[:1]])
    chips = chips[: args.chips]
    embedder = pipe.embedder
    peers = peers_available()
    rows, result = [], {"chips": len(chips), "images": len(paths), "detector": args.detector}
    tmp = Path(tempfile.mkdtemp())
    np.save(tmp / "chips.npy", chips)
    embedder.flip = False  # per-view network time, as dlib computes it; flip doubles it
    for threads in (1, 2):
        torch.set_num_threads(threads)
        embedder.batch_size = 1
        embedder.embed(chips[:2])
        b1 = 1000 * best_of(lambda: embedder.embed(chips), args.repeats) / len(chips)
        embedder.batch_size = 32
        embedder.embed(chips[:32])
        b32 = 1000 * best_of(lambda: embedder.embed(chips), args.repeats) / len(chips)
        ref = run_peer("embed", "--threads", str(threads), "--chips", str(tmp / "chips.npy")) if peers else {}
        d1, d32 = ref.get("batch1_ms_per_face"), ref.get("batch32_ms_per_face")
        rows.append([f"embed ms/face, batch 1, {threads} thr", b1, d1 or "-", (d1 / b1) if d1 else "-"])
        rows.append([f"embed ms/face, batch 32, {threads} thr", b32, d32 or "-", (d32 / b32) if d32 else "-"])
        result[f"embed_{threads}thr"] = {"faceprint_b1": b1, "faceprint_b32": b32, "dlib_b1": d1, "dlib_b32": d32}

    embedder.flip = True
    torch.set_num_threads(2)
    (tmp / "images.txt").write_text("\n".join(map(str, paths)))
    pipe.faces_batch([pipe.load(paths[0])])  # warm-up: models loaded, caches built

    def e2e() -> None:
        for i in range(0, len(paths), 32):
            pipe.faces_batch([pipe.load(p) for p in paths[i : i + 32]])

    fp_ips = len(paths) / best_of(e2e, 1)
    embedder.flip = False
    fp_ips_noflip = len(paths) / best_of(e2e, 1)
    embedder.flip = True
    fr = run_peer("e2e", "--threads", "2", "--images", str(tmp / "images.txt")) if peers else {}
    fr_ips = fr.get("images_per_s")
    rows.append([f"end-to-end images/s, {len(paths)} LFW, 2 thr (default, flip)", fp_ips, fr_ips or "-", (fp_ips / fr_ips) if fr_ips else "-"])
    rows.append([f"end-to-end images/s, {len(paths)} LFW, 2 thr (no flip)", fp_ips_noflip, fr_ips or "-", (fp_ips_noflip / fr_ips) if fr_ips else "-"])
    result["e2e"] = {"faceprint_images_per_s": fp_ips, "faceprint_noflip_images_per_s": fp_ips_noflip, "face_recognition_images_per_s": fr_ips, "face_recognition_faces": fr.get("faces")}
    print(table(["measure", "faceprint", "dlib / face_recognition", "ratio (x faster)"], rows))
    if not peers:
        print("(peers venv not found: run benchmarks/peers/setup.sh for the dlib columns)")
    print(f"saved {save('speed-' + args.detector, result)}")


if __name__ == "__main__":
    main()
