"""Every error as JSON ``{"error": {"code": <stable code>, "message": <what to do>}}``.

A :class:`~faceprint.errors.FaceprintError` is the caller's doing (a bad image, an unknown
person), so it maps to a 4xx, never a 500; except a :class:`~faceprint.errors.StorageError`, the
gallery's storage refusing a write (read-only, locked, failing: 503 ``storage_unavailable``; full:
507 ``insufficient_storage``), which is also what SQLite's and the file system's own errors are
mapped to. Codes are stable: clients branch on them.
"""

from __future__ import annotations

import logging
import sqlite3

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import (
    FaceprintError,
    GalleryError,
    ImageTooLargeError,
    InvalidImageError,
    LowQualityError,
    ModelMismatchError,
    NoFaceError,
    StorageError,
    StorageFullError,
    UnknownNameError,
    UnknownPersonError,
)
from .batcher import OverloadedError

__all__ = ["RETRY_AFTER_S", "ApiError", "error_body", "install_error_handlers"]

log = logging.getLogger("faceprint.service")

# Most specific first: the first class the error is an instance of decides.
_FACEPRINT_CODES: list[tuple[type[FaceprintError], int, str]] = [
    (ImageTooLargeError, 413, "image_too_large"),
    (InvalidImageError, 400, "invalid_image"),
    (NoFaceError, 422, "no_face"),
    (LowQualityError, 422, "low_quality"),
    (UnknownPersonError, 404, "person_not_found"),
    (ModelMismatchError, 409, "model_mismatch"),
    (StorageFullError, 507, "insufficient_storage"),
    (StorageError, 503, "storage_unavailable"),
    (GalleryError, 409, "gallery_conflict"),
    (UnknownNameError, 400, "unknown_name"),
    (FaceprintError, 400, "bad_request"),
]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    421: "host_not_allowed",
    422: "invalid_request",
    503: "overloaded",
}

RETRY_AFTER_S = 1  # what every 503 (overloaded) tells the client to wait, in seconds


class ApiError(Exception):
    """An error of the HTTP layer itself (missing field, bad base64, duplicate photo, ...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def _json(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def faceprint_status(exc: FaceprintError) -> tuple[int, str]:
    for cls, status, code in _FACEPRINT_CODES:
        if isinstance(exc, cls):
            return status, code
    return 400, "bad_request"  # unreachable: FaceprintError is last in the table


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FaceprintError)
    async def _faceprint(_: Request, exc: FaceprintError) -> JSONResponse:
        status, code = faceprint_status(exc)
        return _json(status, code, str(exc))

    @app.exception_handler(sqlite3.OperationalError)
    @app.exception_handler(OSError)
    async def _storage(_: Request, exc: Exception) -> JSONResponse:
        # A read-only, locked, failing or full gallery (SQLite or the kept photos) is the operator's
        # to fix: say so (503/507), not "internal error". Any other OSError stays a 500.
        storage = StorageError.of(exc)
        if storage is None:
            raise exc
        log.warning("gallery storage: %s: %s", type(exc).__name__, exc)
        status, code = faceprint_status(storage)
        return _json(status, code, str(storage))

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return _json(exc.status, exc.code, exc.message)

    @app.exception_handler(OverloadedError)
    async def _overloaded(_: Request, exc: OverloadedError) -> JSONResponse:
        return _json(503, "overloaded", str(exc), {"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return _json(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
        return _json(422, "invalid_request", "; ".join(parts) or "the request does not match the API schema")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _json(500, "internal_error", f"internal error ({type(exc).__name__}); see the server log")
