"""/v1/sightings: who was seen in which video stream, and when (the read key).

Sightings are stored by whatever watches streams on the gallery (``faceprint watch --db``); this
lists them, newest first. Those older than the service's ``sightings_retention_days`` are never
served, even before a recorder has purged them.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from ...gallery.store import unix_time
from ..engine import Engine
from ..errors import ApiError
from ..schemas import SightingsResponse
from ..security import require_read
from .common import ERRORS, engine

router = APIRouter(prefix="/v1/sightings", tags=["sightings"], responses=ERRORS)
read = [Depends(require_read)]


@router.get("", response_model=SightingsResponse, dependencies=read)
async def list_sightings(
    request: Request,
    since: Optional[str] = Query(
        None, max_length=64, description="Only sightings at or after this ISO-8601 time (no zone: UTC).",
        examples=["2024-05-01T08:00:00Z"],
    ),
    person: Optional[str] = Query(None, min_length=1, max_length=200, description="Only this person's (404 if not enrolled)."),
    limit: int = Query(100, ge=1, le=10_000, description="Sightings per page."),
    offset: int = Query(0, ge=0, le=2**63 - 1, description="Sightings to skip (newest first)."),
) -> dict[str, Any]:
    """Sightings of known people, newest first: a page of ``limit`` from ``offset``, and the total."""
    try:
        after = None if since is None else unix_time(since)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"since: {exc}") from None
    days = request.app.state.settings.sightings_retention_days
    if days > 0:  # past the retention: as good as purged
        oldest = time.time() - days * 86400.0
        after = oldest if after is None else max(after, oldest)
    found, total = await run_in_threadpool(_page, engine(request), after, person, limit, offset)
    return {"sightings": [s.to_dict() for s in found], "total": total}


def _page(eng: Engine, since: float | None, person: str | None, limit: int, offset: int) -> tuple[list[Any], int]:
    with eng.lock:
        return eng.gallery.sightings_page(since=since, person=person, limit=limit, offset=offset)
