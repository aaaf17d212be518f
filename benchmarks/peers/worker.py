"""Timing worker that runs inside the peers venv (dlib / face_recognition), driven by benchmarks/.

    python worker.py embed --threads N --chips chips.npy            -> JSON {"ms_per_face": ...}
    python worker.py e2e --threads N --images list.txt              -> JSON {"images_per_s": ..., "faces": ...}

Kept apart from faceprint: it imports dlib, which faceprint never does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=["embed", "e2e"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chips")
    ap.add_argument("--images")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    # dlib's CPU DNN uses OpenBLAS threads; set them before dlib is imported.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
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
    print(json.dumps({"images_per_s": len(paths) / dt, "faces": faces, "seconds": dt}))


if __name__ == "__main__":
    sys.exit(main())
