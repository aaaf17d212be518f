"""Image degradations for robustness tests and training augmentation.

Every function takes an RGB uint8 image (H, W, 3) and returns a new RGB uint8 image (the input
is never changed). Functions that draw random numbers take ``rng``: a ``numpy.random.Generator``
or an int seed (default 0), so the same seed always gives the same pixels; the others are
deterministic. Pure numpy/OpenCV: nothing here needs a network.

Named conditions (:data:`CONDITIONS`, :func:`get_condition`) fix the parameters of each
degradation so that reports can name them: ``get_condition("jpeg20")(image, rng=seed)``.

=================  =====================================================================
clean              the photo unchanged
jpeg10 ... jpeg90  :func:`jpeg` at quality 10, 20, 30, 50, 70, 90 (FaceNet Table 4)
px1600 ... px65536 :func:`pixels`: face box of 40², 80², 120², 160², 256² px (FaceNet Table 4)
rot90, rot180      :func:`rotate` counter-clockwise
gray               :func:`grayscale`
under, over        :func:`exposure` gain 0.4 gamma 1.4; gain 1.6 gamma 1.0
blur               :func:`blur` sigma 3 px
mask               :func:`mask` placed in the LFW face box, colour drawn by ``rng``
small              :func:`small_face`: a 64 px face in a 1920 x 1080 frame, place drawn by ``rng``
=================  =====================================================================

Face size convention (``pixels``, ``small_face``, the default ``mask`` placement): an image
without a detection is taken to be LFW-like, i.e. the face is the central square of side
``min(H, W) / 2.2``. LFW's photos are the Viola-Jones detection box enlarged 2.2 times per side
and scaled to 250 x 250 (Huang et al., LFW technical report 07-49, 2007), so the face box is the
central 113.6 x 113.6 px = 12,900 px (YuNet's boxes on LFW deep-funneled average 94 x 123 px =
11,600 px: the same within 10%).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import cv2
import numpy as np

from .errors import UnknownNameError

__all__ = [
    "CONDITIONS",
    "LFW_FACE_FRACTION",
    "Condition",
    "blur",
    "encode_jpeg",
    "exposure",
    "face_box",
    "get_condition",
    "grayscale",
    "jpeg",
    "list_conditions",
    "mask",
    "pixels",
    "rotate",
    "seed_for",
    "small_face",
]

LFW_FACE_FRACTION = 1 / 2.2  # LFW: the detector's box is the central 1/2.2 of each side

# Mean YuNet landmarks inside YuNet boxes over 80 LFW deep-funneled photos (x, y as fractions of
# the box's width, height; MTCNN order), made symmetric: where a box-only mask puts the face.
_BOX_LANDMARKS = np.array([[0.27, 0.375], [0.73, 0.375], [0.50, 0.57], [0.31, 0.725], [0.69, 0.725]])

RngLike = np.random.Generator | int | None


def _rng(rng: RngLike) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return image


def seed_for(key: str, base: int = 0) -> int:
    """A stable 63-bit seed for ``key`` (e.g. a condition and an image's relative path).

    sha256, not ``hash()``: Python salts string hashes per process, a run must be reproducible.
    """
    digest = hashlib.sha256(f"{base}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def face_box(shape: tuple[int, ...], fraction: float = LFW_FACE_FRACTION) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the central square of side ``fraction * min(H, W)``: LFW's face box."""
    h, w = shape[:2]
    side = fraction * min(h, w)
    return ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)


