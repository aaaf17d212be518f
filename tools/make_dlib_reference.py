"""Write dlib's own outputs for a handful of shared-data images to tests/data/dlib_reference.json.

Run with the peers venv (dlib built there by benchmarks/peers/setup.sh):

    benchmarks/peers/setup.sh
    ~/.cache/faceprint-peers/venv/bin/python tools/make_dlib_reference.py [--data ../shared/data]

The tests compare faceprint's dlib-free port against these committed numbers and never need dlib:
MMOD boxes and confidences, 5-point landmarks, face chips (sha256 of the pixels) and descriptors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import dlib
import face_recognition_models
import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
# (image relative to the data root, MMOD upsample): small faces need one upsample.
IMAGES = [
    ("misc/obama.jpg", 0),
    ("misc/two_people.jpg", 0),
    ("misc/group_bbt1.jpg", 0),
    ("misc/obama_small.jpg", 1),
    ("lfw/lfw-deepfunneled/Aaron_Peirsol/Aaron_Peirsol_0001.jpg", 1),
    ("lfw/lfw-deepfunneled/Colin_Powell/Colin_Powell_0001.jpg", 1),
    ("lfw/lfw-deepfunneled/Colin_Powell/Colin_Powell_0002.jpg", 1),
    ("lfw/lfw-deepfunneled/Serena_Williams/Serena_Williams_0001.jpg", 1),
    ("lfw/lfw-deepfunneled/Jennifer_Lopez/Jennifer_Lopez_0001.jpg", 1),
]


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("FACEPRINT_DATA", REPO.parent / "shared" / "data")))
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "dlib_reference.json")
    args = ap.parse_args()

    models = Path(face_recognition_models.__file__).parent / "models"
    cnn = dlib.cnn_face_detection_model_v1(str(models / "mmod_human_face_detector.dat"))
    sp5 = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    records = []
    for rel, upsample in IMAGES:
        img = load_rgb(args.data / rel)
        dets = cnn(img, upsample)
        faces = []
        for d in dets:
            r = d.rect
            shape = sp5(img, r)
            chip = dlib.get_face_chip(img, shape, 150, 0.25)
            desc = np.array(net.compute_face_descriptor(chip))
            full = np.array(net.compute_face_descriptor(img, shape))
            faces.append(
                {
                    "rect": [r.left(), r.top(), r.right(), r.bottom()],
                    "confidence": float(d.confidence),
                    "landmarks5": [[p.x, p.y] for p in shape.parts()],
                    "chip_sha256": hashlib.sha256(np.ascontiguousarray(chip).tobytes()).hexdigest(),
                    "descriptor": [float(f"{v:.8g}") for v in desc],
                    "descriptor_from_image_max_diff": float(np.abs(full - desc).max()),
                }
            )
        records.append({"image": rel, "upsample": upsample, "shape": list(img.shape), "faces": faces})
        print(f"{rel}: {len(faces)} face(s)")
    payload = {"dlib_version": dlib.__version__, "chip": {"size": 150, "padding": 0.25}, "images": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
