"""MTCNN face detector (P-Net -> R-Net -> O-Net) in pure PyTorch.

A faithful port of the ``mtcnn`` 1.0.0 package (ipazc/mtcnn, MIT): the same Keras weights,
read from the package's ``assets/weights/*.lz4`` files, and the same algorithm, step by step.
The package's TensorFlow code is never imported; only its weight files are read.

Pre-processing, as in the package: RGB, not transposed, ``(x - 127.5) / 128`` on the full image,
pyramid levels resized with area interpolation to ``int(side * scale)``, crops for R-Net/O-Net
taken with TF ``crop_and_resize`` semantics (bilinear, 0 = mid-grey outside the image).

Deliberate differences from the package (none changes a result with the default settings):

* pyramid levels under 12 px (only with ``min_face_size`` > 20) are skipped; the package feeds
  them to P-Net, and Keras raises ValueError on the empty convolution output (e.g. a 250 x 250
  image with ``min_face_size=30``);
* boxes are clipped to ``[0, W] x [0, H]`` (right/bottom exclusive) instead of ``W - 1``/``H - 1``
  and are not rounded to integers; landmarks are not rounded either;
* ``detect_batch`` batches images of equal size only, so no padding changes a result.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_pixels
from .._resources import package_file
from ..errors import ModelError
from ..types import Detection

__all__ = ["MTCNNDetector"]

_Net = TypeVar("_Net", bound=nn.Module)
_CELL = 12  # P-Net window (px at a pyramid level) and its stride 2: fixed by the network
_MAX_BATCH = 16  # images per P-Net forward pass in detect_batch: bounds memory for large batches


# --------------------------------------------------------------------------------------- networks
def _flatten_keras(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, W*H*C) in the order of the Keras nets' Permute((2, 1, 3)) + Flatten on NHWC."""
    return x.permute(0, 3, 2, 1).flatten(1)


class _PNet(nn.Module):
    """Proposal net, fully convolutional: (N, 3, H, W) -> box offsets (N, 4, h, w), face prob (N, h, w)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        # ceil_mode reproduces Keras "same" pooling (the odd row/column is padded at the end)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 4, 1)
        self.conv4_2 = nn.Conv2d(32, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_1(x), torch.softmax(self.conv4_2(x), dim=1)[:, 1]


class _RNet(nn.Module):
    """Refine net: (N, 3, 24, 24) -> box offsets (N, 4), face prob (N,)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)  # Keras "same"
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2)  # Keras "valid"
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.fc4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.fc5_1 = nn.Linear(128, 4)
        self.fc5_2 = nn.Linear(128, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.fc4(_flatten_keras(x)))
        return self.fc5_1(x), torch.softmax(self.fc5_2(x), dim=1)[:, 1]


class _ONet(nn.Module):
    """Output net: (N, 3, 48, 48) -> box offsets (N, 4), landmarks (N, 10) as x1..x5, y1..y5
    relative to the box, face prob (N,)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)  # Keras "same"
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2)  # Keras "valid"
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)  # Keras "same" (even input: no padding)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.fc5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.fc6_1 = nn.Linear(256, 4)
        self.fc6_2 = nn.Linear(256, 10)
        self.fc6_3 = nn.Linear(256, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.fc5(_flatten_keras(x)))
        return self.fc6_1(x), self.fc6_2(x), torch.softmax(self.fc6_3(x), dim=1)[:, 1]


def _weights_file(name: str) -> Path:
    """Path of ``mtcnn/assets/weights/<name>.lz4`` in the installed mtcnn wheel (not imported)."""
    return package_file("mtcnn", f"assets/weights/{name}.lz4", pip_name="mtcnn==1.0.0")


def _load_net(net: _Net, path: Path, device: torch.device | str = "cpu") -> _Net:
    """Copy a Keras ``get_weights()`` list (joblib + lz4 dump) into ``net``, which must declare its
    parameters in the Keras layer order; return it in eval mode on ``device``, channels-last
    (faster CPU convolutions and pooling here). Raises ModelError on unreadable or mismatched files."""
    import joblib  # an mtcnn dependency; imported here so that other detectors never pay for it

    try:
        arrays = joblib.load(path)
    except Exception as exc:  # joblib/lz4/pickle raise many unrelated types on a corrupt file
        raise ModelError(f"cannot read MTCNN weights {path}: {exc}; reinstall `mtcnn==1.0.0`") from exc
    params = list(net.parameters())
    if not isinstance(arrays, list) or len(arrays) != len(params):
        got = len(arrays) if isinstance(arrays, list) else type(arrays).__name__
        raise ModelError(
            f"{path} holds {got} arrays, expected {len(params)} for {type(net).__name__[1:]}; "
            "it is not an mtcnn 1.0.0 weights file"
        )
    with torch.no_grad():
        for i, (param, arr) in enumerate(zip(params, arrays)):
            try:
                arr = np.asarray(arr, dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise ModelError(f"{path}: array {i} is not numeric: {exc}") from exc
            if arr.ndim == 4:  # conv kernel HWIO -> OIHW
                arr = arr.transpose(3, 2, 0, 1)
            elif arr.ndim == 2:  # dense kernel (in, out) -> (out, in)
                arr = arr.T
            elif arr.ndim == 3:  # PReLU alpha shared over H, W: (1, 1, C) -> (C,)
                arr = arr.reshape(-1)
            if tuple(arr.shape) != tuple(param.shape):
                raise ModelError(
                    f"{path}: array {i} has shape {np.asarray(arrays[i]).shape}, which does not fit "
                    f"{type(net).__name__[1:]} parameter of shape {tuple(param.shape)}"
                )
            param.copy_(torch.from_numpy(np.ascontiguousarray(arr)))
    net.to(device)
    net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from the stubs
    return net.eval()


# ------------------------------------------------------------------------------------ box helpers
def _sort_desc(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score, with the package's tie order (reversed ascending argsort)."""
    return np.argsort(scores)[::-1]


