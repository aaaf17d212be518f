"""Export a trained embedding network to TorchScript and ONNX, checked against the PyTorch module."""

from __future__ import annotations

import io
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["export_onnx", "export_torchscript", "onnx_embeddings"]


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
