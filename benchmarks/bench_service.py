"""Load test of `faceprint serve` on loopback: many concurrent clients mixing identify and enrol.

    .venv/bin/python benchmarks/bench_service.py --clients 32 --seconds 60 --enrol-share 0.2

Starts a real server on a fresh gallery (5 celebrities enrolled), then each client loops: identify a
validation photo, or (enrol-share of the time) enrol a training photo made unique by a random
trailer after the JPEG end (decoders ignore it; the gallery's duplicate check does not). Reports
throughput, p50/p99 latency per kind, status codes (5xx must be 0), peak server memory (RSS from
/metrics), and checks that the gallery then holds exactly the samples whose enrolment was
acknowledged (201). Saves benchmarks/results/service-load-<machine>.json.
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
from common import data_root, machine, save  # noqa: E402

from faceprint.service.testing import running_server  # noqa: E402

PEOPLE = ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]


def rss(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    return float(re.search(r"^process_resident_memory_bytes (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--enrol-share", type=float, default=0.2)
    args = ap.parse_args()
    celeb = data_root() / "5-celebrity-faces"
    train = {p: sorted((celeb / "train" / p).glob("*.jpg")) for p in PEOPLE}
    probes = [f for p in PEOPLE for f in sorted((celeb / "val" / p).glob("*.jpg"))]
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "load.db") as url:
        admin = httpx.Client(base_url=url, timeout=300)
        ids = {}
        for p in PEOPLE:
            ids[p] = admin.post("/v1/people", json={"name": p}).json()["id"]
            assert admin.post(f"/v1/people/{ids[p]}/faces", files={"image": train[p][0].read_bytes()}).status_code == 201
        start_samples = admin.get("/healthz").json()["samples"]
        latencies: dict[str, list[float]] = defaultdict(list)
        codes: Counter[tuple[str, int]] = Counter()
        acked = [0]
        lock = threading.Lock()
        stop = time.monotonic() + args.seconds
        peak = [rss(admin)]
        baseline = peak[0]

        def client(seed: int) -> None:
            rnd = random.Random(seed)
            with httpx.Client(base_url=url, timeout=300) as c:
                while time.monotonic() < stop:
                    if rnd.random() < args.enrol_share:
                        kind, person = "enrol", rnd.choice(PEOPLE)
                        raw = rnd.choice(train[person]).read_bytes() + os.urandom(16)
                        t = time.perf_counter()
                        r = c.post(f"/v1/people/{ids[person]}/faces", files={"image": raw})
                    else:
                        kind = "identify"
                        t = time.perf_counter()
                        r = c.post("/v1/identify", files={"image": rnd.choice(probes).read_bytes()})
                    dt = time.perf_counter() - t
                    with lock:
                        latencies[kind].append(dt)
                        codes[(kind, r.status_code)] += 1
                        acked[0] += kind == "enrol" and r.status_code == 201

        def watch() -> None:
            while time.monotonic() < stop:
                peak[0] = max(peak[0], rss(admin))
                time.sleep(1.0)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        threads.append(threading.Thread(target=watch))
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        end_samples = admin.get("/healthz").json()["samples"]
        admin.close()
    total = sum(codes.values())
    result = {
        "clients": args.clients, "seconds": round(wall, 1), "enrol_share": args.enrol_share,
        "requests": total, "requests_per_s": round(total / wall, 2),
        "status": {f"{k} {s}": n for (k, s), n in sorted(codes.items())},
        "server_errors": sum(n for (_, s), n in codes.items() if s >= 500),
        "latency_s": {
            k: {"n": len(v), "p50": round(float(np.percentile(v, 50)), 3), "p99": round(float(np.percentile(v, 99)), 3)}
            for k, v in sorted(latencies.items())
        },
        "enrolments_acknowledged": acked[0],
        "gallery_samples_added": end_samples - start_samples,
        "gallery_matches_acks": end_samples - start_samples == acked[0],
        "server_rss_mb": {"before": round(baseline / 2**20), "peak": round(peak[0] / 2**20)},
        "machine": machine(),
    }
    print(f"{total} requests in {wall:.0f} s with {args.clients} clients: {total / wall:.2f} req/s; "
          f"5xx: {result['server_errors']}")
    for k, v in result["latency_s"].items():
        print(f"  {k:9s} n={v['n']:5d}  p50 {v['p50']:.2f} s  p99 {v['p99']:.2f} s")
    print(f"  enrolments acknowledged {acked[0]}, samples added {end_samples - start_samples}; "
          f"server RSS {result['server_rss_mb']['before']} -> peak {result['server_rss_mb']['peak']} MiB")
    print(f"saved {save('service-load', result)}")
    if result["server_errors"] or not result["gallery_matches_acks"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
