"""OpenCV's Viola-Jones Haar cascade: the cheap frontal-face detector (CPU, no weights to fetch).

Fast and dependency-light, but it finds only roughly frontal, upright faces, gives no landmarks,
and has more false positives than MTCNN or MMOD. Use it for quick scans or as a fallback.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np

from .._validate import check_pixels
from ..errors import ModelError
from ..types import Detection

__all__ = ["HaarDetector"]

_INSTALL_HINT = (
    "OpenCV's Haar cascade files ship with the opencv-python 4.x wheels but not with OpenCV 5; "
    "install them with `pip install 'opencv-python-headless<5'`"
)


class HaarDetector:
    """Frontal faces with ``cv2.CascadeClassifier.detectMultiScale3``.

    scale_factor: image pyramid step (> 1); smaller finds more faces, more slowly.
    min_neighbors: raw windows that must overlap before a face is reported; higher = fewer false
        positives and fewer faces.
    min_size: smallest face side searched, in pixels (the default cascade cannot go below 24).
    cascade: a file name in ``cv2.data.haarcascades`` or a path to a cascade XML file.

    ``Detection.score`` is OpenCV's ``levelWeights`` value: the boosted sum of the cascade's last
    stage for the strongest raw window merged into the face, i.e. how far past the final stage's
    threshold the window went. Higher is more face-like; it is unbounded (about 0-12 for the
    default cascade, false positives typically below 3), not a probability, and only comparable
    between detections from the same cascade.
    """

    name = "haar"

    def __init__(
        self,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 20,
        cascade: str = "haarcascade_frontalface_default.xml",
    ) -> None:
        # Bad settings are programming errors in the call, so the built-in ValueError.
        if not scale_factor > 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor!r}")
        if int(min_neighbors) != min_neighbors or min_neighbors < 0:
            raise ValueError(f"min_neighbors must be an int >= 0, got {min_neighbors!r}")
        if int(min_size) != min_size or min_size < 1:
            raise ValueError(f"min_size must be an int >= 1, got {min_size!r}")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.cascade = cascade
        self._classifier: cv2.CascadeClassifier | None = None  # loaded on first use

    def __repr__(self) -> str:
        return (
            f"HaarDetector(scale_factor={self.scale_factor}, min_neighbors={self.min_neighbors}, "
            f"min_size={self.min_size}, cascade={self.cascade!r})"
        )

    def _load(self) -> cv2.CascadeClassifier:
        if self._classifier is None:
            path = _cascade_path(self.cascade)
            classifier = cv2.CascadeClassifier()
            problem = "the file is not a cascade XML or is damaged"
            try:
                loaded = classifier.load(path)
            except cv2.error as exc:  # malformed XML raises instead of returning False
                raise ModelError(f"OpenCV could not load the Haar cascade {path}: {problem}") from exc
            if not loaded or classifier.empty():
                raise ModelError(f"OpenCV could not load the Haar cascade {path}: {problem}")
            self._classifier = classifier
        return self._classifier

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in one (H, W, 3) uint8 RGB image, best score first.

        Boxes are (left, top, right, bottom) float pixels, right/bottom exclusive; landmarks None.
        """
        check_pixels(image, "HaarDetector.detect")
        classifier = self._load()
        gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        # No histogram equalisation: on the test photos it added false positives without
        # finding more real faces.
        rects, _levels, weights = classifier.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        found = [
            Detection(
                box=(float(x), float(y), float(x + w), float(y + h)),
                score=float(s),
                landmarks=None,
                detector=self.name,
            )
            for (x, y, w, h), s in zip(np.reshape(rects, (-1, 4)), np.ravel(weights))
        ]
        # Ties broken by position so the order does not depend on OpenCV's thread scheduling.
        found.sort(key=lambda d: (-d.score, d.box[1], d.box[0]))
        return found

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """:meth:`detect` on each image; the cascade has no batched mode."""
        return [self.detect(image) for image in images]


def _cascade_path(cascade: str) -> str:
    """Absolute path of the cascade file; ModelError when it is not installed."""
    if os.path.dirname(cascade):  # a path given by the user
        if not os.path.isfile(cascade):
            raise ModelError(f"Haar cascade file not found: {cascade}")
        return cascade
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not folder:
        raise ModelError(f"this OpenCV ({cv2.__version__}) has no cv2.data.haarcascades; {_INSTALL_HINT}")
    path = os.path.join(folder, cascade)
    if not os.path.isfile(path):
        raise ModelError(f"Haar cascade {cascade!r} is not in {folder}; {_INSTALL_HINT}")
    return path
