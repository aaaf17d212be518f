"""Face detection stage: a registry of detectors picked by name.

Every detector takes (H, W, 3) uint8 RGB images and returns, per image, a list of
:class:`faceprint.types.Detection` in the original image's coordinates, best score first::

    det = get_detector("mtcnn")
    faces = det.detect(image)              # list[Detection]
    per_image = det.detect_batch(images)   # list[list[Detection]]
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import UnknownNameError
from ..types import Detection

__all__ = ["Detector", "get_detector", "list_detectors", "register_detector"]


@runtime_checkable
class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]: ...


# name -> ("module:Class", default keyword arguments). Imported lazily so that choosing Haar
# never loads torch models and vice versa.
_DETECTORS: dict[str, tuple[str, dict[str, Any]]] = {}


def register_detector(name: str, target: str, **defaults: Any) -> None:
    """Register ``target`` ("package.module:Class") under ``name`` with default kwargs."""
    _DETECTORS[name] = (target, defaults)


def list_detectors() -> list[str]:
    """Registered names; each also exists with the suffix "-upright" (rotation search)."""
    return sorted(_DETECTORS)


def get_detector(name: str, **kwargs: Any) -> Detector:
    """A new detector instance by registered name; kwargs override the registered defaults.

    Any name with the suffix "-upright" (e.g. "mtcnn-upright") also searches images where no
    face is found at 90, 180 and 270 degrees (:class:`faceprint.detect.upright.UprightSearch`).
    """
    if name.endswith("-upright") and name not in _DETECTORS:
        from .upright import UprightSearch

        return UprightSearch(get_detector(name[: -len("-upright")], **kwargs))
    try:
        target, defaults = _DETECTORS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown detector {name!r}; choose one of: {', '.join(list_detectors())}"
        ) from None
    module_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(**{**defaults, **kwargs})


register_detector("mtcnn", "faceprint.detect.mtcnn:MTCNNDetector")
register_detector("mmod", "faceprint.detect.mmod:MMODDetector", upsample=0)
register_detector("mmod-up1", "faceprint.detect.mmod:MMODDetector", upsample=1)
register_detector("haar", "faceprint.detect.haar:HaarDetector")
