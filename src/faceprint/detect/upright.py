"""Find faces in photos stored sideways or upside down (no EXIF tag to say so).

Upright detectors (MTCNN, Haar, MMOD, YuNet) miss faces turned by 90 or 180 degrees, or worse,
find them with made-up upright landmarks (so the chip is sideways and recognition fails). This
wrapper runs the inner detector as usual and, only for images where it finds nothing or only
doubtful faces (top score below :data:`SEARCH_BELOW` for that detector), again on the image turned
by 90, 180 and 270 degrees; a turn replaces the original only with a better top score, and its
detections are mapped back into the original image's coordinates. Landmarks come back turned with
the face, so alignment still produces an upright chip. Photos with a confident face pay nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..types import Detection

__all__ = ["SEARCH_BELOW", "UprightSearch"]

#: Per detector, the top score below which its faces are doubted and the turns are searched too.
#: Measured on LFW's first photos of 300 people (YuNet) and 80 (MTCNN), each upright and turned
#: by 90/180/270: YuNet scores upright faces 0.904 and up (1st percentile) and finds a face in 70% of
#: turned photos at 0.90 at most (99th percentile, upside down); MTCNN 0.958 and up upright, and
#: finds faces in 20-30% of turned photos, 90% of them under 0.95. Among 161 other upright photos
#: (misc, happy-house, 5-celebrity) 13 score under YuNet's 0.9 and pay the search; in every one
#: the upright face still wins. Detectors not listed are searched only where they find nothing.
SEARCH_BELOW: dict[str, float] = {"yunet": 0.9, "mtcnn": 0.95}


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
    """Wraps a detector; images where it finds no face, or none scoring ``min_score`` or more,
    are searched again at 90/180/270 degrees.

    min_score: None: the detector's entry in :data:`SEARCH_BELOW` (else only faceless images).
    """

    def __init__(self, inner: Any, min_score: float | None = None) -> None:
        self.inner = inner
        self.name = f"{inner.name}-upright"
        self.min_score = SEARCH_BELOW.get(inner.name, -np.inf) if min_score is None else float(min_score)

    def detect(self, image: np.ndarray) -> list[Detection]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        results = self.inner.detect_batch(images)
        for i, (image, dets) in enumerate(zip(images, results)):
            top = _top(dets)
            if dets and top >= self.min_score:
                continue
            turns = [(k, self.inner.detect(np.ascontiguousarray(np.rot90(image, k)))) for k in (1, 2, 3)]
            k, best = max(turns, key=lambda t: _top(t[1]))
            if _top(best) > top:
                results[i] = [_unturn(d, image.shape, k) for d in best]
        return results


def _top(dets: Sequence[Detection]) -> float:
    return max((d.score for d in dets), default=-np.inf)
