"""Turned photos by default: the default pipeline's rotation search, its cost and what it finds.

    nice .venv/bin/python benchmarks/bench_rotation.py [--n 200] [--repeats 3]

The default pipeline runs the model's detector as "<name>-upright": photos where it finds no face
are searched again turned by 90, 180 and 270 degrees. This measures, on ``--n`` LFW people with two
photos or more (the first photo of each the probe, the second enrolled):

1. per-photo time of the default pipeline (detect + align + embed, one photo per call, pixels
   already decoded) on the upright probes, with and without the rotation search: mean +- std of
   the per-photo mean over ``--repeats`` alternating runs; and the same on photos without a face,
   where the search does run (its price);
2. faces found and people identified (the enrolled person named, at the model's threshold and the
   default quality floor) on the probes as they are and turned by 90, 180 and 270 degrees.

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
    for turn in (0, 1, 2, 3):
        turned = [np.ascontiguousarray(np.rot90(x, turn)) for x in probes]
        for k, pipe in names.items():
            found = identified = 0
            qualities = []
            for (name, _), image in zip(people, turned):
                faces = pipe.faces_batch([image])[0]
                if not faces:
                    continue
                found += 1
                face = faces[select_face([f.detection for f in faces], image.shape, "center")]
                qualities.append(face.detection.quality)
                vec = face.embedding.vector[None]
                ranked = identify_embeddings(vec, known, pipe.spec.threshold, pipe.spec.metric)[0]
                decision = quality_floor(ranked, face.detection.quality, pipe.min_quality)[0]
                identified += decision.identity == name
            n = len(people)
            result["rotations"].setdefault(str(90 * turn), {})[k] = {
                "found": found, "identified": identified, "n": n, "median_quality": float(np.median(qualities)) if qualities else None,
            }
            rows.append([f"{90 * turn}°", k, f"{found}/{n}", f"{identified}/{n}",
                         f"{np.median(qualities):.3f}" if qualities else "-"])
    print(table(["photo turned", "pipeline", "faces found", "identified", "median quality"], rows))
    print()
    print(table(["pipeline", "ms/photo upright (mean ± std over runs)", "ms/photo without a face"], [
        [k, f"{v['upright_mean']:.1f} ± {v['upright_std']:.1f}", f"{v['no_face']:.1f}"] for k, v in result["timing_ms"].items()
    ]))
    result["detector"] = default.detector.name
    result["model"] = default.spec.name
    print(f"saved {save('rotation', result)}")


if __name__ == "__main__":
    main()
