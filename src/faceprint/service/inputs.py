"""Reading images from requests: a multipart file field, or the same name + ``_base64`` in JSON.

Both forms are documented in the OpenAPI schema by :func:`image_body`, since FastAPI cannot
declare one body that may be either.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from .errors import ApiError

__all__ = ["image_body", "read_inputs"]


def image_body(images: dict[str, str], fields: dict[str, tuple[str, str]] | None = None, required: tuple[str, ...] = ("image",)) -> dict[str, Any]:
    """``openapi_extra`` describing a body of image files (multipart) or base64 strings (JSON).

    images: field name -> description; fields: other form/JSON fields, name -> (type, description).
    """
    fields = fields or {}
    multipart: dict[str, Any] = {name: {"type": "string", "format": "binary", "description": d} for name, d in images.items()}
    js: dict[str, Any] = {
        f"{name}_base64": {"type": "string", "description": f"{d} (base64, a data: URL prefix is allowed)"}
        for name, d in images.items()
    }
    for name, (typ, d) in fields.items():
        multipart[name] = js[name] = {"type": typ, "description": d}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": multipart, "required": list(required)}
                },
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": js,
                        "required": [f"{r}_base64" for r in required],
                    }
                },
            },
        }
    }


async def read_inputs(
    request: Request, images: tuple[str, ...], fields: tuple[str, ...] = ()
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """(image bytes by field name, other field values) of a multipart or JSON request; absent ones left out."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    found: dict[str, bytes] = {}
    values: dict[str, Any] = {}
    if ctype == "multipart/form-data":
        async with request.form() as form:
            for name in images:
                item = form.get(name)
                if item is None:
                    continue
                if not isinstance(item, UploadFile):
                    raise ApiError(400, "invalid_image", f"multipart field {name!r} must be a file upload, not text")
                found[name] = await item.read()
            values = {k: form.get(k) for k in fields if form.get(k) is not None}
        return found, values
    if ctype == "application/json":
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_json", f"the body is not valid JSON ({exc})") from None
        except RecursionError:  # [[[[...]]]] deeper than the parser's stack
            raise ApiError(400, "invalid_json", "the JSON body is nested too deeply") from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", "the JSON body must be an object like {\"image_base64\": \"...\"}")
        for name in images:
            if body.get(f"{name}_base64") is not None:
                found[name] = _b64(body[f"{name}_base64"], f"{name}_base64")
        values = {k: body[k] for k in fields if body.get(k) is not None}
        return found, values
    raise ApiError(
        415,
        "unsupported_media_type",
        f"send multipart/form-data with a file field {images[0]!r}, or JSON with {images[0] + '_base64'!r}; "
        f"got content type {ctype or 'none'!r}",
    )


def _b64(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise ApiError(400, "invalid_base64", f"{name} must be a base64 string")
    if value.startswith("data:") and "," in value:  # what a browser's FileReader / canvas gives
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "invalid_base64", f"{name} is not valid base64 ({exc})") from None


def require_image(found: dict[str, bytes], name: str = "image") -> bytes:
    if name not in found:
        raise ApiError(
            400, "missing_image", f"no image: send a multipart file field {name!r} or JSON {{\"{name}_base64\": ...}}"
        )
    return found[name]
