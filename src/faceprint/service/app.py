"""The app factory: ``create_app(settings)`` -> a FastAPI app with its routers, limits and page.

Models load once per worker process, in the app's lifespan (not at import), so
``uvicorn --factory faceprint.service:create_app --workers N`` gives each worker its own (add
``--http faceprint.service.middleware:GuardedH11Protocol`` for the connection limits and head
deadline that ``faceprint serve`` uses).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from swagger_ui_bundle import swagger_ui_path

from .. import __version__
from .engine import Engine
from .errors import install_error_handlers
from .middleware import (
    CONNECTION_GUARD,
    BodyLimit,
    ConnectionGuard,
    Metrics,
    RecordMetrics,
    RequestGuard,
    RequestLimit,
    SecurityHeaders,
)
from .routes import faces, people, sightings, system
from .routes import live as live_routes
from .routes import streams as stream_routes
from .routes.system import STATIC
from .settings import Settings
from .streams import StreamManager, greet_streams

__all__ = ["create_app"]

DESCRIPTION = """Face detection, verification and identification against a persistent gallery.

Images: a multipart file field `image` (or JSON `{"image_base64": ...}`). Errors:
`{"error": {"code": <stable code>, "message": ...}}`. Keys: `X-API-Key` (the read key; the admin
key for changes) when the server is configured with them. The web page is at `/`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app; ``settings`` default to the ``FACEPRINT_*`` environment."""
    settings = settings or Settings.from_env()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        engine = await run_in_threadpool(Engine, settings, metrics.on_batch)
        app.state.engine = engine
        app.state.slots = asyncio.Semaphore(settings.max_inflight)
        app.state.streams = streams = StreamManager(engine, settings.max_streams)  # /v1/streams (issue 16)
        greeter = greet_streams(streams, settings) if settings.greet_template is not None else None
        metrics.queue.set_function(engine.batcher.qsize)
        try:
            # The lifespan state is where the server's connections (GuardedH11Protocol) find their limits.
            yield {CONNECTION_GUARD: ConnectionGuard(settings)}
        finally:
            await run_in_threadpool(streams.close)  # before the engine: the streams use its networks
            if greeter is not None:
                await run_in_threadpool(greeter.close)
            await run_in_threadpool(engine.close)

    # FastAPI's own /docs and /redoc load their scripts from a CDN, which an offline machine
    # cannot reach: /docs is served here from the swagger-ui-bundle package instead.
    app = FastAPI(
        title="faceprint", version=__version__, description=DESCRIPTION, lifespan=lifespan,
        docs_url=None, redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    for module in (faces, people, sightings, system):
        app.include_router(module.router)
    app.include_router(live_routes.router)  # WebSocket /v1/live (issue 16)
    app.include_router(stream_routes.router)  # /v1/streams, /v1/events (issue 16)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    docs_page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json", title="faceprint API",
        swagger_js_url="/docs-assets/swagger-ui-bundle.js", swagger_css_url="/docs-assets/swagger-ui.css",
        swagger_favicon_url="/docs-assets/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
    )
    docs_headers = {"Content-Security-Policy": _docs_policy(docs_page.body)}

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(docs_page.body, headers=docs_headers)

    # Added last = outermost: security headers and CORS headers on every answer; metrics on every
    # answer incl. refusals; host and origin checked before a request counts or its body is read.
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes, timeout=settings.body_timeout)
    app.add_middleware(RequestLimit, max_requests=settings.max_requests)
    app.add_middleware(RequestGuard, settings=settings)
    app.add_middleware(RecordMetrics, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
            allow_headers=["*"], max_age=600,
        )
    app.add_middleware(SecurityHeaders)
    return app


def _docs_policy(page: bytes) -> str:
    """/docs' Content-Security-Policy: Swagger UI starts from an inline script, allowed by its hash,
    and styles its elements inline."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in re.findall(rb"<script>(.*?)</script>", page, re.S)
    )
    return (f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
