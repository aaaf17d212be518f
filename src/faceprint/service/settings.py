"""Service settings: command-line flags over ``FACEPRINT_*`` environment variables over defaults.

Read only here, at the edge; everything below takes a :class:`Settings`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..gallery.store import is_url

__all__ = ["Settings", "default_db", "exposure_warning"]


def default_db() -> Path:
    """The gallery ``make run`` and ``faceprint serve`` use when none is given: in the user cache."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "faceprint" / "gallery.db"


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told; ``FACEPRINT_<FIELD>`` in the environment sets a field.

    db: the gallery, a SQLite file or a postgresql:// URL (env FACEPRINT_GALLERY, shared with
        `faceprint gallery`); photos:
        where enrolled photos are kept (default ``<db>.photos/``), so samples can be re-embedded
        and shown. api_key: needed for every /v1 call when set; admin_key: needed for changes to
        the gallery when set (and accepted for reads). cors_origins: allowed browser origins.
    max_upload_bytes / max_pixels: request body and decoded image limits. max_batch / batch_wait_ms:
        the micro-batcher gathers up to this many images, waiting at most this long for company.
    max_inflight: images decoded or in the models at once; further requests wait (bounds memory).
    far: default false-accept rate of decisions, mapped through the model's calibration (1:N
        adjusted for the gallery's size on identify); a request's threshold or far overrides it.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    db: Path | str = field(default_factory=default_db)  # a SQLite file, or a postgresql:// URL
    photos: Path | None = None
    detector: str | None = None  # None: the model's own (ModelSpec.detector)
    model: str | None = None  # None: the gallery's own model (dlib-resnet-v1 for a new gallery)
    threads: int | None = None
    api_key: str | None = None
    admin_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_upload_bytes: int = 10 * 1024 * 1024
    # 25 MP: a 6000x4000 photo; decoded that is 75 MB, times max_inflight is the memory bound.
    max_pixels: int = 25_000_000
    max_batch: int = 16
    batch_wait_ms: float = 5.0
    max_inflight: int = 8
    top_k: int = 3
    far: float | None = None  # decide at this false-accept rate (model calibration) unless a threshold is given

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``FACEPRINT_*`` variables, then ``overrides`` that are not None."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            key = "FACEPRINT_GALLERY" if f.name == "db" else f"FACEPRINT_{f.name.upper()}"
            if env.get(key, "") != "":
                values[f.name] = _parse(f.name, env[key])
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("db", "photos"):
            if values.get(key) is not None and not is_url(values[key]):
                values[key] = Path(values[key]).expanduser()
        if isinstance(values.get("cors_origins"), str):
            values["cors_origins"] = _parse("cors_origins", values["cors_origins"])
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The ``FACEPRINT_*`` variables that make :meth:`from_env` give these settings again
        (how ``faceprint serve --workers N`` hands them to its worker processes)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            key = "FACEPRINT_GALLERY" if f.name == "db" else f"FACEPRINT_{f.name.upper()}"
            out[key] = ",".join(value) if isinstance(value, tuple) else str(value)
        return out

    @property
    def photos_dir(self) -> Path:
        """Kept photos: ``photos``, else ``<db>.photos/`` beside a SQLite file, else (PostgreSQL) a
        folder in the user cache named after the database. Replicas on several machines that should
        all show and re-embed kept photos need a shared ``photos`` folder."""
        if self.photos is not None:
            return self.photos
        if isinstance(self.db, str) and is_url(self.db):
            from urllib.parse import urlsplit

            name = urlsplit(self.db).path.strip("/") or "postgres"
            return default_db().parent / f"photos-{name}"
        db = Path(self.db)
        return db.with_name(db.name + ".photos")


_INTS = {"port", "threads", "max_upload_bytes", "max_pixels", "max_batch", "max_inflight", "top_k"}


def _parse(name: str, raw: str) -> Any:
    if name in _INTS:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"FACEPRINT_{name.upper()}={raw!r} is not an integer") from None
    if name in ("batch_wait_ms", "far"):
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"FACEPRINT_{name.upper()}={raw!r} is not a number") from None
    if name == "cors_origins":
        return tuple(o.strip() for o in raw.split(",") if o.strip())
    return raw


def exposure_warning(settings: Settings) -> str | None:
    """A warning when the service listens beyond loopback with no API key, else None."""
    if settings.api_key or settings.admin_key:
        return None
    host = settings.host.strip("[]")
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may resolve beyond loopback
    return (
        f"listening on {settings.host} without API keys: anyone who can reach this port can read and change "
        "the gallery; set FACEPRINT_API_KEY and FACEPRINT_ADMIN_KEY (or --api-key/--admin-key), or bind 127.0.0.1"
    )
