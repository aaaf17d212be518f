"""Small frozen value types passed between pipeline stages.

Coordinates are image pixels of the *original* image, (x, y) = (column, row), float.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Detection", "Embedding", "Face", "FaceChip", "Match", "Verification"]


@dataclass(frozen=True)
class Detection:
    """One face found by a detector.

    box: (left, top, right, bottom) in pixels, float; right/bottom exclusive (width = right - left).
    score: detector confidence; its scale depends on the detector (MTCNN probability, MMOD margin).
    landmarks: (5, 2) float64 array of (x, y) in the MTCNN/ArcFace order: image-left eye centre,
        image-right eye centre, nose tip, image-left mouth corner, image-right mouth corner; or None
        when the detector gives no landmarks (Haar, MMOD); the pipeline fills them in then.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = field(default=None, compare=False)
    detector: str = ""

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)

    @property
    def quality(self) -> float:
        """A rough usability score in [0, 1]: detector confidence, scaled down for faces under 100 px."""
        return float(min(max(self.score, 0.0), 1.0) * min(1.0, min(self.width, self.height) / 100.0))

    def ltwh(self) -> list[float]:
        """The box as [left, top, width, height] (the CLI/JSON convention)."""
        left, top, right, bottom = self.box
        return [left, top, right - left, bottom - top]


@dataclass(frozen=True)
class FaceChip:
    """An aligned face crop ready for an embedder.

    pixels: (S, S, 3) uint8 RGB.
    transform: (2, 3) float64 affine mapping chip pixel (col, row, 1) to image (x, y).
    """

    pixels: np.ndarray = field(compare=False)
    transform: np.ndarray = field(compare=False)


@dataclass(frozen=True)
class Embedding:
    """A face descriptor: (D,) float32 vector in the model's metric space."""

    vector: np.ndarray = field(compare=False)
    model_id: str


@dataclass(frozen=True)
class Match:
    """The outcome of comparing one face to the known people: identity is None for "unknown"."""

    identity: str | None
    distance: float


@dataclass(frozen=True)
class Verification:
    """A 1:1 decision: distance, the threshold used and whether that means the same person."""

    distance: float
    threshold: float
    same: bool


@dataclass(frozen=True)
class Face:
    """A detected face with its aligned chip and descriptor: the pipeline's output per face."""

    detection: Detection
    embedding: Embedding
    chip: FaceChip | None = field(default=None, compare=False)
