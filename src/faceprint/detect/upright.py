"""Find faces in photos stored sideways or upside down (no EXIF tag to say so).

Upright detectors (MTCNN, Haar, MMOD, YuNet) miss faces turned by 90 or 180 degrees, or worse,
find them with made-up upright landmarks (so the chip is sideways and recognition fails). This
wrapper runs the inner detector as usual and, only for images where it finds nothing or only
doubtful faces (top score below :data:`SEARCH_BELOW` for that detector), again on the image turned
by 90, 180 and 270 degrees; a turn replaces the original only with a better top score, and its
detections are mapped back into the original image's coordinates. Landmarks come back turned with
the face, so alignment still produces an upright chip. Photos with a confident face pay nothing.
A doubtful face in a large frame (a small face in a video frame) is searched only in a square around
it (:data:`CROP_SIDES`), upright and turned, at full resolution: a few small detections instead of
three passes over the whole frame, and a small face that a detector shrinking the frame found
blurred and badly placed is found again sharp. Photos up to :data:`LARGE_SIDE` px, or that the
square would mostly cover, are searched whole, turned only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..types import Detection

__all__ = ["CROP_SIDES", "LARGE_SIDE", "SEARCH_BELOW", "UprightSearch"]

#: Per detector, the top score below which its faces are doubted and the turns are searched too.
#: Measured on LFW's first photos of 300 people (YuNet) and 80 (MTCNN), each upright and turned
#: by 90/180/270: YuNet scores upright faces 0.904 and up (1st percentile) and finds a face in 70% of
#: turned photos at 0.90 at most (99th percentile, upside down); MTCNN 0.958 and up upright, and
#: finds faces in 20-30% of turned photos, 90% of them under 0.95. Among 161 other upright photos
#: (misc, happy-house, 5-celebrity) 13 score under YuNet's 0.9 and pay the search; in every one
#: the upright face still wins. Detectors not listed are searched only where they find nothing.
SEARCH_BELOW: dict[str, float] = {"yunet": 0.9, "mtcnn": 0.95}

#: The turns of a doubtful face are searched in a square of this many times its box's longer side,
#: centred on it: room for the turned face's own box (a turn moves the centre by under a box side)
#: and for the detector's context. Where that square (clipped) would cover half the image or more,
#: the whole image is searched. On 64 px faces in 1920 x 1080 frames (`bench_rotation.py`, 2 cores):
#: 38/40 people identified in 49 ms a photo, against 28/40 in 278 ms searching the whole frame.
CROP_SIDES = 3.0
_WHOLE_ABOVE = 0.5  # share of the image area from which the whole image is searched
#: Only frames with a longer side above this are searched around a doubtful face (the size to
#: which YuNet shrinks frames). Smaller photos cost little to search whole, and in a turned one the
#: doubtful "face" is often a part of the real one (an eye, a cheek): a square around it would cut
#: the face off. Measured on LFW turned by 90 degrees (all 7,701 photos of pairs.txt): searching
#: around such boxes lost the face in 81 photos and 1.2 points of accuracy.
LARGE_SIDE = 640


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
    crop_sides: the side of the square searched around a doubtful face, in box sides (None: the
        whole image, turned only, as before this square was searched).
    """

    def __init__(
        self, inner: Any, min_score: float | None = None, crop_sides: float | None = CROP_SIDES
    ) -> None:
        if crop_sides is not None and not crop_sides >= 1.0:
            raise ValueError(f"crop_sides must be None or at least 1 (box sides), got {crop_sides!r}")
        self.inner = inner
        self.name = f"{inner.name}-upright"
        self.min_score = SEARCH_BELOW.get(inner.name, -np.inf) if min_score is None else float(min_score)
        # public: FacePipeline.settings() records it (cache keys)
        self.crop_sides = None if crop_sides is None else float(crop_sides)

    def detect(self, image: np.ndarray) -> list[Detection]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        results = self.inner.detect_batch(images)
        for i, image in enumerate(images):
            dets = results[i]
            if dets and _top(dets) >= self.min_score:
                continue
            window = self._doubted(dets, image.shape)
            if window is None:  # nothing found, or a photo the square would mostly cover
                dets = self._search(image, dets, None)
                window = self._doubted(dets, image.shape)  # a large frame's face found turned
            if window is not None:
                dets = self._search(image, dets, window)
            results[i] = dets
        return results

    def _doubted(self, dets: Sequence[Detection], shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
        """The square to search around the best of ``dets`` when it is doubtful (else None)."""
        if (
            not dets
            or _top(dets) >= self.min_score
            or self.crop_sides is None
            or max(shape[:2]) <= LARGE_SIDE
        ):
            return None
        return _window(max(dets, key=lambda d: d.score).box, shape, self.crop_sides)

    def _search(
        self, image: np.ndarray, dets: list[Detection], window: tuple[int, int, int, int] | None
    ) -> list[Detection]:
        """``dets`` with the faces in ``window`` (None: the whole image) replaced by the best
        turn's, when that scores higher; best first."""
        x0, y0, x1, y1 = window or (0, 0, image.shape[1], image.shape[0])
        region = image[y0:y1, x0:x1]
        # A crop is also searched as it is: a detector that shrinks large frames saw the face at a
        # fraction of its pixels, and finds it again better placed (and more confident than any
        # turn) at full resolution.
        ks = (0, 1, 2, 3) if window is not None else (1, 2, 3)
        turns = [(k, self.inner.detect(np.ascontiguousarray(np.rot90(region, k)))) for k in ks]
        k, best = max(turns, key=lambda t: _top(t[1]))
        if _top(best) <= _top(dets):
            return dets
        found = [_shift(_unturn(d, region.shape, k), x0, y0) for d in best]
        if window is not None:  # the doubtful faces elsewhere in the frame stay as they were
            found += [d for d in dets if not (x0 <= d.center[0] < x1 and y0 <= d.center[1] < y1)]
        return sorted(found, key=lambda d: -d.score)


def _window(
    box: tuple[float, float, float, float], shape: tuple[int, ...], sides: float
) -> tuple[int, int, int, int] | None:
    """The (x0, y0, x1, y1) px square of ``sides`` box sides around ``box``, clipped to an image
    of ``shape``; None where it covers :data:`_WHOLE_ABOVE` of the image or more."""
    h, w = shape[:2]
    left, top, right, bottom = box
    half = sides * max(right - left, bottom - top) / 2
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0, y0 = max(0, int(np.floor(cx - half))), max(0, int(np.floor(cy - half)))
    x1, y1 = min(w, int(np.ceil(cx + half))), min(h, int(np.ceil(cy + half)))
    if x1 - x0 < 2 or y1 - y0 < 2 or (x1 - x0) * (y1 - y0) >= _WHOLE_ABOVE * h * w:
        return None
    return x0, y0, x1, y1


def _shift(det: Detection, dx: int, dy: int) -> Detection:
    """``det`` found in a crop whose top-left corner is at (dx, dy) of the image, in image px."""
    left, top, right, bottom = det.box
    marks = None if det.landmarks is None else det.landmarks + np.array([dx, dy], float)
    return Detection((left + dx, top + dy, right + dx, bottom + dy), det.score, marks, det.detector)


def _top(dets: Sequence[Detection]) -> float:
    return max((d.score for d in dets), default=-np.inf)
