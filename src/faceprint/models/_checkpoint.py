"""Trained model files: a state dict plus the registry spec it was trained from.

``faceprint train`` writes ``model.pt``; passing that path wherever a model name goes
(``--model out/model.pt``, ``FacePipeline(model="out/model.pt")``) uses the trained weights with the
base model's preprocessing contract (chip size, alignment, normalisation, metric) and the
threshold calibrated during training when there was a validation set.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._resources import sha256_file
from ..errors import ModelError

__all__ = ["load_model_file", "save_model_file", "spec_from_model_file"]

FORMAT = "faceprint-model/1"


def save_model_file(
    path: str | Path,
    net: nn.Module,
    base: str,
    *,
    threshold: float | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``net``'s weights with the name of the registered model it is a version of."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "base": base,
        "threshold": threshold,
        "meta": meta or {},
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: never a half-written model
    return path


def _read(path: str | Path) -> dict[str, Any]:
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable model file: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path} is not a faceprint model file (written by `faceprint train`)")
    return payload


def spec_from_model_file(path: str | Path):
    """The ModelSpec of a trained model file: its base model's contract, named by the file's hash.

    The name carries the file's sha256 prefix so galleries and caches never mix descriptors of
    different weights.
    """
    from ._registry import WeightsSource, get_model_spec

    path = Path(path).resolve()
    payload = _read(path)
    base = get_model_spec(str(payload["base"]))
    digest = sha256_file(path)
    threshold = payload.get("threshold")
    return dataclasses.replace(
        base,
        name=f"{base.name}+{digest[:12]}",
        weights=WeightsSource(
            filename=path.name,
            sha256=digest,
            licence=f"derived from {base.name}: {base.weights.licence}",
            path=str(path),
        ),
        threshold=float(threshold) if threshold is not None else base.threshold,
        loader="faceprint.models._checkpoint:load_model_file",
        onnx=None,  # trained weights run on PyTorch (their .onnx export is a separate file)
        far_thresholds={},  # the base model's calibration does not hold for new weights
        description=f"{base.name} trained by faceprint ({path.name})",
        extra={**base.extra, "base": base.name},
    )


def load_model_file(path: str | Path) -> nn.Module:
    """Rebuild a trained model: the base architecture, then the saved weights (eval mode)."""
    from ._registry import get_model_spec

    payload = _read(path)
    net = get_model_spec(str(payload["base"])).build_untrained()
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ModelError(f"{path} does not fit {payload['base']}: {str(exc)[:300]}") from None
    return net.eval()
