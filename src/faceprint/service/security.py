"""API keys: ``X-API-Key: <key>`` (or ``Authorization: Bearer <key>``), and which browsers may ask.

With ``api_key`` set, every /v1 call needs a key; with ``admin_key`` set, changes to the gallery
need the admin key (which also reads). With neither, the service is open (loopback use), so two
checks stand in for keys against web pages the user happens to visit: :func:`host_refusal` (a
DNS-rebinding page reaches us under its own host name) and :func:`origin_refusal` (a page on
another origin may POST a form or a multipart upload without any CORS preflight).
"""

from __future__ import annotations

import hmac
from collections.abc import Collection
from urllib.parse import urlsplit

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from .errors import ApiError
from .settings import Settings

__all__ = ["allowed_hosts", "host_refusal", "origin_refusal", "require_admin", "require_read"]

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

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


def _hostname(host: str) -> str:
    """``example.test:8000`` -> ``example.test``; ``[::1]:8000`` -> ``[::1]``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0]


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """Host names (no port) the service answers to; None: any (a public service with none configured)."""
    names = frozenset(_hostname(h) for h in settings.allowed_hosts)
    if "*" in names or not (names or settings.on_loopback):
        return None
    return LOOPBACK_HOSTS | names


def host_refusal(host: str | None, allowed: Collection[str] | None) -> ApiError | None:
    """A 421 when the ``Host`` header names a host the service does not answer to, else None."""
    if host is None or allowed is None:
        return None  # no Host: HTTP/1.0 scripts; browsers always send one
    if _hostname(host) in allowed:
        return None
    return ApiError(
        421, "host_not_allowed",
        f"this service does not answer to the host name {_hostname(host)!r}; use http://127.0.0.1 or add the name "
        "to FACEPRINT_ALLOWED_HOSTS",
    )


def origin_refusal(
    method: str, host: str | None, origin: str | None, fetch_site: str | None, cors_origins: Collection[str]
) -> ApiError | None:
    """A 403 when a browser sends a state-changing request from another origin, else None.

    Allowed: no ``Origin`` (curl, scripts: browsers send one with every such request), an
    ``Origin`` equal to the request's own host and port, and the configured ``cors_origins``.
    ``Sec-Fetch-Site`` (set by the browser, not the page) must then agree, when sent.
    """
    if method.upper() not in UNSAFE_METHODS or (origin is not None and (origin in cors_origins or "*" in cors_origins)):
        return None
    same = origin is None or (host is not None and urlsplit(origin).netloc.lower() == host.strip().lower())
    if same and fetch_site in (None, "same-origin", "none"):
        return None
    source = f"the web page at {origin}" if origin else f"a {fetch_site} web page"
    return ApiError(
        403, "cross_origin_request",
        f"{method} from {source} is refused: only this service's own page and the origins in "
        "FACEPRINT_CORS_ORIGINS may change anything",
    )
