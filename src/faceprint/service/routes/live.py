"""WebSocket /v1/live: recognition on a browser's webcam frames, one answer per frame (issue 16).

The protocol (JSON text messages and binary frames):

1. The client opens ``ws(s)://HOST/v1/live``; a page on another origin is refused (403 before the
   handshake completes), as the HTTP API refuses its changes (:mod:`..security`): browsers let any
   page open a WebSocket to any address, so the Origin check is what keeps other sites out.
2. Its first message is JSON ``{"key": "<read or admin key>"}`` (``"key"`` may be left out when
   the server has no read key, or when an ``X-API-Key`` / ``Authorization: Bearer`` header came with
   the handshake, which non-browser clients can send). Browsers cannot set headers on a
   WebSocket, and a key in the URL (``?key=``) would end up in access logs and proxies' logs, so
   a ``key`` query parameter is refused. Optional: ``"every"`` (1-10, default 1): run the
   detector on one frame in ``every`` and follow the faces by optical flow in between (more
   frames per second, but a face is recognised a few frames later).
   The server answers ``{"ready": true, "model", "detector", "threshold", "max_frame_bytes"}``, or
   ``{"error": {"code", "message"}}`` and closes with 1008 (policy violation).
3. Then each binary message is one frame, an encoded image (JPEG from a canvas; any format the
   service reads) of at most ``max_frame_bytes``. The answer to each:
   ``{"frame": n, "time": s, "faces": [{"track", "box": [left, top, width, height], "name",
   "unknown", "decided", "distance"}], "events": [{"kind": "appear" | "recognised" | "leave",
   "track", "name", "unknown", "distance", "time"}], "dropped": k, "ms": server milliseconds}``.
   ``name`` is the person, or null: a stranger (``unknown`` true) or not decided yet
   (``decided`` false). ``n`` counts the binary messages received (from 1); ``time`` is seconds
   since the first frame (the events' clock). A frame that cannot be used gets
   ``{"frame": n, "error": {"code", "message"}}`` and the connection stays open.
4. JSON ``{"type": "reset"}`` forgets every face (after an enrolment, so that faces are decided
   again): their "leave" events come with the next answer.

Backpressure: the server keeps only the newest frame that has not started processing (the ones it
replaces are counted in ``dropped``), so a client that sends faster than the server answers only
makes it skip frames, never queue them. Clients should send the next frame when an answer comes.
Decoding and recognition run in the threadpool; the networks in the engine's micro-batcher.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...errors import FaceprintError
from ...imageio import load_image
from ...video import Event, Frame, TrackView, VideoRecognizer
from ..batcher import OverloadedError
from ..engine import Engine
from ..frames import FrameNetworks
from ..errors import ApiError, error_body, faceprint_status
from ..security import allowed_hosts, host_refusal

__all__ = ["router"]

router = APIRouter(tags=["live"])

MAX_FRAME_BYTES = 4 * 1024 * 1024  # a 1080p JPEG is ~0.5 MB; the service's upload limit if lower
MAX_FRAME_PIXELS = 3840 * 2160  # the service's max_pixels if lower
HELLO_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 120.0  # a connection that sends nothing for this long is closed
POLICY = 1008  # WebSocket close code: policy violation (no or wrong key, bad first message)


class _Session:
    """One connection's recogniser and clock; used by one frame at a time (in the threadpool)."""

    def __init__(self, engine: Engine, every: int) -> None:
        self.engine, self.every = engine, every
        self.nets = FrameNetworks(engine)
        self.max_pixels = min(engine.settings.max_pixels, MAX_FRAME_PIXELS)
        self.recognizer = self._new()
        self.start: float | None = None
        self.pending: list[dict[str, Any]] = []  # events of a reset, sent with the next answer
        # track ids stay unique on the connection across resets (each recogniser counts from 1)
        self.offset = self.top = 0

    def _new(self) -> VideoRecognizer:
        # frames are at most MAX_FRAME_PIXELS, and the page sends them at most 640 px wide
        return VideoRecognizer(self.nets, every=self.every, detector=self.nets)  # type: ignore[arg-type]

    def reset(self) -> None:
        self.pending += [self._event(e) for e in self.recognizer.finish()]
        self.recognizer = self._new()
        self.offset = self.top

    def process(self, n: int, data: bytes) -> dict[str, Any]:
        t0 = time.perf_counter()
        pixels = load_image(data, max_pixels=self.max_pixels, name=f"live frame {n}")
        now = time.monotonic()
        if self.start is None:
            self.start = now
        result = self.recognizer.step(Frame(n, now - self.start, pixels))
        events, self.pending = self.pending + [self._event(e) for e in result.events], []
        return {
            "frame": n,
            "time": round(result.frame.time, 3),
            "faces": [self._face(v) for v in result.tracks],
            "events": events,
            "ms": round((time.perf_counter() - t0) * 1000, 1),
        }

    def _track(self, track: int) -> int:
        self.top = max(self.top, self.offset + track)
        return self.offset + track

    def _face(self, v: TrackView) -> dict[str, Any]:
        l, t, r, b = v.box
        return {
            "track": self._track(v.id), "box": [round(l, 1), round(t, 1), round(r - l, 1), round(b - t, 1)],
            "name": v.identity if v.decided else None, "unknown": v.decided and v.identity is None,
            "decided": v.decided, "distance": _number(v.distance),
        }

    def _event(self, e: Event) -> dict[str, Any]:
        return {
            "kind": e.kind, "track": self._track(e.track), "name": e.identity if e.decided else None,
            "unknown": e.decided and e.identity is None, "distance": _number(e.distance), "time": round(e.time, 3),
        }


