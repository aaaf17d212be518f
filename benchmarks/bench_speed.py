"""Speed and memory of faceprint against the peers on the same machine, in one run.

    bash benchmarks/peers/setup.sh            # once: dlib + face_recognition + facenet-pytorch, own venv
    .venv/bin/python benchmarks/bench_speed.py [--threads 2] [--images 200]

Each measurement runs in a fresh process per system (benchmarks/workers/faceprint_worker.py here,
benchmarks/peers/worker.py in the peers venv) on the same inputs and thread count, so the peak
resident memory of each process is its own:

1. Detection ms/image at 250x250 (LFW photos), 640x480, 1280x720 and 1920x1080 (the misc/ group
   photos, centre-cropped to the aspect and resized): faceprint MTCNN vs facenet-pytorch MTCNN
   (both min face 20 px, factor 0.709) and vs face_recognition's default HOG (1 upsample);
   faceprint MMOD vs dlib's MMOD at the same upsample (0).
2. Embedding ms/face on ready chips (each model's own geometry), batch 1 and 32, for every
   registered ONNX model and the default; dlib-resnet-v1 vs dlib's compute_face_descriptor.
3. End to end (decode, detect, landmarks, chip, descriptor) images/s on LFW photos vs
   face_recognition's default pipeline (HOG, 1 upsample, 5-point, 1 jitter), with peak memory:
   the default pipeline and the fast choice ``--model dlib-resnet-v1``.
4. Cold start: ``faceprint verify a.jpg b.jpg`` against face_recognition's CLI on the same two photos
   (each a fresh process: wall time and peak memory).
Prints a Markdown table with ratios and saves JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from common import PEERS_PY, REPO, data_root, lfw_sample, peers_available, save, table

from faceprint import FacePipeline, load_image
from faceprint.models import DEFAULT_MODEL

SIZES = [(250, 250), (640, 480), (1280, 720), (1920, 1080)]
GROUP_PHOTOS = ["group_bbt1.jpg", "multiface.jpg", "two_people.jpg", "couple.jpg", "compreface_000_5.jpg",
                "compreface_016_8.jpg", "obama_and_biden.jpg", "group_t1.jpg"]
# faceprint detector -> the peers it is compared with (peer worker names)
DETECT_PAIRS = [("mtcnn", "facenet-mtcnn"), ("mtcnn", "hog"), ("mmod", "cnn0"), ("yunet", "hog")]
EMBED_MODELS = ["dlib-resnet-v1", "sface", "arcface-mbf", "dlib-resnet-v1+sface"]


def fit(image: np.ndarray, w: int, h: int) -> np.ndarray:
    """Centre-crop to w:h and resize (INTER_AREA) to exactly (h, w, 3)."""
    ih, iw = image.shape[:2]
    if iw * h > ih * w:
        cw = ih * w // h
        image = image[:, (iw - cw) // 2 : (iw - cw) // 2 + cw]
    else:
        ch = iw * h // w
        image = image[(ih - ch) // 2 : (ih - ch) // 2 + ch]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


ERRORS: list[str] = []  # workers that failed: reported after the table, their cells left "-"


def run(python: Path | str, script: Path, *args: str) -> dict:
    out = subprocess.run([str(python), str(script), *args], capture_output=True, text=True)
    if out.returncode != 0:
        why = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"
        ERRORS.append(f"{script.name} {' '.join(args[:1])}: {why}")
        return {"error": why}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=200, help="LFW photos for the end-to-end run")
    ap.add_argument("--chips", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    thr, reps = str(args.threads), str(args.repeats)
    ours = lambda *a: run(sys.executable, REPO / "benchmarks" / "workers" / "faceprint_worker.py", *a)  # noqa: E731
    peers = peers_available()
    theirs = lambda *a: run(PEERS_PY, REPO / "benchmarks" / "peers" / "worker.py", *a) if peers else {}  # noqa: E731
    tmp = Path(tempfile.mkdtemp(prefix="faceprint-bench-"))
    rows: list[list[object]] = []
    result: dict[str, object] = {"threads": args.threads, "detect": {}}

    def row(what: str, mine: float | None, peer_name: str, peer: float | None, higher_is_better: bool) -> None:
        ratio = "-"
        if mine and peer:
            ratio = mine / peer if higher_is_better else peer / mine
        rows.append([what, mine if mine is not None else "-", peer_name, peer if peer is not None else "-", ratio])

    # 1. detection at four sizes
    lfw = lfw_sample(16)
    groups = [load_image(data_root() / "misc" / n) for n in GROUP_PHOTOS]
    for w, h in SIZES:
        images = [load_image(p) for p in lfw] if (w, h) == (250, 250) else [fit(g, w, h) for g in groups]
        path = tmp / f"det-{w}x{h}.npz"
        np.savez(path, images=np.stack(images))
        cache: dict[str, dict] = {}
        for mine, peer in DETECT_PAIRS:
            a = cache.get(mine) or cache.setdefault(mine, ours("detect", "--threads", thr, "--images", str(path), "--detector", mine, "--repeats", reps))
            b = theirs("detect", "--threads", thr, "--images", str(path), "--detector", peer, "--repeats", reps)
            result["detect"][f"{w}x{h}:{mine}:{peer}"] = {"faceprint": a, "peer": b}  # type: ignore[index]
            row(f"detect ms/img {w}x{h} ({len(images)} photos): faceprint {mine}", a.get("ms_per_image"),
                {"facenet-mtcnn": "facenet-pytorch MTCNN", "hog": "face_recognition HOG", "cnn0": "dlib MMOD"}[peer],
                b.get("ms_per_image"), False)

    # 2. embedding on ready chips, every model in its own geometry
    (tmp / "chip-images.txt").write_text("\n".join(map(str, lfw_sample(args.chips))))
    pipe = FacePipeline(model="dlib-resnet-v1")
    chip_images = [pipe.load(p) for p in lfw_sample(args.chips)]
    chips = np.stack([f.chip.pixels for faces in pipe.faces_batch(chip_images, keep_chips=True) for f in faces[:1]])
    np.save(tmp / "chips.npy", chips)
    b = theirs("embed", "--threads", thr, "--chips", str(tmp / "chips.npy"), "--repeats", reps)
    result["embed"] = {"dlib": b, "chips": len(chips)}
    for model in dict.fromkeys([*EMBED_MODELS, DEFAULT_MODEL]):
        a = ours("embed", "--threads", thr, "--images", str(tmp / "chip-images.txt"), "--repeats", reps,
                 "--model", model, "--accept-licence", "insightface-non-commercial")  # fmt: skip
        result["embed"][model] = a  # type: ignore[index]
        for batch in (1, 32):
            peer = b.get(f"batch{batch}_ms_per_face") if model == "dlib-resnet-v1" else None
            row(f"embed ms/face, batch {batch}: {model}", a.get(f"batch{batch}_ms_per_face"),
                "dlib" if peer else "-", peer, False)  # fmt: skip

    # 3. end to end on LFW photos, with peak memory
    (tmp / "images.txt").write_text("\n".join(map(str, lfw_sample(args.images))))
    fr = theirs("e2e", "--threads", thr, "--images", str(tmp / "images.txt"))
    result["e2e"] = {"face_recognition": fr, "images": args.images}
    variants = [(f"default ({DEFAULT_MODEL}: YuNet, no flip)", []),
                ("default model on MTCNN with flip", ["--detector", "mtcnn", "--flip"]),
                ("--model dlib-resnet-v1 (MTCNN, flip)", ["--model", "dlib-resnet-v1"]),
                ("--model dlib-resnet-v1, no flip", ["--model", "dlib-resnet-v1", "--no-flip"]),
                ("--model dlib-resnet-v1, --detector yunet, no flip",
                 ["--model", "dlib-resnet-v1", "--detector", "yunet", "--no-flip"])]  # fmt: skip
    for label, extra in variants:
        mine = ours("e2e", "--threads", thr, "--images", str(tmp / "images.txt"), *extra)
        result["e2e"][label] = mine  # type: ignore[index]
        row(f"end-to-end images/s, {args.images} LFW: {label}", mine.get("images_per_s"), "face_recognition",
            fr.get("images_per_s"), True)  # fmt: skip
        row(f"end-to-end peak memory MB: {label}", mine.get("peak_rss_mb"), "face_recognition",
            fr.get("peak_rss_mb"), False)  # fmt: skip

    # 4. cold start of the command-line tools on the same two photos
    a_img, b_img = lfw_sample(2)
    known = tmp / "known"
    known.mkdir()
    (known / "a.jpg").write_bytes(a_img.read_bytes())
    cold = REPO / "benchmarks" / "workers" / "cold.py"
    cli = [sys.executable, "-c", "from faceprint.cli import main; main()", "verify", str(a_img), str(b_img), "--json"]
    mine = [run(sys.executable, cold, *cli) for _ in range(args.repeats + 1)]
    fr_cli = str(PEERS_PY.parent / "face_recognition")
    peer_runs = [run(sys.executable, cold, fr_cli, str(known), str(b_img)) for _ in range(args.repeats + 1)] if peers else []
    pick = lambda runs, key: float(np.median([r[key] for r in runs if key in r])) if runs else None  # noqa: E731
    result["cold"] = {"faceprint_verify": mine, "face_recognition_cli": peer_runs}
    row("cold start: faceprint verify a b, seconds (median)", pick(mine, "seconds"), "face_recognition CLI",
        pick(peer_runs, "seconds"), False)  # fmt: skip
    row("cold start: peak memory MB", pick(mine, "peak_rss_mb"), "face_recognition CLI",
        pick(peer_runs, "peak_rss_mb"), False)  # fmt: skip

    print(f"threads: {args.threads}; ratio > 1 means faceprint is faster / smaller")
    print(table(["measure", "faceprint", "peer", "peer value", "ratio"], rows))
    if ERRORS:
        print("errors:\n  " + "\n  ".join(ERRORS))
    if not peers:
        print("(peers venv not found: run benchmarks/peers/setup.sh for the peer columns)")
    print(f"saved {save(f'speed-{args.threads}thr', result)}")


if __name__ == "__main__":
    main()
