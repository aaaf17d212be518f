"""Plain ASGI middleware (body limit and deadline, request limit, host and origin checks, security
headers, Prometheus metrics) and the HTTP protocol that limits connections (:class:`GuardedH11Protocol`)."""

from __future__ import annotations

import asyncio
import collections
import json
import time
from typing import Any

import h11
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

from .errors import RETRY_AFTER_S, error_body
from .security import allowed_hosts, host_refusal, origin_refusal
from .settings import Settings

__all__ = [
    "CONNECTION_GUARD", "BodyLimit", "ConnectionGuard", "GuardedH11Protocol", "Metrics", "RecordMetrics", "RequestGuard",
    "RequestLimit", "SecurityHeaders",
]

Scope = dict[str, Any]


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with a JSON 413 before any of it is parsed.

    The body is read in full here (it is at most ``max_bytes``) and replayed to the app, which
    also catches chunked uploads that send no Content-Length. An over-size body is drained (up
    to ``drain_bytes``) so the client reads our answer instead of a reset connection.

    A body that has not all arrived ``timeout`` seconds after the request head gets a JSON 408:
    a client trickling its upload would otherwise hold a request slot (and its memory) for ever.
    """

    def __init__(self, app: Any, max_bytes: int, timeout: float = 60.0, drain_bytes: int = 64 * 1024 * 1024) -> None:
        self.app, self.max_bytes, self.timeout, self.drain_bytes = app, max_bytes, timeout, drain_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        too_big = declared is not None and declared.isdigit() and int(declared) > self.max_bytes
        chunks: list[bytes] = []
        total, more = 0, True
        deadline = time.monotonic() + self.timeout
        while more:
            try:  # (asyncio.timeout would do, from Python 3.11)
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                await _send_error(send, 408, "request_timeout", f"the request body did not arrive within {self.timeout:g} s; "
                                  "send it faster, or a smaller photo (FACEPRINT_BODY_TIMEOUT sets the limit)")
                return
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            more = message.get("more_body", False)
            if too_big or total > self.max_bytes:
                too_big = True
                if total > self.drain_bytes:
                    break
                continue
            chunks.append(body)
        if too_big:
            await _send_error(send, 413, "payload_too_large", f"the request body is over the limit of {self.max_bytes:,} "
                              "bytes; send a smaller photo (FACEPRINT_MAX_UPLOAD_BYTES sets the limit)")
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the app expects

        await self.app(scope, replay, send)


def _json_error(status: int, code: str, message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of the service's JSON error; the connection closes after it (the request
    body may be unread), and a 503 says when to retry."""
    body = json.dumps(error_body(code, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    if status == 503:
        headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
    return headers, body


async def _send_error(send: Any, status: int, code: str, message: str) -> None:
    headers, body = _json_error(status, code, message)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Refuse requests for host names the service does not answer to (421), and state-changing
    requests from other origins' web pages (403): see :mod:`.security`."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app, self.hosts, self.cors_origins = app, allowed_hosts(settings), frozenset(settings.cors_origins)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            host = headers.get("host")
            refusal = host_refusal(host, self.hosts) or origin_refusal(
                scope["method"], host, headers.get("origin"), headers.get("sec-fetch-site"), self.cors_origins
            )
            if refusal is not None:
                await _send_error(send, refusal.status, refusal.code, refusal.message)
                return
        await self.app(scope, receive, send)


class RequestLimit:
    """At most ``max_requests`` requests handled at once; more get the service's JSON 503.

    uvicorn's own ``limit_concurrency`` counts idle and half-sent connections too (so slow clients
    can use it up) and answers in plain text; this counts only requests past their head, each of
    which may hold a body of up to ``max_upload_bytes``.
    """

    def __init__(self, app: Any, max_requests: int) -> None:
        self.app, self.max_requests, self.active = app, max_requests, 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_requests:  # one event loop: no lock needed
            await _send_error(send, 503, "overloaded", f"the server is handling {self.max_requests} requests already; "
                              "retry in a moment (FACEPRINT_MAX_REQUESTS sets the limit)")
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


# The page loads only its own script and stylesheet, and shows photos as blob: URLs; no inline
# script or style, so none is allowed. /docs sends a policy of its own (see app.py).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # Other sites cannot embed the enrolled photos with <img> (CORS fetches are not affected).
    (b"cross-origin-resource-policy", b"same-origin"),
]


class SecurityHeaders:
    """Add :data:`SECURITY_HEADERS` to every answer, keeping any the app set itself."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {k.lower() for k, _ in headers}
                message = {**message, "headers": headers + [h for h in SECURITY_HEADERS if h[0] not in present]}
            await send(message)

        await self.app(scope, receive, send_wrapper)


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("faceprint_http_requests", "HTTP requests answered.", ["method", "route", "status"], registry=r)
        self.latency = Histogram(
            "faceprint_http_request_duration_seconds", "Time to answer, by route.", ["route"], registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )
        self.batch_size = Histogram(
            "faceprint_batch_images", "Images per network batch.", registry=r, buckets=(1, 2, 4, 8, 16, 32, 64)
        )
        self.batch_seconds = Histogram(
            "faceprint_batch_duration_seconds", "Network time per batch.", registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )
        self.inflight = Gauge("faceprint_images_in_flight", "Images being decoded or in the networks.", registry=r)
        self.queue = Gauge("faceprint_batch_queue", "Images waiting for the networks.", registry=r)
        self.gallery_samples = Gauge("faceprint_gallery_samples", "Face samples in the gallery.", registry=r)
        self.gallery_people = Gauge("faceprint_gallery_people", "People in the gallery.", registry=r)
        ProcessCollector(registry=r)  # process_resident_memory_bytes and friends

    def on_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)


# Label values must stay few: any token is a valid HTTP method, and /metrics needs no key.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RecordMetrics:
    """Count and time every HTTP request by method and route template (bounded label values:
    other methods count as "other", paths that match no route as "unmatched")."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


CONNECTION_GUARD = "faceprint.connection_guard"  # the ConnectionGuard's key in the lifespan state


class ConnectionGuard:
    """The connection limits of one server process, and its open connections by client address.

    The app's lifespan puts one in its state, where every :class:`GuardedH11Protocol` finds it.
    """

    def __init__(self, settings: Settings) -> None:
        self.max_connections = settings.max_connections
        self.per_ip = settings.max_connections_per_ip
        self.header_timeout = settings.header_timeout
        self.open: collections.Counter[str] = collections.Counter()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with connection limits and a deadline for each request head.

    uvicorn arms no timer on a new connection, and cancels its keep-alive timer on every byte, so
    an idle socket, or one trickling a header line every few seconds (slowloris), stays open for
    ever; a few hundred of them used to exhaust ``limit_concurrency`` and turn everyone else away.
    Here each request head must be complete within ``header_timeout`` of the connection opening
    (or of its first byte after a keep-alive pause), one client address may hold at most
    ``max_connections_per_ip`` connections, and the process at most ``max_connections``. Over a
    limit the client gets the service's JSON error and the connection closes. Request bodies
    have their deadline in :class:`BodyLimit`. With no :class:`ConnectionGuard` in the lifespan
    state this is plain h11.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard: ConnectionGuard | None = self.app_state.get(CONNECTION_GUARD)
        self.counted_ip: str | None = None
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        g = self.guard
        if g is None:
            return
        ip = self.client[0] if self.client else None
        if len(self.connections) > g.max_connections:
            self._refuse(503, "overloaded", f"the server has {g.max_connections} connections open; retry in a moment "
                         "(FACEPRINT_MAX_CONNECTIONS sets the limit)")
            return
        if ip is not None and g.per_ip:
            if g.open[ip] >= g.per_ip:
                self._refuse(503, "too_many_connections", f"{ip} has {g.per_ip} connections open already; close some "
                             "or retry in a moment (FACEPRINT_MAX_CONNECTIONS_PER_IP sets the limit)")
                return
            g.open[ip] += 1
            self.counted_ip = ip
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._release()
        super().connection_lost(exc)

    def _release(self) -> None:
        if self.guard is not None and self.counted_ip is not None:
            self.guard.open[self.counted_ip] -= 1
            if self.guard.open[self.counted_ip] <= 0:
                del self.guard.open[self.counted_ip]
            self.counted_ip = None

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # The connection now belongs to the WebSocket protocol, which (not this one) hears of its
        # end: release the address's count from there, or every WebSocket (/v1/live) would leak one.
        self._cancel_head_timer()
        super().handle_websocket_upgrade(event)
        ws = self.transport.get_protocol()
        lost = ws.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            self._release()
            lost(exc)

        ws.connection_lost = connection_lost  # type: ignore[method-assign]

    def data_received(self, data: bytes) -> None:
        if self.guard is not None and self.head_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the first bytes of a request after a keep-alive pause
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_head_timer()  # the head is in (or the connection is finished)

    def _arm_head_timer(self) -> None:
        assert self.guard is not None
        self.head_timer = self.loop.call_later(self.guard.header_timeout, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timeout(self) -> None:
        self.head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # part of a head came: say why we hang up
            assert self.guard is not None
            self._refuse(408, "request_timeout", f"the request head did not arrive within {self.guard.header_timeout:g} s "
                         "(FACEPRINT_HEADER_TIMEOUT sets the limit)")
        else:  # an idle connection: close quietly, as at the end of keep-alive
            self.transport.close()

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer the service's JSON error before (or instead of) reading a request, and hang up."""
        headers, body = _json_error(status, code, message)
        for event in (h11.Response(status_code=status, headers=headers, reason=STATUS_PHRASES[status]),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()
