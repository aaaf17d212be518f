"""Face alignment: landmarks -> an upright, fixed-size face chip. Pure functions.

Two recipes:

* :func:`extract_dlib_chip` is a bit-exact port of ``dlib.get_face_chip(img, shape, size,
  padding)`` (``get_face_chip_details`` + ``extract_image_chip``; ``shared/docs/dlib-format.md``
  section 6): same template, same rotated-rectangle geometry, same truncating bilinear sampler and
  dlib's own ``pyramid_down<2>`` for faces much larger than the chip. dlib's descriptor network
  was trained on exactly these chips.
* :func:`warp_chip` is the generic, fast OpenCV alignment of any landmarks onto any template in
  chip pixels (ArcFace-style models, MTCNN points).

Coordinates are (x, y) = (column, row) pixels. A chip's ``transform`` maps chip pixel
(col, row, 1) to image (x, y).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ._validate import check_pixels
from .types import Detection, FaceChip

__all__ = [
    "ARCFACE_112_TEMPLATE",
    "DLIB_5PT_TEMPLATE",
    "DLIB_68PT_INDICES",
    "DLIB_68PT_TEMPLATE",
    "OPENFACE_3PT_TEMPLATE",
    "dlib5_to_mtcnn",
    "dlib_chip_transform",
    "dlib_rect",
    "extract_arcface_chip",
    "extract_dlib_chip",
    "extract_openface_chip",
    "jitter_chip",
    "mtcnn_to_dlib5",
    "similarity_transform",
    "warp_chip",
]

#: dlib 5-point template in unit chip coordinates (x, y), dlib's point order: 0/1 outer/inner
#: corner of the eye on the image right, 2/3 outer/inner corner of the eye on the image left,
#: 4 base of the nose.
DLIB_5PT_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)
DLIB_5PT_TEMPLATE.flags.writeable = False

#: The 68-point landmarks dlib aligns on (nose, eyes, upper lip); jaw, brows and lower lip are ignored.
DLIB_68PT_INDICES = np.r_[27:55, 60:65]
DLIB_68PT_INDICES.flags.writeable = False

#: dlib's mean face shape at DLIB_68PT_INDICES, unit chip coordinates (x, y), shape (33, 2).
DLIB_68PT_TEMPLATE = np.array(
    [
        [0.490127, 0.203352], [0.490127, 0.307009], [0.490127, 0.409805], [0.490127, 0.515625],  # 27-30
        [0.36688, 0.587326], [0.426036, 0.609345], [0.490127, 0.628106], [0.554217, 0.609345],  # 31-34
        [0.613373, 0.587326], [0.121737, 0.216423], [0.187122, 0.178758], [0.265825, 0.179852],  # 35-38
        [0.334606, 0.231733], [0.260918, 0.245099], [0.182743, 0.244077], [0.645647, 0.231733],  # 39-42
        [0.714428, 0.179852], [0.793132, 0.178758], [0.858516, 0.216423], [0.79751, 0.244077],  # 43-46
        [0.719335, 0.245099], [0.254149, 0.780233], [0.340985, 0.745405], [0.428858, 0.727388],  # 47-50
        [0.490127, 0.742578], [0.551395, 0.727388], [0.639268, 0.745405], [0.726104, 0.780233],  # 51-54
        [0.290379, 0.784792], [0.428096, 0.778746], [0.490127, 0.785343], [0.552157, 0.778746],  # 60-63
        [0.689874, 0.784792],  # 64
    ]
)
DLIB_68PT_TEMPLATE.flags.writeable = False

#: OpenFace's OUTER_EYES_AND_NOSE template (68-point landmarks 36, 45, 33: outer eye corners on
#: the image left and right, nose base) in unit chip coordinates: openface/align_dlib.py's
#: TEMPLATE rows min-max normalised over the whole 68-point template (its MINMAX_TEMPLATE).
OPENFACE_3PT_TEMPLATE = (
    np.array([[0.252418718401, 0.331052263829], [0.782865376271, 0.321305281656], [0.520712933176, 0.634268222208]])
    - [0.0792396913815, 0.182360984545]
) / (np.array([0.971193274221, 1.06080371126]) - [0.0792396913815, 0.182360984545])
OPENFACE_3PT_TEMPLATE.flags.writeable = False

#: The five-point template of ArcFace-style models (InsightFace ``arcface_dst``) in 112x112 chip
#: pixels (x, y), MTCNN's point order: eye centres (image left, image right), nose tip, mouth
#: corners (image left, image right). SFace and ArcFace-MBF were trained on these chips.
ARCFACE_112_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
ARCFACE_112_TEMPLATE.flags.writeable = False

# MTCNN-style points (eye centres, nose tip, mouth corners; image-left first) in the same unit
# chip frame, from dlib's mean face: eye centres = mean of landmarks 36-41 / 42-47, nose tip 30,
# mouth corners 48 / 54. Used only to map detector points to approximate dlib 5-point positions.
_MTCNN_IN_DLIB_FRAME = np.array(
    [
        DLIB_68PT_TEMPLATE[9:15].mean(axis=0),
        DLIB_68PT_TEMPLATE[15:21].mean(axis=0),
        DLIB_68PT_TEMPLATE[3],
        DLIB_68PT_TEMPLATE[21],
        DLIB_68PT_TEMPLATE[27],
    ]
)


# -- similarity fit -----------------------------------------------------------------------------


def _umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, float, float, float]:
    """(a, b, tx, ty) of the least-squares similarity x -> [[a, -b], [b, a]] x + t, src -> dst.

    Umeyama's method without reflection reduces to this closed form in 2-D. Sums run in point
    order, like dlib's find_similarity_transform; a degenerate src gives the identity (as dlib).
    """
    n = src.shape[0]
    ms = np.add.accumulate(src, axis=0)[-1] / n
    md = np.add.accumulate(dst, axis=0)[-1] / n
    s = src - ms
    d = dst - md
    sigma = float(np.add.accumulate(s[:, 0] * s[:, 0] + s[:, 1] * s[:, 1])[-1]) / n
    c00 = float(np.add.accumulate(d[:, 0] * s[:, 0])[-1]) / n
    c01 = float(np.add.accumulate(d[:, 0] * s[:, 1])[-1]) / n
    c10 = float(np.add.accumulate(d[:, 1] * s[:, 0])[-1]) / n
    c11 = float(np.add.accumulate(d[:, 1] * s[:, 1])[-1]) / n
    if sigma == 0.0:
        a, b = 1.0, 0.0
    else:
        a, b = (c00 + c11) / sigma, (c10 - c01) / sigma
    tx = float(md[0]) - (a * float(ms[0]) - b * float(ms[1]))
    ty = float(md[1]) - (b * float(ms[0]) + a * float(ms[1]))
    return a, b, tx, ty


def _points(arr: np.ndarray, what: str) -> np.ndarray:
    p = np.asarray(arr, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 1:
        raise ValueError(f"{what} must be an (N, 2) array of (x, y) points, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"{what} contains NaN or infinite coordinates")
    return p


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection), src -> dst.

    src, dst: (N, 2) corresponding (x, y) points, N >= 2 for a meaningful fit.
    Returns (2, 3) float64 ``M`` with dst ~= M @ [x, y, 1] (Umeyama 1991).
    """
    s, d = _points(src, "src"), _points(dst, "dst")
    if s.shape != d.shape:
        raise ValueError(f"src and dst must have the same shape, got {s.shape} and {d.shape}")
    a, b, tx, ty = _umeyama(s, d)
    return np.array([[a, -b, tx], [b, a, ty]])


