"""The inference engine: ONNX Runtime sessions for every network on the recognition path.

Torch is for training only. Networks whose weights ship in another format (dlib's ``.dat``, MTCNN's
Keras arrays) are rebuilt as ONNX graphs with the ``onnx`` library by :class:`GraphBuilder`, saved
in the user cache under a name keyed by the weights' sha256, and run by :class:`OnnxNet`.
"""

from __future__ import annotations

from typing import Any

from .session import OnnxNet, cached_onnx, set_default_threads, torch_available

__all__ = ["GraphBuilder", "OnnxNet", "cached_onnx", "set_default_threads", "torch_available"]


def __getattr__(name: str) -> Any:
    # the onnx library is needed only to build a graph, not to run a cached one: imported on demand
    if name == "GraphBuilder":
        from .graph import GraphBuilder

        return GraphBuilder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