def _fast_nms(boxes: np.ndarray, threshold: float, method: str = "union", block: int = 1024) -> np.ndarray:
    """Indices (ascending) of the rows of ``boxes`` (N, 4) [x1, y1, x2, y2], sorted best first,
    that mtcnn 1.0.0's NMS keeps.

    That NMS is not the greedy one: box j is dropped when any better box i < j overlaps it by more
    than ``threshold``, even if box i was itself dropped. ``method`` "union" divides the
    intersection by the union, "min" by the smaller area. Areas have no +1, as in the package.
    Works in column blocks so memory stays O(N * block) rather than O(N^2).
    """
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    area = (x2 - x1) * (y2 - y1)
    dropped = np.zeros(n, dtype=bool)
    for start in range(1, n, block):  # box 0 is always kept
        stop = min(n, start + block)
        cols = slice(start, stop)
        iw = np.maximum(
            0.0, np.minimum(x2[:stop, None], x2[None, cols]) - np.maximum(x1[:stop, None], x1[None, cols])
        )
        ih = np.maximum(
            0.0, np.minimum(y2[:stop, None], y2[None, cols]) - np.maximum(y1[:stop, None], y1[None, cols])
        )
        inter = iw * ih
        if method == "min":
            denom = np.minimum(area[:stop, None], area[None, cols])
        else:
            denom = area[:stop, None] + area[None, cols] - inter
        with np.errstate(divide="ignore", invalid="ignore"):  # degenerate boxes: nan never suppresses
            overlap = inter / denom
        earlier = np.arange(stop)[:, None] < np.arange(start, stop)[None, :]
        dropped[cols] = ((overlap > threshold) & earlier).any(axis=0)
    return np.flatnonzero(~dropped)


