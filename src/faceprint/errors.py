"""The one error hierarchy of faceprint.

Every error a user can cause derives from :class:`FaceprintError` and also from the built-in
exception a Python user would expect, so ``except ValueError`` keeps working::

    FaceprintError (Exception)
    ├── InvalidImageError (ValueError)        input is not a readable image
    │   └── ImageTooLargeError                more pixels than the configured limit
    ├── NoFaceError (ValueError)              an image that must hold a face holds none
    ├── LowQualityError (ValueError)          a face too poor (blurred, tiny, dark, turned) to enrol
    ├── ModelError (RuntimeError)             weights missing, corrupt, or of the wrong kind
    │   ├── WeightsNotFoundError (FileNotFoundError)
    │   └── LicenceNotAcceptedError (PermissionError)   non-commercial weights used without opting in
    ├── UnknownNameError (KeyError)           a detector/model name that is not registered
    ├── VideoError (OSError)                  a video file, camera or stream cannot be opened or written (issue 8)
    └── GalleryError (RuntimeError)           persistent gallery problems (issue 4)
        ├── ModelMismatchError                a gallery made by another model or weights
        ├── UnknownPersonError (KeyError)     a person name that is not enrolled
        └── StorageError (OSError)            its storage refuses a write: read-only, locked, failing (issue 14)
            └── StorageFullError              no space left: disk full, quota or file-size limit

Messages say what was expected, what came, and what to do.
"""

from __future__ import annotations

import errno
import sqlite3

__all__ = [
    "FaceprintError",
    "GalleryError",
    "ImageTooLargeError",
    "InvalidImageError",
    "LicenceNotAcceptedError",
    "LowQualityError",
    "ModelError",
    "ModelMismatchError",
    "NoFaceError",
    "StorageError",
    "StorageFullError",
    "UnknownNameError",
    "UnknownPersonError",
    "VideoError",
    "WeightsNotFoundError",
]


class FaceprintError(Exception):
    """Root of every error faceprint raises on purpose."""


class InvalidImageError(FaceprintError, ValueError):
    """The input could not be decoded as an image (unreadable, empty, truncated, not an image)."""


class ImageTooLargeError(InvalidImageError):
    """The image has more pixels than the configured limit (decompression-bomb guard)."""


class NoFaceError(FaceprintError, ValueError):
    """An operation that needs a face found none in the image."""


class LowQualityError(FaceprintError, ValueError):
    """A face's quality (:mod:`faceprint.quality`) is below the floor set for enrolment.

    quality: the face's score; floor: the floor it missed. Both are also in the message.
    """

    def __init__(self, message: str, quality: float = float("nan"), floor: float = float("nan")) -> None:
        super().__init__(message)
        self.quality, self.floor = quality, floor

    @classmethod
    def of(cls, quality: float, floor: float, where: str = "the photo") -> LowQualityError:
        return cls(
            f"the face in {where} is too poor to enrol: quality {quality:.2f} is below the floor {floor:.2f}; "
            "use a sharper, larger, well-lit, frontal photo (or lower the floor: --min-quality, "
            "FACEPRINT_MIN_QUALITY)",
            quality,
            floor,
        )


class ModelError(FaceprintError, RuntimeError):
    """Model weights are missing, corrupt, or not the model that was asked for."""


class WeightsNotFoundError(ModelError, FileNotFoundError):
    """A weights file is not installed and cannot be fetched here."""


class LicenceNotAcceptedError(ModelError, PermissionError):
    """Weights under non-commercial terms were asked for without accepting those terms by name."""


class UnknownNameError(FaceprintError, KeyError):
    """A registry lookup (detector, model) named something that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0]) if self.args else ""


class VideoError(FaceprintError, OSError):
    """A video file, camera or stream cannot be opened or written, or a live stream stayed lost."""


class GalleryError(FaceprintError, RuntimeError):
    """The persistent gallery cannot do what was asked (wrong model, corrupt file, ...)."""


class ModelMismatchError(GalleryError):
    """A gallery's descriptors were made by another model (or weights) than the one asked for."""


