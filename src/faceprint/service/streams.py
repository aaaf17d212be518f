"""Server-side video streams (issue 16): cameras, files and URLs watched by the service itself.

    StreamManager   the service's streams (at most ``Settings.max_streams``), started and stopped by
                    the routes in ``routes/streams.py``, all stopped with the app
    Stream          one source in a thread of its own: :func:`faceprint.video.watch.watch` over a
                    :class:`~faceprint.video.VideoSource`, its status, statistics and latest frame
    EventHub        every stream's events to every ``GET /v1/events`` client, each through a
                    bounded queue (a client that reads too slowly loses the oldest, counted)

The networks run in the engine's micro-batcher thread, as for every request (a stream's detections
and the descriptors of the tracks it chose go there: one network call at a time, batched with the
requests'); decisions are the engine's (its threshold or FAR, as ``/v1/identify`` makes them).

Hooks: ``StreamManager.on_event`` is a list of callables, each called (in the stream's thread) with
every :class:`StreamEvent`; known people's recognised/leave events are also stored as sightings in
the gallery (:class:`faceprint.video.sightings.SightingsRecorder`), one recorder per stream.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cv2

from ..errors import FaceprintError, VideoError
from ..gallery.store import redact
from ..video.events import Event
from ..video.greeter import Greeter
from ..video.output import render
from ..video.recognizer import FrameResult
from ..video.sightings import SightingsRecorder
from ..video.source import VideoSource, parse_source
from ..video.watch import watch
from .engine import Engine
from .frames import FrameNetworks, FramesStopped
from .errors import ApiError

__all__ = ["EventHub", "Stream", "StreamEvent", "StreamManager", "Subscriber", "event_record", "greet_streams"]

log = logging.getLogger("faceprint.service")

URL_SCHEMES = frozenset({"http", "https", "rtsp", "rtsps"})
RETRIES, BACKOFF, MAX_BACKOFF = 8, 0.5, 30.0  # a dropped live source: ~90 s of reopening before it fails
OPEN_TIMEOUT_MS, READ_TIMEOUT_MS = 10_000, 5_000  # URLs: a stuck read returns, so a stop is never held up long
EVENT_QUEUE = 256  # events waiting per /v1/events client before the oldest are dropped
JPEG_QUALITY = 80
FPS_WINDOW_S = 5.0  # measured fps: frames of the last few seconds


@dataclass(frozen=True)
class StreamEvent:
    """An event of one stream: ``at`` is Unix time when it was reported."""

    stream: int
    stream_name: str
    event: Event
    at: float


def _number(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def event_record(e: StreamEvent, seq: int = 0) -> dict[str, Any]:
    """The JSON of an event on ``GET /v1/events`` (the fields of ``/v1/live``'s events, and the stream's).

    kind: "appear" | "recognised" | "leave"; name: the person, or null (a stranger: ``unknown``
    true; or not decided yet); time: video seconds (files) or seconds since the stream's first
    frame (live); at: Unix time reported; box: [left, top, width, height] pixels.
    """
    ev = e.event
    l, t, r, b = ev.box
    return {
        "seq": seq, "stream": e.stream, "stream_name": e.stream_name, "kind": ev.kind, "track": ev.track,
        "name": ev.identity if ev.decided else None, "unknown": ev.decided and ev.identity is None,
        "decided": ev.decided, "distance": _number(ev.distance), "time": round(ev.time, 3), "frame": ev.frame,
        "box": [round(l, 1), round(t, 1), round(r - l, 1), round(b - t, 1)], "at": round(e.at, 3),
    }


# -- events to clients ------------------------------------------------------------------------------
class Subscriber:
    """One client's bounded queue of event records; filled from any thread, read in the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int, stream: int | None = None) -> None:
        self.loop, self.stream = loop, stream
        self._queue: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self._scheduled = False  # a wake-up is on its way to the loop
        self.dropped = 0
        self._reported = 0

    def put(self, record: dict[str, Any]) -> bool:
        """Queue a record (dropping the oldest when full); False when it had to drop one."""
        with self._lock:
            full = len(self._queue) == self._queue.maxlen
            self.dropped += full
            self._queue.append(record)
            schedule, self._scheduled = not self._scheduled, True
        if schedule:
            try:
                self.loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # the loop is closed: the server is going away
                pass
        return not full

    async def get(self, timeout: float) -> tuple[list[dict[str, Any]], int]:
        """What is queued (waiting up to ``timeout`` s for something), and how many were dropped since last asked."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        self._wake.clear()
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
            self._scheduled = False
            dropped, self._reported = self.dropped - self._reported, self.dropped
        return items, dropped


class EventHub:
    """Fan-out of event records to subscribers; publishing never blocks and never grows memory."""

    def __init__(self, queue_size: int = EVENT_QUEUE) -> None:
        self.queue_size = queue_size
        self._subs: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self.dropped = 0  # over all subscribers, since the start

    def subscribe(self, stream: int | None = None) -> Subscriber:
        """A new subscriber (call it in the event loop that will read it), of one stream or all."""
        sub = Subscriber(asyncio.get_running_loop(), self.queue_size, stream)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def publish(self, event: StreamEvent) -> None:
        with self._lock:
            subs = list(self._subs)
            seq = next(self._seq)
        record = event_record(event, seq)
        for sub in subs:
            if (sub.stream is None or sub.stream == event.stream) and not sub.put(record):
                with self._lock:
                    self.dropped += 1


# -- one stream -------------------------------------------------------------------------------------
class _EngineSightings:
    """The gallery's sightings methods, called under the engine's lock (from a stream's thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_sightings(self, sightings: Sequence[Any]) -> int:
        with self.engine.lock:
            return self.engine.gallery.record_sightings(sightings)

    def purge_sightings(self, older_than_days: float, *, now: float | None = None) -> int:
        with self.engine.lock:
            return self.engine.gallery.purge_sightings(older_than_days, now=now)


def describe_source(source: str | int) -> tuple[str | int, str]:
    """(what to open, how to show it): a camera index, a checked URL (password hidden), or a file.

    Raises ApiError 422 ``invalid_source`` for what cannot be a source."""
    text = str(source).strip()
    if isinstance(source, int) or text.isdigit():
        index = int(text)
        if not 0 <= index < 1000:
            raise ApiError(422, "invalid_source", f"camera index {index} is out of range; give 0 for the first camera")
        return index, f"camera {index}"
    if "://" in text:
        try:
            scheme = urlsplit(text).scheme.lower()
        except ValueError as exc:  # e.g. a broken [IPv6] host
            raise ApiError(422, "invalid_source", f"not a valid URL: {exc}") from None
        if scheme not in URL_SCHEMES:
            raise ApiError(422, "invalid_source", f"{scheme}:// sources are not accepted; give an http(s):// or "
                           "rtsp(s):// URL, a camera index, or a video file on the server")
        return text, redact(text)
    if not text:
        raise ApiError(422, "invalid_source", "the source is empty; give a video file, a camera index or a URL")
    return text, text


class Stream:
    """One source watched in its own thread. Opening the source happens in the constructor
    (VideoError when it cannot be opened: a live source gets one attempt there); :meth:`start` runs it."""

    def __init__(
        self, stream_id: int, source: str | int, *, engine: Engine, hub: EventHub,
        hooks: list[Callable[[StreamEvent], Any]], name: str | None = None, fps: float | None = None,
        every: int | None = None,
    ) -> None:
        self.id = stream_id
        target, self.shown = describe_source(source)
        self.name = name or (Path(self.shown).name if isinstance(target, str) and "://" not in target else self.shown)
        self.fps_cap, self.every = fps, every or 5
        self._engine, self._hub, self._hooks = engine, hub, hooks
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._opened = False
        self.status = "starting"
        self.error: str | None = None
        self.frames = self.faces = self.faces_seen = self.events = 0
        self.started: float = time.time()
        self.ended: float | None = None
        self._times: collections.deque[float] = collections.deque(maxlen=256)
        self._latest: FrameResult | None = None
        self.version = 0  # frames published for the preview
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._jpeg_lock = threading.Lock()
        self._recorder: Callable[[Event], Any] | None = None
        try:
            parse_source(target)
            self.source = VideoSource(
                target, retries=0, backoff=BACKOFF, max_backoff=MAX_BACKOFF, opener=self._open, sleep=self._sleep
            )
        except VideoError as exc:
            raise VideoError(str(exc).replace(str(target), self.shown)) from None
        self.source.name = self.shown  # later messages (reopening, lost) without a URL's password
        self.source.retries = RETRIES  # one attempt to open it now; back-off once it runs
        self.live = self.source.live
        self.width, self.height = self.source.size
        self._thread = threading.Thread(target=self._run, name=f"faceprint-stream-{stream_id}", daemon=True)

    # -- the source's hooks (called in the stream's thread once it runs) ----------------------------
    def _open(self, target: str | int) -> Any:
        if self._stop.is_set():
            raise FramesStopped()
        if self._opened:
            with self._lock:
                self.status = "reopening"
                self.error = f"{self.shown} stopped delivering frames; reopening"
        self._opened = True
        if isinstance(target, str) and "://" in target:
            return cv2.VideoCapture(target, cv2.CAP_ANY, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                                          cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS])
        return cv2.VideoCapture(target)

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            self.status = "reopening"
        if self._stop.wait(seconds):
            raise FramesStopped()

    def _sightings_recorder(self) -> Callable[[Event], Any]:
        days = self._engine.settings.sightings_retention_days
        return SightingsRecorder(_EngineSightings(self._engine), self.name, retention_days=days)

    # -- the thread ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._recorder = self._sightings_recorder()  # dates the stream's time 0 as now
        self._thread.start()

    def _run(self) -> None:
        status, error = "ended", None
        try:
            watch(
                self.source, FrameNetworks(self._engine, self._stop),  # type: ignore[arg-type]
                on_event=self._on_event, on_frame=self._on_frame, stop=self._stop, fps=self.fps_cap,
                keep_events=False, every=self.every,
            )
            if self._stop.is_set():
                status = "stopped"
            elif self.frames == 0:
                status, error = "failed", f"no frame could be read from {self.shown}"
        except FramesStopped:
            status = "stopped"
        except FaceprintError as exc:
            status, error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001  (the stream fails, the service lives on)
            log.exception("stream %d (%s) failed", self.id, self.shown)
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            self.source.close()
            with self._lock:
                self.status, self.ended = status, time.time()
                if error is not None:
                    self.error = error
        if status == "failed":
            log.warning("stream %d (%s) failed: %s", self.id, self.shown, self.error)

    def _on_frame(self, result: FrameResult) -> None:
        now = time.monotonic()
        with self._lock:
            self._latest, self.version = result, self.version + 1
            self.frames += 1
            self.faces = len(result.tracks)
            self._times.append(now)
            self.height, self.width = result.frame.image.shape[:2]
            if self.status != "running":
                self.status = "running"

    def _on_event(self, event: Event) -> None:
        with self._lock:
            self.events += 1
            self.faces_seen += event.kind == "appear"
        item = StreamEvent(self.id, self.name, event, time.time())
        self._hub.publish(item)
        calls: list[tuple[Callable[[Any], Any], Any]] = [(hook, item) for hook in self._hooks]
        if self._recorder is not None:
            calls.insert(0, (self._recorder, event))
        for hook, arg in calls:
            try:
                hook(arg)
            except Exception:  # noqa: BLE001  (a broken hook must not stop the video)
                log.exception("stream %d: an event hook failed", self.id)

    # -- control and state --------------------------------------------------------------------------
    def stop(self, timeout: float = 15.0) -> bool:
        """Ask the thread to stop and wait for it (the capture is released as it ends); False if it
        is still stuck in a read after ``timeout`` seconds (it ends on its own when the read returns)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        elif self._thread.ident is None:  # never started
            self.source.close()
            with self._lock:
                self.status, self.ended = "stopped", time.time()
        return not self._thread.is_alive()

    @property
    def finished(self) -> bool:
        return self.ended is not None

    @property
    def fps(self) -> float:
        with self._lock:
            times = list(self._times)
        if len(times) < 2:
            return 0.0
        recent = [t for t in times if t >= times[-1] - FPS_WINDOW_S]
        span = recent[-1] - recent[0]
        return (len(recent) - 1) / span if span > 0 else 0.0

    def preview(self) -> tuple[int, bytes]:
        """(version, JPEG) of the latest frame with its boxes and names; (0, b"") before the first.
        Encoded once per frame however many clients watch, and only while someone does."""
        with self._lock:
            result, version = self._latest, self.version
        if result is None:
            return 0, b""
        with self._jpeg_lock:
            if self._jpeg[0] != version:
                ok, buf = cv2.imencode(".jpg", render(result), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if ok:
                    self._jpeg = (version, buf.tobytes())
            return self._jpeg

    def info(self) -> dict[str, Any]:
        """The stream's StreamOut JSON."""
        fps = self.fps
        with self._lock:
            return {
                "id": self.id, "name": self.name, "source": self.shown, "live": self.live, "status": self.status,
                "fps": round(fps, 2), "fps_cap": self.fps_cap, "every": self.every, "frames": self.frames,
                "faces": self.faces, "faces_seen": self.faces_seen, "events": self.events,
                "reconnects": self.source.reconnects, "skipped_frames": self.source.skipped, "error": self.error,
                "width": self.width, "height": self.height, "started": round(self.started, 3),
                "ended": None if self.ended is None else round(self.ended, 3),
                "preview_url": f"/v1/streams/{self.id}/preview",
            }


