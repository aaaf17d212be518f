"""/v1/streams: video sources the service watches itself; /v1/events: their events as they happen.

    POST   /v1/streams                 {"source", "name"?, "fps"?, "every"?} -> 201 StreamOut (admin key)
    GET    /v1/streams                 {"streams": [StreamOut], "max_streams", "subscribers", "events_dropped"}
    GET    /v1/streams/{id}            StreamOut
    DELETE /v1/streams/{id}            StreamOut, status "stopped" (admin key): thread joined, capture released
    GET    /v1/streams/{id}/preview    multipart/x-mixed-replace MJPEG: the latest frames with boxes and names
    GET    /v1/events[?stream=id]      text/event-stream: one ``data: {json}`` per event (see streams.event_record)

A source is a path on the server, a camera index or a URL, so adding one needs the admin key.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Optional

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..schemas import ErrorResponse, StreamIn, StreamOut, StreamsResponse
from ..security import require_admin, require_read
from ..streams import StreamManager
from .common import ERRORS

__all__ = ["router"]

router = APIRouter(tags=["streams"], responses=ERRORS)
read = [Depends(require_read)]
admin = [Depends(require_admin)]

StreamId = Path(..., ge=1, le=2**63 - 1, description="The stream's id (from GET /v1/streams).")
HEARTBEAT_S = 15.0  # an SSE comment this often keeps proxies from closing a quiet connection
BOUNDARY = "frame"


def manager(request: Request) -> StreamManager:
    return request.app.state.streams


@router.post(
    "/v1/streams", response_model=StreamOut, status_code=201, dependencies=admin,
    responses={409: {"model": ErrorResponse, "description": "too_many_streams: max_streams are held already"},
               422: {"model": ErrorResponse, "description": "invalid_source: no such file, not a video, cannot open"}},
)
async def add_stream(request: Request, body: StreamIn) -> dict[str, Any]:
    """Start watching a video file on the server, a camera or an http(s)/rtsp(s) URL."""
    stream = await run_in_threadpool(manager(request).start, body.source, body.name, body.fps, body.every)
    return stream.info()


@router.get("/v1/streams", response_model=StreamsResponse, dependencies=read)
async def list_streams(request: Request) -> dict[str, Any]:
    """The streams with their status (starting, running, reopening, ended, failed), fps and counts."""
    m = manager(request)
    return {"streams": [s.info() for s in m.list()], "max_streams": m.max_streams,
            "subscribers": m.hub.subscribers, "events_dropped": m.hub.dropped}


@router.get("/v1/streams/{stream_id}", response_model=StreamOut, dependencies=read)
async def get_stream(request: Request, stream_id: int = StreamId) -> dict[str, Any]:
    return manager(request).get(stream_id).info()


@router.delete("/v1/streams/{stream_id}", response_model=StreamOut, dependencies=admin)
async def delete_stream(request: Request, stream_id: int = StreamId) -> dict[str, Any]:
    """Stop a stream and forget it (its faces' "leave" events come first)."""
    stream = await run_in_threadpool(manager(request).remove, stream_id)
    return stream.info()


@router.get(
    "/v1/streams/{stream_id}/preview", dependencies=read, response_class=StreamingResponse,
    responses={200: {"content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}},
                     "description": "JPEG frames (an <img> shows them as a video); ends with the stream."}},
)
async def preview(
    request: Request, stream_id: int = StreamId,
    fps: float = Query(10.0, gt=0, le=30, description="At most this many frames a second."),
) -> StreamingResponse:
    """The stream's latest frames with boxes, track ids and names, as Motion JPEG."""
    stream = manager(request).get(stream_id)

    async def parts() -> AsyncIterator[bytes]:
        sent = 0
        while True:
            done = stream.finished  # read before the frame: the last one is still sent
            if stream.version != sent:
                sent, jpeg = await run_in_threadpool(stream.preview)
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                       + jpeg + b"\r\n")
            if done:
                return
            await asyncio.sleep(1.0 / fps)

    return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                             headers={"Cache-Control": "no-store"})


@router.get(
    "/v1/events", dependencies=read, response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events, one per stream event."}},
)
async def events(
    request: Request,
    stream: Optional[int] = Query(None, ge=1, le=2**63 - 1, description="Only this stream's events."),
) -> StreamingResponse:
    """Every stream's events as Server-Sent Events: ``data: {"seq", "stream", "stream_name", "kind"
    (appear | recognised | leave), "track", "name" (null: a stranger or undecided), "unknown",
    "decided", "distance", "time", "frame", "box", "at"}``. A client that reads too slowly loses the
    oldest queued events; it is told how many by an ``event: dropped`` message ``{"dropped": n}``."""
    m = manager(request)

    async def messages() -> AsyncIterator[str]:
        sub = m.hub.subscribe(stream)  # here, so that the finally below always runs for it
        try:
            yield "retry: 3000\n: connected\n\n"
            while not m.closed:
                items, dropped = await sub.get(HEARTBEAT_S)
                if dropped:
                    yield f"event: dropped\ndata: {json.dumps({'dropped': dropped})}\n\n"
                for record in items:
                    yield f"id: {record['seq']}\ndata: {json.dumps(record)}\n\n"
                if not items and not dropped:
                    yield ": keep-alive\n\n"
        finally:
            m.hub.unsubscribe(sub)

    return StreamingResponse(messages(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
