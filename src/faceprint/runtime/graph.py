"""A small builder for ONNX graphs made from weights held as NumPy arrays.

Each ``op`` call appends one node and returns the name of its (first) output, so a network reads
as straight-line code::

    g = GraphBuilder("pnet")
    x = g.input("x", ["N", 3, "H", "W"])
    y = g.op("Conv", x, g.const(w), g.const(b), kernel_shape=[3, 3])
    g.output(g.op("Relu", y), "y", ["N", 10, "h", "w"])
    model = g.build()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["GraphBuilder", "OPSET", "with_chip_input"]

#: ONNX opset of every graph faceprint builds (onnxruntime >= 1.17 runs it).
OPSET = 17

_ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.uint8): TensorProto.UINT8,
         np.dtype(np.int64): TensorProto.INT64}  # fmt: skip


class GraphBuilder:
    """Appends nodes, initializers, inputs and outputs; :meth:`build` checks and returns the model."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._count = 0

    def _fresh(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def input(self, name: str, shape: Sequence[int | str | None], dtype: Any = np.float32) -> str:
        """Declare a graph input; str/None dimensions are free (batch, height, width)."""
        self.inputs.append(helper.make_tensor_value_info(name, _ELEM[np.dtype(dtype)], list(shape)))
        return name

    def output(self, value: str, name: str, shape: Sequence[int | str | None], dtype: Any = np.float32) -> None:
        """Expose ``value`` as a graph output called ``name``."""
        self.nodes.append(helper.make_node("Identity", [value], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, _ELEM[np.dtype(dtype)], list(shape)))

    def const(self, array: Any, stem: str = "w") -> str:
        """A constant tensor (weights, shapes, pads); float arrays are stored as float32."""
        arr = np.asarray(array)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        name = self._fresh(stem)
        # np.ascontiguousarray would turn a 0-d scalar into shape (1,)
        self.initializers.append(numpy_helper.from_array(arr if arr.ndim == 0 else np.ascontiguousarray(arr), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs: Any) -> str:
        """Append one node; returns its first output's name (see :meth:`op_multi` for the rest)."""
        return self.op_multi(op_type, *inputs, outputs=outputs, **attrs)[0]

    def op_multi(self, op_type: str, *inputs: str, outputs: int = 1, **attrs: Any) -> list[str]:
        names = [self._fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names

    # -- the few composite steps every converted network needs --------------------------------
    def conv(self, x: str, weight: np.ndarray, bias: np.ndarray | None, *, stride: Sequence[int] = (1, 1),
             pads: Sequence[int] = (0, 0)) -> str:
        """Conv2d with an (O, I, kh, kw) weight; ``pads`` (py, px) on both sides."""
        args = [x, self.const(weight)] + ([self.const(bias)] if bias is not None else [])
        py, px = (int(p) for p in pads)
        return self.op("Conv", *args, kernel_shape=list(weight.shape[2:]), strides=[int(s) for s in stride],
                       pads=[py, px, py, px])  # fmt: skip

    def chip_input(self, name: str, size: int | None, mean: Sequence[float] | float, scale: float) -> str:
        """(N, H, W, 3) uint8 RGB chips -> (N, 3, H, W) float32 ``(x - mean) * scale``.

        Doing the normalisation in the graph keeps one place for each model's preprocessing.
        """
        x = self.input(name, ["N", size or "H", size or "W", 3], np.uint8)
        x = self.op("Transpose", self.op("Cast", x, to=TensorProto.FLOAT), perm=[0, 3, 1, 2])
        m = np.broadcast_to(np.asarray(mean, dtype=np.float32), (3,)).reshape(1, 3, 1, 1)
        return self.op("Mul", self.op("Sub", x, self.const(m, "mean")), self.const(np.float32(scale), "scale"))

    def build(self, doc: str = "") -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="faceprint",
                                  doc_string=doc)  # fmt: skip
        model.ir_version = 8  # readable by every onnxruntime faceprint supports
        onnx.checker.check_model(model)
        return model


def with_chip_input(model: onnx.ModelProto, size: int, mean: float = 0.0, scale: float = 1.0) -> onnx.ModelProto:
    """A published NCHW float face model made to take (N, size, size, 3) uint8 RGB chips, any N.

    mean, scale: the normalisation ``(x - mean) * scale`` put in front of the graph (0 and 1, exact
    no-ops, when the graph normalises by itself, as SFace's does). Weights listed as graph inputs become plain
    initializers (onnxruntime can then fold BatchNorm into the convs: ~25% faster), and the fixed
    batch dimension of the input and outputs is freed.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())  # leave the caller's copy alone
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    data = [i for i in graph.input if i.name not in inits]
    if len(data) != 1:
        raise ValueError(f"expected one image input, found {[i.name for i in data]}")
    original = data[0].name
    del graph.input[:]
    del graph.value_info[:]  # intermediate shapes recorded for batch 1 would contradict a free batch
    for out in graph.output:
        out.type.tensor_type.shape.dim[0].dim_param = "N"
    b = GraphBuilder("prep")
    b.chip_input("chips", size, mean, scale)
    b.nodes[-1].output[0] = original
    graph.input.extend(b.inputs)
    graph.initializer.extend(b.initializers)
    nodes = list(b.nodes) + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    for node in graph.node:  # Dropout in an inference graph is an identity; drop its mask output
        if node.op_type == "Dropout":
            del node.output[1:]
    onnx.checker.check_model(model)
    return model
