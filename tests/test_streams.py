"""Server-side streams (issue 16) against a real `faceprint serve` on loopback: a video file and an
HTTP Motion-JPEG stream made from LFW photos, a gallery of three enrolled people, the events as
Server-Sent Events, the annotated preview, and stopping.

The clip (480x360, 10 fps, 9 s, flat grey between the faces): Colin Powell 0-1.5 s, nobody, Tony
Blair 3-4.5 s, nobody, a stranger (Ariel Sharon) 6-7.5 s, nobody. The photos in the clip are not
the enrolled ones.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

httpx = pytest.importorskip("httpx", reason="the service's test extra is not installed: pip install -e '.[test]'")
pytest.importorskip("fastapi", reason="the service extra is not installed: pip install -e '.[service]'")

from faceprint.service.testing import EventReader as _EventReader  # noqa: E402
from faceprint.service.testing import running_server  # noqa: E402
from faceprint.video.greeter import find_speech_engine  # noqa: E402
from faceprint.video.scene import Actor, lfw_photo, render_scene  # noqa: E402

pytestmark = pytest.mark.slow

READ, ADMIN = "read-key-s", "admin-key-s"
FPS, DURATION, SIZE = 10.0, 9.0, (480, 360)
ENROLLED = ("Colin_Powell", "Tony_Blair", "George_W_Bush")
EXPECTED = [("Colin_Powell", 0.0), ("Tony_Blair", 3.0), (None, 6.0)]  # (name, arrival); None: the stranger
MAX_STREAMS = 2


def clip_actors(data_dir: Path) -> list[Actor]:
    size = (150.0, 150.0)
    return [
        Actor(lfw_photo(data_dir, "Colin_Powell", 10), "Colin_Powell", 0.0, 1.5, (0.35, 0.5), (0.38, 0.5), size),
        Actor(lfw_photo(data_dir, "Tony_Blair", 10), "Tony_Blair", 3.0, 4.5, (0.6, 0.5), (0.57, 0.5), size),
        Actor(lfw_photo(data_dir, "Ariel_Sharon", 1), "stranger", 6.0, 7.5, (0.45, 0.45), (0.5, 0.5), size),
    ]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, list[bytes]]:
    """The clip as a Motion-JPEG .avi written with cv2.VideoWriter, and as JPEG frames (for the HTTP stream)."""
    out = tmp_path_factory.mktemp("clip") / "clip.avi"
    grey = np.full((SIZE[1], SIZE[0], 3), 128, np.uint8)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    assert writer.isOpened()
    jpegs = []
    for rgb in render_scene(clip_actors(data_dir), grey, fps=FPS, duration=DURATION):
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        writer.write(bgr)
        jpegs.append(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    writer.release()
    assert len(jpegs) == int(FPS * DURATION)
    return out, jpegs


GREETINGS: dict[str, Path] = {}  # where the server writes its greetings (when espeak-ng is installed)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> str:
    db = tmp_path_factory.mktemp("streams") / "gallery.db"
    env = {"FACEPRINT_API_KEY": READ, "FACEPRINT_ADMIN_KEY": ADMIN, "FACEPRINT_MAX_STREAMS": str(MAX_STREAMS)}
    if find_speech_engine():  # faceprint serve --greet-to: the greetings of every stream as WAV files
        env |= {"FACEPRINT_GREET_TEMPLATE": "Welcome, {name}", "FACEPRINT_GREET_TO": str(GREETINGS.setdefault("to", db.with_name("hello.wav")))}
    with running_server(db, env) as url:
        with httpx.Client(base_url=url, headers={"X-API-Key": ADMIN}, timeout=120) as c:
            for name in ENROLLED:
                pid = c.post("/v1/people", json={"name": name}).json()["id"]
                for i in (1, 2):
                    r = c.post(f"/v1/people/{pid}/faces", files={"image": lfw_photo(data_dir, name, i).read_bytes()})
                    assert r.status_code == 201, r.text
        yield url


@pytest.fixture
def client(server: str) -> httpx.Client:
    with httpx.Client(base_url=server, headers={"X-API-Key": ADMIN}, timeout=120) as c:
        yield c
        for s in c.get("/v1/streams").json()["streams"]:  # a failed test leaves none running for the next
            c.delete(f"/v1/streams/{s['id']}")


def EventReader(base: str, key: str = READ) -> _EventReader:  # noqa: N802
    """GET /v1/events with the read key, connected before any stream starts."""
    return _EventReader(base, key)


def wait_for(client: httpx.Client, stream_id: int, statuses: set[str], timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = client.get(f"/v1/streams/{stream_id}").json()
        if info["status"] in statuses:
            return info
        assert time.monotonic() < deadline, f"stream still {info['status']}: {info}"
        time.sleep(0.25)


def wait_events(reader: _EventReader, stream_id: int, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(reader.of(stream_id)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return reader.of(stream_id)


def check_events(records: list[dict[str, Any]], stream_id: int, name: str, *, timed: bool) -> None:
    """Three arrivals in order, named right (the stranger as unknown), each leaving; the wire shape."""
    for r in records:
        assert r["stream"] == stream_id and r["stream_name"] == name
        assert set(r) == {"seq", "stream", "stream_name", "kind", "track", "name", "unknown", "decided", "distance",
                          "time", "frame", "box", "at"}
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)
    appear = [r for r in records if r["kind"] == "appear"]
    assert len(appear) == 3 and len({r["track"] for r in appear}) == 3, records
    decided = {}
    for r in records:
        if r["kind"] == "recognised":
            decided.setdefault(r["track"], r)  # the first decision of each track
    names = [decided[r["track"]]["name"] for r in appear]
    assert names == [n for n, _ in EXPECTED], records
    assert [decided[r["track"]]["unknown"] for r in appear] == [False, False, True]
    for r in appear:
        assert decided[r["track"]]["distance"] is not None and decided[r["track"]]["decided"]
    left = {r["track"] for r in records if r["kind"] == "leave"}
    assert left == {r["track"] for r in appear}
    if timed:  # a file's events carry video time: arrivals where the clip puts them
        for r, (_, t) in zip(appear, EXPECTED):
            assert t - 0.05 <= r["time"] <= t + 1.0, (r, t)


# -- a video file -------------------------------------------------------------------------------------
def test_file_stream_events_name_the_right_people_in_order(client: httpx.Client, server: str,
                                                           clip: tuple[Path, list[bytes]]) -> None:
    path, frames = clip
    reader = EventReader(server)
    try:
        assert reader.content_type.startswith("text/event-stream")
        r = client.post("/v1/streams", json={"source": str(path), "name": "door-file"})
        assert r.status_code == 201, r.text
        info = r.json()
        sid = info["id"]
        assert info["name"] == "door-file" and info["source"] == str(path) and info["live"] is False
        assert info["status"] in ("starting", "running", "ended") and (info["width"], info["height"]) == SIZE
        assert info["preview_url"] == f"/v1/streams/{sid}/preview"
        done = wait_for(client, sid, {"ended", "failed"})
        assert done["status"] == "ended" and done["error"] is None, done
        assert done["frames"] == len(frames) and done["faces_seen"] == 3 and done["ended"] >= done["started"]
        assert done["fps"] > 0
        records = wait_events(reader, sid, done["events"])
        assert len(records) == done["events"]
    finally:
        reader.close()
    check_events(records, sid, "door-file", timed=True)
    listed = client.get("/v1/streams", headers={"X-API-Key": READ}).json()
    assert listed["max_streams"] == MAX_STREAMS and [s["id"] for s in listed["streams"]] == [sid]
    # known people's recognised/leave events are stored as sightings under the stream's name
    if "/v1/sightings" in client.get("/openapi.json").json()["paths"]:
        seen = client.get("/v1/sightings", params={"limit": 1000}).json()["sightings"]
        mine = {(s["person"], s["event"]) for s in seen if s["stream"] == "door-file"}
        assert mine == {(p, e) for p in ("Colin_Powell", "Tony_Blair") for e in ("recognised", "left")}, seen
    if "to" in GREETINGS:  # faceprint serve --greet-to: each known person once (the cooldown), no stranger
        deadline = time.monotonic() + 15  # espeak-ng writes them on the greeter's own thread
        while len(wavs := sorted(GREETINGS["to"].parent.glob("hello-*.wav"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [w.name for w in wavs] == ["hello-0001.wav", "hello-0002.wav"] and all(w.stat().st_size > 10_000 for w in wavs)
    gone = client.delete(f"/v1/streams/{sid}")
    assert gone.status_code == 200 and gone.json()["id"] == sid and gone.json()["status"] == "ended"
    assert client.get("/v1/streams").json()["streams"] == []
    r = client.get(f"/v1/streams/{sid}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "stream_not_found"


# -- an HTTP Motion-JPEG stream -----------------------------------------------------------------------
class MjpegServer:
    """The clip at 10 fps as multipart/x-mixed-replace on loopback, once: later requests get 404
    (the camera is gone), so the stream has to reopen."""

    def __init__(self, frames: list[bytes]) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.requests += 1
                if outer.requests > 1:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=camframe")
                self.end_headers()
                try:
                    for jpeg in frames:
                        self.wfile.write(b"--camframe\r\nContent-Type: image/jpeg\r\n"
                                         + f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                        self.wfile.flush()
                        time.sleep(1 / FPS)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cam.mjpg"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_http_mjpeg_stream_events_reopen_and_delete(client: httpx.Client, server: str,
                                                     clip: tuple[Path, list[bytes]]) -> None:
    cam = MjpegServer(clip[1])
    reader = EventReader(server)
    try:
        secret = cam.url.replace("http://", "http://viewer:s3cret@")  # a password in the URL is never shown
        r = client.post("/v1/streams", json={"source": secret, "name": "cam"})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        assert r.json()["live"] is True and "s3cret" not in r.json()["source"]
        # the camera's stream ends after the clip: the stream tries to reopen it (404), with back-off
        info = wait_for(client, sid, {"reopening", "failed"})
        assert info["status"] == "reopening" and "s3cret" not in json.dumps(info), info
        assert info["frames"] >= len(clip[1]) - 5  # a live reader may miss the odd frame, never most
        records = wait_events(reader, sid, info["events"])
        t0 = time.monotonic()
        gone = client.delete(f"/v1/streams/{sid}")  # while it waits to retry: stops at once
        assert gone.status_code == 200 and gone.json()["status"] == "stopped", gone.text
        assert time.monotonic() - t0 < 10
        assert all(s["id"] != sid for s in client.get("/v1/streams").json()["streams"])
    finally:
        reader.close()
        cam.close()
    check_events(records, sid, "cam", timed=False)
    assert cam.requests >= 2


# -- the preview ----------------------------------------------------------------------------------------
def read_parts(response: Any, limit: int) -> list[bytes]:
    """The JPEG parts of a multipart/x-mixed-replace answer (by their Content-Length), up to ``limit``."""
    buf, parts = b"", []
    stream = response.iter_bytes()
    while len(parts) < limit:
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            try:
                buf += next(stream)
            except StopIteration:
                break
            continue
        head = buf[:head_end].decode("latin-1")
        assert head.startswith("--frame") and "image/jpeg" in head, head
        length = int(head.split("Content-Length:")[1].split("\r\n")[0])
        while len(buf) < head_end + 4 + length + 2:
            buf += next(stream)
        parts.append(buf[head_end + 4: head_end + 4 + length])
        buf = buf[head_end + 4 + length + 2:]
    return parts


def drawn(bgr: np.ndarray) -> int:
    """Pixels in the colours of the boxes (known green, unknown red, undecided amber): none on the raw clip."""
    b, g, r = (bgr[..., i].astype(int) for i in range(3))
    green = (g > 140) & (r < 70) & (b < 70)
    red = (r > 170) & (g < 60) & (b < 60)
    amber = (r > 200) & (g > 120) & (g < 210) & (b < 60)
    return int((green | red | amber).sum())


def test_preview_is_mjpeg_of_annotated_frames(client: httpx.Client, clip: tuple[Path, list[bytes]]) -> None:
    path, frames = clip
    raw = [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR) for f in frames]
    assert max(drawn(f) for f in raw) < 20  # the clip itself has none of the boxes' colours
    sid = client.post("/v1/streams", json={"source": str(path), "fps": 20}).json()["id"]
    with client.stream("GET", f"/v1/streams/{sid}/preview", headers={"X-API-Key": READ}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=frame")
        parts = read_parts(r, 1000)  # until the stream ends: then the answer ends too
    images = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR) for p in parts]
    assert len(images) >= 10 and all(im is not None and im.shape == (SIZE[1], SIZE[0], 3) for im in images)
    boxed = [im for im in images if drawn(im) > 200]
    assert len(boxed) >= 3, [drawn(im) for im in images]
    assert client.get(f"/v1/streams/{sid}").json()["status"] == "ended"
    assert client.delete(f"/v1/streams/{sid}").status_code == 200


# -- what is refused ------------------------------------------------------------------------------------
def error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and r.json()["error"]["code"] == code
    return r.json()["error"]["message"]


def test_bad_sources_keys_and_the_stream_limit(client: httpx.Client, tmp_path: Path,
                                               clip: tuple[Path, list[bytes]]) -> None:
    assert "no video file" in error(client.post("/v1/streams", json={"source": str(tmp_path / "none.avi")}),
                                    422, "invalid_source")
    junk = tmp_path / "junk.avi"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    assert "cannot open video" in error(client.post("/v1/streams", json={"source": str(junk)}), 422, "invalid_source")
    error(client.post("/v1/streams", json={"source": "file:///etc/hostname"}), 422, "invalid_source")
    error(client.post("/v1/streams", json={"source": str(clip[0]), "fps": 0}), 422, "invalid_request")
    error(client.post("/v1/streams", json={"source": str(clip[0])}, headers={"X-API-Key": READ}), 403, "forbidden")
    error(client.get("/v1/streams", headers={"X-API-Key": ""}), 401, "unauthorized")
    error(client.get("/v1/events", headers={"X-API-Key": "wrong"}), 401, "unauthorized")
    error(client.delete("/v1/streams/999"), 404, "stream_not_found")
    slow = {"source": str(clip[0]), "fps": 1}  # slowed down: they are still running when the next comes
    ids = [client.post("/v1/streams", json=slow).json()["id"] for _ in range(MAX_STREAMS)]
    assert "FACEPRINT_MAX_STREAMS" in error(client.post("/v1/streams", json=slow), 409, "too_many_streams")
    for sid in ids:
        assert client.delete(f"/v1/streams/{sid}").json()["status"] == "stopped"
    assert client.get("/v1/streams").json()["streams"] == []


# -- the parts without a server ---------------------------------------------------------------------------
def test_a_slow_event_client_loses_the_oldest_and_is_told_how_many() -> None:
    import asyncio

    from faceprint.service.streams import EventHub, StreamEvent
    from faceprint.video import Event

    async def run() -> tuple[list[dict[str, Any]], int, int]:
        hub = EventHub(queue_size=16)
        sub, other = hub.subscribe(), hub.subscribe(stream=2)

        def publish() -> None:  # as a stream's thread does, while the client reads nothing
            for i in range(100):
                hub.publish(StreamEvent(1, "door", Event("appear", i, i / 10, i, (0, 0, 10, 10)), time.time()))

        t = threading.Thread(target=publish)
        t.start()
        t.join()
        items, dropped = await sub.get(1.0)
        assert (await other.get(0.01)) == ([], 0)  # another stream's client gets none of them
        hub.unsubscribe(sub)
        return items, dropped, hub.dropped

    items, dropped, total = asyncio.run(run())
    assert len(items) == 16 and dropped == total == 84
    assert [r["track"] for r in items] == list(range(84, 100))  # the newest kept, in order


def test_paced_slows_a_file_and_thins_a_live_source() -> None:
    from faceprint.video.source import Frame
    from faceprint.video.watch import paced

    frames = [Frame(i, i / 100, np.zeros((2, 2, 3), np.uint8)) for i in range(10)]
    t0 = time.monotonic()
    assert [f.index for f in paced(frames, 50.0, live=False)] == list(range(10))  # all of them, 20 ms apart
    assert 0.17 <= time.monotonic() - t0 < 2.0
    clock = iter(i / 100 for i in range(10))  # a live source delivering 100 frames a second
    kept = [f.index for f in paced(frames, 25.0, live=True, clock=lambda: next(clock))]
    assert kept == [0, 4, 8]
    stop = threading.Event()
    stop.set()
    assert [f.index for f in paced(frames, 0.5, live=False, stop=stop)] == [0]  # a stop ends the wait at once
