"""Slow clients against `faceprint serve`: do idle, trickling sockets (slowloris) hurt everyone else?

    .venv/bin/python benchmarks/bench_slow_clients.py [--slow 300] [--clients 8] [--seconds 30]

One real server (FACEPRINT_THREADS=1) on a small gallery (5 celebrities, one photo each). Each
scenario runs ``--clients`` normal clients from 127.0.0.1 that identify validation photos for
``--seconds``: first alone, then beside ``--slow`` slow sockets that each send a request line and
then one header line every 2 s, never finishing their head (reconnecting, on the same 2 s beat,
whenever the server hangs up), from one other address (127.0.0.2), then from 30 addresses (the
per-address limit no longer applies; only the head deadline and the request-only limit do).
Prints the normal clients' p50/p99 latency and 503 count per scenario, and what became of the
slow sockets; target: p99 within 2x of the figure without slow sockets, and no 503.
Saves benchmarks/results/slow-clients-<machine>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_root, machine, save, table  # noqa: E402

from faceprint.service.testing import running_server  # noqa: E402

PEOPLE = ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]
BEAT_S = 2.0  # a slow socket's header line, or reconnection, every this many seconds
SAMPLE_S = 0.5  # how often the open slow sockets are counted


class SlowSockets:
    """``n`` slowloris sockets spread over loopback ``addresses``, run on an event loop in a thread."""

    def __init__(self, url: str, n: int, addresses: list[str]) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.n, self.addresses = parts.hostname, parts.port, n, addresses
        self.open = 0
        self.events: Counter[str] = Counter()  # connected, refused (an answer at once), cut (hung up later)
        self.open_samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> SlowSockets:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    async def _main(self) -> None:
        tasks = [asyncio.create_task(self._one(i)) for i in range(self.n)]
        while not self._stop.is_set():
            self.open_samples.append(self.open)
            await asyncio.sleep(SAMPLE_S)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, i: int) -> None:
        await asyncio.sleep(BEAT_S * i / self.n)  # spread the beats
        while True:
            try:
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, local_addr=(self.addresses[i % len(self.addresses)], 0)
                )
            except OSError:
                self.events["connect_failed"] += 1
                await asyncio.sleep(BEAT_S)
                continue
            self.events["connected"] += 1
            self.open += 1
            lines = 0
            try:
                writer.write(f"GET /healthz HTTP/1.1\r\nHost: {self.host}\r\n".encode())
                while True:
                    try:  # the server answers (408, 503) or hangs up: this socket is done
                        answer = await asyncio.wait_for(reader.read(4096), BEAT_S)
                    except asyncio.TimeoutError:
                        writer.write(f"X-Slow-{lines}: {'a' * 20}\r\n".encode())
                        lines += 1
                        continue
                    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "closed"
                    self.events[f"{'refused' if lines == 0 else 'cut'} ({status})"] += 1
                    break
            except (OSError, asyncio.IncompleteReadError):
                self.events["reset"] += 1
            finally:
                self.open -= 1
                writer.close()
            await asyncio.sleep(BEAT_S)


def normal_clients(url: str, n: int, seconds: float, probes: list[bytes]) -> dict:
    """``n`` clients identifying photos back to back for ``seconds``: latency and status counts."""
    latencies: list[float] = []
    codes: Counter[int | str] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(seed: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            i = seed
            while time.monotonic() < stop:
                t = time.perf_counter()
                try:
                    code: int | str = c.post("/v1/identify", files={"image": probes[i % len(probes)]}).status_code
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                dt = time.perf_counter() - t
                with lock:
                    latencies.append(dt)
                    codes[code] += 1
                i += n

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "requests": len(latencies), "p50_s": round(float(np.percentile(latencies, 50)), 3),
        "p99_s": round(float(np.percentile(latencies, 99)), 3), "status": {str(k): v for k, v in codes.items()},
        "n503": codes[503], "errors": sum(v for k, v in codes.items() if k != 200),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slow", type=int, default=300, help="slow sockets")
    ap.add_argument("--clients", type=int, default=8, help="normal clients")
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds of load per scenario")
    args = ap.parse_args()

    celeb = data_root() / "5-celebrity-faces"
    probes = [f.read_bytes() for p in PEOPLE for f in sorted((celeb / "val" / p).glob("*.jpg"))[:2]]
    scenarios = [("alone", []), (f"+{args.slow} slow, 1 address", ["127.0.0.2"]),
                 (f"+{args.slow} slow, 30 addresses", [f"127.0.1.{i}" for i in range(1, 31)])]
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "gallery.db", {"FACEPRINT_THREADS": "1"}) as url:
        with httpx.Client(base_url=url, timeout=300) as admin:
            for p in PEOPLE:
                pid = admin.post("/v1/people", json={"name": p}).json()["id"]
                photo = sorted((celeb / "train" / p).glob("*.jpg"))[0]
                assert admin.post(f"/v1/people/{pid}/faces", files={"image": photo.read_bytes()}).status_code == 201
        normal_clients(url, args.clients, 3.0, probes)  # warm up
        for name, addresses in scenarios:
            if not addresses:
                out = normal_clients(url, args.clients, args.seconds, probes)
            else:
                with SlowSockets(url, args.slow, addresses) as slow:
                    time.sleep(BEAT_S * 2)  # all of them connected and trickling
                    out = normal_clients(url, args.clients, args.seconds, probes)
                samples = slow.open_samples[int(BEAT_S * 2 / SAMPLE_S):] or [0]  # once they were all trickling
                out["slow_open_mean"] = round(float(np.mean(samples)), 1)
                out["slow_events"] = dict(slow.events)
            results[name] = out
            print(f"{name}: {out}", flush=True)
            rows.append([name, out["requests"], out["p50_s"], out["p99_s"], out["n503"], out["errors"] - out["n503"],
                         out.get("slow_open_mean", "-")])
    base = results["alone"]["p99_s"]
    ok = all(r["n503"] == 0 and r["p99_s"] <= 2 * base for r in results.values())
    print()
    print(table(["scenario", "requests", "p50 s", "p99 s", "503s", "other errors", "slow sockets open (mean)"], rows))
    print(f"\ntarget (p99 within 2x of {base:.3f} s, no 503): {'met' if ok else 'NOT met'}")
    payload = {"slow": args.slow, "clients": args.clients, "seconds": args.seconds, "results": results,
               "target_met": ok, "machine": machine()}
    print(f"saved {save('slow-clients', payload)}")


if __name__ == "__main__":
    main()
