"""OpenFace nn4.small2.v1 as the seeds' Keras ``faceRecoModel`` builds it, in PyTorch.

Same layer names as the Keras model (``conv1``, ``bn1``, ``inception_3a_3x3_conv1``, ...,
``dense_layer``) so the per-layer CSV export those repositories ship (``weights/<layer>_w.csv``,
``_b.csv``; batch norms also ``_m.csv``, ``_v.csv``; the dense layer as ``dense_w.csv`` /
``dense_b.csv``; read by ``fr_utils.load_weights``) loads directly. The Keras model has no LRN
layers (the original Torch net has), and its batch norms use eps 1e-3 for ``bn1`` and 1e-5
elsewhere. Input: (N, 3, 96, 96) RGB / 255; output: (N, 128) L2-normalised embeddings.

Keras counts batch-norm moving averages as (non-trainable) parameters: 3,743,280 in total, the
figure the seeds print; :func:`keras_parameter_count` reproduces it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ModelError, WeightsNotFoundError
from ._chips import chips_to_tensor

__all__ = ["OpenFaceNN4Small2", "keras_parameter_count", "load_openface_csv", "save_openface_csv"]

Pad = tuple[int, int, int, int]  # F.pad order: left, right, top, bottom


class _ConvBN(nn.Module):
    """Keras Conv2D (with bias) -> BatchNormalization -> ReLU, zero padding applied before the conv."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, pad: int = 0, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.pad = pad
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride)
        # torch's default momentum 0.1, not Keras's 0.99 (= 0.01 here): with 0.01 the running
        # statistics of a short CPU run lag far behind the weights and eval-mode embeddings collapse
        self.bn = nn.BatchNorm2d(cout, eps=eps, momentum=0.1)

    def forward(self, x: Tensor) -> Tensor:
        if self.pad:
            x = F.pad(x, (self.pad,) * 4)
        return F.relu(self.bn(self.conv(x)))


class _Inception(nn.Module):
    """One Keras inception block: named branches concatenated on channels in a fixed order.

    branches: (name, reduce 1x1 out, conv out or None, kernel, stride, pad) built as
    ``<block>_<name>_conv1/bn1`` + ``_conv2/bn2`` (two convs) or ``_conv/_bn`` (one);
    pool: ("max"|"avg", kernel, stride, 1x1 conv out or None, padding after).
    """

    def __init__(
        self,
        cin: int,
        order: tuple[str, ...],
        branches: dict[str, tuple[int, int | None, int, int, int]],
        pool: tuple[str, int, int, int | None, Pad],
    ) -> None:
        super().__init__()
        self.order = order
        self.convs = nn.ModuleDict()
        for name, (reduce, out, kernel, stride, pad) in branches.items():
            if out is None:
                self.convs[name] = nn.Sequential(_ConvBN(cin, reduce, 1))
            else:
                self.convs[name] = nn.Sequential(
                    _ConvBN(cin, reduce, 1), _ConvBN(reduce, out, kernel, stride, pad)
                )
        kind, k, s, proj, self.pool_pad = pool
        self.pool_kind, self.pool_k, self.pool_s = kind, k, s
        self.pool_proj = _ConvBN(cin, proj, 1) if proj else None

    def _pool(self, x: Tensor) -> Tensor:
        y = (
            F.max_pool2d(x, self.pool_k, self.pool_s)
            if self.pool_kind == "max"
            else F.avg_pool2d(x, self.pool_k, self.pool_s)
        )
        if self.pool_proj is not None:
            y = self.pool_proj(y)
        return F.pad(y, self.pool_pad)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self._pool(x) if name == "pool" else self.convs[name](x) for name in self.order], 1)


def _blocks() -> dict[str, _Inception]:
    """The seven inception blocks of faceRecoModel (inception_blocks_v2.py), Keras names."""
    return {
        "inception_3a": _Inception(
            192, ("3x3", "5x5", "pool", "1x1"),
            {"3x3": (96, 128, 3, 1, 1), "5x5": (16, 32, 5, 1, 2), "1x1": (64, None, 1, 1, 0)},
            ("max", 3, 2, 32, (3, 4, 3, 4)),
        ),
        "inception_3b": _Inception(
            256, ("3x3", "5x5", "pool", "1x1"),
            {"3x3": (96, 128, 3, 1, 1), "5x5": (32, 64, 5, 1, 2), "1x1": (64, None, 1, 1, 0)},
            ("avg", 3, 3, 64, (4, 4, 4, 4)),
        ),
        "inception_3c": _Inception(
            320, ("3x3", "5x5", "pool"),
            {"3x3": (128, 256, 3, 2, 1), "5x5": (32, 64, 5, 2, 2)},
            ("max", 3, 2, None, (0, 1, 0, 1)),
        ),
        "inception_4a": _Inception(
            640, ("3x3", "5x5", "pool", "1x1"),
            {"3x3": (96, 192, 3, 1, 1), "5x5": (32, 64, 5, 1, 2), "1x1": (256, None, 1, 1, 0)},
            ("avg", 3, 3, 128, (2, 2, 2, 2)),
        ),
        "inception_4e": _Inception(
            640, ("3x3", "5x5", "pool"),
            {"3x3": (160, 256, 3, 2, 1), "5x5": (64, 128, 5, 2, 2)},
            ("max", 3, 2, None, (0, 1, 0, 1)),
        ),
        "inception_5a": _Inception(
            1024, ("3x3", "pool", "1x1"),
            {"3x3": (96, 384, 3, 1, 1), "1x1": (256, None, 1, 1, 0)},
            ("avg", 3, 3, 96, (1, 1, 1, 1)),
        ),
        "inception_5b": _Inception(
            736, ("3x3", "pool", "1x1"),
            {"3x3": (96, 384, 3, 1, 1), "1x1": (256, None, 1, 1, 0)},
            ("max", 3, 2, 96, (1, 1, 1, 1)),
        ),
    }  # fmt: skip


