"""Face quality: how likely a face is to be recognised correctly, in [0, 1], from measurable cues.

A stage beside detection: it takes the image and a :class:`~faceprint.types.Detection` and
returns the detection with ``quality`` set (the pipeline calls :func:`assess` right after
detecting). It reads only the pixels of the face box, at a fixed scale, so it costs well under a
millisecond per face whatever the photo's size.

The cues (:class:`QualityCues`):

* ``log2_iod``: log2 of the inter-ocular distance in pixels (from the landmarks; 0.4 x the box
  width for detectors without landmarks);
* ``sharpness``: log10 of the variance of the Laplacian of the face box resampled to
  ``_SIDE`` x ``_SIDE`` grey pixels, divided by the variance of those pixels (contrast-free);
* ``contrast``: standard deviation of the inner face's grey levels, 0-1;
* ``exposure``: distance of the inner face's mean grey level from mid-grey, 0-0.5;
* ``clipped``: fraction of inner-face pixels crushed to black or burnt to white;
* ``yaw``, ``pitch``: absolute head angles from the landmarks (:mod:`faceprint.pose`), in units
  of 90 degrees (0 without landmarks);
* ``score``: the detector's confidence as a log-odds, ``logit(clip(score, 0.001, 0.999))``: most
  faces score 0.9 and up, and what tells them apart is how close to 1 they come.

The score is a logistic regression of "this face's pair was decided correctly at the model's
threshold" on these cues: ``quality = 1 / (1 + exp(-(INTERCEPT + COEFFICIENTS . cues)))``. So a
quality of 0.9 reads "about 1 pair in 10 with a face like this is decided wrongly" under the mix of
photos it was fitted on (below). Fitted by ``benchmarks/fit_quality.py`` on LFW View 1's training
pairs (pairsDevTrain.txt; View 2, which the accuracy figures come from, untouched), each image
degraded with a seeded random mix of :mod:`faceprint.degrade`'s blur, fewer pixels, JPEG and exposure,
embedded by the default model on its default pipeline; each pair labelled correct or not at the
model's threshold and described by the worse value of each cue over its two faces; cues whose
weight came out with the wrong sign were dropped and the fit repeated (so no cue pushes the wrong
way). On 1,049 pairs (134 decided wrongly; 351 more had a face not found), 5-fold out-of-fold:
ROC AUC 0.84 for predicting a correct decision, log-loss 0.30, against 0.69 for the old score
(confidence x size) and 0.86 / 0.31 for the detector's score alone, which carries most of what
the other cues measure on YuNet; face size, exposure and pitch add nothing beyond it there (zero
weights). Figures are in ``benchmarks/results/quality-fit-*.json``; the coefficients apply to the
default model and detector (YuNet scores), and rank faces sensibly for the others.

Once a face is embedded, models with SFace among their members (the default) measure it again
(:func:`reassess`, called by ``FacePipeline.faces_batch``): the same cues plus ``log_norm``, the
log of SFace's descriptor length before it is made a unit vector, fitted the same way on the genuine
pairs ("is this face matched to its own person"): out-of-fold ROC AUC 0.94 there, against 0.90 for
the detector's score alone. This is the quality that enrolment, identify and verify see; the
detection-only score stays on what ``detect_batch`` returns (video tracking picks its frames by it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .pose import head_pose
from .types import Detection

if TYPE_CHECKING:
    from .models import ModelSpec

__all__ = [
    "COEFFICIENTS",
    "DEFAULT_MIN_QUALITY",
    "EMBEDDED_COEFFICIENTS",
    "EMBEDDED_INTERCEPT",
    "EMBEDDED_VERSION",
    "INTERCEPT",
    "NORM_MEMBER",
    "QualityCues",
    "assess",
    "face_cues",
    "face_quality",
    "norm_member",
    "quality_from_cues",
    "quality_with_norm",
    "reassess",
]

_SIDE = 64  # the face box is resampled to this many pixels a side before measuring sharpness
_INNER = 0.6  # exposure is measured on the central 60% of the box (skin, not background)
_DARK, _BRIGHT = 8, 247  # grey levels counted as crushed / burnt

# Fitted by benchmarks/fit_quality.py (see the module docstring); cue order as in QualityCues. A
# zero: the cue came out with the wrong sign (collinear with the detector's score) and was dropped.
INTERCEPT = 0.1568
COEFFICIENTS: dict[str, float] = {
    "log2_iod": 0.0,
    "sharpness": 1.1653,
    "contrast": 11.5748,
    "exposure": 0.0,
    "clipped": -1.1398,
    "yaw": -0.5442,
    "pitch": 0.0,
    "score": 1.3559,
}

_WEIGHTS = np.array(list(COEFFICIENTS.values()))

#: The member model whose descriptor length, before it is made a unit vector, is a cue once a face
#: is embedded. SFace was trained with a loss that leaves hard faces short vectors: on 463 LFW
#: images under 10 of :mod:`faceprint.degrade`'s conditions, discarding the 10% of pairs with the
#: shortest SFace vector cut the false non-match rate at FAR 1e-3 from 2.0% to 0.37%, against 1.75%
#: for the detection cues alone. Models with SFace among their members (the default) get
#: :func:`reassess`; the others keep the detection-only score.
NORM_MEMBER = "sface"

# Fitted by benchmarks/fit_quality.py on the same photos and rules as COEFFICIENTS, plus "log_norm",
# the natural log of NORM_MEMBER's descriptor length (the last weight), on the genuine pairs: "is
# this face matched to its own person" (see the module docstring)
EMBEDDED_INTERCEPT = -20.91
EMBEDDED_COEFFICIENTS: dict[str, float] = {
    "log2_iod": 0.0,
    "sharpness": 1.2287,
    "contrast": 9.4469,
    "exposure": 0.0,
    "clipped": -0.6401,
    "yaw": -0.3805,
    "pitch": 0.0,
    "score": 0.8346,
    "log_norm": 9.6704,
}
_EMBEDDED_WEIGHTS = np.array(list(EMBEDDED_COEFFICIENTS.values()))
#: Names the embedded score's fit in FacePipeline.settings(), so cached qualities follow a refit
EMBEDDED_VERSION = hashlib.sha256(repr((EMBEDDED_INTERCEPT, _EMBEDDED_WEIGHTS.tolist())).encode()).hexdigest()[:12]

#: The floor under which enrolment refuses a face and decisions answer "too poor to decide": where
#: the predicted error of a decision reaches 50%, no better than a coin toss. On the fitting data,
#: pairs below it were decided wrongly 53% of the time against 10% above it; it refused no clean
#: LFW face and 4% of the degraded ones (benchmarks/fit_quality.py). With the embedded score (the
#: default model's): 84% of the genuine pairs below it were missed, 10% above; it refuses no clean
#: face, 20% of the fitting mix's heavily degraded ones, 4% of masked LFW faces.
DEFAULT_MIN_QUALITY = 0.5


@dataclass(frozen=True)
class QualityCues:
    """The measured cues of one face (see the module docstring for each one's definition)."""

    log2_iod: float
    sharpness: float
    contrast: float
    exposure: float
    clipped: float
    yaw: float
    pitch: float
    score: float

    def vector(self) -> np.ndarray:
        """(8,) float64 in :data:`COEFFICIENTS`' order (the fields' order)."""
        return np.array(dataclasses.astuple(self), np.float64)


def face_cues(image: np.ndarray, det: Detection) -> QualityCues:
    """The cues of the face at ``det`` in an (H, W, 3) uint8 RGB (or (H, W) grey) image."""
    if det.landmarks is not None:
        pts = np.asarray(det.landmarks, np.float64).reshape(5, 2)
        iod = float(np.hypot(*(pts[1] - pts[0])))
        yaw, pitch, _ = head_pose(pts)
    else:
        iod, yaw, pitch = 0.4 * max(det.width, 0.0), 0.0, 0.0
    grey = _face_grey(image, det.box)
    if grey is None:  # a box outside the image: nothing to measure
        sharp, contrast, exposure, clipped = -3.0, 0.0, 0.5, 1.0
    else:
        g = grey.astype(np.float32)
        lap_sd = float(cv2.meanStdDev(cv2.Laplacian(g, cv2.CV_32F, ksize=1))[1][0, 0])
        g_sd = float(cv2.meanStdDev(g)[1][0, 0])
        sharp = math.log10(lap_sd**2 / (g_sd**2 + 1.0) + 1e-3)
        m = int(round(_SIDE * (1 - _INNER) / 2))
        inner = grey[m : _SIDE - m, m : _SIDE - m]
        mean, sd = (float(v[0, 0]) for v in cv2.meanStdDev(inner))
        contrast = sd / 255.0
        exposure = abs(mean / 255.0 - 0.5)
        clipped = float(np.count_nonzero((inner <= _DARK) | (inner >= _BRIGHT))) / inner.size
    return QualityCues(
        log2_iod=math.log2(max(iod, 1.0)),
        sharpness=sharp,
        contrast=contrast,
        exposure=exposure,
        clipped=clipped,
        yaw=min(abs(yaw), 90.0) / 90.0,
        pitch=min(abs(pitch), 90.0) / 90.0,
        score=_logit(float(det.score)),
    )


def _logit(p: float) -> float:
    p = min(max(p, 0.001), 0.999)
    return math.log(p / (1.0 - p))


def _face_grey(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
    """The box's pixels as (_SIDE, _SIDE) uint8 grey, area-resampled; None when it misses the image."""
    h, w = image.shape[:2]
    left, top = max(int(math.floor(box[0])), 0), max(int(math.floor(box[1])), 0)
    right, bottom = min(int(math.ceil(box[2])), w), min(int(math.ceil(box[3])), h)
    if right - left < 2 or bottom - top < 2:
        return None
    crop = image[top:bottom, left:right]  # a view: OpenCV reads it in place
    if min(crop.shape[:2]) > 2 * _SIDE:
        # A big face is first thinned to 2 x _SIDE a side by taking every n-th pixel, so the cost
        # does not grow with the photo's size (copying a strided view of a big photo is slow too)
        crop = cv2.resize(crop, (2 * _SIDE, 2 * _SIDE), interpolation=cv2.INTER_NEAREST)
    if crop.ndim == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.shape[2] == 3 else np.ascontiguousarray(crop[..., 0])
    small = crop.shape[0] < _SIDE or crop.shape[1] < _SIDE
    return cv2.resize(crop, (_SIDE, _SIDE), interpolation=cv2.INTER_LINEAR if small else cv2.INTER_AREA)


def quality_from_cues(cues: QualityCues | np.ndarray) -> float:
    """The calibrated quality in [0, 1] of some cues (a QualityCues or its vector)."""
    x = cues.vector() if isinstance(cues, QualityCues) else np.asarray(cues, np.float64)
    return _sigmoid(INTERCEPT + float(np.dot(x, _WEIGHTS)))


def _sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + math.exp(-min(max(z, -50.0), 50.0))))


