"""Embedding stage: aligned chips -> descriptor vectors, batched, on CPU threads of your choosing.

Registered models run on ONNX Runtime (no torch needed); a PyTorch network (one being trained, a
trained ``model.pt``, the FaceNet models) runs on torch when it is installed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .align import jitter_chip
from .errors import InvalidImageError, ModelError
from .models import DEFAULT_MODEL, ModelSpec, check_terms, get_model_spec
from .types import FaceChip

__all__ = ["Embedder", "FusedEmbedder", "make_embedder"]


class Embedder:
    """Runs one registered embedding model on aligned chips (:func:`make_embedder` also builds
    fusions such as the default model).

    model: registry name or spec; weights: optional explicit weights file (else the registered one).
    threads: CPU threads for the network (None: the engine's default, one per core).
    batch_size: chips per network call (each view of a chip counts once).
    flip: test-time augmentation, the mean of the chip's and its mirror image's descriptors.
    jitter: also average over this many randomly perturbed copies of each chip (dlib's
        ``num_jitters`` recipe, :func:`faceprint.align.jitter_chip`), seeded by the chip's pixels
        so a chip always gets the same descriptor. Costs ``jitter`` more network passes per chip.
    net: a PyTorch module to run instead of the registered graph (training).
    accept_licence: names of non-commercial licences the caller accepts (see ``check_terms``).
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
        net: Any = None,
        accept_licence: str | Iterable[str] | None = None,
    ) -> None:
        if isinstance(jitter, bool) or int(jitter) != jitter or jitter < 0:
            raise ValueError(f"jitter must be a whole number >= 0, got {jitter!r}")
        self.spec = model if isinstance(model, ModelSpec) else get_model_spec(model)
        if self.spec.members:
            raise ValueError(f"{self.spec.name} is a fusion of several models: build it with make_embedder()")
        if weights is None:
            check_terms(self.spec.name, self.spec.weights, accept_licence)
        self.weights = Path(weights) if weights is not None else None
        self.batch_size = max(1, int(batch_size))
        self.flip = flip
        self.jitter = int(jitter)
        self.threads = threads
        self.device = device
        self._net = net  # a PyTorch network given by the caller (e.g. one being trained)
        self._run: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def model_id(self) -> str:
        return self.spec.name

    @property
    def backend(self) -> str:
        """"onnxruntime" or "torch"."""
        return "torch" if self._net is not None or self.spec.onnx is None else "onnxruntime"

    @property
    def net(self) -> Any:
        """The PyTorch network (loaded on first use, eval mode): training and torch-only models."""
        if self._net is None:
            try:
                import torch
            except ImportError:
                raise ModelError(
                    f"model {self.spec.name} runs on PyTorch, which is not installed: "
                    "pip install 'faceprint[train]'"
                ) from None
            if self.threads is not None:
                torch.set_num_threads(int(self.threads))
            self._net = self.spec.build(self.weights).to(self.device).eval()
        return self._net

    def _runner(self) -> Callable[[np.ndarray], np.ndarray]:
        """(n, S, S, 3) uint8 chips -> (n, D) float32, built on first use."""
        if self._run is None:
            if self.backend == "onnxruntime":
                from .runtime import OnnxNet

                if self.device != "cpu":
                    raise ValueError(f"recognition runs on the CPU (onnxruntime), got device={self.device!r}")
                onnx_net = OnnxNet(self.spec.onnx_file(self.weights), threads=self.threads)
                self._run = lambda chips: onnx_net(chips)[0]
            else:
                self._run = self._torch_runner(self.net)
        return self._run

    def _torch_runner(self, net: Any) -> Callable[[np.ndarray], np.ndarray]:
        import torch

        device = torch.device(self.device)

        def run(chips: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return net(net.preprocess(chips).to(device)).float().cpu().numpy()

        return run

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

    def _views(self, batch: np.ndarray) -> list[np.ndarray]:
        """The chip, its mirror, jittered copies: the descriptor is the mean over these views."""
        views = [batch]
        if self.flip:
            views.append(batch[:, :, ::-1])
        if self.jitter:
            rngs = [np.random.default_rng(zlib.crc32(c.tobytes())) for c in batch]  # seeded by content
            views += [np.stack([jitter_chip(c, r) for c, r in zip(batch, rngs)]) for _ in range(self.jitter)]
        return views

    @property
    def member_specs(self) -> tuple[ModelSpec, ...]:
        """The models whose chips :meth:`embed_members` takes: this one."""
        return (self.spec,)

    def embed_members(self, chips: Sequence[np.ndarray | Sequence[FaceChip]]) -> np.ndarray:
        """:meth:`embed` of ``chips[0]``, the one member's chips (the interface fused models share)."""
        return self.embed(chips[0])

    def embed_with_norms(self, chips: Sequence[np.ndarray | Sequence[FaceChip]]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`embed_members`, and (N, 1) float32: each descriptor's length (a quality cue)."""
        out = self.embed(chips[0])
        return out, np.linalg.norm(out, axis=1, keepdims=True)

    def embed(self, chips: np.ndarray | Sequence[FaceChip]) -> np.ndarray:
        """(N, S, S, 3) uint8 chips (or FaceChips) -> (N, D) float32 descriptors, N may be 0."""
        arr = self._as_array(chips)
        out = np.empty((len(arr), self.spec.embedding_size), np.float32)
        if len(arr) == 0:
            return out
        run = self._runner()
        n_views = 1 + self.flip + self.jitter
        step = max(1, self.batch_size // n_views)  # every view of a chip in the same network call
        for start in range(0, len(arr), step):
            batch = np.ascontiguousarray(arr[start : start + step])
            stacked = np.ascontiguousarray(np.concatenate(self._views(batch)))
            vectors = run(stacked).reshape(n_views, len(batch), -1)
            out[start : start + len(batch)] = vectors.mean(axis=0)
        return out


class FusedEmbedder:
    """A fused model (:func:`faceprint.models.register_fusion`): every member embeds the same faces
    from its own chips; the result is the members' unit vectors, each scaled by sqrt(weight), side
    by side. Takes the keyword arguments of :class:`Embedder` for its members."""

    def __init__(self, spec: ModelSpec, *, weights: str | Path | None = None, **kwargs: Any) -> None:
        if weights is not None:
            raise ValueError(f"{spec.name} is a fusion of registered models: it takes no weights file")
        self.spec = spec
        check_terms(spec.name, spec.weights, kwargs.get("accept_licence"))
        self.members = [Embedder(name, **kwargs) for name, _ in spec.members]
        self.scales = np.sqrt(np.array([w for _, w in spec.members], np.float32))
        self.weights = None
        self.flip, self.jitter = self.members[0].flip, self.members[0].jitter

    @property
    def model_id(self) -> str:
        return self.spec.name

    @property
    def member_specs(self) -> tuple[ModelSpec, ...]:
        return tuple(m.spec for m in self.members)

    def embed_members(self, chips: Sequence[np.ndarray | Sequence[FaceChip]]) -> np.ndarray:
        """One chip set per member (same faces, member order) -> (N, sum of D) float32."""
        return self.embed_with_norms(chips)[0]

    def embed_with_norms(self, chips: Sequence[np.ndarray | Sequence[FaceChip]]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`embed_members`, and (N, members) float32: each member's descriptor length before
        it is made a unit vector (SFace's is a strong quality cue, :mod:`faceprint.quality`)."""
        if len(chips) != len(self.members):
            raise ValueError(f"{self.spec.name} needs {len(self.members)} chip sets, got {len(chips)}")
        parts, norms = [], []
        for member, scale, member_chips in zip(self.members, self.scales, chips):
            v = member.embed(member_chips)
            n = np.linalg.norm(v, axis=1, keepdims=True)
            parts.append(scale * v / np.maximum(n, 1e-12))
            norms.append(n)
        return np.concatenate(parts, axis=1).astype(np.float32), np.concatenate(norms, axis=1).astype(np.float32)


def make_embedder(model: str | ModelSpec = DEFAULT_MODEL, **kwargs: Any) -> Embedder | FusedEmbedder:
    """The embedder a registered model needs: :class:`FusedEmbedder` for fusions, else :class:`Embedder`."""
    spec = model if isinstance(model, ModelSpec) else get_model_spec(model)
    return FusedEmbedder(spec, **kwargs) if spec.members else Embedder(spec, **kwargs)
