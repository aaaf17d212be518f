"""Server-side streams soak (issue 16): N video streams watched at once by one service process.

    .venv/bin/python benchmarks/bench_streams.py [--streams 4] [--duration 600] [--fps 0] [--sample-every 60]

The service runs in this process (uvicorn in a thread, the app from ``create_app``), so that its
resident memory and open file descriptors (/proc/self/fd) can be sampled; one client follows
GET /v1/events all along. Each stream plays a 60 s clip (the tests' door scene from LFW photos,
looped: two enrolled people and a stranger) uncapped unless ``--fps``; a stream that reaches the
end of its file is deleted and started again, so captures are opened and released all along.
Prints per-stream fps (frames processed over wall time), and each ``--sample-every`` seconds RSS,
open file descriptors and threads; leaks show as a drift across samples. Saves
benchmarks/results/streams-<N>x<fps>-<machine>.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_root, machine, save, table  # noqa: E402

from faceprint import FacePipeline, Gallery  # noqa: E402
from faceprint.service import Settings, create_app  # noqa: E402
from faceprint.service.testing import EventReader, free_port  # noqa: E402
from faceprint.video.scene import door_scene, lfw_photo, render_scene  # noqa: E402

ENROLLED = ("Colin_Powell", "Tony_Blair")
FPS, LOOPS = 10.0, 8  # the 7.5 s scene 8 times: a 60 s clip


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def write_clip(path: Path) -> Path:
    actors, background = door_scene(data_root(), (480, 360))
    frames = list(render_scene(actors, background, fps=FPS, duration=7.5))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (480, 360))
    for _ in range(LOOPS):
        for rgb in frames:
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds")
    ap.add_argument("--fps", type=float, default=0.0, help="per-stream cap (0: as fast as it goes)")
    ap.add_argument("--sample-every", type=float, default=60.0, help="seconds between RSS/fd samples")
    args = ap.parse_args()

    import uvicorn

    from faceprint.service.middleware import GuardedH11Protocol

    work = Path(tempfile.mkdtemp(prefix="fp-bench-streams-"))
    clip = write_clip(work / "clip.avi")
    db = work / "gallery.db"
    with Gallery(db, pipeline=FacePipeline()) as g:
        g.enrol([(p, lfw_photo(data_root(), p, i)) for p in ENROLLED for i in (1, 2)])
    port = free_port()
    settings = Settings(db=db, port=port, max_streams=args.streams)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           http=GuardedH11Protocol, timeout_graceful_shutdown=5))
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    base = f"http://127.0.0.1:{port}"
    c = httpx.Client(base_url=base, timeout=120)
    while True:
        try:
            if c.get("/healthz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    events = EventReader(base)

    time.sleep(0.5)

    body = {"source": str(clip), **({"fps": args.fps} if args.fps > 0 else {})}
    slots = [{"id": None, "frames": 0, "restarts": 0, "errors": []} for _ in range(args.streams)]

    def start(i: int) -> None:
        r = c.post("/v1/streams", json={**body, "name": f"cam{i + 1}"})
        r.raise_for_status()
        slots[i]["id"] = r.json()["id"]

    samples = []

    def sample(t: float, streams: list[dict]) -> None:
        s = {"t": round(t, 1), "rss_mb": round(rss_mb(), 1), "fds": open_fds(), "threads": threading.active_count(),
             "fps": [s["fps"] for s in streams], "events": sum(events.counts.values())}
        samples.append(s)
        print(f"t={s['t']:6.0f} s  rss {s['rss_mb']:7.1f} MB  fds {s['fds']:4d}  threads {s['threads']:3d}  "
              f"fps {' '.join(f'{f:5.1f}' for f in s['fps'])}  events {s['events']}", flush=True)

    fds_before = open_fds()
    for i in range(len(slots)):
        start(i)
    t0 = time.monotonic()
    next_sample = 0.0
    while True:
        now = time.monotonic() - t0
        listed = {s["id"]: s for s in c.get("/v1/streams").json()["streams"]}
        for i, slot in enumerate(slots):
            info = listed.get(slot["id"])
            if info is not None and info["status"] in ("ended", "failed"):
                slot["frames"] += info["frames"]
                if info["status"] == "failed":
                    slot["errors"].append(info["error"])
                c.delete(f"/v1/streams/{slot['id']}").raise_for_status()
                if now < args.duration:
                    slot["restarts"] += 1
                    start(i)
        if now >= next_sample:
            sample(now, [listed[s["id"]] for s in slots if s["id"] in listed])
            next_sample += args.sample_every
        if now >= args.duration:
            break
        time.sleep(0.5)
    wall = time.monotonic() - t0
    for slot in slots:
        info = c.get(f"/v1/streams/{slot['id']}")
        if info.status_code == 200:
            slot["frames"] += info.json()["frames"]
            c.delete(f"/v1/streams/{slot['id']}")
    time.sleep(1.0)
    fds_after = open_fds()
    final = c.get("/v1/streams").json()
    sample(wall, [])
    events.close()
    c.close()
    server.should_exit = True
    serving.join(30)

    rows = [[f"cam{i + 1}", s["frames"], s["frames"] / wall, s["restarts"], len(s["errors"])]
            for i, s in enumerate(slots)]
    print()
    print(f"{args.streams} streams, {wall:.0f} s, cap {args.fps or 'none'} fps, {os.cpu_count()} CPUs")
    print(table(["stream", "frames", "fps", "restarts", "errors"], rows))
    print(f"total {sum(s['frames'] for s in slots) / wall:.1f} frames/s; events {events.counts}; "
          f"dropped for the client {events.dropped} (server count {final['events_dropped']})")
    print(f"open fds: {fds_before} before the streams, {fds_after} after they were all deleted; "
          f"RSS {samples[0]['rss_mb']:.0f} -> {samples[-1]['rss_mb']:.0f} MB")
    payload = {
        "streams": args.streams, "duration_s": round(wall, 1), "fps_cap": args.fps or None, "machine": machine(),
        "clip": {"seconds": 7.5 * LOOPS, "fps": FPS, "size": [480, 360]},
        "per_stream": [{"name": r[0], "frames": r[1], "fps": round(r[2], 2), "restarts": r[3],
                        "errors": slots[i]["errors"]} for i, r in enumerate(rows)],
        "total_fps": round(sum(s["frames"] for s in slots) / wall, 2),
        "events": events.counts, "events_dropped": final["events_dropped"],
        "fds_before": fds_before, "fds_after": fds_after, "samples": samples,
    }
    cap = f"{args.fps:g}fps" if args.fps else "uncapped"
    print(f"saved {save(f'streams-{args.streams}x{cap}-{int(args.duration)}s', payload)}")


if __name__ == "__main__":
    main()
