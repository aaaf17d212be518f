"""Follow faces between detections: optical-flow box propagation + IoU association.

Detection is the expensive step (tens of ms per frame on a CPU), so it runs every few frames.
In between, each box is moved by the median optical flow of a grid of points inside it, checked
forward-backward (the MedianFlow idea; OpenCV's contrib trackers are not in the headless wheel);
when the flow fails the box coasts on its last velocity. On detection frames, detections are
matched to the predicted boxes greedily by IoU; unmatched detections start tentative tracks,
confirmed after ``min_hits`` matches; a track unmatched for ``max_age`` seconds ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

import cv2
import numpy as np

from ..types import Detection

__all__ = ["Track", "Tracker", "iou_matrix"]

_GRID = 5  # flow points per side of the grid laid over a box
_LK = dict(winSize=(15, 15), maxLevel=2, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03))


@dataclass(eq=False)
class Track:
    """One face followed over time. Boxes are (left, top, right, bottom) pixels, float.

    detection: this frame's matched detection, None when the box was propagated by the tracker.
    misses: detection rounds since it was last matched; > 0 means it is coasting (maybe hidden or gone).
    velocity: (4,) box change per frame (pixels), for coasting when the flow fails.
    first_time/last_time: video seconds of the first and the latest matched detection.
    """

    id: int
    box: np.ndarray
    first_frame: int
    first_time: float
    last_frame: int
    last_time: float
    detection: Detection | None = None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    hits: int = 1
    misses: int = 0  # detection rounds in a row that did not see it (0: seen on the latest)
    confirmed: bool = False

    def box_tuple(self) -> tuple[float, float, float, float]:
        return tuple(float(v) for v in self.box)  # type: ignore[return-value]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) boxes (l, t, r, b) -> (N, M) intersection over union."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None, :, :]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


class Tracker:
    """Multi-face tracker over (H, W) grayscale frames.

    min_iou: overlap a detection needs with a predicted box to continue that track.
    min_hits: matched detections before a track is confirmed (filters one-off false detections).
    max_age: seconds a track lives without a matched detection (bridges missed detections).
    flow_width: frames wider than this are downscaled for optical flow (cost, not accuracy, bound).
    """

    def __init__(self, *, min_iou: float = 0.3, min_hits: int = 2, max_age: float = 1.0, flow_width: int = 640) -> None:
        self.min_iou, self.min_hits, self.max_age, self.flow_width = min_iou, min_hits, max_age, flow_width
        self.tracks: list[Track] = []
        self._ids = count(1)
        self._prev: np.ndarray | None = None
        self._scale = 1.0

    def update(
        self, gray: np.ndarray, index: int, time: float, detections: list[Detection] | None = None
    ) -> tuple[list[Track], list[Track]]:
        """Advance to a new (H, W) uint8 frame; ``detections`` on frames where the detector ran.

        Returns (tracks confirmed by this update, tracks that ended). Ended tracks include
        unconfirmed ones; callers decide what a silent end means.
        """
        small = self._small(gray)
        if self._prev is not None and self.tracks and self._prev.shape == small.shape:
            for t in self.tracks:
                self._propagate(t, self._prev, small)
        self._prev = small
        for t in self.tracks:
            t.detection = None
        h, w = gray.shape[:2]
        born: list[Track] = []
        if detections is not None:
            born = self._associate(detections, index, time)
        ended = [
            t
            for t in self.tracks
            if time - t.last_time > self.max_age
            or _outside(t.box, w, h)
            # a tentative track missed on its next detection round was a false detection
            or (detections is not None and not t.confirmed and t.detection is None)
        ]
        self.tracks = [t for t in self.tracks if t not in ended]
        return born, ended

    def finish(self) -> list[Track]:
        """End every track (end of the video)."""
        ended, self.tracks = self.tracks, []
        return ended

    # -- internals -------------------------------------------------------------------------------
    def _small(self, gray: np.ndarray) -> np.ndarray:
        self._scale = min(1.0, self.flow_width / gray.shape[1])
        if self._scale == 1.0:
            return gray
        return cv2.resize(gray, None, fx=self._scale, fy=self._scale, interpolation=cv2.INTER_AREA)

    def _propagate(self, t: Track, prev: np.ndarray, cur: np.ndarray) -> None:
        """Move the box by the median flow of its grid points; coast on velocity if that fails."""
        s = self._scale
        l, top, r, b = t.box * s
        # The inner part of the box: its edges hold background that does not move with the face.
        xs = np.linspace(l + 0.2 * (r - l), r - 0.2 * (r - l), _GRID)
        ys = np.linspace(top + 0.2 * (b - top), b - 0.2 * (b - top), _GRID)
        p0 = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 1, 2).astype(np.float32)
        moved = None
        if r - l >= 4 and b - top >= 4:
            p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None, **_LK)
            back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, p1, None, **_LK)
            fb = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
            ok = (st1.ravel() == 1) & (st2.ravel() == 1)
            if ok.sum() >= 4:
                ok &= fb <= max(np.median(fb[ok]), 1.0)  # keep the better-tracked half
            if ok.sum() >= 4:
                a, c = p0.reshape(-1, 2)[ok], p1.reshape(-1, 2)[ok]
                shift = np.median(c - a, axis=0)
                # Scale from how the points spread around their centre (zoom as a face approaches).
                da = np.linalg.norm(a - a.mean(0), axis=1)
                dc = np.linalg.norm(c - c.mean(0), axis=1)
                keep = da > 1e-3
                # A face does not change size by more than a few percent between frames.
                zoom = float(np.clip(np.median(dc[keep] / da[keep]), 0.95, 1.05)) if keep.any() else 1.0
                cx, cy = (l + r) / 2 + shift[0], (top + b) / 2 + shift[1]
                hw, hh = (r - l) / 2 * zoom, (b - top) / 2 * zoom
                moved = np.array([cx - hw, cy - hh, cx + hw, cy + hh]) / s
        if moved is None:
            moved = t.box + t.velocity
        t.velocity = 0.7 * t.velocity + 0.3 * (moved - t.box)
        t.box = moved

    def _associate(self, detections: list[Detection], index: int, time: float) -> list[Track]:
        boxes = np.array([d.box for d in detections], np.float64).reshape(-1, 4)
        iou = iou_matrix(np.array([t.box for t in self.tracks]).reshape(-1, 4), boxes)
        used_t: set[int] = set()
        used_d: set[int] = set()
        born: list[Track] = []
        for t in self.tracks:
            t.misses += 1  # reset below for the matched ones
        # Greedy on the best overlaps first: optimal enough for the few faces of a scene.
        for ti, di in sorted(np.argwhere(iou >= self.min_iou), key=lambda p: -iou[p[0], p[1]]):
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            t = self.tracks[ti]
            t.box, t.detection = boxes[di].copy(), detections[di]
            t.last_frame, t.last_time, t.hits, t.misses = index, time, t.hits + 1, 0
            if not t.confirmed and t.hits >= self.min_hits:
                t.confirmed = True
                born.append(t)
        for di, det in enumerate(detections):
            if di not in used_d:
                t = Track(next(self._ids), boxes[di].copy(), index, time, index, time, det)
                self.tracks.append(t)
                if self.min_hits <= 1:
                    t.confirmed = True
                    born.append(t)
        return born


def _outside(box: np.ndarray, w: int, h: int) -> bool:
    """True when less than a quarter of the box is still inside the frame."""
    l, t, r, b = box
    inter = max(0.0, min(r, w) - max(l, 0)) * max(0.0, min(b, h) - max(t, 0))
    return inter < 0.25 * max((r - l) * (b - t), 1e-9)
