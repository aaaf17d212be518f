"""The one error hierarchy of faceprint.

Every error a user can cause derives from :class:`FaceprintError` and also from the built-in
exception a Python user would expect, so ``except ValueError`` keeps working::

    FaceprintError (Exception)
    ├── InvalidImageError (ValueError)        input is not a readable image
    │   └── ImageTooLargeError                more pixels than the configured limit
    ├── NoFaceError (ValueError)              an image that must hold a face holds none
    ├── ModelError (RuntimeError)             weights missing, corrupt, or of the wrong kind
    │   ├── WeightsNotFoundError (FileNotFoundError)
    │   └── LicenceNotAcceptedError (PermissionError)   non-commercial weights used without opting in
    ├── UnknownNameError (KeyError)           a detector/model name that is not registered
    ├── VideoError (OSError)                  a video file, camera or stream cannot be opened or written (issue 8)
    └── GalleryError (RuntimeError)           persistent gallery problems (issue 4)
        ├── ModelMismatchError                a gallery made by another model or weights
        └── UnknownPersonError (KeyError)     a person name that is not enrolled

Messages say what was expected, what came, and what to do.
"""

from __future__ import annotations

__all__ = [
    "FaceprintError",
    "GalleryError",
    "ImageTooLargeError",
    "InvalidImageError",
    "LicenceNotAcceptedError",
    "ModelError",
    "ModelMismatchError",
    "NoFaceError",
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