def face_quality(image: np.ndarray, det: Detection) -> float:
    """The quality in [0, 1] of the face at ``det``: the predicted chance it is recognised correctly."""
    return quality_from_cues(face_cues(image, det))


def assess(image: np.ndarray, detections: Sequence[Detection]) -> list[Detection]:
    """The detections of one image with ``quality`` filled in (new objects; the input is unchanged)."""
    return [dataclasses.replace(d, quality=face_quality(image, d)) for d in detections]


def norm_member(members: Sequence[ModelSpec]) -> int | None:
    """Index, among a model's members, of the one whose descriptor length is a cue (None: none)."""
    return next((i for i, m in enumerate(members) if m.name == NORM_MEMBER), None)


def quality_with_norm(cues: QualityCues | np.ndarray, norm: float) -> float:
    """The calibrated quality of a face from its cues and :data:`NORM_MEMBER`'s descriptor length."""
    x = cues.vector() if isinstance(cues, QualityCues) else np.asarray(cues, np.float64)
    return _sigmoid(EMBEDDED_INTERCEPT + float(np.dot(np.append(x, math.log(max(norm, 1e-6))), _EMBEDDED_WEIGHTS)))


def reassess(image: np.ndarray, detections: Sequence[Detection], norms: np.ndarray) -> list[Detection]:
    """The detections with ``quality`` measured again once their faces are embedded: ``norms``
    (N,) holds :data:`NORM_MEMBER`'s descriptor length of each face (new objects)."""
    return [
        dataclasses.replace(d, quality=quality_with_norm(face_cues(image, d), float(n)))
        for d, n in zip(detections, norms)
    ]
