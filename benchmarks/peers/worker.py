"""Timing worker that runs inside the peers venv (dlib / face_recognition), driven by benchmarks/.

    python worker.py detect --threads N --images set.npz --detector hog|cnn|facenet-mtcnn
    python worker.py embed --threads N --chips chips.npy            -> JSON {"batch1_ms_per_face": ...}
    python worker.py e2e --threads N --images list.txt              -> JSON {"images_per_s": ..., "faces": ...}

Every answer carries peak_rss_mb, the process's peak resident memory. Kept apart from faceprint:
it imports dlib and facenet-pytorch, which faceprint never does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workers"))
from memory import peak_rss_mb  # noqa: E402


def detector(name: str):  # noqa: ANN201
    """A callable image -> boxes for each peer detector, at the peer's defaults."""
    if name == "facenet-mtcnn":
        import torch
        from facenet_pytorch import MTCNN

        mtcnn = MTCNN(keep_all=True, device="cpu")  # defaults: min_face_size 20, factor 0.709

        def run(image):  # noqa: ANN001, ANN202
            with torch.inference_mode():
                boxes, _ = mtcnn.detect(image)
            return [] if boxes is None else boxes

        return run
    import face_recognition

    if name == "cnn0":  # dlib's MMOD at upsample 0, as faceprint's "mmod"
        return lambda image: face_recognition.face_locations(image, 0, model="cnn")
    # face_recognition's defaults: HOG (or "cnn", dlib's MMOD) with one upsample
    return lambda image: face_recognition.face_locations(image, model=name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=["detect", "embed", "e2e"])
    ap.add_argument("--detector", default="hog")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chips")
    ap.add_argument("--images")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    # dlib's CPU DNN uses OpenBLAS threads; set them before dlib is imported.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if args.task == "detect":
        import numpy as np

        if args.detector == "facenet-mtcnn":
            import torch

            torch.set_num_threads(args.threads)
        images = list(np.load(args.images)["images"])
        run = detector(args.detector)
        run(images[0])  # warm-up
        best, faces = float("inf"), 0
        for _ in range(args.repeats):
            t = time.perf_counter()
            faces = sum(len(run(im)) for im in images)
            best = min(best, (time.perf_counter() - t) / len(images))
        print(json.dumps({"ms_per_image": 1000 * best, "faces": faces, "peak_rss_mb": peak_rss_mb()}))
        return
    import dlib
    import face_recognition
    import face_recognition_models
    import numpy as np

    if args.task == "embed":
        chips = np.load(args.chips)
        net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
        net.compute_face_descriptor(chips[0])  # warm-up
        out = {}
        single = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            for c in chips:
                net.compute_face_descriptor(c)
            single.append((time.perf_counter() - t) / len(chips))
        out["batch1_ms_per_face"] = 1000 * min(single)
        batched = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            for i in range(0, len(chips), 32):
                net.compute_face_descriptor(list(chips[i : i + 32]))
            batched.append((time.perf_counter() - t) / len(chips))
        out["batch32_ms_per_face"] = 1000 * min(batched)
        out["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(out))
        return

    paths = [ln.strip() for ln in open(args.images) if ln.strip()]
    face_recognition.face_encodings(face_recognition.load_image_file(paths[0]))  # warm-up
    t = time.perf_counter()
    faces = 0
    for p in paths:
        image = face_recognition.load_image_file(p)
        faces += len(face_recognition.face_encodings(image))  # default: HOG detector, 5-point, 1 upsample
    dt = time.perf_counter() - t
    print(json.dumps({"images_per_s": len(paths) / dt, "faces": faces, "seconds": dt, "peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    sys.exit(main())
