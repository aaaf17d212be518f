"""Embedding models: the registry and the network definitions."""

from ._registry import LICENCE_ENV, ModelSpec, WeightsSource, check_terms, get_model_spec, list_models, register_model

__all__ = ["LICENCE_ENV", "ModelSpec", "WeightsSource", "check_terms", "get_model_spec", "list_models", "register_model"]