# -- all of them ------------------------------------------------------------------------------------
class StreamManager:
    """The service's streams: at most ``max_streams`` held at once (ended ones count until deleted)."""

    def __init__(self, engine: Engine, max_streams: int, *, queue_size: int = EVENT_QUEUE) -> None:
        self.engine, self.max_streams = engine, max_streams
        self.hub = EventHub(queue_size)
        # Called with every StreamEvent of every stream, in that stream's thread: hooks for what
        # should follow the events (alerts, another log). Sightings are recorded per stream already.
        self.on_event: list[Callable[[StreamEvent], Any]] = []
        self._streams: dict[int, Stream] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._opening = 0  # slots held by POSTs still opening their source
        self.closed = False

    def start(self, source: str | int, name: str | None = None, fps: float | None = None,
              every: int | None = None) -> Stream:
        """Open ``source`` and start watching it (blocking: call from a worker thread)."""
        with self._lock:
            if self.closed:
                raise ApiError(503, "overloaded", "the service is shutting down")
            held = len(self._streams) + self._opening
            if held >= self.max_streams:
                raise ApiError(409, "too_many_streams", f"{held} streams are held already, the limit is "
                               f"{self.max_streams}; DELETE /v1/streams/{{id}} one no longer needed (ended ones count "
                               "until deleted; FACEPRINT_MAX_STREAMS sets the limit)")
            self._opening += 1
            stream_id = next(self._ids)
        try:
            stream = Stream(stream_id, source, engine=self.engine, hub=self.hub, hooks=self.on_event, name=name,
                            fps=fps, every=every)
        except VideoError as exc:
            raise ApiError(422, "invalid_source", str(exc)) from None
        finally:
            with self._lock:
                self._opening -= 1
        with self._lock:
            if self.closed:
                stream.stop()
                raise ApiError(503, "overloaded", "the service is shutting down")
            self._streams[stream_id] = stream
        stream.start()
        log.info("stream %d started: %s", stream_id, stream.shown)
        return stream

    def list(self) -> list[Stream]:
        with self._lock:
            return list(self._streams.values())

    def get(self, stream_id: int) -> Stream:
        with self._lock:
            stream = self._streams.get(stream_id)
        if stream is None:
            raise ApiError(404, "stream_not_found", f"no stream with id {stream_id}; GET /v1/streams lists them")
        return stream

    def remove(self, stream_id: int, timeout: float = 15.0) -> Stream:
        """Stop a stream, wait for its thread, and forget it."""
        with self._lock:
            stream = self._streams.pop(stream_id, None)
        if stream is None:
            raise ApiError(404, "stream_not_found", f"no stream with id {stream_id}; GET /v1/streams lists them")
        if not stream.stop(timeout):
            log.warning("stream %d (%s): its source did not return within %.0f s; it ends when it does",
                        stream_id, stream.shown, timeout)
        return stream

    def close(self, timeout: float = 15.0) -> None:
        """Stop every stream (all asked at once, then each waited for)."""
        with self._lock:
            self.closed = True
            streams, self._streams = list(self._streams.values()), {}
        for s in streams:
            s._stop.set()
        for s in streams:
            s.stop(timeout)


def greet_streams(manager: StreamManager, settings: Any) -> Greeter:
    """Greet the known people recognised in any of the manager's streams (``faceprint serve
    --greet``): one :class:`~faceprint.video.greeter.Greeter` for all of them, its cooldown on
    the wall clock (each stream's video clock starts at its own zero), called under a lock (the
    streams' threads report at once). Printed greetings go to the service's log. The caller
    closes it after the streams."""
    greeter = Greeter(
        cooldown=settings.greet_cooldown, template=settings.greet_template, to=settings.greet_to,
        say=lambda text: log.info("greeting: %s", text),
    )  # fmt: skip
    lock = threading.Lock()

    def hook(e: StreamEvent) -> None:
        with lock:
            greeter(dataclasses.replace(e.event, time=e.at))

    manager.on_event.append(hook)
    return greeter
