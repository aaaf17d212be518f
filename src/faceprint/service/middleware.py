"""Plain ASGI middleware: the request body limit, and request metrics (Prometheus)."""

from __future__ import annotations

import json
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from .errors import error_body

__all__ = ["BodyLimit", "Metrics", "RecordMetrics"]

Scope = dict[str, Any]


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with a JSON 413 before any of it is parsed.

    The body is read in full here (it is at most ``max_bytes``) and replayed to the app, which
    also catches chunked uploads that send no Content-Length. An over-size body is drained (up
    to ``drain_bytes``) so the client reads our answer instead of a reset connection.
    """

    def __init__(self, app: Any, max_bytes: int, drain_bytes: int = 64 * 1024 * 1024) -> None:
        self.app, self.max_bytes, self.drain_bytes = app, max_bytes, drain_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        too_big = declared is not None and declared.isdigit() and int(declared) > self.max_bytes
        chunks: list[bytes] = []
        total, more = 0, True
        while more:
            message = await receive()
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
            await _send_json(
                send, 413, error_body("payload_too_large", f"the request body is over the limit of {self.max_bytes:,} bytes; "
                                      "send a smaller photo (FACEPRINT_MAX_UPLOAD_BYTES sets the limit)")
            )
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the app expects

        await self.app(scope, replay, send)


async def _send_json(send: Any, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


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


class RecordMetrics:
    """Count and time every HTTP request by its route template (bounded label values)."""

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
            route = getattr(scope.get("route"), "path", None) or ("static" if scope["path"].startswith("/static") else "other")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
