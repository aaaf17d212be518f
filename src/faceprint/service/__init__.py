"""The HTTP service and its web page (``faceprint serve``), at the edge: it uses the public API.

    settings.py    flags > FACEPRINT_* env > defaults
    app.py         create_app(settings): routers, middleware, lifespan (models load once per worker)
    engine.py      the one pipeline + gallery of a worker; gallery access serialised
    batcher.py     concurrent requests' images batched through the networks in one thread
    routes/        faces (detect, embed, identify, verify), people (the gallery), system
    schemas.py     wire shapes (pydantic -> OpenAPI); inputs.py multipart/base64 images
    errors.py      {"error": {"code", "message"}}; security.py API keys; middleware.py limits, metrics
    static/        the web page
"""

from __future__ import annotations

from .app import create_app
from .settings import Settings, default_db, exposure_warning

__all__ = ["Settings", "create_app", "default_db", "exposure_warning"]