def _number(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def _refusal(ws: WebSocket) -> ApiError | None:
    """Why this handshake is refused (a host name we do not answer to, another origin's page), or None.

    The HTTP checks (middleware.RequestGuard) see only HTTP requests; a WebSocket handshake is a
    GET, which they let through, yet a page on any site may open one: only the browser's Origin
    header tells, so it must be this service's own (or one of FACEPRINT_CORS_ORIGINS).
    """
    settings = ws.app.state.settings
    host = ws.headers.get("host")
    refused = host_refusal(host, allowed_hosts(settings))
    if refused is not None:
        return refused
    origin = ws.headers.get("origin")
    cors = settings.cors_origins
    if origin is None or origin in cors or "*" in cors:
        return None
    if host is not None and urlsplit(origin).netloc.lower() == host.strip().lower():
        return None
    return ApiError(403, "cross_origin_request", f"a WebSocket from the web page at {origin} is refused: only this "
                    "service's own page and the origins in FACEPRINT_CORS_ORIGINS may use /v1/live")


def _key_problem(settings: Any, given: str | None) -> str | None:
    """The same rule as security.require_read: the read key or the admin key, when a read key is set."""
    if not settings.api_key:
        return None
    if not given:
        return 'this service needs an API key: send {"key": "..."} as the first message'
    for expected in (settings.api_key, settings.admin_key):
        if expected and hmac.compare_digest(given.encode(), expected.encode()):
            return None
    return "the API key is not valid"


async def _deny(ws: WebSocket, err: ApiError) -> None:
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSONResponse(error_body(err.code, err.message), status_code=err.status))
    else:
        await ws.close(POLICY, reason=err.code)


async def _fail(ws: WebSocket, code: str, message: str) -> None:
    """Say why in a message (close reasons are limited to 123 bytes), then close."""
    await ws.send_json(error_body(code, message))
    await ws.close(POLICY, reason=code)


def _header_key(ws: WebSocket) -> str | None:
    key = ws.headers.get("x-api-key")
    auth = ws.headers.get("authorization", "")
    return key or (auth[7:].strip() if auth.lower().startswith("bearer ") else None)


