"""Detection on ../shared/data/misc against the face counts in images.csv, per detector.

    .venv/bin/python benchmarks/detect_misc.py [--detectors yunet,yunet-upright,mtcnn,mtcnn-upright,mmod,mmod-up1,haar]

Prints one Markdown table (found / expected per image and detector, ms per image) and what each
invalid file gives. Saves JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import csv
import time

from common import data_root, save, table

from faceprint import FaceprintError, get_detector, load_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detectors", default="yunet,yunet-upright,mtcnn,mtcnn-upright,mmod,mmod-up1,haar")
    args = ap.parse_args()
    names = args.detectors.split(",")
    misc = data_root() / "misc"
    rows_csv = list(csv.DictReader(open(misc / "images.csv")))
    detectors = {n: get_detector(n) for n in names}
    rows, result, exact = [], {}, {n: 0 for n in names}
    valid = [r for r in rows_csv if r["kind"] != "invalid"]
    for r in valid:
        image = load_image(misc / r["file"])
        expected = int(r["faces_visible"])
        row: list[object] = [r["file"], r["kind"], f"{image.shape[1]}x{image.shape[0]}", expected]
        for n, det in detectors.items():
            t = time.perf_counter()
            found = len(det.detect(image))
            ms = 1000 * (time.perf_counter() - t)
            exact[n] += found == expected
            row.append(f"{found} ({ms:.0f} ms)")
            result.setdefault(r["file"], {})[n] = {"found": found, "expected": expected, "ms": ms}
        rows.append(row)
    rows.append(["**exact count**", "", "", len(valid)] + [f"{exact[n]}/{len(valid)}" for n in names])
    print(table(["image", "kind", "size", "expected"] + names, rows))
    print()
    for r in rows_csv:
        if r["kind"] == "invalid":
            try:
                load_image(misc / r["file"])
                msg = "loaded (unexpected)"
            except FaceprintError as exc:
                msg = f"{type(exc).__name__}: {exc}"
            print(f"- {r['file']}: {msg}")
            result[r["file"]] = {"error": msg}
    print(f"saved {save('detect-misc', result)}")


if __name__ == "__main__":
    main()
