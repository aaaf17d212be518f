"""Inception-ResNet-v1 (FaceNet, Sandberg's 2018 models) with facenet-pytorch's state-dict layout.

Module and parameter names, shapes and BatchNorm settings (eps 1e-3) follow
``facenet_pytorch.models.inception_resnet_v1`` so the published ``20180402-114759-vggface2.pt``
and ``20180408-102900-casia-webface.pt`` state dicts load as they are. Input: (N, 3, 160, 160)
RGB as ``(pixel - 127.5) / 128`` (facenet-pytorch's ``fixed_image_standardization``);
output: (N, 512) L2-normalised embeddings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ModelError
from ._chips import chips_to_tensor

__all__ = ["InceptionResnetV1", "load_inception_resnet_v1"]


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm(eps 1e-3) -> ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int | tuple[int, int],
        stride: int,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001, momentum=0.1, affine=True)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class _Branches(nn.Module):
    """Runs the ``branch0``, ``branch1``, ... children on the same input, concatenated on channels."""

    def _concat(self, x: Tensor) -> Tensor:
        return torch.cat([m(x) for name, m in self.named_children() if name.startswith("branch")], 1)

    def forward(self, x: Tensor) -> Tensor:
        return self._concat(x)


class _Residual(_Branches):
    """``relu(x + scale * conv2d(branches(x)))``: the Inception-ResNet block (ReLU unless noReLU)."""

    scale: float
    noReLU: bool = False

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2d(self._concat(x)) * self.scale + x
        return out if self.noReLU else self.relu(out)


class Block35(_Residual):
    """Inception-ResNet-A (35x35 grid in the paper, 17x17 at 160 px): 256 channels."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(256, 32, 1, 1)
        self.branch1 = nn.Sequential(BasicConv2d(256, 32, 1, 1), BasicConv2d(32, 32, 3, 1, 1))
        self.branch2 = nn.Sequential(
            BasicConv2d(256, 32, 1, 1), BasicConv2d(32, 32, 3, 1, 1), BasicConv2d(32, 32, 3, 1, 1)
        )
        self.conv2d = nn.Conv2d(96, 256, 1, 1)
        self.relu = nn.ReLU(inplace=False)


class _Factorised(_Residual):
    """Blocks B and C: a 1x1 branch and a 1x1 -> 1xk -> kx1 branch, projected back to ``channels``."""

    def __init__(self, channels: int, mid: int, k: int, scale: float, relu: bool) -> None:
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(channels, mid, 1, 1)
        self.branch1 = nn.Sequential(
            BasicConv2d(channels, mid, 1, 1),
            BasicConv2d(mid, mid, (1, k), 1, (0, k // 2)),
            BasicConv2d(mid, mid, (k, 1), 1, (k // 2, 0)),
        )
        self.conv2d = nn.Conv2d(2 * mid, channels, 1, 1)
        if relu:
            self.relu = nn.ReLU(inplace=False)


class Block17(_Factorised):
    """Inception-ResNet-B: 896 channels, 1x7 / 7x1 convolutions."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__(896, 128, 7, scale, relu=True)


class Block8(_Factorised):
    """Inception-ResNet-C: 1792 channels, 1x3 / 3x1; the last one has no ReLU (``noReLU``)."""

    def __init__(self, scale: float = 1.0, noReLU: bool = False) -> None:
        super().__init__(1792, 192, 3, scale, relu=not noReLU)
        self.noReLU = noReLU


class Mixed_6a(_Branches):
    """Reduction-A: 256 -> 896 channels, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(256, 384, 3, 2)
        self.branch1 = nn.Sequential(
            BasicConv2d(256, 192, 1, 1), BasicConv2d(192, 192, 3, 1, 1), BasicConv2d(192, 256, 3, 2)
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)


class Mixed_7a(_Branches):
    """Reduction-B: 896 -> 1792 channels, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(BasicConv2d(896, 256, 1, 1), BasicConv2d(256, 384, 3, 2))
        self.branch1 = nn.Sequential(BasicConv2d(896, 256, 1, 1), BasicConv2d(256, 256, 3, 2))
        self.branch2 = nn.Sequential(
            BasicConv2d(896, 256, 1, 1), BasicConv2d(256, 256, 3, 1, 1), BasicConv2d(256, 256, 3, 2)
        )
        self.branch3 = nn.MaxPool2d(3, stride=2)


class InceptionResnetV1(nn.Module):
    """FaceNet's Inception-ResNet-v1 trunk + 512-d bottleneck (no classifier head).

    The published checkpoints also hold ``logits.*`` (the softmax head used to train them:
    8631 VGGFace2 / 10575 CASIA-WebFace classes); :func:`load_inception_resnet_v1` drops it.
    """

    chip_size = 160
    embedding_size = 512

    def __init__(self, dropout: float = 0.6) -> None:
        super().__init__()
        self.conv2d_1a = BasicConv2d(3, 32, 3, 2)
        self.conv2d_2a = BasicConv2d(32, 32, 3, 1)
        self.conv2d_2b = BasicConv2d(32, 64, 3, 1, 1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = BasicConv2d(64, 80, 1, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3, 1)
        self.conv2d_4b = BasicConv2d(192, 256, 3, 2)
        self.repeat_1 = nn.Sequential(*[Block35(scale=0.17) for _ in range(5)])
        self.mixed_6a = Mixed_6a()
        self.repeat_2 = nn.Sequential(*[Block17(scale=0.10) for _ in range(10)])
        self.mixed_7a = Mixed_7a()
        self.repeat_3 = nn.Sequential(*[Block8(scale=0.20) for _ in range(5)])
        self.block8 = Block8(noReLU=True)
        self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.last_linear = nn.Linear(1792, 512, bias=False)
        self.last_bn = nn.BatchNorm1d(512, eps=0.001, momentum=0.1, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, 160, 160) standardised chips -> (N, 512) unit-length embeddings."""
        x = self.maxpool_3a(self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x))))
        x = self.conv2d_4b(self.conv2d_4a(self.conv2d_3b(x)))
        x = self.mixed_7a(self.repeat_2(self.mixed_6a(self.repeat_1(x))))
        x = self.block8(self.repeat_3(x))
        x = self.dropout(self.avgpool_1a(x))
        x = self.last_bn(self.last_linear(x.flatten(1)))
        return F.normalize(x, p=2, dim=1)

    def preprocess(self, chips: np.ndarray) -> Tensor:
        """(N, 160, 160, 3) uint8 RGB -> (N, 3, 160, 160) float32 ``(x - 127.5) / 128``."""
        return (chips_to_tensor(chips, self.chip_size) - 127.5) / 128.0


def load_inception_resnet_v1(path: str | Path) -> InceptionResnetV1:
    """A facenet-pytorch state dict (``torch.save(model.state_dict())``) -> eval-mode network.

    Keys must match facenet-pytorch's names; the ``logits.*`` classifier is ignored and
    ``num_batches_tracked`` counters (absent from older files) are optional.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{path} is not a state dict (got {type(state).__name__})")
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}
    model = InceptionResnetV1()
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a shape mismatch: another architecture or a damaged file
        raise ModelError(f"{path} does not fit InceptionResnetV1: {str(exc)[:300]}") from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ModelError(
            f"{path} is not a facenet-pytorch InceptionResnetV1 state dict: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {result.unexpected_keys[:5]}"
        )
    return model.eval()