@router.websocket("/v1/live")
async def live(ws: WebSocket) -> None:
    """Live recognition on a stream of frames (see the module docstring for the protocol)."""
    refused = _refusal(ws)
    if refused is None and "key" in ws.query_params:
        refused = ApiError(400, "key_in_url", 'do not put the API key in the URL (logs keep it): send {"key": "..."} '
                           "as the first message")
    if refused is not None:
        await _deny(ws, refused)
        return
    await ws.accept()
    settings = ws.app.state.settings
    engine: Engine = ws.app.state.engine
    try:
        hello = await asyncio.wait_for(ws.receive(), HELLO_TIMEOUT_S)
    except asyncio.TimeoutError:
        await _fail(ws, "hello_timeout", f'send {{"key": "..."}} as the first message within {HELLO_TIMEOUT_S:g} s')
        return
    if hello["type"] == "websocket.disconnect":
        return
    try:
        first = json.loads(hello.get("text") or "")
        if not isinstance(first, dict):
            raise ValueError
    except (ValueError, RecursionError):
        await _fail(ws, "invalid_hello", 'the first message must be JSON like {"key": "..."}, before any frame')
        return
    key = first.get("key") if isinstance(first.get("key"), str) else None
    problem = _key_problem(settings, key or _header_key(ws))
    if problem is not None:
        await _fail(ws, "unauthorized", problem)
        return
    every = first.get("every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= 10:
        await _fail(ws, "invalid_hello", f'"every" must be an integer from 1 to 10, got {every!r}')
        return
    session = _Session(engine, every)
    max_bytes = min(settings.max_upload_bytes, MAX_FRAME_BYTES)
    await ws.send_json({
        "ready": True, "model": engine.pipeline.spec.name, "detector": session.nets.name,
        "threshold": await run_in_threadpool(lambda: engine.threshold), "max_frame_bytes": max_bytes,
    })
    await _serve(ws, session, max_bytes)


async def _serve(ws: WebSocket, session: _Session, max_bytes: int) -> None:
    """Read messages in one task (keeping only the newest frame), answer them in this one."""
    state: dict[str, Any] = {"frame": None, "dropped": 0, "received": 0, "closed": False}
    notes: list[dict[str, Any]] = []  # answers that are not frames' (bad messages), in order
    resets = 0
    wake = asyncio.Event()

    async def read() -> None:
        nonlocal resets
        try:
            while True:
                msg = await asyncio.wait_for(ws.receive(), IDLE_TIMEOUT_S)
                if msg["type"] == "websocket.disconnect":
                    break
                data = msg.get("bytes")
                if data is not None:
                    state["received"] += 1
                    n = state["received"]
                    if len(data) > max_bytes:
                        notes.append({"frame": n, **error_body("payload_too_large", f"frame {n} has {len(data):,} "
                                      f"bytes, over the limit of {max_bytes:,}; send smaller frames (JPEG, <= 1920x1080)")})
                    else:
                        if state["frame"] is not None:
                            state["dropped"] += 1
                        state["frame"] = (n, data)
                else:
                    control = _control(msg.get("text") or "")
                    if control == "reset":
                        resets += 1
                    else:
                        notes.append({"frame": None, **error_body("invalid_message", control)})
                wake.set()
        except asyncio.TimeoutError:
            notes.append({"frame": None, **error_body("idle_timeout", f"nothing came for {IDLE_TIMEOUT_S:g} s")})
        except WebSocketDisconnect:
            pass
        finally:
            state["closed"] = True
            wake.set()

    reader = asyncio.create_task(read())
    slots = ws.app.state.slots
    inflight = ws.app.state.metrics.inflight
    try:
        while True:
            await wake.wait()
            wake.clear()
            while notes:
                await ws.send_json(notes.pop(0))
            if resets:
                resets = 0
                await run_in_threadpool(session.reset)
            if state["frame"] is not None:
                (n, data), state["frame"] = state["frame"], None
                dropped, state["dropped"] = state["dropped"], 0
                async with slots:  # the service's bound on images decoded or in the networks at once
                    inflight.inc()
                    try:
                        answer = await run_in_threadpool(session.process, n, data)
                        answer["dropped"] = dropped
                    except FaceprintError as exc:
                        answer = {"frame": n, **error_body(faceprint_status(exc)[1], str(exc))}
                    except OverloadedError as exc:
                        answer = {"frame": n, **error_body("overloaded", str(exc))}
                    finally:
                        inflight.dec()
                await ws.send_json(answer)
                if state["frame"] is not None:
                    wake.set()  # a newer frame came in the meantime
            if state["closed"]:
                while notes:
                    await ws.send_json(notes.pop(0))
                break
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away mid-answer (uvicorn: ClientDisconnected, an OSError)
    finally:
        reader.cancel()
    if ws.client_state.name == "CONNECTED":
        try:
            await ws.close()
        except (RuntimeError, OSError):
            pass


def _control(text: str) -> str:
    """"reset" for a reset message, else what is wrong with the message."""
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        return 'text messages must be JSON like {"type": "reset"}; frames go as binary messages'
    if isinstance(msg, dict) and msg.get("type") == "reset":
        return "reset"
    return f'unknown message {text[:80]!r}: the only text message after the first is {{"type": "reset"}}'