class OpenFaceNN4Small2(nn.Module):
    """nn4.small2.v1: 96x96 RGB -> 128-d unit vectors (FaceNet's NN4 "small2" variant)."""

    chip_size = 96
    embedding_size = 128

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = _ConvBN(3, 64, 7, stride=2, pad=3, eps=1e-3)  # Keras default eps on bn1
        self.conv2 = _ConvBN(64, 64, 1)
        self.conv3 = _ConvBN(64, 192, 3, pad=1)
        self.inception = nn.ModuleDict(_blocks())
        self.dense_layer = nn.Linear(736, 128)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, 96, 96) RGB in [0, 1] -> (N, 128) unit-length embeddings."""
        x = F.max_pool2d(F.pad(self.conv1(x), (1, 1, 1, 1)), 3, 2)
        x = F.max_pool2d(F.pad(self.conv3(self.conv2(x)), (1, 1, 1, 1)), 3, 2)
        for block in self.inception.values():
            x = block(x)
        x = F.avg_pool2d(x, 3, 1).flatten(1)
        return F.normalize(self.dense_layer(x), p=2, dim=1)

    def preprocess(self, chips: np.ndarray) -> Tensor:
        """(N, 96, 96, 3) uint8 RGB -> (N, 3, 96, 96) float32 ``x / 255`` (the seeds' img_to_encoding)."""
        return chips_to_tensor(chips, self.chip_size) / 255.0

    def keras_layers(self) -> dict[str, nn.Module]:
        """Keras layer name -> the Conv2d / BatchNorm2d / Linear holding its weights."""
        layers: dict[str, nn.Module] = {}
        for i, stem in enumerate((self.conv1, self.conv2, self.conv3), start=1):
            layers[f"conv{i}"], layers[f"bn{i}"] = stem.conv, stem.bn
        for block_name, block in self.inception.items():
            for branch, seq in block.convs.items():
                prefix = f"{block_name}_{branch}"
                if len(seq) == 1:
                    layers[f"{prefix}_conv"], layers[f"{prefix}_bn"] = seq[0].conv, seq[0].bn
                else:
                    for j, cb in enumerate(seq, start=1):
                        layers[f"{prefix}_conv{j}"], layers[f"{prefix}_bn{j}"] = cb.conv, cb.bn
            if block.pool_proj is not None:
                layers[f"{block_name}_pool_conv"] = block.pool_proj.conv
                layers[f"{block_name}_pool_bn"] = block.pool_proj.bn
        layers["dense_layer"] = self.dense_layer
        return layers


def keras_parameter_count(model: nn.Module) -> int:
    """Parameters as Keras counts them: weights plus batch-norm moving mean and variance."""
    stats = sum(
        m.running_mean.numel() + m.running_var.numel()
        for m in model.modules()
        if isinstance(m, nn.BatchNorm2d)
    )
    return sum(p.numel() for p in model.parameters()) + stats


def _csv_names(layer: str) -> dict[str, str]:
    """Tensor -> CSV file stem, as fr_utils.load_weights names them."""
    if layer == "dense_layer":
        return {"weight": "dense_w", "bias": "dense_b"}
    if "conv" in layer:
        return {"weight": f"{layer}_w", "bias": f"{layer}_b"}
    return {
        "weight": f"{layer}_w",
        "bias": f"{layer}_b",
        "running_mean": f"{layer}_m",
        "running_var": f"{layer}_v",
    }


def load_openface_csv(path: str | Path) -> OpenFaceNN4Small2:
    """A folder of per-layer CSVs (the seeds' ``weights/``) -> eval-mode network.

    Conv weights are stored flattened in (out, in, kh, kw) order (Torch's, which the Keras loader
    transposes to (kh, kw, in, out)); the dense weight as (128, 736) flattened.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise WeightsNotFoundError(
            f"{folder} is not a folder of OpenFace CSV weights (conv1_w.csv, bn1_m.csv, ..., dense_w.csv); "
            "pass the seeds' weights/ folder with --weights PATH"
        )
    model = OpenFaceNN4Small2()
    with torch.no_grad():
        for layer, module in model.keras_layers().items():
            for attr, stem in _csv_names(layer).items():
                file = folder / f"{stem}.csv"
                if not file.is_file():
                    raise ModelError(f"{file} is missing: not a complete nn4.small2.v1 CSV export")
                values = np.loadtxt(file, delimiter=",", dtype=np.float64, ndmin=1).ravel()
                target = getattr(module, attr)
                if values.size != target.numel():
                    raise ModelError(
                        f"{file} holds {values.size} values, layer {layer}.{attr} needs {target.numel()}"
                    )
                target.copy_(torch.from_numpy(values.reshape(tuple(target.shape))).to(target.dtype))
    return model.eval()


def save_openface_csv(model: OpenFaceNN4Small2, path: str | Path) -> Path:
    """Write the per-layer CSV export :func:`load_openface_csv` reads (one row per output unit)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for layer, module in model.keras_layers().items():
        for attr, stem in _csv_names(layer).items():
            t = getattr(module, attr).detach().cpu().double().numpy()
            np.savetxt(
                folder / f"{stem}.csv",
                t.reshape(t.shape[0], -1) if t.ndim > 1 else t[None],
                delimiter=",",
                fmt="%.9g",
            )
    return folder
