"""The FaceNet triplet loss (Schroff et al. 2015, eq. 1-3) and the distances it is built on."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pairwise_sq_distances", "triplet_loss"]

Reduction = Literal["mean", "sum", "none"]


def pairwise_sq_distances(embeddings: Tensor) -> Tensor:
    """(B, D) embeddings -> (B, B) squared Euclidean distances, exactly 0 on the diagonal.

    Uses ||a||^2 + ||b||^2 - 2 a.b (one matmul; a (B, B, D) difference tensor would not fit a
    FaceNet-sized batch) clamped at 0 against rounding. Squared distances need no sqrt, so the
    gradient stays finite for identical embeddings.
    """
    sq = embeddings.pow(2).sum(1)
    d = sq[:, None] + sq[None, :] - 2.0 * embeddings @ embeddings.T
    d = d.clamp_min(0.0)
    return d * (1.0 - torch.eye(len(embeddings), dtype=d.dtype, device=d.device))


def triplet_loss(
    anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 0.2, reduction: Reduction = "mean"
) -> Tensor:
    """FaceNet's loss: ``[ ||f(a) - f(p)||^2 - ||f(a) - f(n)||^2 + alpha ]_+`` per triplet.

    anchor, positive, negative: (T, D) embeddings; margin: alpha, in squared-distance units
    (FaceNet uses 0.2 on unit-length embeddings). reduction: "sum" is eq. 3 as written, "mean"
    divides by T (0 when T = 0), "none" returns the (T,) hinge values.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    d_ap = (anchor - positive).pow(2).sum(1)
    d_an = (anchor - negative).pow(2).sum(1)
    losses = F.relu(d_ap - d_an + margin)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / max(len(losses), 1)  # an empty batch gives 0, not NaN
