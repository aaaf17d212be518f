"""Load test of `faceprint serve` on loopback: many concurrent clients mixing identify, enrol,
rename and delete, on one SQLite server and on two server processes sharing one PostgreSQL gallery.

    .venv/bin/python benchmarks/bench_service.py --clients 32 --seconds 60 [--backends sqlite,pg2]

Each run starts real servers on a fresh gallery (5 celebrities enrolled). Each client loops:
identify a validation photo; or (enrol-share of the time) enrol a training photo made unique by a
random trailer after the JPEG end (decoders ignore it; the duplicate check does not); or create a
person of its own, rename one, delete one (rename-share, delete-share). With ``pg2`` the clients
alternate between the two processes, so reads follow writes made by the other. Reports throughput,
p50/p99 latency per kind, status codes (5xx must be 0), peak server memory, and checks afterwards
that every acknowledged enrolment (201) is stored on the person it was acknowledged for, that no
deleted person came back, and that no sample lacks its descriptor. PostgreSQL comes from the
pgserver wheel (or FACEPRINT_TEST_PG_URL). Saves benchmarks/results/service-load-<machine>.json.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_root, machine, postgres_database, save, table  # noqa: E402

from faceprint import Gallery  # noqa: E402
from faceprint.service.testing import running_server  # noqa: E402

PEOPLE = ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]


def rss(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    return float(re.search(r"^process_resident_memory_bytes (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]


def load(urls: list[str], db: Path | str, args: argparse.Namespace) -> dict:
    """The mixed load against ``urls`` (servers on gallery ``db``), then the gallery checked."""
    celeb = data_root() / "5-celebrity-faces"
    train = {p: sorted((celeb / "train" / p).glob("*.jpg")) for p in PEOPLE}
    probes = [f for p in PEOPLE for f in sorted((celeb / "val" / p).glob("*.jpg"))]
    admins = [httpx.Client(base_url=u, timeout=300) for u in urls]
    ids = {}
    for p in PEOPLE:
        ids[p] = admins[0].post("/v1/people", json={"name": p}).json()["id"]
        assert admins[0].post(f"/v1/people/{ids[p]}/faces", files={"image": train[p][0].read_bytes()}).status_code == 201
    latencies: dict[str, list[float]] = defaultdict(list)
    codes: Counter[tuple[str, int]] = Counter()
    acked: dict[int, int] = {}  # sample id -> person id
    deleted: set[int] = set()
    lock = threading.Lock()
    stop = time.monotonic() + args.seconds
    peak = [sum(rss(a) for a in admins)]
    baseline = peak[0]

    def client(seed: int) -> None:
        rnd = random.Random(seed)
        own: list[int] = []  # people this client created (the only ones it renames or deletes)
        with httpx.Client(base_url=urls[seed % len(urls)], timeout=300) as c:
            while time.monotonic() < stop:
                x = rnd.random()
                t = time.perf_counter()
                if x < args.enrol_share:
                    kind, person = "enrol", rnd.choice(PEOPLE + [f"own{i}" for i in range(len(own))])
                    pid = ids[person] if person in ids else own[int(person[3:])]
                    raw = rnd.choice(train[rnd.choice(PEOPLE)]).read_bytes() + os.urandom(16)
                    r = c.post(f"/v1/people/{pid}/faces", files={"image": raw})
                elif x < args.enrol_share + args.rename_share:
                    if not own:
                        kind, pid = "create", 0
                        r = c.post("/v1/people", json={"name": f"c{seed}-{rnd.randrange(10**9)}"})
                        if r.status_code == 201:
                            own.append(r.json()["id"])
                    else:
                        kind, pid = "rename", rnd.choice(own)
                        r = c.patch(f"/v1/people/{pid}", json={"name": f"c{seed}-{rnd.randrange(10**9)}"})
                elif x < args.enrol_share + args.rename_share + args.delete_share and own:
                    kind, pid = "delete", own.pop(rnd.randrange(len(own)))
                    r = c.delete(f"/v1/people/{pid}")
                else:
                    kind, pid = "identify", 0
                    r = c.post("/v1/identify", files={"image": rnd.choice(probes).read_bytes()})
                dt = time.perf_counter() - t
                with lock:
                    latencies[kind].append(dt)
                    codes[(kind, r.status_code)] += 1
                    if kind == "enrol" and r.status_code == 201:
                        acked[r.json()["id"]] = pid
                    if kind == "delete" and r.status_code == 200:
                        deleted.add(pid)

    def watch() -> None:
        while time.monotonic() < stop:
            peak[0] = max(peak[0], sum(rss(a) for a in admins))
            time.sleep(1.0)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    threads.append(threading.Thread(target=watch))
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for a in admins:
        a.close()
    with Gallery(db) as g:
        integrity = g.check()
        owner = {s.id: s.person for s in g.samples()}
        names = g.person_ids()
    misplaced = sum(
        (sid in owner) if pid in deleted else owner.get(sid) != names.get(pid) for sid, pid in acked.items()
    )
    total = sum(codes.values())
    return {
        "servers": len(urls), "clients": args.clients, "seconds": round(wall, 1), "requests": total,
        "requests_per_s": round(total / wall, 2),
        "status": {f"{k} {s}": n for (k, s), n in sorted(codes.items())},
        "server_errors": sum(n for (_, s), n in codes.items() if s >= 500),
        "latency_s": {
            k: {"n": len(v), "p50": round(float(np.percentile(v, 50)), 3), "p99": round(float(np.percentile(v, 99)), 3)}
            for k, v in sorted(latencies.items())
        },
        "enrolments_acknowledged": len(acked), "enrolments_misplaced_or_lost": int(misplaced),
        "deleted_people": len(deleted), "deleted_people_back": len(deleted & set(names)), "integrity": integrity,
        "server_rss_mb": {"before": round(baseline / 2**20), "peak": round(peak[0] / 2**20)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--enrol-share", type=float, default=0.2)
    ap.add_argument("--rename-share", type=float, default=0.05)
    ap.add_argument("--delete-share", type=float, default=0.03)
    ap.add_argument("--backends", default="sqlite,sqlite2,pg2",
                    help="sqlite: one server; sqlite2: two servers on one file; pg2: two servers on one PostgreSQL")
    ap.add_argument("--threads", type=int, default=None, help="FACEPRINT_THREADS of each server (default: one per core)")
    args = ap.parse_args()
    env = {"FACEPRINT_THREADS": str(args.threads)} if args.threads else {}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                db: Path | str = Path(tmp) / "load.db"
                with running_server(db, env) as url:
                    results[backend] = load([url], db, args)
            elif backend == "sqlite2":  # two server processes on one SQLite file (issue 14, Must show 2)
                db = Path(tmp) / "load2.db"
                Gallery(db).close()
                shared = {**env, "FACEPRINT_PHOTOS": str(Path(tmp) / "sqlite2-photos")}
                with running_server(db, shared) as a, running_server(db, shared) as b:
                    results[backend] = load([a, b], db, args)
            elif backend == "pg2":
                with postgres_database(f"fp_load_{os.getpid()}") as (db, _):
                    Gallery(db).close()  # created once, before two servers race to create it
                    shared = {**env, "FACEPRINT_PHOTOS": str(Path(tmp) / "pg-photos")}
                    with running_server(db, shared) as a, running_server(db, shared) as b:
                        results[backend] = load([a, b], db, args)
            else:
                raise SystemExit(f"unknown backend {backend!r}: sqlite, sqlite2 or pg2")
    rows = []
    for name, r in results.items():
        lat = r["latency_s"]
        rows.append([
            {"sqlite": "1 process, SQLite", "sqlite2": "2 processes, one SQLite file",
             "pg2": "2 processes, one PostgreSQL"}[name], r["requests_per_s"],
            r["server_errors"], f"{lat['identify']['p50']:.2f} / {lat['identify']['p99']:.2f}",
            f"{lat.get('enrol', {}).get('p50', 0):.2f} / {lat.get('enrol', {}).get('p99', 0):.2f}",
            r["enrolments_acknowledged"], r["enrolments_misplaced_or_lost"], r["deleted_people_back"], r["integrity"],
            f"{r['server_rss_mb']['before']} -> {r['server_rss_mb']['peak']}",
        ])  # fmt: skip
    print(table(["servers", "req/s", "5xx", "identify p50/p99 s", "enrol p50/p99 s", "enrols acked", "lost or misplaced",
                 "deleted back", "integrity", "RSS MiB (all servers)"], rows))  # fmt: skip
    print(f"saved {save('service-load', {'clients': args.clients, 'seconds': args.seconds, 'runs': results, 'machine': machine()})}")
    bad = [r for r in results.values() if r["server_errors"] or r["enrolments_misplaced_or_lost"] or r["deleted_people_back"]
           or r["integrity"] != "ok"]  # fmt: skip
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
