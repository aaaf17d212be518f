"""Shared parts of the single-shot ONNX detectors (YuNet, SCRFD): letterboxing, anchor grids,
mapping results back to the original image, and the detector base class.

Both networks see the image scaled to fit a square (aspect ratio kept) in the top-left corner of
a canvas padded with black at the bottom and right, so canvas pixel edges map back to image
pixel edges by one multiplication per axis (x * W / w', y * H / h'), with no offset.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from .._resources import WeightsSource
from .._validate import check_pixels
from ..errors import WeightsNotFoundError
from ..runtime.session import OnnxNet
from ..types import Detection

__all__ = ["Letterbox", "OnnxSingleShotDetector", "grid_points", "letterbox", "to_detections"]


class Letterbox(NamedTuple):
    """An image placed on a canvas: ``canvas`` (h, w, 3) uint8, the (possibly resized) image in
    its top-left corner; ``fx``, ``fy``: original pixels per canvas pixel along x and y."""

    canvas: np.ndarray
    fx: float
    fy: float


def letterbox(image: np.ndarray, side: int | None, *, upscale: bool, pad: int | tuple[int, int]) -> Letterbox:
    """Scale (H, W, 3) ``image`` to fit a ``side`` x ``side`` square keeping its aspect ratio,
    then pad it with 0 (black) at the bottom and right.

    side: None keeps the size. upscale: also enlarge images smaller than ``side``.
    pad: an int rounds each side of the canvas up to a multiple of it; (height, width) is a
        fixed canvas size, at least the resized image's.
    Shrinking uses area interpolation (linear would alias a 7000 px photo badly), enlarging
    bilinear. Each side is rounded separately, so ``fx`` and ``fy`` are each exact.
    """
    h, w = image.shape[:2]
    scale = 1.0 if side is None else min(side / w, side / h)
    if not upscale:
        scale = min(scale, 1.0)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    if side is not None:  # float rounding must not push the fitted side past ``side``
        new_w, new_h = min(side, new_w), min(side, new_h)
    if (new_w, new_h) != (w, h):
        interp = cv2.INTER_AREA if new_w * new_h < w * h else cv2.INTER_LINEAR
        image = cv2.resize(np.ascontiguousarray(image), (new_w, new_h), interpolation=interp)
    if isinstance(pad, int):
        size = (-(-new_h // pad) * pad, -(-new_w // pad) * pad)
    else:
        size = pad
    canvas = np.zeros((*size, 3), np.uint8)
    canvas[:new_h, :new_w] = image
    return Letterbox(canvas, w / new_w, h / new_h)


def grid_points(height: int, width: int, stride: int, repeat: int = 1) -> np.ndarray:
    """(height * width * repeat, 2) float32 (x, y) = (col, row) * stride of a feature map's
    cells, row-major, each cell repeated ``repeat`` times (anchors per location)."""
    rows, cols = np.mgrid[:height, :width]
    points = np.stack([cols, rows], axis=-1).reshape(-1, 2).astype(np.float32) * np.float32(stride)
    return np.repeat(points, repeat, axis=0) if repeat > 1 else points


def to_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    landmarks: np.ndarray,
    box: Letterbox,
    shape: tuple[int, ...],
    name: str,
) -> list[Detection]:
    """Canvas results -> Detections in original pixels, boxes clipped to the image, best first.

    boxes: (n, 4) x1, y1, x2, y2 canvas px; scores: (n,); landmarks: (n, 5, 2) (x, y) canvas px,
    already in the ArcFace order. Landmarks are not clipped (a point may lie outside the image).
    A box left empty by clipping (wholly in the black padding) is dropped.
    """
    height, width = shape[:2]
    k = np.array([box.fx, box.fy], np.float64)
    boxes = boxes.astype(np.float64).reshape(-1, 2, 2) * k
    boxes[..., 0] = np.clip(boxes[..., 0], 0, width)
    boxes[..., 1] = np.clip(boxes[..., 1], 0, height)
    boxes = boxes.reshape(-1, 4)
    marks = landmarks.astype(np.float64) * k
    # ties broken by position so the order never depends on the NMS implementation
    order = np.lexsort((boxes[:, 0], boxes[:, 1], -scores.astype(np.float64)))
    order = order[(boxes[order, 2] > boxes[order, 0]) & (boxes[order, 3] > boxes[order, 1])]
    return [
        Detection(
            box=(float(boxes[i, 0]), float(boxes[i, 1]), float(boxes[i, 2]), float(boxes[i, 3])),
            score=float(scores[i]),
            landmarks=marks[i],
            detector=name,
        )
        for i in order
    ]


class OnnxSingleShotDetector:
    """Base of the one-pass detectors: settings checks, lazy session, input checks, batching.

    Subclasses set ``name``, ``_batchable`` and ``_strides`` and implement ``_canvas`` (image ->
    Letterbox), ``_blob`` (canvases (N, h, w, 3) uint8 -> network input), ``_level`` (one stride's
    outputs -> its cells' boxes, scores, landmarks above the score threshold) and ``_nms``;
    ``_graph`` may rewrite the file.
    """

    name = ""
    _strides: tuple[int, ...] = (8, 16, 32)  # feature-map strides, in the graph's output order
    _batchable = False  # the graph takes N > 1 images in one pass
    _MAX_BATCH = 16  # images per forward pass in detect_batch: bounds activation memory

    def __init__(
        self,
        score_threshold: float,
        nms_threshold: float,
        path: str | Path | None,
        threads: int | None,
    ) -> None:
        # bad settings are programming errors in the call, so the built-in ValueError
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold!r}")
        if not 0.0 < nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be in (0, 1], got {nms_threshold!r}")
        if threads is not None and (int(threads) != threads or threads < 1):
            raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.path = Path(path) if path is not None else None
        if self.path is not None and not self.path.is_file():  # fail here, not at the first image
            raise WeightsNotFoundError(f"{self.name} weights file not found: {self.path}")
        # private: FacePipeline.settings() records public attributes as result-changing parameters
        self._threads = None if threads is None else int(threads)
        self._net: OnnxNet | None = None
        self._lock = threading.Lock()

    def _source(self) -> WeightsSource:
        from . import detector_weights

        return detector_weights(self.name)[0]

    def _session(self) -> OnnxNet:
        """The onnxruntime session, loaded on first use and kept for the instance's lifetime."""
        if self._net is None:
            with self._lock:
                if self._net is None:
                    # the packaged file is sha256-checked: a few MB, and a wrong file fails here
                    path = self.path or self._source().resolve(verify=True)
                    self._net = OnnxNet(self._graph(path), threads=self._threads)
        return self._net

    # ------------------------------------------------------------------------------ public API
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in one (H, W, 3) uint8 RGB image (gray (H, W) is repeated to 3 channels), best
        score first; boxes (x1, y1, x2, y2) float px clipped to the image, 5 ArcFace landmarks."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """:meth:`detect` for each image; graphs that take a batch get up to 16 canvases a pass."""
        checked = [
            check_pixels(im, f"{type(self).__name__}, image {i}", gray="expand")
            for i, im in enumerate(images)
        ]
        return self._detect_checked(checked, self._canvas)

    def _detect_checked(
        self, checked: Sequence[np.ndarray], canvas: Callable[[np.ndarray], Letterbox]
    ) -> list[list[Detection]]:
        """Detections of checked images, each put on its canvas by ``canvas``."""
        if not checked:
            return []
        net = self._session()
        boxes = [canvas(image) for image in checked]
        step = self._MAX_BATCH if self._batchable else 1
        results: list[list[Detection]] = []
        for start in range(0, len(boxes), step):
            chunk = boxes[start : start + step]
            outputs = net(self._blob(np.stack([b.canvas for b in chunk])))
            for j, (lb, image) in enumerate(zip(chunk, checked[start : start + step])):
                found = self._decode([out[j] for out in outputs], lb.canvas.shape[:2])
                results.append(to_detections(*found, lb, image.shape, self.name))
        return results

    # ----------------------------------------------------------------------------- subclasses
    def _graph(self, path: Path) -> Path:
        """The graph to run for weights file ``path`` (a subclass may rewrite and cache it)."""
        return path

    def _canvas(self, image: np.ndarray) -> Letterbox:
        raise NotImplementedError

    def _blob(self, canvases: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _decode(
        self, outputs: list[np.ndarray], size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One image's outputs (per kind, one array per stride, in stride order) for a canvas of
        ``size`` (h, w) -> boxes (n, 4) x1 y1 x2 y2, scores (n,), landmarks (n, 5, 2) in canvas px,
        after NMS."""
        n = len(self._strides)
        found = [
            self._level(outputs[i::n], stride, size) for i, stride in enumerate(self._strides)
        ]
        found = [f for f in found if len(f[1])]
        if not found:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        box, score, mark = (np.concatenate(part) for part in zip(*found))
        kept = self._nms(box, score)
        return box[kept], score[kept], mark[kept]

    def _level(
        self, outputs: list[np.ndarray], stride: int, size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One stride's outputs (one array per kind, graph order) -> the boxes (k, 4), scores (k,)
        and landmarks (k, 5, 2) in canvas px of its cells scoring at least ``score_threshold``."""
        raise NotImplementedError

    def _nms(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Indices of the boxes kept, best first, by the original detector's own NMS."""
        raise NotImplementedError