class UnknownPersonError(GalleryError, KeyError):
    """A gallery operation named a person who is not enrolled."""

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0]) if self.args else ""


class StorageError(GalleryError, OSError):
    """The gallery's storage (database or kept photos) refuses a write: read-only, locked or
    failing. Nothing was changed; it is the operator's to fix, not the caller's input."""

    # What SQLite says (its message: the exception carries no errno) and which errno values mean
    # "full" (a file-size limit, RLIMIT_FSIZE, gives EFBIG and reads the same to whoever fixes it).
    _SQLITE_FULL = ("database or disk is full",)
    _SQLITE_UNAVAILABLE = ("readonly database", "read-only", "disk i/o error", "database is locked",
                           "database table is locked", "unable to open database file")
    _ERRNO_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
    _ERRNO_UNAVAILABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})

    @classmethod
    def of(cls, exc: BaseException) -> StorageError | None:
        """The StorageError (or StorageFullError) that a failed write means, or None when ``exc``
        (a ``sqlite3.OperationalError`` or an ``OSError`` from writing a file) is something else.

        An error raised while handling another (SQLite rolls back by itself after a full disk or an
        I/O error, so a ROLLBACK then fails with "no transaction is active") is judged by that other.
        """
        seen = 0
        while exc is not None and seen < 4:
            found = cls._classify(exc)
            if found is not None:
                return found
            exc, seen = exc.__cause__ or exc.__context__, seen + 1
        return None

    @classmethod
    def _classify(cls, exc: BaseException) -> StorageError | None:
        if isinstance(exc, StorageError):
            return exc
        if isinstance(exc, sqlite3.OperationalError):
            text = str(exc).lower()
            full = any(m in text for m in cls._SQLITE_FULL)
            if not full and not any(m in text for m in cls._SQLITE_UNAVAILABLE):
                return None
            what = str(exc)
        elif isinstance(getattr(exc, "sqlstate", None), str) or _is_pg_connection_error(exc):
            # PostgreSQL (psycopg): by SQLSTATE. 53100 disk_full; the rest of class 53 (memory,
            # connections), 08 (connection lost), 57 (server shutting down), 25006 (read-only
            # server, e.g. a standby) and 55P03 (lock timeout) are the operator's to fix too.
            state = getattr(exc, "sqlstate", None) or "08000"
            full = state == "53100"
            if not full and state[:2] not in ("08", "53", "57") and state not in ("25006", "55P03"):
                return None
            what = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if state == "55P03":
                what = f"{what}: locked"
        elif isinstance(exc, OSError) and not isinstance(exc, FaceprintError):
            full = exc.errno in cls._ERRNO_FULL
            if not full and exc.errno not in cls._ERRNO_UNAVAILABLE:
                return None
            what = exc.strerror or str(exc)
        else:
            return None
        if full:
            return StorageFullError(
                f"the gallery's storage is full ({what}); nothing was saved. Free disk space (or raise the "
                "quota or file-size limit) where the gallery and its photos are kept, then retry"
            )
        if "locked" in what.lower():
            return cls(f"the gallery is locked by another process ({what}); nothing was saved. Retry in a few seconds")
        return cls(
            f"the gallery's storage cannot be written ({what}); nothing was saved. Check that the gallery's "
            "folder, file and photo folder are writable and that the disk is healthy and has space, then retry"
        )


def _is_pg_connection_error(exc: BaseException) -> bool:
    """psycopg's OperationalError without a SQLSTATE: the server went away mid-statement."""
    return type(exc).__name__ == "OperationalError" and type(exc).__module__.startswith("psycopg")


class StorageFullError(StorageError):
    """No space left for the gallery: disk full, a quota, or a file-size limit."""