def _nms_sorted(rows: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """Rows (N, >=5: x1, y1, x2, y2, score, ...) sorted best first, then thinned by :func:`_fast_nms`."""
    rows = rows[_sort_desc(rows[:, 4])]
    return rows[_fast_nms(rows[:, :4], threshold, method)]


def _square(rows: np.ndarray) -> np.ndarray:
    """Grow each box's shorter side to its longer one about the same centre (columns 0..3)."""
    rows = rows.copy()
    w = rows[:, 2] - rows[:, 0]
    h = rows[:, 3] - rows[:, 1]
    side = np.maximum(w, h)
    rows[:, 0] += w * 0.5 - side * 0.5
    rows[:, 1] += h * 0.5 - side * 0.5
    rows[:, 2] = rows[:, 0] + side
    rows[:, 3] = rows[:, 1] + side
    return rows


def _regress(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply R-/O-Net offsets (N, 4), which are in units of the box size with MTCNN's +1 width."""
    rows = rows.copy()
    w = rows[:, 2] - rows[:, 0] + 1
    h = rows[:, 3] - rows[:, 1] + 1
    rows[:, :4] += offsets * np.stack([w, h, w, h], axis=1)
    return rows


def _sample_coords(lo: np.ndarray, hi: np.ndarray, length: int, size: int) -> np.ndarray:
    """Where TF crop_and_resize samples (n, size), in px along an axis of ``length`` px, for
    normalised box edges ``lo``, ``hi`` (n,) float32; float32 arithmetic as in TF's kernel."""
    step = (hi - lo) * np.float32(length - 1) / np.float32(size - 1)
    return lo[:, None] * np.float32(length - 1) + np.arange(size, dtype=np.float32)[None, :] * step[:, None]


def _crop_resize(image: torch.Tensor, boxes: np.ndarray, size: int) -> torch.Tensor:
    """Crops of ``boxes`` (n, 4+) [x1, y1, x2, y2] px from a normalised (1, 3, H, W) float32 image,
    resized to (n, 3, size, size) as ``tf.image.crop_and_resize`` does for the package: box edges
    normalised by (W, H) but mapped back with (W - 1, H - 1), bilinear, 0 (mid-grey) outside."""
    height, width = image.shape[-2:]
    norm = (boxes[:, :4] / np.array([width, height, width, height], dtype=np.float64)).astype(np.float32)
    xs = _sample_coords(norm[:, 0], norm[:, 2], width, size)
    ys = _sample_coords(norm[:, 1], norm[:, 3], height, size)
    n = len(boxes)
    # grid_sample with align_corners=True maps -1..1 onto pixel centres 0..L-1, TF's sample space
    gx = torch.from_numpy(xs * np.float32(2.0 / (width - 1)) - 1).to(image.device)
    gy = torch.from_numpy(ys * np.float32(2.0 / (height - 1)) - 1).to(image.device)
    grid = torch.stack([gx[:, None, :].expand(n, size, size), gy[:, :, None].expand(n, size, size)], dim=-1)
    crops = F.grid_sample(
        image, grid.reshape(1, n * size, size, 2), mode="bilinear", padding_mode="zeros", align_corners=True
    )
    crops = crops.view(3, n, size, size).permute(1, 0, 2, 3)
    # TF zeroes a sample outside [0, L-1] outright; grid_sample would blend it with the border pixel
    inside = ((ys >= 0) & (ys <= height - 1))[:, :, None] & ((xs >= 0) & (xs <= width - 1))[:, None, :]
    crops = crops * torch.from_numpy(inside).to(image.device)[:, None]
    return crops.contiguous(memory_format=torch.channels_last)


# --------------------------------------------------------------------------------------- detector
class MTCNNDetector:
    """MTCNN face detector giving boxes, O-Net face probabilities and 5 landmarks.

    min_face_size: smallest face side searched for, px of the input image.
    thresholds: face-probability cut-offs of P-Net, R-Net and O-Net. O-Net 0.8 as the mtcnn
        1.0.0 package: the original code's 0.7 keeps clothing patches (0.79 on misc/obama.jpg).
    scale_factor: ratio between consecutive pyramid levels, in (0, 1).
    max_side: images whose longer side exceeds this many px are shrunk to it (INTER_AREA) before
        detection and the results mapped back. A 7000 px photo then takes ~1 s instead of ~20 s
        and loses only faces under ~min_face_size x (side / max_side) px, which at that size are
        mostly false alarms. None searches the full resolution.
    device: torch device for the three nets.
    """

    name = "mtcnn"

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.8),
        scale_factor: float = 0.709,
        max_side: int | None = 2048,
        device: str = "cpu",
    ) -> None:
        if not min_face_size > 0:
            raise ValueError(f"min_face_size must be > 0 px, got {min_face_size!r}")
        if not 0.0 < scale_factor < 1.0:
            raise ValueError(f"scale_factor must be in (0, 1), got {scale_factor!r}")
        values = tuple(float(t) for t in thresholds)
        if len(values) != 3 or not all(0.0 <= t <= 1.0 for t in values):
            raise ValueError(f"thresholds must be 3 probabilities (P-, R-, O-Net), got {thresholds!r}")
        self.min_face_size = min_face_size
        self.thresholds: tuple[float, float, float] = (values[0], values[1], values[2])
        self.scale_factor = float(scale_factor)
        if max_side is not None and max_side < 2 * _CELL:
            raise ValueError(f"max_side must be None or at least {2 * _CELL} px, got {max_side!r}")
        self.max_side = max_side
        self.device = torch.device(device)
        self._nets: tuple[_PNet, _RNet, _ONet] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"MTCNNDetector(min_face_size={self.min_face_size}, thresholds={self.thresholds}, "
            f"scale_factor={self.scale_factor}, max_side={self.max_side}, device={str(self.device)!r})"
        )

    def _models(self) -> tuple[_PNet, _RNet, _ONet]:
        """The three nets, loaded on first use and kept for the instance's lifetime."""
        nets = self._nets
        if nets is None:
            with self._lock:
                nets = self._nets
                if nets is None:
                    nets = (
                        _load_net(_PNet(), _weights_file("pnet"), self.device),
                        _load_net(_RNet(), _weights_file("rnet"), self.device),
                        _load_net(_ONet(), _weights_file("onet"), self.device),
                    )
                    self._nets = nets
        return nets

    # ------------------------------------------------------------------------------ public API
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in one (H, W, 3) uint8 RGB image, best score first; [] when there are none."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces per image for (H, W, 3) uint8 RGB images. Images of equal size share P-Net passes;
        R-Net and O-Net see all crops of a chunk at once. Results equal :meth:`detect` per image."""
        for i, image in enumerate(images):
            check_pixels(image, f"MTCNNDetector, image {i}")
        factors = [self._shrink_factor(image) for image in images]
        if any(f < 1.0 for f in factors):
            images = [
                image if f == 1.0 else cv2.resize(
                    image, (max(1, round(image.shape[1] * f)), max(1, round(image.shape[0] * f))),
                    interpolation=cv2.INTER_AREA,
                )
                for image, f in zip(images, factors)
            ]
        results: list[list[Detection]] = [[] for _ in images]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            if min(image.shape[:2]) >= _CELL:  # smaller images cannot hold one P-Net window
                by_shape.setdefault(image.shape, []).append(i)
        for indices in by_shape.values():
            for start in range(0, len(indices), _MAX_BATCH):
                chunk = indices[start : start + _MAX_BATCH]
                for i, dets in zip(chunk, self._detect_same_size([images[i] for i in chunk])):
                    results[i] = dets if factors[i] == 1.0 else [_rescale(d, 1.0 / factors[i]) for d in dets]
        return results

    def _shrink_factor(self, image: np.ndarray) -> float:
        side = max(image.shape[:2])
        return 1.0 if self.max_side is None or side <= self.max_side else self.max_side / side

    # ------------------------------------------------------------------------------- pipeline
    def _scales(self, height: int, width: int) -> np.ndarray:
        """Pyramid scales (k,) as in mtcnn 1.0.0, minus levels under one 12 px P-Net window."""
        min_dim = min(height, width)
        # the package's level count (it ignores min_face_size; round() is banker's rounding)
        count = round(-((np.log(min_dim / _CELL) / np.log(self.scale_factor)) + 1))
        scales = (_CELL / self.min_face_size) * self.scale_factor ** np.arange(max(count, 0))
        return scales[(min_dim * scales).astype(np.int64) >= _CELL]

    def _detect_same_size(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """The three stages for images of one shape. Boxes travel as float64 rows
        [x1, y1, x2, y2, score] in image px, one (n, 5) array per image."""
        pnet, rnet, onet = self._models()
        height, width = images[0].shape[:2]
        # normalised once at full size, as the package does, then resized: (H, W, 3) float32
        normed = [(im.astype(np.float32) - np.float32(127.5)) / np.float32(128.0) for im in images]
        with torch.inference_mode():
            boxes = self._propose(pnet, normed)
            if not any(len(b) for b in boxes):
                return [[] for _ in images]
            # (1, 3, H, W) views of the same memory for cropping
            tensors = [torch.from_numpy(im).permute(2, 0, 1)[None].to(self.device) for im in normed]
            boxes = self._refine(rnet, tensors, boxes)
            if not any(len(b) for b in boxes):
                return [[] for _ in images]
            rows = self._output(onet, tensors, boxes)
        return [[_to_detection(row, width, height) for row in image_rows] for image_rows in rows]

    def _propose(self, pnet: _PNet, normed: list[np.ndarray]) -> list[np.ndarray]:
        """Stage 1: P-Net over the pyramid, one forward pass per level for all images; NMS per
        level (IoU 0.5) then across levels (0.7); boxes squared."""
        height, width = normed[0].shape[:2]
        per_level: list[list[np.ndarray]] = [[] for _ in normed]
        for scale in self._scales(height, width):
            # int() truncates, as tf.image.resize does with the package's float sizes
            h_s, w_s = (np.asarray([height, width]) * scale).astype(np.int32)
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            level = np.stack([cv2.resize(im, (int(w_s), int(h_s)), interpolation=interp) for im in normed])
            reg_t, prob_t = pnet(torch.from_numpy(level).to(self.device).permute(0, 3, 1, 2))
            prob = prob_t.cpu().numpy()
            b, y, x = np.nonzero(prob > self.thresholds[0])
            if len(b) == 0:
                continue
            off = reg_t.permute(0, 2, 3, 1).cpu().numpy()[b, y, x].astype(np.float64)
            # the 12 px window at (2x+1, 2y+1) of this level, regressed in units of 11 px
            x1 = (2 * x + 1) + off[:, 0] * (_CELL - 1)
            y1 = (2 * y + 1) + off[:, 1] * (_CELL - 1)
            x2 = (2 * x + _CELL) + off[:, 2] * (_CELL - 1)
            y2 = (2 * y + _CELL) + off[:, 3] * (_CELL - 1)
            rows = np.stack([x1 / scale, y1 / scale, x2 / scale, y2 / scale, prob[b, y, x]], axis=1)
            for img in np.unique(b):
                per_level[img].append(_nms_sorted(rows[b == img], 0.5, "union"))
        return [
            _square(_nms_sorted(np.concatenate(levels), 0.7, "union")) if levels else np.zeros((0, 5))
            for levels in per_level
        ]

    def _refine(self, rnet: _RNet, tensors: list[torch.Tensor], boxes: list[np.ndarray]) -> list[np.ndarray]:
        """Stage 2: R-Net on all images' boxes in one pass; keep score > threshold, NMS 0.7, square."""
        counts = [len(b) for b in boxes]
        crops = torch.cat([_crop_resize(t, b, 24) for t, b in zip(tensors, boxes) if len(b)])
        reg_t, prob_t = rnet(crops)
        splits = np.cumsum(counts)[:-1]
        reg = np.split(reg_t.cpu().numpy().astype(np.float64), splits)
        prob = np.split(prob_t.cpu().numpy().astype(np.float64), splits)
        out = []
        for rows, r, p in zip(boxes, reg, prob):
            rows = _regress(rows, r)
            rows[:, 4] = p
            out.append(_square(_nms_sorted(rows[p > self.thresholds[1]], 0.7, "union")))
        return out

    def _output(self, onet: _ONet, tensors: list[torch.Tensor], boxes: list[np.ndarray]) -> list[np.ndarray]:
        """Stage 3: O-Net on all images' boxes in one pass. Per image, rows
        [x1, y1, x2, y2, score, lx1..lx5, ly1..ly5] with score > threshold after NMS 0.7 (by the
        smaller area), best first."""
        counts = [len(b) for b in boxes]
        crops = torch.cat([_crop_resize(t, b, 48) for t, b in zip(tensors, boxes) if len(b)])
        reg_t, marks_t, prob_t = onet(crops)
        splits = np.cumsum(counts)[:-1]
        reg, marks, prob = (
            np.split(t.cpu().numpy().astype(np.float64), splits) for t in (reg_t, marks_t, prob_t)
        )
        out = []
        for rows, r, m, p in zip(boxes, reg, marks, prob):
            # landmarks are relative to the squared R-Net box, before O-Net's own regression
            w = rows[:, 2:3] - rows[:, 0:1] + 1
            h = rows[:, 3:4] - rows[:, 1:2] + 1
            lm_x = w * m[:, 0:5] + rows[:, 0:1] - 1
            lm_y = h * m[:, 5:10] + rows[:, 1:2] - 1
            rows = _regress(rows, r)
            rows[:, 4] = p
            rows = np.concatenate([rows[:, :5], lm_x, lm_y], axis=1)[p > self.thresholds[2]]
            rows = _nms_sorted(rows, 0.7, "min")
            out.append(rows[np.argsort(-rows[:, 4], kind="stable")])
        return out


def _to_detection(row: np.ndarray, width: int, height: int) -> Detection:
    """Row [x1, y1, x2, y2, score, lx1..lx5, ly1..ly5] -> Detection, box clipped to the image."""
    x1, x2 = np.clip(row[[0, 2]], 0, width)
    y1, y2 = np.clip(row[[1, 3]], 0, height)
    landmarks = np.stack([row[5:10], row[10:15]], axis=1).astype(np.float64)
    return Detection(
        box=(float(x1), float(y1), float(x2), float(y2)),
        score=float(row[4]),
        landmarks=landmarks,
        detector=MTCNNDetector.name,
    )


def _rescale(det: Detection, k: float) -> Detection:
    """A detection made on a resized image, in the original image's pixels (x k)."""
    box = tuple(float(v) * k for v in det.box)
    marks = None if det.landmarks is None else det.landmarks * k
    return Detection(box=box, score=det.score, landmarks=marks, detector=det.detector)  # type: ignore[arg-type]
