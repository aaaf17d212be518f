"""ONNX Runtime sessions and the cache of graphs built from other weight formats."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._resources import cache_dir
from ..errors import ModelError

__all__ = ["OnnxNet", "cached_onnx", "set_default_threads", "torch_available"]

#: Bump when a converter's output changes, so cached graphs built by older code are rebuilt.
BUILDER_VERSION = 1

_build_lock = threading.Lock()
_default_threads: int | None = None
_heap_tuned = False


def _return_freed_memory() -> None:
    """Make glibc give large freed blocks back to the system at once (done once per process).

    Network activations are tens of MB per batch; glibc's dynamic mmap threshold soon serves such
    blocks from the heap, where freed memory stays resident. Fixed 1 MB mmap/trim thresholds kept
    dlib + SFace at 82 MB resident after a batch of 32 instead of 206 MB, at no measured speed cost.
    """
    global _heap_tuned
    if _heap_tuned:
        return
    _heap_tuned = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc (macOS, musl, Windows): their allocators are left as they are


def set_default_threads(threads: int | None) -> None:
    """Intra-op threads for sessions created later without their own count (None: one per core).

    The CLI's ``--threads`` sets this once, so every network a command loads follows it.
    """
    global _default_threads
    _default_threads = None if threads is None else max(1, int(threads))


def cached_onnx(name: str, key: str, build: Callable[[], Any], version: int = 1) -> Path:
    """Path of ``<cache>/onnx/<name>-<key[:16]>-b<BUILDER_VERSION>.<version>.onnx``, built once by ``build()``.

    key: the sha256 of the weights the graph is made from, so other weights get their own file.
    version: the converter's own version: bump it when its graph changes, so caches are rebuilt.
    build: returns an ``onnx.ModelProto``. The file is written to a temporary name and renamed into
    place, so a crash or a concurrent builder never leaves a truncated graph behind.
    """
    path = cache_dir("onnx") / f"{name}-{key[:16]}-b{BUILDER_VERSION}.{version}.onnx"
    if path.is_file():
        return path
    with _build_lock:
        if path.is_file():
            return path
        import onnx  # only needed to build: a cached graph loads with onnxruntime alone

        model = build()
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
        onnx.save(model, tmp)
        os.replace(tmp, path)
    return path


class OnnxNet:
    """One network in an onnxruntime session on the CPU.

    source: an ``.onnx`` file or serialised model bytes.
    threads: intra-op threads for this session (None: :func:`set_default_threads`'s value, else
        onnxruntime's default, one per physical core).
    """

    def __init__(self, source: str | Path | bytes, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        _return_freed_memory()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.inter_op_num_threads = 1
        threads = threads if threads is not None else _default_threads
        if threads is not None:
            opts.intra_op_num_threads = max(1, int(threads))
        opts.log_severity_level = 3  # warnings about unused initialisers are noise to users
        # Idle workers sleep instead of spin-waiting: several sessions (three MTCNN stages, the
        # embedder) and NumPy work in between share the cores; spinning made 2-thread MTCNN 4x
        # slower on a busy 2-core machine, and costs little on a quiet one.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # No memory arena: it grows to the largest input ever seen and keeps it (0.9 GB held after
        # one 4096 px MMOD canvas); without it peak and resident memory drop at no measured cost.
        opts.enable_cpu_mem_arena = False
        what = source if isinstance(source, bytes) else str(source)
        try:
            self.session = ort.InferenceSession(what, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors on bad files
            label = "model bytes" if isinstance(source, bytes) else str(source)
            raise ModelError(
                f"onnxruntime cannot load {label}: {exc}; delete the file (it is rebuilt) or reinstall "
                "the package that ships it"
            ) from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, *args: np.ndarray, **kwargs: np.ndarray) -> list[np.ndarray]:
        """Run on positional inputs (in graph order) or named ones; returns every output."""
        feed: Mapping[str, np.ndarray] = {**dict(zip(self.input_names, args)), **kwargs}
        return self.session.run(self.output_names, dict(feed))


def torch_available() -> bool:
    """True when torch imports (training and the PyTorch-only models need it)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
