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
    quality: the face's quality in [0, 1], the predicted chance that it is recognised correctly
        (:mod:`faceprint.quality`); None as a detector returns it, set by the pipeline, which
        measures it on the image right after detection.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = field(default=None, compare=False)
    detector: str = ""
    quality: float | None = field(default=None, compare=False)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)

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
    """The outcome of comparing one face to the known people: identity is None for "unknown".

    too_poor: the face's quality is below the floor, so no decision is made (identity None, but
    not "unknown": the face may well be someone known). ``decision`` names the three cases.
    """

    identity: str | None
    distance: float
    too_poor: bool = False

    @property
    def decision(self) -> str:
        """One of "match", "unknown" and "too_poor"."""
        return "too_poor" if self.too_poor else "unknown" if self.identity is None else "match"


@dataclass(frozen=True)
class Verification:
    """A 1:1 decision: distance, the threshold used and whether that means the same person.

    quality: the worse face's quality, when known; too_poor: it is below the floor, so no decision
    is made (``same`` is then False, and means "not decided", not "different people").
    """

    distance: float
    threshold: float
    same: bool
    quality: float | None = None
    too_poor: bool = False

    @property
    def decision(self) -> str:
        """One of "same", "different" and "too_poor"."""
        return "too_poor" if self.too_poor else "same" if self.same else "different"


@dataclass(frozen=True)
class Face:
    """A detected face with its aligned chip and descriptor: the pipeline's output per face."""

    detection: Detection
    embedding: Embedding
    chip: FaceChip | None = field(default=None, compare=False)
