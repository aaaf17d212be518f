"""Embedding stage: aligned chips -> descriptor vectors, batched, on CPU threads of your choosing."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .align import jitter_chip
from .errors import InvalidImageError
from .models import ModelSpec, get_model_spec
from .types import FaceChip

__all__ = ["Embedder"]


class Embedder:
    """Runs a registered embedding model on aligned chips.

    model: registry name or spec; weights: optional explicit weights file (else the registered one).
    threads: torch intra-op threads (process-wide setting; None leaves torch's default).
    batch_size: chips per forward pass; 32 is where the dlib ResNet stops gaining on 2 cores.
    flip: test-time augmentation, the mean of the chip's and its mirror image's descriptors.
    jitter: also average over this many randomly perturbed copies of each chip (dlib's
        ``num_jitters`` recipe, :func:`faceprint.align.jitter_chip`), seeded by the chip's pixels
        so a chip always gets the same descriptor. Costs ``jitter`` more network passes per chip.
    """

    def __init__(
        self,
        model: str | ModelSpec = "dlib-resnet-v1",
        *,
        weights: str | Path | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        flip: bool = False,
        jitter: int = 0,
        device: str = "cpu",
        net: torch.nn.Module | None = None,
    ) -> None:
        if isinstance(jitter, bool) or int(jitter) != jitter or jitter < 0:
            raise ValueError(f"jitter must be a whole number >= 0, got {jitter!r}")
        self.spec = model if isinstance(model, ModelSpec) else get_model_spec(model)
        self.weights = Path(weights) if weights is not None else None
        self.batch_size = max(1, int(batch_size))
        self.flip = flip
        self.jitter = int(jitter)
        self.device = torch.device(device)
        if threads is not None:
            torch.set_num_threads(int(threads))
        self._net = net  # an already-built network (e.g. one being trained); else loaded on first use

    @property
    def model_id(self) -> str:
        return self.spec.name

    @property
    def net(self) -> torch.nn.Module:
        """The network, loaded on first use and kept (eval mode)."""
        if self._net is None:
            self._net = self.spec.build(self.weights).to(self.device).eval()
        return self._net

    def _as_array(self, chips: np.ndarray | Sequence[FaceChip]) -> np.ndarray:
        if isinstance(chips, np.ndarray):
            arr = chips
        else:
            arr = (
                np.stack([c.pixels for c in chips])
                if len(chips)
                else np.zeros((0, self.spec.chip_size, self.spec.chip_size, 3), np.uint8)
            )
        if arr.ndim == 3:
            arr = arr[None]
        size = self.spec.chip_size
        if arr.ndim != 4 or arr.shape[1:] != (size, size, 3) or arr.dtype != np.uint8:
            raise InvalidImageError(
                f"model {self.spec.name} takes (N, {size}, {size}, 3) uint8 RGB chips, got "
                f"{arr.shape} {arr.dtype}; align faces with faceprint.align first"
            )
        return arr

    def embed(self, chips: np.ndarray | Sequence[FaceChip]) -> np.ndarray:
        """(N, S, S, 3) uint8 chips (or FaceChips) -> (N, D) float32 descriptors, N may be 0."""
        arr = self._as_array(chips)
        out = np.empty((len(arr), self.spec.embedding_size), np.float32)
        if len(arr) == 0:
            return out
        net = self.net
        with torch.inference_mode():
            for start in range(0, len(arr), self.batch_size):
                batch = arr[start : start + self.batch_size]
                x = net.preprocess(batch).to(self.device)
                # the descriptor is the mean over the views: the chip, its mirror, jittered copies
                total, views = net(x), 1
                if self.flip:
                    total, views = total + net(torch.flip(x, dims=[3])), views + 1
                if self.jitter:
                    rngs = [np.random.default_rng(zlib.crc32(c.tobytes())) for c in batch]  # seeded by content
                    for _ in range(self.jitter):
                        copies = np.stack([jitter_chip(c, r) for c, r in zip(batch, rngs)])
                        total, views = total + net(net.preprocess(copies).to(self.device)), views + 1
                out[start : start + len(batch)] = (total / views).float().cpu().numpy()
        return out
