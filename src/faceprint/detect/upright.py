"""Find faces in photos stored sideways or upside down (no EXIF tag to say so).

Upright detectors (MTCNN, Haar, MMOD) miss faces turned by 90 or 180 degrees. This wrapper runs
the inner detector as usual and, only for images where it finds nothing, again on the image
turned by 90, 180 and 270 degrees; the turn with the best top score wins and its detections are
mapped back into the original image's coordinates. Landmarks come back turned with the face, so
alignment still produces an upright chip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..types import Detection

__all__ = ["UprightSearch"]


def _unturn_points(points: np.ndarray, shape: tuple[int, ...], k: int, edge: float) -> np.ndarray:
    """(N, 2) (x, y) in ``np.rot90(image, k)`` -> the same points in ``image`` of ``shape``.

    ``edge`` is 1 for pixel-centre points (landmarks) and 0 for box edges (exclusive right).
    """
    h, w = shape[:2]
    x, y = points[:, 0], points[:, 1]
    if k == 1:  # rot90 turns counter-clockwise: rotated (x', y') came from (w - edge - y', x')
        return np.stack([w - edge - y, x], axis=1)
    if k == 2:
        return np.stack([w - edge - x, h - edge - y], axis=1)
    if k == 3:
        return np.stack([y, h - edge - x], axis=1)
    return points.copy()


def _unturn(det: Detection, shape: tuple[int, ...], k: int) -> Detection:
    left, top, right, bottom = det.box
    corners = _unturn_points(np.array([[left, top], [right, bottom]], float), shape, k, edge=0.0)
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    marks = None if det.landmarks is None else _unturn_points(det.landmarks, shape, k, edge=1.0)
    return Detection((lo[0], lo[1], hi[0], hi[1]), det.score, marks, det.detector)  # type: ignore[arg-type]


class UprightSearch:
    """Wraps a detector; images where it finds no face are searched again at 90/180/270 degrees."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = f"{inner.name}-upright"

    def detect(self, image: np.ndarray) -> list[Detection]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        results = self.inner.detect_batch(images)
        for i, (image, dets) in enumerate(zip(images, results)):
            if dets:
                continue
            turns = [(k, self.inner.detect(np.ascontiguousarray(np.rot90(image, k)))) for k in (1, 2, 3)]
            k, best = max(turns, key=lambda t: max((d.score for d in t[1]), default=-np.inf))
            results[i] = [_unturn(d, image.shape, k) for d in best]
        return results