# -- dlib chip geometry (dlib-format.md 6.1) --------------------------------------------------------


def _chip_details(landmarks: np.ndarray, size: int, padding: float) -> tuple[tuple[float, ...], float]:
    """dlib's chip_details: the chip rect (l, t, r, b) in image pixels and its angle (radians)."""
    pts = _points(landmarks, "landmarks")
    if pts.shape[0] == 5:
        template, targets = DLIB_5PT_TEMPLATE, pts
    elif pts.shape[0] == 68:
        template, targets = DLIB_68PT_TEMPLATE, pts[DLIB_68PT_INDICES]
    else:
        raise ValueError(f"dlib chips need 5 or 68 dlib landmarks, got {pts.shape[0]}")
    if isinstance(size, bool) or int(size) != size or size < 2:
        raise ValueError(f"chip size must be an integer >= 2, got {size!r}")
    size = int(size)
    # dlib's Python binding takes padding as C++ float: 0.2 becomes 0.20000000298...
    pad = float(np.float32(padding))
    if not (math.isfinite(pad) and pad >= 0):
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    chip_pts = (pad + template) / (2 * pad + 1) * size
    a, b, tx, ty = _umeyama(chip_pts, targets)
    angle = math.atan2(b, a)
    scale = math.sqrt(a * a + b * b)
    half = size / 2.0
    cx = (a * half + -b * half) + tx  # the transform applied to the chip centre (S/2, S/2)
    cy = (b * half + a * half) + ty
    # centered_drect(c, S*scale, S*scale): dlib's rects are inclusive, hence the "- 1".
    wm1 = size * scale - 1
    return (cx - wm1 / 2, cy - wm1 / 2, cx + wm1 / 2, cy + wm1 / 2), angle


