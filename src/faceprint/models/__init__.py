"""Embedding models: the registry and the network definitions."""

from ._registry import ModelSpec, WeightsSource, get_model_spec, list_models, register_model

__all__ = ["ModelSpec", "WeightsSource", "get_model_spec", "list_models", "register_model"]
