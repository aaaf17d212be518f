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
    allowed_hosts: host names (besides localhost, 127.0.0.1 and [::1]) the service answers to; a
        loopback service answers to no others (DNS rebinding), any service with some set only to
        those ("*": any). max_requests: requests handled at once; more get a JSON 503 with Retry-After.
    max_connections / max_connections_per_ip: open connections in all / from one client address (0:
        no per-address limit; behind a reverse proxy every client has the proxy's address).
    header_timeout / body_timeout: seconds a client has to send a request's head / its body, so
        slow or idle clients cannot hold connections open.
    far: default false-accept rate of decisions, mapped through the model's calibration (1:N
        adjusted for the gallery's size on identify); a request's threshold or far overrides it.
    min_quality: the face-quality floor (0-1, faceprint.quality): enrolment refuses faces below it
        (422 low_quality) and identify/verify answer "too poor to decide" for them; None: the
        library's default (``quality.DEFAULT_MIN_QUALITY``), 0: off.
    sightings_retention_days: sightings (known people seen in video streams) older than this many
        days are purged as new ones are recorded, and never served (0: kept until purged by hand).
    max_streams: server-side video streams (cameras, files, URLs: POST /v1/streams) held at once.
    greet_template: greet known people recognised in the streams with this text ({name} for the
        person), spoken with espeak-ng (printed to the log without it); None: no greeting.
    greet_to: write each greeting to a numbered WAV file beside this path instead of playing it.
    greet_cooldown: seconds before the same person is greeted again, across all streams.
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
    min_quality: float | None = None  # face-quality floor; None: faceprint.quality.DEFAULT_MIN_QUALITY
    allowed_hosts: tuple[str, ...] = ()
    max_requests: int = 128
    # Below the usual 1024 file descriptors a process may open, leaving room for the gallery and models.
    max_connections: int = 512
    max_connections_per_ip: int = 64
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    sightings_retention_days: float = 30.0
    max_streams: int = 8  # server-side video streams (POST /v1/streams) held at once; 0: none allowed
    greet_template: str | None = None
    greet_to: str | None = None
    greet_cooldown: float = 60.0

    def __post_init__(self) -> None:
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if value is not None and not (low <= value and (high is None or value <= high)):
                bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
                raise ValueError(f"{name} must be {bounds}, got {value!r} (FACEPRINT_{name.upper()})")

    @property
    def on_loopback(self) -> bool:
        """Whether the service listens on loopback only (a host name other than localhost may not)."""
        host = self.host.strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

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
        for key in _LISTS:
            if isinstance(values.get(key), str):
                values[key] = _parse(key, values[key])
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


_INTS = {"port", "threads", "max_upload_bytes", "max_pixels", "max_batch", "max_inflight", "top_k", "max_requests",
         "max_connections", "max_connections_per_ip", "max_streams"}
_FLOATS = {"batch_wait_ms", "far", "min_quality", "header_timeout", "body_timeout", "sightings_retention_days",
           "greet_cooldown"}
_LISTS = {"cors_origins", "allowed_hosts"}  # comma-separated in the environment
# Allowed (lowest, highest) of numeric settings, inclusive; None: no upper bound.
_RANGES: dict[str, tuple[float, float | None]] = {
    "port": (1, 65535), "threads": (1, None), "max_upload_bytes": (1, None), "max_pixels": (1, None),
    "max_batch": (1, None), "batch_wait_ms": (0, None), "min_quality": (0, 1), "max_inflight": (1, None), "top_k": (1, None),
    "max_requests": (1, None), "max_connections": (1, None), "max_connections_per_ip": (0, None),
    "header_timeout": (0.1, None), "body_timeout": (0.1, None), "sightings_retention_days": (0, None), "max_streams": (0, 1000),
    "greet_cooldown": (0, None),
}


def _parse(name: str, raw: str) -> Any:
    if name in _INTS:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"FACEPRINT_{name.upper()}={raw!r} is not an integer") from None
    if name in _FLOATS:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"FACEPRINT_{name.upper()}={raw!r} is not a number") from None
    if name in _LISTS:
        return tuple(o.strip() for o in raw.split(",") if o.strip())
    return raw


def exposure_warning(settings: Settings) -> str | None:
    """A warning when the service listens beyond loopback without a read key, else None."""
    if settings.api_key or settings.on_loopback:
        return None
    if settings.admin_key:  # changes need the key, but names, faces and kept photos are open to all
        return (
            f"listening on {settings.host} with only an admin key: anyone who can reach this port can list "
            "people, identify faces and download enrolled photos; set FACEPRINT_API_KEY (or --api-key) for reads too"
        )
    return (
        f"listening on {settings.host} without API keys: anyone who can reach this port can read and change "
        "the gallery; set FACEPRINT_API_KEY and FACEPRINT_ADMIN_KEY (or --api-key/--admin-key), or bind 127.0.0.1"
    )
