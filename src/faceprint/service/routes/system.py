"""GET /healthz, /metrics (Prometheus text) and the web page at /."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from ... import __version__
from ..schemas import Health
from .common import engine

STATIC = Path(__file__).resolve().parents[1] / "static"

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=Health)
async def healthz(request: Request) -> dict[str, Any]:
    """Up, with the models loaded and the gallery open (no key needed)."""
    eng = engine(request)
    people, samples = await run_in_threadpool(eng.counts)
    return {
        "status": "ok", "version": __version__, "model": eng.pipeline.spec.name, "detector": eng.pipeline.detector.name,
        "threshold": await run_in_threadpool(lambda: eng.threshold), "people": people, "samples": samples,
    }


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latency, batch sizes, queue, gallery size, process memory."""
    m = request.app.state.metrics
    people, samples = await run_in_threadpool(engine(request).counts)
    m.gallery_people.set(people)
    m.gallery_samples.set(samples)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
