"""Export a trained embedding network to TorchScript and ONNX, checked against the PyTorch module,
or save it as the weights of a registered model that faceprint builds (``faceprint train --save-as``)."""

from __future__ import annotations

import importlib
import io
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._resources import sha256_file
from ..errors import ModelError
from ..models import ModelSpec, get_model_spec, list_models

__all__ = ["check_registered", "export_onnx", "export_torchscript", "onnx_embeddings", "save_registered"]


def export_torchscript(net: nn.Module, path: str | Path, example: torch.Tensor) -> float:
    """Trace ``net`` (eval mode) on ``example`` (N, 3, S, S) preprocessed input, save it, reload it
    and return the largest absolute difference between its embeddings and the module's."""
    net = net.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # tracing warns about shape-dependent Python branches (dlib's zero-extending add): the
        # traced graph is specialised to this input size, which is the model's fixed chip size
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is in maintenance mode
        traced = torch.jit.trace(net, example, check_trace=False)
        torch.jit.save(traced, str(path))
        loaded = torch.jit.load(str(path))
        return float((loaded(example) - net(example)).abs().max())


def export_onnx(net: nn.Module, path: str | Path, example: torch.Tensor, opset: int = 17) -> float:
    """Export ``net`` to ONNX (dynamic batch axis), run it with onnxruntime on ``example`` and
    return the largest absolute difference from the PyTorch module's embeddings."""
    net = net.eval()
    with (
        torch.no_grad(),
        warnings.catch_warnings(),
        redirect_stdout(io.StringIO()),
        redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # see export_torchscript
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)  # exporter notes on opset/decomposition choices
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=["chips"],
            output_names=["embeddings"],
            dynamic_axes={"chips": {0: "batch"}, "embeddings": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
        expected = net(example).numpy()
    got = onnx_embeddings(path, example.numpy())
    return float(np.abs(got - expected).max())


def onnx_embeddings(path: str | Path, x: np.ndarray) -> np.ndarray:
    """Run an exported model with onnxruntime (CPU): (N, 3, S, S) float32 -> (N, D)."""
    import onnxruntime as ort  # optional dependency: faceprint[train]

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def check_registered(name: str, start: str) -> ModelSpec:
    """The spec of registered model ``name`` if faceprint builds its weights from ``start``'s
    architecture (``faceprint train --save-as``); ModelError saying why not otherwise."""
    spec = get_model_spec(name)
    base = str(spec.extra.get("base", spec.name))
    start_spec = get_model_spec(start)
    start_base = str(start_spec.extra.get("base", start_spec.name))
    if spec.weights.build is None or "writer" not in spec.extra:
        built = [n for n in list_models() if get_model_spec(n).weights.build]
        raise ModelError(
            f"{name} is not a model faceprint builds (its weights come from {spec.weights.filename}); "
            f"models built by `faceprint train --save-as`: {', '.join(built) or 'none'}"
        )
    if base != start_base:
        raise ModelError(f"{name} is a {base} network; train it from {base} (--model {base}), not {start}")
    return spec


def save_registered(net: nn.Module, name: str) -> tuple[Path, str, str]:
    """Write ``net``'s weights where registered model ``name`` looks for them (the user cache), in
    its file format; returns (path, sha256 of the file, sha256 the registry records)."""
    spec = get_model_spec(name)
    if spec.weights.build is None or "writer" not in spec.extra:
        raise ModelError(f"{name} is not a model faceprint builds: see check_registered")
    module_name, func_name = str(spec.extra["writer"]).split(":")
    writer = getattr(importlib.import_module(module_name), func_name)
    path = Path(writer(net, spec.weights.cache_path()))
    return path, sha256_file(path), spec.weights.sha256