def _rect_map(rect: tuple[float, ...], angle: float, size: int) -> np.ndarray:
    """(2, 3) map of chip pixels onto ``rect`` rotated by ``angle`` about its centre (6.1 step 4)."""
    left, top, right, bottom = rect
    cx, cy = (left + right) / 2, (top + bottom) / 2
    cos, sin = math.cos(angle), math.sin(angle)

    def rot(x: float, y: float) -> tuple[float, float]:
        x, y = x - cx, y - cy
        return (cos * x - sin * y) + cx, (sin * x + cos * y) + cy

    tl, tr, bl = rot(left, top), rot(right, top), rot(left, bottom)
    n = size - 1
    return np.array(
        [
            [(tr[0] - tl[0]) / n, (bl[0] - tl[0]) / n, tl[0]],
            [(tr[1] - tl[1]) / n, (bl[1] - tl[1]) / n, tl[1]],
        ]
    )


def dlib_chip_transform(landmarks: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """The (2, 3) float64 map chip pixel (col, row, 1) -> image (x, y) of ``dlib.get_face_chip``.

    landmarks: (5, 2) in dlib's 5-point order or (68, 2) iBUG order, image pixels.
    size: chip side, pixels; padding: border around the template, fraction of the template width.
    """
    rect, angle = _chip_details(landmarks, size, padding)
    return _rect_map(rect, angle, int(size))


# -- dlib chip resampling (dlib-format.md 6.2) ----------------------------------------------------


_PYR_KERNEL = np.array([1, 4, 6, 4, 1], np.float32)


def _pyr_down2(img: np.ndarray) -> np.ndarray:
    """dlib pyramid_down<2>: 5x5 [1 4 6 4 1]^2 / 256 filter, floored, every 2nd pixel.

    img (h, w, C) uint8 -> ((h - 3) // 2, (w - 3) // 2, C) uint8, out[y, x] centred on
    in[2y + 2, 2x + 2]. OpenCV filters in float32, which is exact here: every partial sum is an
    integer below 2**16, far under float32's 2**24. Only interior samples are kept, so the border
    mode never matters.
    """
    h, w, ch = img.shape
    if h <= 8 or w <= 8:
        return np.zeros((0, 0, ch), np.uint8)
    oh, ow = (h - 3) // 2, (w - 3) // 2
    full = cv2.sepFilter2D(img, cv2.CV_32F, _PYR_KERNEL, _PYR_KERNEL, borderType=cv2.BORDER_REPLICATE)
    full = full.reshape(h, w, ch)
    return (full[2 : 2 + 2 * oh : 2, 2 : 2 + 2 * ow : 2] * np.float32(1 / 256)).astype(np.uint8)


def _rect_down(rect: tuple[float, ...]) -> tuple[float, ...]:
    """pyramid_down<2>::rect_down: (x, y) -> (x/2 - 1.25, y/2 - 0.75), dlib's stated mapping."""
    left, top, right, bottom = rect
    return (left / 2.0 - 1.25, top / 2.0 - 0.75, right / 2.0 - 1.25, bottom / 2.0 - 0.75)


def _area(rect: tuple[float, ...]) -> float:
    """drectangle::area with inclusive widths."""
    left, top, right, bottom = rect
    if left > right or top > bottom:
        return 0.0
    return (right - left + 1) * (bottom - top + 1)


def _round(v: float) -> int:
    return int(math.floor(v + 0.5))


def _bilinear(img: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """dlib interpolate_bilinear over the chip grid: (h, w, C) uint8 -> (size, size, C) uint8.

    Samples whose 2x2 neighbourhood leaves the image are black; the double result is truncated,
    not rounded. ``m`` maps chip (col, row, 1) to ``img`` (x, y).
    """
    h, w, ch = img.shape
    grid = np.arange(size, dtype=np.float64)
    x = (m[0, 0] * grid[None, :] + m[0, 1] * grid[:, None]) + m[0, 2]  # dlib: m*p + b, this order
    y = (m[1, 0] * grid[None, :] + m[1, 1] * grid[:, None]) + m[1, 2]
    xl, yt = np.floor(x), np.floor(y)
    valid = (xl >= 0) & (yt >= 0) & (xl + 1 < w) & (yt + 1 < h)
    n_valid = int(np.count_nonzero(valid))
    if n_valid == 0:
        return np.zeros((size, size, ch), np.uint8)
    if n_valid < valid.size:
        xl, yt, x, y = xl[valid], yt[valid], x[valid], y[valid]
    else:
        xl, yt, x, y = xl.ravel(), yt.ravel(), x.ravel(), y.ravel()
    i00 = (yt * w + xl).astype(np.intp)
    if ch == 3:
        # One 4-byte gather per neighbour: a uint32 view with a 3-byte stride reads pixel k's
        # R, G, B (and the next pixel's R, ignored) at once; row gathers of 3 bytes are slower.
        buf = np.empty(h * w * 3 + 1, np.uint8)
        buf[:-1].reshape(h, w, 3)[...] = img
        words = np.ndarray((h * w,), dtype="<u4", buffer=buf, strides=(3,))

        def at(i: np.ndarray) -> np.ndarray:
            return words[i].view(np.uint8).reshape(-1, 4)

        fx, fy = (x - xl)[:, None], (y - yt)[:, None]
    else:
        flat = img.reshape(-1)

        def at(i: np.ndarray) -> np.ndarray:
            return flat.take(i)

        fx, fy = x - xl, y - yt
    gx = 1 - fx
    v = (1 - fy) * (gx * at(i00) + fx * at(i00 + 1)) + fy * (gx * at(i00 + w) + fx * at(i00 + w + 1))
    v = v.astype(np.uint8)  # truncation toward zero; v is in [0, 255]
    if n_valid == valid.size:
        if ch == 3:
            return cv2.cvtColor(v.reshape(size, size, 4), cv2.COLOR_RGBA2RGB)
        return v.reshape(size, size, 1)
    out = np.zeros((size, size, ch), np.uint8)
    out[valid] = v[:, :3] if ch == 3 else v[:, None]
    return out


def _as_rgb_or_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 view with C = 3 (RGB) or 1 (gray)."""
    img = check_pixels(image, "alignment", gray="keep")
    return img[:, :, None] if img.ndim == 2 else img


def extract_dlib_chip(
    image: np.ndarray, landmarks: np.ndarray, size: int = 150, padding: float = 0.25
) -> FaceChip:
    """``dlib.get_face_chip(image, shape, size, padding)``, pixel for pixel.

    image: (H, W, 3) uint8 RGB or (H, W) uint8 gray (the chip is then gray in all 3 channels).
    landmarks: (5, 2) dlib 5-point or (68, 2) landmarks, image pixels (dlib's are integers).
    Returns a FaceChip with (size, size, 3) uint8 pixels and the (2, 3) chip -> image map.
    """
    img = _as_rgb_or_gray(image)
    rect, angle = _chip_details(landmarks, size, padding)  # validates size
    size = int(size)
    transform = _rect_map(rect, angle, size)
    h, w = img.shape[:2]
    n_px = size * size

    if angle == 0.0 and rect[2] - rect[0] + 1 == size and rect[3] - rect[1] + 1 == size:
        # dlib's plain-copy case (no rotation, no scaling): the rounded rect, zero outside.
        left, top = _round(rect[0]), _round(rect[1])
        chip = np.zeros((size, size, img.shape[2]), np.uint8)
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + size, h), min(left + size, w)
        if y1 > y0 and x1 > x0:
            chip[y0 - top : y1 - top, x0 - left : x1 - left] = img[y0:y1, x0:x1]
        return _finish(chip, transform)

    # Pyramid depth and crop margin, exactly as extract_image_chips decides them.
    depth, grow = 0, 2.0
    r = _rect_down(rect)
    while _area(r) > n_px:
        r = _rect_down(r)
        depth += 1
        grow = grow * 2 + 2
    cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    xs, ys = [], []
    for px, py in ((rect[0], rect[1]), (rect[2], rect[1]), (rect[0], rect[3]), (rect[2], rect[3])):
        dx, dy = px - cx, py - cy
        xs.append((cos * dx - sin * dy) + cx)
        ys.append((sin * dx + cos * dy) + cy)
    bl_, bt = max(min(xs) - grow, 0.0), max(min(ys) - grow, 0.0)
    br_, bb = min(max(xs) + grow, w - 1.0), min(max(ys) + grow, h - 1.0)
    if bl_ > br_ or bt > bb:  # the chip lies wholly outside the image
        return _finish(np.zeros((size, size, img.shape[2]), np.uint8), transform)
    cl, ct, cr, cb = _round(bl_), _round(bt), _round(br_), _round(bb)
    level_img = img[ct : cb + 1, cl : cr + 1]

    # The level to sample from is chosen again on the crop-relative rect, as dlib does.
    r = (rect[0] - cl, rect[1] - ct, rect[2] - cl, rect[3] - ct)
    levels = 0
    while levels < depth and _area(_rect_down(r)) > n_px:
        levels += 1
        r = _rect_down(r)
    for _ in range(levels):
        level_img = _pyr_down2(level_img)
    if level_img.shape[0] == 0 or level_img.shape[1] == 0:
        return _finish(np.zeros((size, size, img.shape[2]), np.uint8), transform)
    chip = _bilinear(np.ascontiguousarray(level_img), _rect_map(r, angle, size), size)
    return _finish(chip, transform)


def _finish(chip: np.ndarray, transform: np.ndarray) -> FaceChip:
    if chip.shape[2] == 1:
        chip = np.repeat(chip, 3, axis=2)
    return FaceChip(pixels=chip, transform=transform)


# -- generic alignment ------------------------------------------------------------------------


def warp_chip(image: np.ndarray, landmarks: np.ndarray, template_px: np.ndarray, size: int) -> FaceChip:
    """Align ``landmarks`` onto ``template_px`` with one similarity warp (OpenCV bilinear).

    image: (H, W, 3) uint8 RGB or (H, W) uint8 gray; landmarks, template_px: (N, 2), image and
    chip pixels. The similarity is fitted landmarks -> template (the ArcFace convention).
    Returns a (size, size, 3) uint8 FaceChip; outside the image is black.
    """
    img = _as_rgb_or_gray(image)
    src, dst = _points(landmarks, "landmarks"), _points(template_px, "template_px")
    if src.shape != dst.shape:
        raise ValueError(f"landmarks and template_px must match in shape, got {src.shape} and {dst.shape}")
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"chip size must be a positive integer, got {size!r}")
    size = int(size)
    return _warp(img, similarity_transform(src, dst), size)


def extract_arcface_chip(image: np.ndarray, points: np.ndarray, size: int = 112) -> FaceChip:
    """The ArcFace-template chip: MTCNN-order 5 points (5, 2) -> (size, size, 3) uint8 FaceChip.

    A least-squares similarity (Umeyama) onto :data:`ARCFACE_112_TEMPLATE` scaled to ``size``,
    bilinear, black outside the image: equal to OpenCV's ``FaceRecognizerSF.alignCrop`` to within
    one grey level at 112 px.
    """
    return warp_chip(image, points, ARCFACE_112_TEMPLATE * (size / 112.0), size)


def extract_openface_chip(image: np.ndarray, landmarks: np.ndarray, size: int = 96) -> FaceChip:
    """OpenFace's ``AlignDlib.align(size, img, bb, landmarkIndices=OUTER_EYES_AND_NOSE)``.

    landmarks: (5, 2) dlib 5-point landmarks, image pixels; their outer eye corners (points 2 and 0)
    and nose base (4) are OpenFace's 68-point landmarks 36, 45 and 33. As OpenFace does, the exact
    affine through those three points (not a similarity) maps them onto the template.
    """
    img = _as_rgb_or_gray(image)
    pts = _points(landmarks, "landmarks")
    if pts.shape != (5, 2):
        raise ValueError(f"landmarks must be dlib's (5, 2) points, got {pts.shape}")
    src = pts[[2, 0, 4]].astype(np.float32)
    fwd = cv2.getAffineTransform(src, (OPENFACE_3PT_TEMPLATE * size).astype(np.float32))
    return _warp(img, fwd.astype(np.float64), int(size))


def _warp(img: np.ndarray, fwd: np.ndarray, size: int) -> FaceChip:
    """Sample the (size, size) chip through the (2, 3) image -> chip map (bilinear, black outside)."""
    chip = cv2.warpAffine(
        np.ascontiguousarray(img),
        fwd,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    if chip.ndim == 2:
        chip = chip[:, :, None]
    return _finish(chip, cv2.invertAffineTransform(fwd))


def jitter_chip(chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly perturbed copy of a (S, S, 3) uint8 chip, as dlib's ``jitter_image`` makes them.

    dlib's recipe (the one its descriptor's ``num_jitters`` uses): shrink the chip rect by 3 px,
    move it by up to 2% of its side, enlarge it by 1/U(0.97, 1), turn it by up to 3 degrees, crop
    back to S x S, and mirror half of the time. The descriptor of the mean of such copies is a
    little steadier than that of the chip alone.
    """
    size = chip.shape[0]
    side = size - 6  # shrink_rect(get_rect(img), 3)
    centre = np.array([(size - 1) / 2.0, (size - 1) / 2.0]) + rng.uniform(-0.02, 0.02, 2) * side
    box = side / rng.uniform(0.97, 0.99999)
    angle = math.radians(rng.uniform(-3.0, 3.0))
    half = (box - 1) / 2
    m = _rect_map((centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half), angle, size)
    out = cv2.warpAffine(  # m maps chip pixels to source pixels: an inverse map for OpenCV
        np.ascontiguousarray(chip), m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
    if rng.random() > 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


# -- adapters used by the pipeline ----------------------------------------------------------------


def dlib_rect(det: Detection) -> tuple[int, int, int, int]:
    """A detection's box as dlib's inclusive integer rect (left, top, right, bottom).

    Detection boxes are exclusive on the right/bottom, so (l, t, r, b) -> (l, t, r - 1, b - 1),
    rounded to whole pixels.
    """
    left, top, right, bottom = det.box
    return (_round(left), _round(top), _round(right) - 1, _round(bottom) - 1)


def mtcnn_to_dlib5(points: np.ndarray) -> np.ndarray:
    """Approximate dlib 5-point landmarks from MTCNN's 5 points (an approximation, not dlib's).

    points: (5, 2) (x, y) in MTCNN order (image-left eye centre, image-right eye centre, nose tip,
    image-left and image-right mouth corner). The similarity fitting those points to their mean-face
    positions places dlib's 5-point template (eye corners, nose base). Returns (5, 2) float64.
    """
    pts = _points(points, "points")
    if pts.shape != (5, 2):
        raise ValueError(f"MTCNN landmarks must be (5, 2), got {pts.shape}")
    m = similarity_transform(_MTCNN_IN_DLIB_FRAME, pts)
    return DLIB_5PT_TEMPLATE @ m[:, :2].T + m[:, 2]


def dlib5_to_mtcnn(points: np.ndarray) -> np.ndarray:
    """The inverse approximation of :func:`mtcnn_to_dlib5`: dlib 5-point landmarks (5, 2) -> MTCNN
    order points (eye centres, nose tip, mouth corners) placed by dlib's mean face. Lets detectors
    without points (MMOD, Haar + the shape predictor) feed ArcFace-template models."""
    pts = _points(points, "points")
    if pts.shape != (5, 2):
        raise ValueError(f"dlib 5-point landmarks must be (5, 2), got {pts.shape}")
    m = similarity_transform(DLIB_5PT_TEMPLATE, pts)
    return _MTCNN_IN_DLIB_FRAME @ m[:, :2].T + m[:, 2]
