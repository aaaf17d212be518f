"""The app factory: ``create_app(settings)`` -> a FastAPI app with its routers, limits and page.

Models load once per worker process, in the app's lifespan (not at import), so
``uvicorn --factory faceprint.service:create_app --workers N`` gives each worker its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
from .middleware import BodyLimit, Metrics, RecordMetrics
from .routes import faces, people, system
from .routes.system import STATIC
from .settings import Settings

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
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = await run_in_threadpool(Engine, settings, metrics.on_batch)
        app.state.engine = engine
        app.state.slots = asyncio.Semaphore(settings.max_inflight)
        metrics.queue.set_function(engine.batcher.qsize)
        try:
            yield
        finally:
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
    for module in (faces, people, system):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title="faceprint API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js", swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    # Added last = outermost: CORS headers on every answer, metrics on every answer incl. 413s.
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(RecordMetrics, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
            allow_headers=["*"], max_age=600,
        )
    return app
