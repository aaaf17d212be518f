"""MTCNN face detector (P-Net -> R-Net -> O-Net) on ONNX Runtime + NumPy.

A faithful port of the ``mtcnn`` 1.0.0 package (ipazc/mtcnn, MIT): the same Keras weights,
read from the package's ``assets/weights/*.lz4`` files, and the same algorithm, step by step.
The package's TensorFlow code is never imported; only its weight files are read. The three nets
are rebuilt from those arrays as ONNX graphs (NHWC float32 input, Keras layer semantics), cached
in the user cache under each file's sha256 and run by onnxruntime on the CPU: torch is not needed.

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
from typing import Any, NamedTuple

import cv2
import numpy as np

from .._resources import package_file, sha256_file
from .._validate import check_pixels
from ..errors import ModelError
from ..runtime.session import OnnxNet, cached_onnx
from ..types import Detection

__all__ = ["MTCNNDetector"]

_CELL = 12  # P-Net window (px at a pyramid level) and its stride 2: fixed by the network
_MAX_BATCH = 16  # images per P-Net forward pass in detect_batch: bounds memory for large batches


# --------------------------------------------------------------------------------------- networks
class _Layer(NamedTuple):
    """One Keras layer of an MTCNN net, its weights in PyTorch layout (what the graph takes)."""

    kind: str  # "conv" | "prelu" | "pool" | "flatten" | "dense"
    shape: tuple[int, ...] = ()  # conv (out, in, k, k), dense (out, in), prelu (C,), pool (k, stride)
    ceil: bool = False  # pool: Keras "same" (ceil_mode): leftover last rows/columns get a window

    def param_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of this layer's arrays in the Keras ``get_weights()`` list (after relayout)."""
        if self.kind in ("conv", "dense"):
            return [self.shape, self.shape[:1]]  # kernel, bias
        return [self.shape] if self.kind == "prelu" else []


def _conv(cin: int, cout: int, k: int) -> _Layer:
    return _Layer("conv", (cout, cin, k, k))


def _dense(cin: int, cout: int) -> _Layer:
    return _Layer("dense", (cout, cin))


def _prelu(channels: int) -> _Layer:
    return _Layer("prelu", (channels,))


def _pool(k: int, stride: int, *, same: bool) -> _Layer:
    return _Layer("pool", (k, stride), ceil=same)


class _Arch(NamedTuple):
    """An MTCNN net: a trunk, then heads on its output, each (output name, layer, softmax).

    A softmax head gives the face probability (its class-1 column). Layers are in the Keras
    model's order, which is also the order of the arrays in its weights file.
    """

    name: str  # as in messages; lower-cased, the weights file's stem
    size: int | None  # input side in px; None: any height and width (fully convolutional)
    trunk: tuple[_Layer, ...]
    heads: tuple[tuple[str, _Layer, bool], ...]

    def param_shapes(self) -> list[tuple[int, ...]]:
        layers = [*self.trunk, *(layer for _, layer, _ in self.heads)]
        return [shape for layer in layers for shape in layer.param_shapes()]


# Proposal net, fully convolutional: (N, H, W, 3) -> reg (N, 4, h, w) box offsets, prob (N, h, w).
_PNET = _Arch(
    "PNet", None,
    (_conv(3, 10, 3), _prelu(10), _pool(2, 2, same=True),
     _conv(10, 16, 3), _prelu(16), _conv(16, 32, 3), _prelu(32)),
    (("reg", _conv(32, 4, 1), False), ("prob", _conv(32, 2, 1), True)),
)  # fmt: skip
# Refine net: (N, 24, 24, 3) -> reg (N, 4), prob (N,).
_RNET = _Arch(
    "RNet", 24,
    (_conv(3, 28, 3), _prelu(28), _pool(3, 2, same=True),
     _conv(28, 48, 3), _prelu(48), _pool(3, 2, same=False),
     _conv(48, 64, 2), _prelu(64), _Layer("flatten"), _dense(576, 128), _prelu(128)),
    (("reg", _dense(128, 4), False), ("prob", _dense(128, 2), True)),
)  # fmt: skip
# Output net: (N, 48, 48, 3) -> reg (N, 4), marks (N, 10) as x1..x5, y1..y5 relative to the box,
# prob (N,). The last pool sees an even input, so "same" adds no padding there.
_ONET = _Arch(
    "ONet", 48,
    (_conv(3, 32, 3), _prelu(32), _pool(3, 2, same=True),
     _conv(32, 64, 3), _prelu(64), _pool(3, 2, same=False),
     _conv(64, 64, 3), _prelu(64), _pool(2, 2, same=True),
     _conv(64, 128, 2), _prelu(128), _Layer("flatten"), _dense(1152, 256), _prelu(256)),
    (("reg", _dense(256, 4), False), ("marks", _dense(256, 10), False), ("prob", _dense(256, 2), True)),
)  # fmt: skip


