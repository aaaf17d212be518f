"""Aligned chips -> network input tensors: the one place that validates chip arrays."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidImageError

__all__ = ["chips_to_tensor"]


def chips_to_tensor(chips: np.ndarray, size: int) -> Tensor:
    """(N, S, S, 3) uint8 RGB chips -> (N, 3, S, S) float32 pixel values 0..255, contiguous NCHW.

    A single (S, S, 3) chip and gray (N, S, S) chips (expanded to RGB, as dlib does) are accepted.
    """
    arr = np.asarray(chips)
    if arr.dtype != np.uint8:
        raise InvalidImageError(f"face chips must be uint8 RGB, got dtype {arr.dtype}")
    if arr.shape == (size, size, 3) or arr.shape == (size, size):
        arr = arr[None]
    if arr.ndim == 3 and arr.shape[1:] == (size, size):
        arr = np.repeat(arr[..., None], 3, axis=3)
    if arr.ndim != 4 or arr.shape[1:] != (size, size, 3):
        raise InvalidImageError(
            f"face chips must have shape (N, {size}, {size}, 3) (aligned RGB chips), got {arr.shape}"
        )
    # contiguous NCHW: a permuted (channels-last strided) input would silently switch the
    # convs of an NCHW model to the NHWC kernels
    arr = np.ascontiguousarray(arr)
    if min(arr.strides) < 0:  # numpy calls a reversed length-1 axis contiguous; torch refuses it
        arr = arr.copy()
    return torch.from_numpy(arr).permute(0, 3, 1, 2).to(torch.float32).contiguous()
