"""Server memory under concurrent uploads of a tiny, huge image (issue 14): the peak RSS of a real
`faceprint serve` while N clients POST the same 25-megapixel 16-bit PNG to /v1/detect at once.

    .venv/bin/python benchmarks/bench_upload_memory.py [--clients 16] [--rounds 3] [--inflight N]

The PNG (6000 x 4166 RGB = 24.996 MP, just within FACEPRINT_MAX_PIXELS' default 25,000,000; 16 bits
a sample; smooth gradients: a few hundred KB) is written to a temporary folder; the server runs
with its defaults. Peak memory
is the server's VmHWM from /proc, reset before each phase (``clear_refs``) so each row is that
phase's own peak; a sampler thread also polls VmRSS every 20 ms (the fallback where the reset is
not allowed). Prints a table; saves benchmarks/results/upload-memory-<machine>.json. Target: under
600 MB at 16 clients.
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save, table  # noqa: E402

import numpy as np  # noqa: E402

MAX_PIXELS = 25_000_000  # the service's default limit
WIDTH, HEIGHT = 6000, MAX_PIXELS // 6000  # 6000 x 4166: the largest 6000-wide image the limit lets in


def write_png16(path: Path, width: int, height: int) -> int:
    """Write a (height, width) RGB PNG with 16 bits a sample, smooth gradients across and down, so
    it is small on disk for its width * height * 6 bytes of samples. Rows are made and compressed
    one at a time: the writer needs a few MB whatever the size. Returns the file's size in bytes."""
    x = np.rint(np.linspace(0, 65535, width)).astype(">u2")
    comp = zlib.compressobj(9)
    chunks = []
    above = np.zeros(width * 6, np.uint8)
    for y in range(height):
        v = round(y / max(1, height - 1) * 65535)
        row = np.frombuffer(np.stack([x, np.full(width, v, ">u2"), x[::-1]], axis=1).tobytes(), np.uint8)
        # PNG filter 2 ("up"): each byte minus the one above, so the smooth rows compress to nearly nothing
        chunks.append(comp.compress(b"\x02" + (row - above).tobytes()))
        above = row
    chunks.append(comp.flush())
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
        + _chunk(b"IDAT", b"".join(chunks))
        + _chunk(b"IEND", b"")
    )
    path.write_bytes(data)
    return len(data)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


class ServerMemory:
    """The server process's memory from /proc: peak (VmHWM, resettable) and a polled VmRSS peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.polled = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    def reset(self) -> bool:
        """Start a new phase: VmHWM back to the current RSS (Linux clear_refs 5), polled peak too."""
        self.polled = self.status("VmRSS")
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.polled = max(self.polled, self.status("VmRSS"))
            except (OSError, KeyError):
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def server_pid() -> int:
    """The pid of the `faceprint serve` this process started (its only child)."""
    import psutil

    children = psutil.Process().children()
    if len(children) != 1:
        raise RuntimeError(f"expected one child process (the server), found {len(children)}")
    return children[0].pid


def burst(url: str, data: bytes, clients: int) -> tuple[Counter, list[float]]:
    """``clients`` threads POST ``data`` to /v1/detect at the same moment: status codes, seconds each."""
    import httpx

    codes: Counter[int] = Counter()
    seconds: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def one() -> None:
        with httpx.Client(base_url=url, timeout=600) as c:
            start.wait()
            t = time.perf_counter()
            r = c.post("/v1/detect", files={"image": ("big.png", data, "image/png")})
            with lock:
                codes[r.status_code] += 1
                seconds.append(time.perf_counter() - t)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--inflight", type=int, default=None, help="FACEPRINT_MAX_INFLIGHT (default: the service's)")
    ap.add_argument("--target-mb", type=float, default=600.0)
    args = ap.parse_args()

    from faceprint.service.testing import running_server

    mb = 1e6
    with tempfile.TemporaryDirectory(prefix="fp-upload-mem-") as tmp:
        png = Path(tmp) / "big16.png"
        size = write_png16(png, WIDTH, HEIGHT)
        data = png.read_bytes()
        print(f"{png.name}: {WIDTH}x{HEIGHT} RGB 16-bit, {size / 1e3:.0f} KB on disk, "
              f"{WIDTH * HEIGHT * 6 / mb:.0f} MB of samples", flush=True)
        env = {"FACEPRINT_MAX_PIXELS": str(MAX_PIXELS)}
        if args.inflight:
            env["FACEPRINT_MAX_INFLIGHT"] = str(args.inflight)
        with running_server(Path(tmp) / "gallery.db", env) as url:
            mem = ServerMemory(server_pid())
            idle = mem.status("VmRSS")
            rows, phases = [], []
            plan = [("1 client", 1)] + [(f"{args.clients} clients, round {r + 1}", args.clients) for r in range(args.rounds)]
            for name, n in plan:
                exact = mem.reset()
                t = time.perf_counter()
                codes, seconds = burst(url, data, n)
                wall = time.perf_counter() - t
                peak = mem.status("VmHWM") if exact else mem.polled
                after = mem.status("VmRSS")
                phases.append({"phase": name, "clients": n, "codes": dict(codes), "wall_s": wall,
                               "max_latency_s": max(seconds), "peak_rss_mb": peak / mb, "rss_after_mb": after / mb,
                               "peak_exact": exact})
                rows.append([name, " ".join(f"{k}x{v}" for k, v in sorted(codes.items())), round(wall, 1),
                             round(max(seconds), 1), round(peak / mb), round(after / mb),
                             "yes" if peak / mb < args.target_mb else "NO"])
                print(f"  {name}: peak {peak / mb:.0f} MB, {dict(codes)}", flush=True)
            mem.close()
    print()
    print(f"server idle RSS after start: {idle / mb:.0f} MB; peak = VmHWM of each phase "
          f"({'exact' if phases[0]['peak_exact'] else 'polled every 20 ms'})")
    print(table(["phase", "status", "wall s", "max latency s", "peak RSS MB", "RSS after MB",
                 f"< {args.target_mb:.0f} MB"], rows))
    out = save("upload-memory", {"image": {"width": WIDTH, "height": HEIGHT, "bits": 16, "bytes": size},
                                  "inflight": args.inflight, "idle_rss_mb": idle / mb, "phases": phases})
    print(f"saved {out}")


if __name__ == "__main__":
    main()
