"""Online triplet mining from the embeddings of one batch (FaceNet section 3.2).

Every miner takes the (B, B) squared distances and (B,) integer labels and returns three (T,)
index tensors (anchor, positive, negative). Anchors without a positive or a negative in the
batch give no triplet.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["MINERS", "batch_all", "batch_hard", "get_miner", "semi_hard"]

Triplets = tuple[Tensor, Tensor, Tensor]


def _masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """(B, B) boolean masks: same identity without the diagonal, and different identity."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def batch_all(dist: Tensor, labels: Tensor, margin: float = 0.2, active_only: bool = False) -> Triplets:
    """Every valid triplet (a, p, n): label[a] == label[p], a != p, label[n] != label[a].

    active_only keeps those with a positive loss, d(a,p) - d(a,n) + margin > 0 (Hermans et al.'s
    "batch all" averages over these, so easy triplets do not dilute the gradient).
    """
    pos, neg = _masks(labels)
    valid = pos[:, :, None] & neg[:, None, :]  # (a, p, n)
    if active_only:
        valid &= (dist[:, :, None] - dist[:, None, :] + margin) > 0
    a, p, n = valid.nonzero(as_tuple=True)
    return a, p, n


def batch_hard(dist: Tensor, labels: Tensor, margin: float = 0.2) -> Triplets:
    """For each anchor its hardest positive (farthest same) and hardest negative (nearest other)."""
    pos, neg = _masks(labels)
    ok = pos.any(1) & neg.any(1)
    far = torch.finfo(dist.dtype).max
    p = torch.where(pos, dist, torch.full_like(dist, -1.0)).argmax(1)
    n = torch.where(neg, dist, torch.full_like(dist, far)).argmin(1)
    a = torch.arange(len(labels), device=labels.device)
    return a[ok], p[ok], n[ok]


def semi_hard(dist: Tensor, labels: Tensor, margin: float = 0.2) -> Triplets:
    """FaceNet's semi-hard negatives: every anchor-positive pair, each with the nearest negative
    that is still farther than the positive, d(a,n) > d(a,p) (it lies inside the margin when the
    loss is active).

    When no negative is farther than the positive, the farthest negative is used, as TensorFlow
    Addons' ``triplet_semihard_loss`` does: the pair keeps a (usually zero-loss) triplet instead of
    forcing the hardest negative, which FaceNet found collapses training early on.
    """
    pos, neg = _masks(labels)
    a, p = pos.nonzero(as_tuple=True)
    if len(a) == 0:
        return a, p, p
    d_an = dist[a]  # (P, B): anchor to everyone
    d_ap = dist[a, p][:, None]
    far = torch.finfo(dist.dtype).max
    candidates = neg[a] & (d_an > d_ap)
    semi = torch.where(candidates, d_an, torch.full_like(d_an, far)).argmin(1)
    easiest = torch.where(neg[a], d_an, torch.full_like(d_an, -1.0)).argmax(1)
    n = torch.where(candidates.any(1), semi, easiest)
    keep = neg[a].any(1)
    return a[keep], p[keep], n[keep]


def _batch_all_active(dist: Tensor, labels: Tensor, margin: float = 0.2) -> Triplets:
    return batch_all(dist, labels, margin, active_only=True)


MINERS: dict[str, Callable[..., Triplets]] = {
    "batch-all": batch_all,
    "batch-all-active": _batch_all_active,
    "batch-hard": batch_hard,
    "semi-hard": semi_hard,
}


def get_miner(name: str) -> Callable[..., Triplets]:
    """A miner by name: batch-all, batch-all-active, batch-hard or semi-hard."""
    try:
        return MINERS[name]
    except KeyError:
        raise ValueError(f"unknown miner {name!r}; choose one of {', '.join(MINERS)}") from None
