"""API keys: ``X-API-Key: <key>`` (or ``Authorization: Bearer <key>``).

With ``api_key`` set, every /v1 call needs a key; with ``admin_key`` set, changes to the gallery
need the admin key (which also reads). With neither, the service is open (loopback use).
"""

from __future__ import annotations

import hmac

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from .errors import ApiError

__all__ = ["require_admin", "require_read"]

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The read key, or the admin key for changes.")


def _given(request: Request, key: str | None) -> str | None:
    if key:
        return key
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def _matches(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def require_read(request: Request, key: str | None = Security(_header)) -> None:
    s = request.app.state.settings
    if not s.api_key:
        return  # reads are open unless a read key is configured
    given = _given(request, key)
    if given is None:
        raise ApiError(401, "unauthorized", "this service needs an API key: send it as the X-API-Key header")
    if not (_matches(given, s.api_key) or _matches(given, s.admin_key)):
        raise ApiError(401, "unauthorized", "the API key is not valid")


def require_admin(request: Request, key: str | None = Security(_header)) -> None:
    s = request.app.state.settings
    expected = s.admin_key or s.api_key
    if not expected:
        return
    given = _given(request, key)
    if given is None:
        raise ApiError(401, "unauthorized", "changing the gallery needs the admin key: send it as the X-API-Key header")
    if _matches(given, expected):
        return
    if _matches(given, s.api_key):
        raise ApiError(403, "forbidden", "the read key cannot change the gallery; use the admin key")
    raise ApiError(401, "unauthorized", "the API key is not valid")
