"""Face models published as ONNX files inside other wheels, made ready for faceprint's chips.

Each function takes the published file and returns the graph recognition runs: (N, 112, 112, 3)
uint8 RGB chips aligned on the ArcFace template -> (N, D) float32 raw embeddings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["arcface_mbf_onnx", "sface_onnx"]


def _load(path: str | Path) -> Any:
    import onnx

    return onnx.load(str(path))


def sface_onnx(path: str | Path) -> Any:
    """OpenCV zoo SFace (``face_recognition_sface_2021dec.onnx``): RGB 0-255 in, the graph itself
    subtracts 127.5 and scales by 1/128."""
    from ..runtime.graph import with_chip_input

    return with_chip_input(_load(path), 112)


def arcface_mbf_onnx(path: str | Path) -> Any:
    """InsightFace ArcFace MobileFaceNet (``w600k_mbf.onnx``): RGB ``(x - 127.5) / 127.5``."""
    from ..runtime.graph import with_chip_input

    return with_chip_input(_load(path), 112, 127.5, 1.0 / 127.5)