# -- compression and resolution ---------------------------------------------------------------------
def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """The JPEG file (OpenCV/libjpeg, 4:2:0 chroma subsampling) of an RGB image at ``quality`` 1-100."""
    image = _check(image)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality!r}")
    ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise ValueError("OpenCV could not encode the image as JPEG")
    return buf.tobytes()


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Compress to JPEG at ``quality`` (1-100) and decode again (FaceNet Table 4's JPEG rows)."""
    buf = np.frombuffer(encode_jpeg(image, quality), np.uint8)
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:  # pragma: no cover - OpenCV decodes what it has just encoded
        raise ValueError("OpenCV could not decode its own JPEG")
    return np.ascontiguousarray(decoded[..., ::-1])


def pixels(
    image: np.ndarray,
    n: int,
    *,
    box: tuple[float, float, float, float] | None = None,
    restore: bool = True,
) -> np.ndarray:
    """Lower the resolution so that the face box holds about ``n`` pixels.

    FaceNet's Table 4 counts the pixels of the face thumbnail (1,600 = 40 x 40 ... 65,536 =
    256 x 256) that was then resized to the network's input, so the face area is what is counted
    here too, not the photo's: the whole image is shrunk (area interpolation) by
    ``s = sqrt(n / box_area)``, where ``box`` is the face box (default :func:`face_box`: LFW's
    central 113.6 px square, 12,900 px), then, with ``restore``, enlarged back to its original size
    (bilinear) so the detector sees the face at its usual scale and only detail is lost, as when
    FaceNet upscaled small thumbnails to 220 x 220. ``restore=False`` returns the small image.

    When ``n`` is at least the face's native area there is nothing to remove and the image comes
    back unchanged (a copy): on LFW, 14,400 px and more equal the clean photo.
    """
    image = _check(image)
    if n <= 0:
        raise ValueError(f"the face pixel count must be positive, got {n!r}")
    left, top, right, bottom = face_box(image.shape) if box is None else box
    area = (right - left) * (bottom - top)
    s = float(np.sqrt(n / area))
    if s >= 1.0:
        return image.copy()
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    if not restore:
        return small
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


# -- geometry and colour ----------------------------------------------------------------------------
def rotate(image: np.ndarray, degrees: int) -> np.ndarray:
    """Turn the image counter-clockwise by 90, 180 or 270 degrees (``np.rot90``); 0 copies it."""
    image = _check(image)
    if degrees % 90 or not 0 <= degrees < 360:
        raise ValueError(f"rotation must be 0, 90, 180 or 270 degrees, got {degrees!r}")
    return np.ascontiguousarray(np.rot90(image, k=degrees // 90))


def grayscale(image: np.ndarray) -> np.ndarray:
    """Luma (ITU-R BT.601, as OpenCV) copied into all three channels: still (H, W, 3)."""
    grey = cv2.cvtColor(_check(image), cv2.COLOR_RGB2GRAY)
    return np.repeat(grey[..., None], 3, axis=2)


def exposure(image: np.ndarray, gain: float = 1.0, gamma: float = 1.0) -> np.ndarray:
    """``255 * clip(gain * (x / 255) ** gamma)``: gain < 1 darkens, > 1 brightens and clips the
    highlights; gamma > 1 crushes the shadows, < 1 lifts them. Rounded back to uint8, so dark
    images lose levels as an under-exposed camera does."""
    image = _check(image)
    if gain <= 0 or gamma <= 0:
        raise ValueError(f"gain and gamma must be positive, got gain={gain!r}, gamma={gamma!r}")
    lut = 255.0 * np.clip(gain * (np.arange(256) / 255.0) ** gamma, 0.0, 1.0)
    return np.round(lut).astype(np.uint8)[image]


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` pixels (kernel +-3 sigma, borders reflected)."""
    image = _check(image)
    if sigma <= 0:
        raise ValueError(f"blur sigma must be positive, got {sigma!r}")
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(image, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


# -- occlusion and framing --------------------------------------------------------------------------
# Surgical-mask outline in face coordinates: x in eye distances from the eyes' midpoint (towards
# the image-right eye), y in eye-to-mouth distances downwards. The top edge runs under the eyes
# (y 0.22 at the nose bridge, 0.42 at the cheeks); the bottom goes round the chin (y ~1.85).
_MASK_OUTLINE = np.array(
    [[0.0, 0.22], [0.55, 0.30], [1.10, 0.42], [1.15, 0.95], [0.95, 1.45], [0.45, 1.78], [0.0, 1.85],
     [-0.45, 1.78], [-0.95, 1.45], [-1.15, 0.95], [-1.10, 0.42], [-0.55, 0.30]]
)  # fmt: skip
_MASK_COLOURS = np.array([[170, 205, 228], [236, 238, 240], [200, 222, 210], [214, 214, 220]], float)  # blue, white, mint, grey


def mask(
    image: np.ndarray,
    landmarks: np.ndarray | None = None,
    box: tuple[float, float, float, float] | None = None,
    *,
    colour: tuple[int, int, int] | None = None,
    rng: RngLike = 0,
) -> np.ndarray:
    """Draw a synthetic surgical mask over the nose, mouth and chin, its top edge under the eyes.

    Placement: the 5 ``landmarks`` (MTCNN order, (5, 2) x, y) when given; else points estimated
    inside ``box`` (left, top, right, bottom) from the mean layout of YuNet's points in its boxes;
    else the LFW face box (:func:`face_box`). The polygon follows the face's roll and size (eye
    distance across, eye-to-mouth distance down). ``colour``: RGB fill; default one of light
    blue, white, mint or grey picked by ``rng`` with a small brightness change. Three pleats and a
    soft shade keep it from being a flat cut-out.
    """
    image = _check(image)
    gen = _rng(rng)
    if landmarks is None:
        left, top, right, bottom = face_box(image.shape) if box is None else box
        landmarks = np.array([left, top]) + _BOX_LANDMARKS * [right - left, bottom - top]
    pts = np.asarray(landmarks, np.float64).reshape(5, 2)
    eyes, mouth = (pts[0] + pts[1]) / 2, (pts[3] + pts[4]) / 2
    across = pts[1] - pts[0]
    down = mouth - eyes
    eye_dist, eye_mouth = float(np.hypot(*across)), float(np.hypot(*down))
    if eye_dist < 1e-6 or eye_mouth < 1e-6:
        raise ValueError("landmarks are degenerate: the eyes or the eyes and mouth coincide")
    ux, uy = across / eye_dist, down / eye_mouth
    outline = eyes + _MASK_OUTLINE[:, :1] * eye_dist * ux + _MASK_OUTLINE[:, 1:] * eye_mouth * uy

    if colour is None:
        fill = _MASK_COLOURS[gen.integers(len(_MASK_COLOURS))] * gen.uniform(0.9, 1.02)
    else:
        fill = np.asarray(colour, float)
    h, w = image.shape[:2]
    shift = 4  # fixed-point polygon coordinates: 1/16 px
    region = np.zeros((h, w), np.uint8)
    cv2.fillPoly(region, [np.round(outline * (1 << shift)).astype(np.int32)], 255, cv2.LINE_AA, shift)
    # shading: darker towards the outline's sides, three horizontal pleats
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    rel_x = ((xx - eyes[0]) * ux[0] + (yy - eyes[1]) * ux[1]) / eye_dist
    rel_y = ((xx - eyes[0]) * uy[0] + (yy - eyes[1]) * uy[1]) / eye_mouth
    shade = 1.0 - 0.12 * np.clip(np.abs(rel_x), 0, 1) ** 2
    for y0 in (0.75, 1.05, 1.35):
        shade -= 0.05 * np.exp(-(((rel_y - y0) * eye_mouth / 1.0) ** 2))
    painted = np.clip(fill[None, None, :] * shade[..., None], 0, 255)
    alpha = region[..., None] / 255.0
    out = image * (1 - alpha) + painted * alpha
    return np.round(out).astype(np.uint8)


def small_face(
    image: np.ndarray,
    face_side: float = 64.0,
    canvas: tuple[int, int] = (1080, 1920),
    *,
    box: tuple[float, float, float, float] | None = None,
    rng: RngLike = 0,
) -> np.ndarray:
    """Paste the photo, shrunk so its face box is ``face_side`` px wide, into a ``canvas`` (H, W)
    frame (default 1920 x 1080 landscape) at a random place over a random smooth background.

    The face box is ``box`` or the LFW face box (:func:`face_box`). The background is a coarse
    random colour grid smoothly upscaled, plus mild noise: a plausible out-of-focus scene. The
    result is the full canvas: a face of 64 px in a 1920 px frame, what a group photo or a
    wide camera gives.
    """
    image = _check(image)
    gen = _rng(rng)
    ch, cw = canvas
    left, _, right, _ = face_box(image.shape) if box is None else box
    s = face_side / max(right - left, 1e-6)
    h, w = image.shape[:2]
    sw, sh = max(1, round(w * s)), max(1, round(h * s))
    if sw > cw or sh > ch:
        raise ValueError(f"the photo at {sw} x {sh} px does not fit a {cw} x {ch} canvas: lower face_side")
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    grey = gen.uniform(50, 200, size=(4, 7, 1))
    grid = np.clip(grey + gen.normal(0.0, 18.0, size=(4, 7, 3)), 0, 255).astype(np.float32)  # muted colours
    background = cv2.resize(grid, (cw, ch), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    background += np.float32(4.0) * gen.standard_normal(size=background.shape, dtype=np.float32)
    out = np.clip(np.round(background), 0, 255).astype(np.uint8)
    y = int(gen.integers(0, ch - sh + 1))
    x = int(gen.integers(0, cw - sw + 1))
    out[y : y + sh, x : x + sw] = small
    return out


# -- named conditions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """A named degradation with fixed parameters: ``condition(image, rng=seed) -> image``.

    fn: the degradation function; params: its fixed keyword arguments; random: whether ``rng``
    changes the result (mask, small); description: one line for reports.
    """

    name: str
    fn: Callable[..., np.ndarray] | None
    params: Mapping[str, Any] = field(default_factory=dict)
    random: bool = False
    description: str = ""

    def __call__(self, image: np.ndarray, *, rng: RngLike = 0) -> np.ndarray:
        if self.fn is None:
            return _check(image).copy()
        if self.random:
            return self.fn(image, **self.params, rng=rng)
        return self.fn(image, **self.params)


def _conditions() -> dict[str, Condition]:
    c = [Condition("clean", None, description="the photo as it is")]
    for q in (10, 20, 30, 50, 70, 90):
        c.append(Condition(f"jpeg{q}", jpeg, {"quality": q}, description=f"JPEG at quality {q}"))
    for side in (40, 80, 120, 160, 256):
        n = side * side
        c.append(Condition(f"px{n}", pixels, {"n": n}, description=f"face box of {n:,} px ({side} x {side}), scaled back up"))
    c += [
        Condition("rot90", rotate, {"degrees": 90}, description="turned 90 degrees counter-clockwise"),
        Condition("rot180", rotate, {"degrees": 180}, description="upside down"),
        Condition("gray", grayscale, description="grey levels (BT.601 luma) in 3 channels"),
        Condition("under", exposure, {"gain": 0.4, "gamma": 1.4}, description="under-exposed: gain 0.4, gamma 1.4"),
        Condition("over", exposure, {"gain": 1.6, "gamma": 1.0}, description="over-exposed: gain 1.6, levels above 160 clipped"),
        Condition("blur", blur, {"sigma": 3.0}, description="Gaussian blur, sigma 3 px (face ~114 px wide)"),
        Condition("mask", mask, random=True, description="synthetic surgical mask from under the eyes to the chin"),
        Condition("small", small_face, {"face_side": 64.0, "canvas": (1080, 1920)}, random=True,
                  description="photo shrunk to a 64 px face in a 1920 x 1080 frame"),
    ]  # fmt: skip
    return {x.name: x for x in c}


CONDITIONS: Mapping[str, Condition] = MappingProxyType(_conditions())


def list_conditions() -> list[str]:
    """The registered condition names, in report order (clean, JPEG, pixels, then the rest)."""
    return list(CONDITIONS)


def get_condition(name: str) -> Condition:
    """The named condition; UnknownNameError (a KeyError) lists the valid names."""
    try:
        return CONDITIONS[name]
    except KeyError:
        raise UnknownNameError(f"unknown degradation {name!r}: use one of {', '.join(CONDITIONS)}") from None
