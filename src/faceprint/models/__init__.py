"""Embedding models: the registry and the network definitions."""

from ._registry import (
    DEFAULT_MODEL,
    LICENCE_ENV,
    ModelSpec,
    WeightsSource,
    check_terms,
    get_model_spec,
    list_models,
    register_fusion,
    register_model,
)

__all__ = [
    "DEFAULT_MODEL",
    "LICENCE_ENV",
    "ModelSpec",
    "WeightsSource",
    "check_terms",
    "get_model_spec",
    "list_models",
    "register_fusion",
    "register_model",
]
