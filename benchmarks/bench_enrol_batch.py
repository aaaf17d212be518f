"""Batch enrolment (`faceprint gallery enrol-batch`) on LFW: throughput and kill-and-resume.

Every LFW deep-funneled photo (13,233; ``--limit N``: the first N in sorted order) is listed in a
CSV manifest (absolute paths) and enrolled into fresh SQLite galleries:

* in-process: the gallery's own pipeline, with the machine's cores as network threads;
* Ray 1 worker and Ray 2 workers: a local Ray started by the run (its start-up counted), one
  actor per worker with one network thread each.

photos/s = photos in the manifest / wall time of the whole call (hashing, embedding, commits).
The Ray galleries must hold the same (sha256, person) samples as the in-process one, vectors
within 1e-5.

Kill-and-resume: the in-process run again, in a subprocess that is SIGKILLed once half the photos
are committed; a rerun must enrol exactly the rest and end with the uninterrupted run's gallery
(same (sha256, person) set, same vectors, no duplicates, integrity check "ok").

    nice .venv/bin/python benchmarks/bench_enrol_batch.py [--limit 300] [--model dlib-resnet-v1] [--no-save]
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_root, save, table  # noqa: E402

from faceprint.gallery import Gallery  # noqa: E402
from faceprint.gallery.batch import enrol_batch  # noqa: E402
from faceprint.pipeline import iter_known_dir  # noqa: E402


def write_manifest(path: Path, limit: int | None) -> int:
    """The LFW photos (the first ``limit``) as a path,name CSV; photos listed."""
    items = list(iter_known_dir(data_root() / "lfw" / "lfw-deepfunneled"))[:limit]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "name"])
        w.writerows((str(p), name) for name, p in items)
    return len(items)


def contents(db: Path) -> dict[str, tuple[str, np.ndarray]]:
    """{sha256: (person, vector)} of a gallery; asserts no photo is stored twice."""
    with Gallery(db, create=False) as g:
        samples = g.samples()
        vectors = dict(zip(*g.sample_vectors([s.id for s in samples])))
        assert g.check() == "ok", g.check()
    out = {s.sha256: (s.person, vectors[s.id]) for s in samples}
    assert len(out) == len(samples), "a photo is stored twice"
    return out


def compare(a: dict[str, tuple[str, np.ndarray]], b: dict[str, tuple[str, np.ndarray]]) -> tuple[bool, float]:
    """(same (sha256, person) set, largest |difference| of a vector value)."""
    same = {(k, v[0]) for k, v in a.items()} == {(k, v[0]) for k, v in b.items()}
    common = sorted(set(a) & set(b))
    diff = max((float(np.abs(a[k][1] - b[k][1]).max()) for k in common), default=0.0)
    return same, diff


def enrol(db: Path, manifest: Path, model: str, batch_size: int, **kw: object) -> dict:
    with Gallery(db, model=model) as g:
        return enrol_batch(g, manifest, batch_size=batch_size, **kw)  # type: ignore[arg-type]


def committed(db: Path) -> int:
    """Samples committed so far, read while another process writes (WAL: never blocked)."""
    if not db.exists():
        return 0
    try:
        with closing(sqlite3.connect(str(db), timeout=5)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


def kill_and_resume(tmp: Path, manifest: Path, args: argparse.Namespace, reference: dict, expected: int) -> dict:
    db = tmp / "killed.db"
    cmd = [sys.executable, __file__, "--worker", str(db), "--manifest", str(manifest), "--model", args.model,
           "--batch-size", str(args.batch_size)]
    child = subprocess.Popen(cmd)
    target = max(1, expected // 2)
    while committed(db) < target and child.poll() is None:
        time.sleep(0.05)
    if child.poll() is not None:
        raise SystemExit(f"the run to kill ended (rc {child.returncode}) before half the photos were committed")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    at_kill = committed(db)
    rerun = enrol(db, manifest, args.model, args.batch_size, progress=not args.quiet)
    same, diff = compare(contents(db), reference)
    return {"killed_at": at_kill, "rerun": rerun, "same_samples": same, "max_vector_diff": diff,
            "ok": same and diff <= 1e-5 and rerun["enrolled"] + at_kill == expected}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="Only the first N LFW photos (sorted).")
    ap.add_argument("--model", default="dlib-resnet-v1")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--no-save", action="store_true", help="Do not write benchmarks/results/.")
    ap.add_argument("--quiet", action="store_true", help="No progress bars.")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # the run that gets killed: its gallery
    ap.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        enrol(args.worker, args.manifest, args.model, args.batch_size, progress=False)
        return

    with tempfile.TemporaryDirectory(prefix="fp-enrol-batch-") as folder:
        tmp = Path(folder)
        manifest = tmp / "lfw.csv"
        n = write_manifest(manifest, args.limit)
        print(f"{n} LFW photos, model {args.model}, batch {args.batch_size}, {os.cpu_count()} CPUs", flush=True)
        runs = [("in-process", {}), ("ray, 1 worker", {"ray": True, "workers": 1}),
                ("ray, 2 workers", {"ray": True, "workers": 2})]
        rows, results, galleries = [], [], {}
        for label, kw in runs:
            db = tmp / f"{label.replace(' ', '').replace(',', '-')}.db"
            counts = enrol(db, manifest, args.model, args.batch_size, progress=not args.quiet,
                           report=tmp / f"{db.stem}-report.csv", **kw)
            galleries[label] = contents(db)
            same, diff = compare(galleries[label], galleries["in-process"])
            results.append({"run": label, **counts, "same_as_in_process": same, "max_vector_diff": diff})
            rows.append([label, n, counts["enrolled"], counts["failed"], counts["seconds"], counts["photos_per_s"],
                         f"{'yes' if same and diff <= 1e-5 else 'NO'} (max dv {diff:.1e})"])
            print(table(["run", "photos", "enrolled", "failed", "seconds", "photos/s", "= in-process"], rows[-1:]),
                  flush=True)
        print()
        print(table(["run", "photos", "enrolled", "failed", "seconds", "photos/s", "= in-process"], rows))

        expected = results[0]["enrolled"]
        resume = kill_and_resume(tmp, manifest, args, galleries["in-process"], expected)
        r = resume["rerun"]
        print()
        print(table(
            ["killed at (committed)", "rerun enrolled", "rerun skipped", "rerun failed", "same (sha256, person)",
             "max vector diff", "ok"],
            [[resume["killed_at"], r["enrolled"], r["skipped"], r["failed"], resume["same_samples"],
              f"{resume['max_vector_diff']:.1e}", resume["ok"]]],
        ))
    if not args.no_save:
        name = "enrol-batch" + (f"-lfw{args.limit}" if args.limit else "-lfw")
        print(f"saved {save(name, {'photos': n, 'model': args.model, 'batch_size': args.batch_size, 'runs': results, 'resume': resume})}")
    if not resume["ok"]:
        sys.exit("kill-and-resume: the resumed gallery differs from the uninterrupted one")


if __name__ == "__main__":
    main()
