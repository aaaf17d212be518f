"""What the routers share: the engine, inference within the in-flight limit, error docs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from ..engine import Engine, Upload
from ..schemas import ErrorResponse

__all__ = ["ERRORS", "engine", "infer"]

# Documented on every /v1 route: the error shape clients can rely on.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in {
        400: "Bad input (invalid_image, invalid_base64, missing_image, ...)",
        401: "Missing or wrong API key",
        413: "Body or image over the limits (payload_too_large, image_too_large)",
        415: "Neither multipart/form-data nor JSON",
        422: "No face (no_face) or a malformed request (invalid_request)",
        503: "Overloaded: retry later",
    }.items()
}


def engine(request: Request) -> Engine:
    return request.app.state.engine


async def infer(request: Request, kind: str, images: Sequence[tuple[str, bytes]]) -> list[tuple[Upload, list[Any]]]:
    """Decode (threadpool) and run (micro-batcher) some (field, bytes) images of one request.

    One in-flight slot per request bounds how many decoded images are in memory at once; the
    images of one request share it, so two-image requests cannot deadlock each other.
    """
    eng = engine(request)
    metrics = request.app.state.metrics
    async with request.app.state.slots:
        metrics.inflight.inc(len(images))
        try:
            uploads = [await run_in_threadpool(eng.decode, data, field) for field, data in images]
            futures = [eng.submit(kind, u) for u in uploads]
            results = [await asyncio.wrap_future(f) for f in futures]
        finally:
            metrics.inflight.dec(len(images))
    return list(zip(uploads, results))