def _weights_file(name: str) -> Path:
    """Path of ``mtcnn/assets/weights/<name>.lz4`` in the installed mtcnn wheel (not imported)."""
    return package_file("mtcnn", f"assets/weights/{name}.lz4", pip_name="mtcnn==1.0.0")


def _read_weights(arch: _Arch, path: Path) -> list[np.ndarray]:
    """A Keras ``get_weights()`` list (joblib + lz4 dump) as float32 arrays in PyTorch layout
    (conv OIHW, dense (out, in), PReLU (C,)), checked against ``arch``.
    Raises ModelError on unreadable or mismatched files."""
    import joblib  # an mtcnn dependency; imported here so that other detectors never pay for it

    try:
        arrays = joblib.load(path)
    except Exception as exc:  # joblib/lz4/pickle raise many unrelated types on a corrupt file
        raise ModelError(f"cannot read MTCNN weights {path}: {exc}; reinstall `mtcnn==1.0.0`") from exc
    shapes = arch.param_shapes()
    if not isinstance(arrays, list) or len(arrays) != len(shapes):
        got = len(arrays) if isinstance(arrays, list) else type(arrays).__name__
        raise ModelError(
            f"{path} holds {got} arrays, expected {len(shapes)} for {arch.name}; "
            "it is not an mtcnn 1.0.0 weights file"
        )
    out = []
    for i, (shape, raw) in enumerate(zip(shapes, arrays)):
        try:
            arr = np.asarray(raw, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{path}: array {i} is not numeric: {exc}") from exc
        if arr.ndim == 4:  # conv kernel HWIO -> OIHW
            arr = arr.transpose(3, 2, 0, 1)
        elif arr.ndim == 2:  # dense kernel (in, out) -> (out, in)
            arr = arr.T
        elif arr.ndim == 3:  # PReLU alpha shared over H, W: (1, 1, C) -> (C,)
            arr = arr.reshape(-1)
        if arr.shape != shape:
            raise ModelError(
                f"{path}: array {i} has shape {np.asarray(raw).shape}, which does not fit "
                f"{arch.name} parameter of shape {shape}"
            )
        out.append(np.ascontiguousarray(arr))
    return out


def _build_graph(arch: _Arch, weights: list[np.ndarray]) -> Any:
    """``arch`` with ``weights`` (from :func:`_read_weights`) as an ``onnx.ModelProto``: input
    ``x`` NHWC float32 (the layout the image is in), outputs named as ``arch.heads``."""
    from ..runtime.graph import GraphBuilder  # onnx is only needed to build, not to run

    g = GraphBuilder(f"mtcnn_{arch.name.lower()}")
    x = g.input("x", ["N", arch.size or "H", arch.size or "W", 3])
    x = g.op("Transpose", x, perm=[0, 3, 1, 2])
    params = iter(weights)

    def apply(x: str, layer: _Layer, flat: bool) -> str:
        """``layer`` on ``x``: (N, C, H, W) maps, or (N, F) rows when ``flat``."""
        if layer.kind == "conv":
            return g.conv(x, next(params), next(params))
        if layer.kind == "dense":
            return g.op("Gemm", x, g.const(next(params)), g.const(next(params)), transB=1)
        if layer.kind == "prelu":  # one slope per channel, shared over H and W
            alpha = g.const(next(params) if flat else next(params).reshape(-1, 1, 1))
            # Relu(x) + alpha * Min(x, 0) equals PReLU bit for bit (one term is always exactly 0)
            # and runs the nets 5-25% faster than onnxruntime's PRelu kernel with per-channel slopes
            negative = g.op("Min", x, g.const(np.float32(0), "zero"))
            return g.op("Add", g.op("Relu", x), g.op("Mul", negative, alpha))
        if layer.kind == "pool":
            k, s = layer.shape
            return g.op("MaxPool", x, kernel_shape=[k, k], strides=[s, s], ceil_mode=int(layer.ceil))
        # Keras Permute((2, 1, 3)) + Flatten on NHWC: features in (W, H, C) order
        return g.op("Flatten", g.op("Transpose", x, perm=[0, 3, 2, 1]), axis=1)

    flat = False
    for layer in arch.trunk:
        x = apply(x, layer, flat)
        flat = flat or layer.kind == "flatten"
    for name, layer, softmax in arch.heads:
        y = apply(x, layer, flat)
        channels: list[int | str] = [layer.shape[0]]
        if softmax:  # face probability: the class-1 column of the softmax over channels
            one = g.const(np.array([1], np.int64), "one")
            # Squeeze after Gather: GraphBuilder.const stores a 0-d index as shape (1,), so the
            # Gather keeps the channel axis
            y = g.op("Squeeze", g.op("Gather", g.op("Softmax", y, axis=1), one, axis=1), one)
            channels = []
        g.output(y, name, ["N", *channels, *([] if flat else ["h", "w"])])
    return g.build(doc=f"mtcnn 1.0.0 {arch.name} (Keras weights {arch.name.lower()}.lz4)")


def _load_net(arch: _Arch, path: Path, threads: int | None = None) -> OnnxNet:
    """``arch`` with the weights in ``path`` in an onnxruntime session. The graph is built once
    per weights file (keyed by its sha256, so the cached graph was checked when it was built)."""

    def build() -> Any:
        return _build_graph(arch, _read_weights(arch, path))

    return OnnxNet(cached_onnx(f"mtcnn-{arch.name.lower()}", sha256_file(path), build), threads=threads)


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


def _crop_resize(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Crops of ``boxes`` (n, 4+) [x1, y1, x2, y2] px from a normalised (H, W, 3) float32 image,
    resized to (n, size, size, 3) float32 as ``tf.image.crop_and_resize`` does for the package: box
    edges normalised by (W, H) but mapped back with (W - 1, H - 1), bilinear, 0 (mid-grey) for a
    sample outside [0, L - 1]. The interpolation is TF's kernel's, in float32: along x on the rows
    above and below the sample, then along y."""
    height, width = image.shape[:2]
    norm = (boxes[:, :4] / np.array([width, height, width, height], dtype=np.float64)).astype(np.float32)
    xs = _sample_coords(norm[:, 0], norm[:, 2], width, size)
    ys = _sample_coords(norm[:, 1], norm[:, 3], height, size)
    x0, y0 = np.floor(xs), np.floor(ys)
    x_lerp = (xs - x0)[:, None, :, None]  # (n, 1, size, 1)
    y_lerp = (ys - y0)[:, :, None, None]  # (n, size, 1, 1)
    # indices clipped so that samples outside the image gather something; they are zeroed below
    left, right = (np.clip(v, 0, width - 1).astype(np.intp)[:, None, :] for v in (x0, np.ceil(xs)))
    top, bottom = (np.clip(v, 0, height - 1).astype(np.intp)[:, :, None] for v in (y0, np.ceil(ys)))
    top_left, top_right = image[top, left], image[top, right]  # (n, size, size, 3) each
    bottom_left, bottom_right = image[bottom, left], image[bottom, right]
    upper = top_left + (top_right - top_left) * x_lerp
    lower = bottom_left + (bottom_right - bottom_left) * x_lerp
    crops = upper + (lower - upper) * y_lerp
    inside = ((ys >= 0) & (ys <= height - 1))[:, :, None] & ((xs >= 0) & (xs <= width - 1))[:, None, :]
    return np.where(inside[..., None], crops, np.float32(0.0))


def _run_on_crops(
    net: OnnxNet, normed: list[np.ndarray], boxes: list[np.ndarray], size: int
) -> list[list[np.ndarray]]:
    """One pass of R-Net or O-Net (input side ``size``) over the crops of every image's boxes
    (n_i, 4+); per image, the net's outputs for its boxes as float64 arrays (n_i, ...)."""
    crops = np.concatenate([_crop_resize(im, b, size) for im, b in zip(normed, boxes) if len(b)])
    splits = np.cumsum([len(b) for b in boxes])[:-1]
    per_output = [np.split(out.astype(np.float64), splits) for out in net(crops)]
    return [list(outs) for outs in zip(*per_output)]


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
    device: only "cpu": the nets run on onnxruntime's CPU provider.
    threads: onnxruntime intra-op threads of each net (None: one per physical core).
    """

    name = "mtcnn"

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.8),
        scale_factor: float = 0.709,
        max_side: int | None = 2048,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        if not min_face_size > 0:
            raise ValueError(f"min_face_size must be > 0 px, got {min_face_size!r}")
        if not 0.0 < scale_factor < 1.0:
            raise ValueError(f"scale_factor must be in (0, 1), got {scale_factor!r}")
        values = tuple(float(t) for t in thresholds)
        if len(values) != 3 or not all(0.0 <= t <= 1.0 for t in values):
            raise ValueError(f"thresholds must be 3 probabilities (P-, R-, O-Net), got {thresholds!r}")
        if str(device) != "cpu":
            raise ValueError(f"MTCNN runs on the CPU only (onnxruntime), got device={device!r}")
        self.min_face_size = min_face_size
        self.thresholds: tuple[float, float, float] = (values[0], values[1], values[2])
        self.scale_factor = float(scale_factor)
        if max_side is not None and max_side < 2 * _CELL:
            raise ValueError(f"max_side must be None or at least {2 * _CELL} px, got {max_side!r}")
        self.max_side = max_side
        # private (and ``device`` a property): FacePipeline.settings() records the public
        # attributes as result-changing parameters in cache keys, and neither changes a result
        self._threads = threads
        self._nets: tuple[OnnxNet, OnnxNet, OnnxNet] | None = None
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        """Where the nets run: always "cpu"."""
        return "cpu"

    def __repr__(self) -> str:
        return (
            f"MTCNNDetector(min_face_size={self.min_face_size}, thresholds={self.thresholds}, "
            f"scale_factor={self.scale_factor}, max_side={self.max_side}, device={self.device!r}, "
            f"threads={self._threads})"
        )

    def _models(self) -> tuple[OnnxNet, OnnxNet, OnnxNet]:
        """P-Net, R-Net and O-Net sessions, loaded on first use and kept for the instance's lifetime."""
        nets = self._nets
        if nets is None:
            with self._lock:
                nets = self._nets
                if nets is None:
                    pnet, rnet, onet = (
                        _load_net(arch, _weights_file(arch.name.lower()), self._threads)
                        for arch in (_PNET, _RNET, _ONET)
                    )
                    nets = self._nets = (pnet, rnet, onet)
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
        boxes = self._propose(pnet, normed)
        if not any(len(b) for b in boxes):
            return [[] for _ in images]
        boxes = self._refine(rnet, normed, boxes)
        if not any(len(b) for b in boxes):
            return [[] for _ in images]
        rows = self._output(onet, normed, boxes)
        return [[_to_detection(row, width, height) for row in image_rows] for image_rows in rows]

    def _propose(self, pnet: OnnxNet, normed: list[np.ndarray]) -> list[np.ndarray]:
        """Stage 1: P-Net over the pyramid, one forward pass per level for all images; NMS per
        level (IoU 0.5) then across levels (0.7); boxes squared."""
        height, width = normed[0].shape[:2]
        per_level: list[list[np.ndarray]] = [[] for _ in normed]
        for scale in self._scales(height, width):
            # int() truncates, as tf.image.resize does with the package's float sizes
            h_s, w_s = (np.asarray([height, width]) * scale).astype(np.int32)
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            level = np.stack([cv2.resize(im, (int(w_s), int(h_s)), interpolation=interp) for im in normed])
            reg, prob = pnet(level)  # (N, 4, h, w), (N, h, w)
            b, y, x = np.nonzero(prob > self.thresholds[0])
            if len(b) == 0:
                continue
            off = reg[b, :, y, x].astype(np.float64)  # (n, 4)
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

    def _refine(self, rnet: OnnxNet, normed: list[np.ndarray], boxes: list[np.ndarray]) -> list[np.ndarray]:
        """Stage 2: R-Net on all images' boxes in one pass; keep score > threshold, NMS 0.7, square."""
        out = []
        for rows, (reg, prob) in zip(boxes, _run_on_crops(rnet, normed, boxes, 24)):
            rows = _regress(rows, reg)
            rows[:, 4] = prob
            out.append(_square(_nms_sorted(rows[prob > self.thresholds[1]], 0.7, "union")))
        return out

    def _output(self, onet: OnnxNet, normed: list[np.ndarray], boxes: list[np.ndarray]) -> list[np.ndarray]:
        """Stage 3: O-Net on all images' boxes in one pass. Per image, rows
        [x1, y1, x2, y2, score, lx1..lx5, ly1..ly5] with score > threshold after NMS 0.7 (by the
        smaller area), best first."""
        out = []
        for rows, (reg, marks, prob) in zip(boxes, _run_on_crops(onet, normed, boxes, 48)):
            # landmarks are relative to the squared R-Net box, before O-Net's own regression
            w = rows[:, 2:3] - rows[:, 0:1] + 1
            h = rows[:, 3:4] - rows[:, 1:2] + 1
            lm_x = w * marks[:, 0:5] + rows[:, 0:1] - 1
            lm_y = h * marks[:, 5:10] + rows[:, 1:2] - 1
            rows = _regress(rows, reg)
            rows[:, 4] = prob
            rows = np.concatenate([rows[:, :5], lm_x, lm_y], axis=1)[prob > self.thresholds[2]]
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
