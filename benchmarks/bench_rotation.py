"""Turned photos by default: the default pipeline's rotation search, its cost and what it finds.

    nice .venv/bin/python benchmarks/bench_rotation.py [--n 200] [--repeats 3] [--small 100]

The default pipeline runs the model's detector as "<name>-upright": photos where it finds no face
are searched again turned by 90, 180 and 270 degrees. This measures, on ``--n`` LFW people with two
photos or more (the first photo of each the probe, the second enrolled):

1. per-photo time of the default pipeline (detect + align + embed, one photo per call, pixels
   already decoded) on the upright probes, with and without the rotation search: mean +- std of
   the per-photo mean over ``--repeats`` alternating runs; and the same on photos without a face,
   where the search does run (its price);
2. faces found and people identified (the enrolled person named, at the model's threshold and the
   default quality floor) on the probes as they are and turned by 90, 180 and 270 degrees;
3. the same, and the per-photo time, on the probes as a 64 px face in a 1920 x 1080 frame
   (``faceprint.degrade.small_face``, seeded per probe; the first ``--small``), upright and turned by 90 and 180 degrees,
   for three pipelines: the default (a doubtful face searched again in a square around it, upright
   and turned, at full size), the earlier whole-frame search (``crop_sides=None``) and no search.

Prints a Markdown table; saves JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from common import data_root, save, table

from faceprint import FacePipeline, load_image, select_face
from faceprint.decide import identify_embeddings, quality_floor
from faceprint.degrade import small_face
from faceprint.detect.upright import UprightSearch


def people_with_two(n: int) -> list[tuple[str, list]]:
    root = data_root() / "lfw" / "lfw-deepfunneled"
    out = []
    for person in sorted(root.iterdir()):
        photos = sorted(person.glob("*.jpg"))
        if len(photos) >= 2:
            out.append((person.name, photos[:2]))
            if len(out) == n:
                break
    return out


def per_photo_ms(pipe: FacePipeline, images: list[np.ndarray]) -> float:
    t = time.perf_counter()
    for image in images:
        pipe.faces_batch([image])
    return 1000 * (time.perf_counter() - t) / len(images)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--small", type=int, default=100, help="probes made into large frames (part 3; the whole-frame search costs ~1.5 s each)")
    args = ap.parse_args()
    people = people_with_two(args.n)
    probes = [load_image(photos[0]) for _, photos in people]
    default = FacePipeline()
    plain = FacePipeline(detector=default.detector.inner.name)
    plain.embedder = default.embedder  # one network in memory: only the detectors differ
    names = {"default (search)": default, "no search": plain}

    # 1. time on upright photos, alternating which pipeline goes first
    for image in probes[:5]:  # warm-up: lazy sessions, caches
        default.faces_batch([image])
        plain.faces_batch([image])
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(args.repeats):
        for k in (list(names) if r % 2 == 0 else list(names)[::-1]):
            times[k].append(per_photo_ms(names[k], probes))
    rng = np.random.default_rng(0)
    empty = [np.full((250, 250, 3), 255, np.uint8), rng.integers(0, 256, (250, 250, 3), dtype=np.uint8),
             np.ascontiguousarray(np.asarray(probes[0])[:40, :40].repeat(6, 0).repeat(6, 1))]  # no face: white, noise, a blown-up corner
    empty_ms = {k: statistics.mean(per_photo_ms(p, empty) for _ in range(args.repeats)) for k, p in names.items()}

    # 2. found and identified, upright and turned
    known = default.known_faces_from_files([(name, photos[1]) for name, photos in people], on_error="skip")
    rows, result = [], {"n": len(people), "enrolled": len(known.people), "timing_ms": {}, "rotations": {}}
    for k in names:
        m, s = statistics.mean(times[k]), statistics.stdev(times[k]) if len(times[k]) > 1 else 0.0
        result["timing_ms"][k] = {"upright_mean": m, "upright_std": s, "runs": times[k], "no_face": empty_ms[k]}

    def found_identified(pipe: FacePipeline, images: list[np.ndarray]) -> dict[str, object]:
        found = identified = 0
        qualities = []
        for (name, _), image in zip(people, images):
            faces = pipe.faces_batch([image])[0]
            if not faces:
                continue
            found += 1
            face = faces[select_face([f.detection for f in faces], image.shape, "center")]
            qualities.append(face.detection.quality)
            ranked = identify_embeddings(face.embedding.vector[None], known, pipe.spec.threshold, pipe.spec.metric)[0]
            identified += quality_floor(ranked, face.detection.quality, pipe.min_quality)[0].identity == name
        return {"found": found, "identified": identified, "n": len(images),
                "median_quality": float(np.median(qualities)) if qualities else None}  # fmt: skip

    def row(label: str, k: str, r: dict, *extra: str) -> list[str]:
        q = r["median_quality"]
        return [label, k, f"{r['found']}/{r['n']}", f"{r['identified']}/{r['n']}", "-" if q is None else f"{q:.3f}", *extra]

    for turn in (0, 1, 2, 3):
        turned = [np.ascontiguousarray(np.rot90(x, turn)) for x in probes]
        for k, pipe in names.items():
            r = result["rotations"].setdefault(str(90 * turn), {})[k] = found_identified(pipe, turned)
            rows.append(row(f"{90 * turn}°", k, r))
    print(table(["photo turned", "pipeline", "faces found", "identified", "median quality"], rows))

    # 3. a small face in a large frame: where YuNet, shrinking the frame, doubts the face
    whole = FacePipeline(detector=UprightSearch(plain.detector, crop_sides=None))
    whole.embedder = default.embedder
    frames = [small_face(x, rng=i) for i, x in enumerate(probes[: args.small])]
    small_rows, result["small_face"] = [], {}
    for turn in (0, 1, 2):
        turned = [np.ascontiguousarray(np.rot90(x, turn)) for x in frames]
        for k, pipe in {"default (search)": default, "whole-frame search": whole, "no search": plain}.items():
            t = time.perf_counter()
            r = found_identified(pipe, turned)
            r["ms_per_photo"] = 1000 * (time.perf_counter() - t) / len(turned)  # detect + embed + identify
            result["small_face"].setdefault(str(90 * turn), {})[k] = r
            small_rows.append(row(f"{90 * turn}°", k, r, f"{r['ms_per_photo']:.0f}"))
    print()
    print("64 px face in a 1920 x 1080 frame:")
    print(table(["photo turned", "pipeline", "faces found", "identified", "median quality", "ms/photo"], small_rows))
    print()
    print(table(["pipeline", "ms/photo upright (mean ± std over runs)", "ms/photo without a face"], [
        [k, f"{v['upright_mean']:.1f} ± {v['upright_std']:.1f}", f"{v['no_face']:.1f}"] for k, v in result["timing_ms"].items()
    ]))
    result["detector"] = default.detector.name
    result["model"] = default.spec.name
    print(f"saved {save('rotation', result)}")


if __name__ == "__main__":
    main()
