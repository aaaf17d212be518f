"""Load any image the user gives us as an (H, W, 3) uint8 RGB array.

One entry point, :func:`load_image`, accepts a path, encoded bytes, a PIL image or a numpy array and
returns a fresh C-contiguous (H, W, 3) uint8 RGB array (never a view of the caller's data). Every
failure is an :class:`~faceprint.errors.InvalidImageError` naming the source, the reason and what to
do; too many pixels is its subclass :class:`~faceprint.errors.ImageTooLargeError`.

Conventions:

* EXIF orientation is applied, so a phone photo stored sideways comes out upright.
* Alpha is composited over white, not dropped: dropping it shows whatever colour the fully
  transparent pixels happen to hold (often black), which turns a transparent PNG logo or cut-out
  portrait into a black blob; white is what image viewers show.
* 16-bit samples are scaled by 255/65535 (rounded), never clipped; floats must lie in [0, 1].
  32-bit integer samples (Pillow's mode "I") carry no white level, so their values decide: within
  0..255 they are kept as 8-bit, within 0..65535 scaled as 16-bit, and beyond that the range the
  image uses (min..max) is stretched to 0..255.
* numpy (H, W, 3) input is taken as RGB. OpenCV's ``cv2.imread`` gives BGR: pass ``img[..., ::-1]``.

The decompression-bomb guard reads the width and height from the file header and refuses the file
before any pixel is decoded. Pillow has a guard of its own (``PIL.Image.MAX_IMAGE_PIXELS``, a
process-wide setting: a warning above it, an error above twice it); we keep it out of the way
without leaving it changed, see :func:`_pillow_bomb_guard`.

Memory: a file of P = W * H pixels is decoded by Pillow into P * b bytes (b = 1 for L/P/1-bit,
2 for 16-bit gray, 4 for every other mode, RGB included) and converted to RGB a strip of about a
megapixel at a time straight into the (H, W, 3) result (3 * P bytes), EXIF rotation included; so
one call peaks at P * (b + 3) bytes plus ~16 MB of strips (25 MP: 175 MB + 16 MB) and keeps 3 * P
(25 MP: 75 MB). Across threads, the Pillow images being decoded at once are limited to
:data:`DECODE_BUDGET_BYTES` (other calls wait; a larger image decodes alone), so many concurrent
large uploads cost at most that much on top of the results their callers hold.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

import numpy as np
from PIL import Image

from .errors import ImageTooLargeError, InvalidImageError

__all__ = ["DECODE_BUDGET_BYTES", "DEFAULT_MAX_PIXELS", "ImageSource", "describe_source", "load_image"]

# 40 megapixels. Large enough for every camera and phone photo short of high-end full-frame bodies
# (a 6988x4664 photo is 32.6 MP, 8K UHD is 33.2 MP), small enough that a legitimate image costs at
# most 120 MB as RGB uint8. A decompression bomb is a tiny file whose header claims, say,
# 100000x100000 pixels (30 GB once decoded); it is refused from the header. The value is also below
# Pillow's own warning threshold (89.5 MP), so a default load never touches Pillow's global guard.
DEFAULT_MAX_PIXELS = 40_000_000

# Pillow images being decoded at once in this process (see the module docstring): a 25 MP RGB photo
# is 100 MB inside Pillow, so two decode together; ordinary photos (12 MP: 48 MB) five at a time.
# A 25 MP decode takes about a second of one core, which the others then wait; without the budget,
# 16 concurrent uploads of a 257 KB 25 MP PNG took the server from 127 MB to 1.6 GB (issue 14
# reports 5.4 GB), with it to 0.58 GB (benchmarks/bench_upload_memory.py).
DECODE_BUDGET_BYTES = 256 * 2**20

# Rows converted at once hold about this many pixels: a few MB of temporaries, never a full-size copy.
_STRIP_PIXELS = 1 << 20

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray

# What Pillow's decoders raise on bad data: the format plugins use all of these, and the zlib and
# struct errors escape from PNG and TIFF parsing. UnidentifiedImageError is an OSError.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
)

# Serialises the short windows in which we touch process-wide state (warning filters, Pillow's
# limit), so two faceprint threads cannot restore each other's half-changed settings.
_PIL_STATE_LOCK = threading.RLock()

_EXIF_ORIENTATION = 0x0112
_RAISE_HINT = (
    "If you trust the image, raise the limit with load_image(..., max_pixels=N) "
    "or the command-line flag --max-pixels N."
)


def describe_source(source: object) -> str:
    """A short name for ``source`` in messages: the path, ``<bytes: 1234 B>``, ``<PIL image>``,
    ``<array (H,W,C) dtype>``, or ``<TypeName>`` for anything else."""
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(os.fspath(source))
    if isinstance(source, (bytes, bytearray)):
        return f"<bytes: {len(source)} B>"
    if isinstance(source, memoryview):
        return f"<bytes: {source.nbytes} B>"
    if isinstance(source, Image.Image):
        return "<PIL image>"
    if isinstance(source, np.ndarray):
        return f"<array ({','.join(str(n) for n in source.shape)}) {source.dtype}>"
    return f"<{type(source).__name__}>"


def load_image(
    source: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, name: str | None = None
) -> np.ndarray:
    """Decode ``source`` into a new (H, W, 3) uint8 RGB C-contiguous array.

    source: a path (str / PathLike); the bytes of an encoded file (bytes, bytearray, memoryview,
        never a path); a PIL image; or a numpy array (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4)
        RGBA of uint8, uint16 or float in [0, 1]. Files may be JPEG, PNG, WebP, BMP, GIF (first
        frame), TIFF (first page) or any other format Pillow reads.
    max_pixels: refuse images with more than this many pixels (W * H), checked from the header
        before decoding; None disables the check. Applies to every kind of source.
    name: what to call the image in error messages (default: :func:`describe_source`).

    Memory for a file or PIL image of P pixels: at most P * 7 bytes + ~16 MB while decoding (P * 4
    for Pillow's RGB image, P * 3 for the result; 25 MP: ~190 MB), then the P * 3 bytes returned.
    Large decodes in other threads wait for :data:`DECODE_BUDGET_BYTES` (module docstring).

    Raises InvalidImageError (a ValueError) when the source cannot be read, and its subclass
    ImageTooLargeError when it has more than ``max_pixels`` pixels.
    """
    if max_pixels is not None and (
        isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1
    ):
        # A programming error in the call, not a problem with the image.
        raise ValueError(f"max_pixels must be a positive int or None, got {max_pixels!r}")
    # Paths and given names are quoted in messages; "<bytes: 12 B>"-style descriptions are not.
    if name is not None:
        label = f"'{name}'"
    elif isinstance(source, (str, os.PathLike)):
        label = f"'{describe_source(source)}'"
    else:
        label = describe_source(source)

    if isinstance(source, np.ndarray):
        if source.ndim in (2, 3):  # other shapes get the clearer "not an image" message below
            _check_pixels(source.shape[1], source.shape[0], max_pixels, label)
        return _array_to_rgb(source, label)
    if isinstance(source, Image.Image):
        return _pil_to_rgb(source, label, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise InvalidImageError(f"cannot read image {label}: no data (0 bytes); pass the file's contents")
        return _decode_file(io.BytesIO(data), label, max_pixels)
    if isinstance(source, (str, os.PathLike)):
        return _load_path(source, label, max_pixels)
    raise InvalidImageError(
        f"cannot read image {label}: unsupported source type {type(source).__name__}; pass a path, "
        "the file's bytes, a PIL image or a numpy array"
    )


# --------------------------------------------------------------------------------------------- files


def _load_path(path: str | os.PathLike, label: str, max_pixels: int | None) -> np.ndarray:
    if os.path.isdir(path):  # checked first: Windows reports a directory as PermissionError
        raise InvalidImageError(f"cannot read image {label}: it is a directory, not an image file")
    try:
        fh = open(path, "rb")  # closed by the with-block below
    except FileNotFoundError as exc:
        raise InvalidImageError(f"cannot read image {label}: no such file (check the path)") from exc
    except PermissionError as exc:
        raise InvalidImageError(
            f"cannot read image {label}: permission denied (check the file's permissions)"
        ) from exc
    except OSError as exc:
        raise InvalidImageError(f"cannot read image {label}: {exc.strerror or exc}") from exc
    with fh:
        st = os.fstat(fh.fileno())
        if stat.S_ISREG(st.st_mode) and st.st_size == 0:  # pipes and devices report 0 too
            raise InvalidImageError(f"cannot read image {label}: the file is empty (0 bytes)")
        return _decode_file(fh, label, max_pixels)


def _decode_file(fp: BinaryIO, label: str, max_pixels: int | None) -> np.ndarray:
    """Open (header only), check the size, then decode. ``fp`` stays owned by the caller."""
    try:
        with _pillow_bomb_guard(max_pixels):
            im = Image.open(fp)
    except Image.DecompressionBombError as exc:
        # Pillow refused from the header: the image is over twice Pillow's limit, which the guard
        # keeps above max_pixels, so it is over ours too. Pillow only tells us the pixel count.
        raise ImageTooLargeError(_too_large_message(label, None, _pixels_in(exc), max_pixels)) from exc
    except Image.UnidentifiedImageError as exc:
        raise InvalidImageError(
            f"cannot read image {label}: not a recognised image format, or a damaged file "
            "(Pillow reads JPEG, PNG, WebP, BMP, GIF, TIFF and more); check that it is an image"
        ) from exc
    except _DECODE_ERRORS as exc:
        raise InvalidImageError(_decode_failed_message(label, exc)) from exc
    with im:
        return _pil_to_rgb(im, label, max_pixels, owned=True)


# -------------------------------------------------------------------------------------- PIL images


def _pil_to_rgb(im: Image.Image, label: str, max_pixels: int | None, *, owned: bool = False) -> np.ndarray:
    """Size check (header only), decode, convert to (H, W, 3) uint8 RGB with EXIF orientation.

    owned: the image is ours (opened from a file), so its pixels are freed as soon as they are
    converted, inside the decode budget; a caller's image is left open.
    """
    _check_pixels(im.width, im.height, max_pixels, label)
    try:
        with _DECODE_BUDGET.reserve(_pillow_bytes(im.mode, im.size)):
            try:
                with _pillow_bomb_guard(max_pixels, only_if_needed=True):
                    im.load()
                    return _pil_pixels_to_rgb(im, label, _exif_orientation(im))
            finally:
                if owned:
                    im.close()  # frees Pillow's copy now, not when the caller's with-block ends
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # A frame or tile larger than the image itself (GIF, TIFF): Pillow's check during decoding.
        raise ImageTooLargeError(_too_large_message(label, None, _pixels_in(exc), max_pixels)) from exc
    except InvalidImageError:
        raise
    except _DECODE_ERRORS as exc:
        raise InvalidImageError(_decode_failed_message(label, exc)) from exc


def _pillow_bytes(mode: str, size: tuple[int, int]) -> int:
    """Bytes of a decoded Pillow image: 1 per pixel for 1/L/P, 2 for 16-bit gray, else 4 (Pillow
    keeps RGB in 4 bytes too)."""
    per_pixel = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    return size[0] * size[1] * per_pixel


class _DecodeBudget:
    """At most ``limit`` bytes of images decoding at once, across threads; an image larger than the
    whole budget waits until nothing else decodes, then decodes alone. A reservation lasts only
    for one :func:`load_image` call, so a thread can never wait on memory it holds itself."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        nbytes = min(nbytes, self.limit)
        with self._cond:
            self._cond.wait_for(lambda: self._used + nbytes <= self.limit)
            self._used += nbytes
        try:
            yield
        finally:
            with self._cond:
                self._used -= nbytes
                self._cond.notify_all()


_DECODE_BUDGET = _DecodeBudget(DECODE_BUDGET_BYTES)


def _exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright, 2..8 = flipped and/or turned); 1 when absent or damaged."""
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except (*_DECODE_ERRORS, UserWarning):
        # Damaged EXIF is metadata, not pixels: show the pixels as stored rather than fail.
        return 1
    return orientation if orientation in _UNORIENT else 1


# For each EXIF orientation, the inverse of the transpose that makes the image upright
# (``ImageOps.exif_transpose``), as a numpy view: writing the stored pixels into
# ``_UNORIENT[o](out)`` leaves ``out`` upright, with no full-size temporary.
_UNORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # stored mirrored: FLIP_LEFT_RIGHT
    3: lambda a: a[::-1, ::-1],  # ROTATE_180
    4: lambda a: a[::-1],  # FLIP_TOP_BOTTOM
    5: lambda a: a.swapaxes(0, 1),  # TRANSPOSE
    6: lambda a: np.rot90(a, 1),  # upright = ROTATE_270 (a quarter turn clockwise)
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # TRANSVERSE
    8: lambda a: np.rot90(a, -1),  # upright = ROTATE_90
}


def _pil_pixels_to_rgb(im: Image.Image, label: str, orientation: int = 1) -> np.ndarray:
    """A decoded PIL image -> new upright (H, W, 3) uint8 RGB, converted a strip of rows at a time
    into the result, so no full-size temporary exists besides Pillow's image and the result."""
    width, height = im.size
    if not width or not height:
        return _array_to_rgb(np.asarray(im), label)  # raises the "empty" message
    convert = _strip_converter(im, label)
    upright = (width, height) if orientation < 5 else (height, width)
    out = np.empty((upright[1], upright[0], 3), np.uint8)
    stored = _UNORIENT[orientation](out)  # a (height, width, 3) view of out
    for top, strip in _strips(im):
        stored[top : top + strip.height] = convert(strip)
    return out


def _strips(im: Image.Image) -> Iterator[tuple[int, Image.Image]]:
    """(first row, a copy of about _STRIP_PIXELS pixels of whole rows) down a decoded image."""
    step = max(1, _STRIP_PIXELS // im.width)
    for top in range(0, im.height, step):
        yield top, im.crop((0, top, im.width, min(im.height, top + step)))


def _strip_converter(im: Image.Image, label: str) -> Callable[[Image.Image], np.ndarray]:
    """The function that turns a strip of ``im`` into (rows, W, 3) uint8 RGB; checks that need the
    whole image (the value range of 32-bit samples) are made here, once."""
    mode = im.mode
    if mode == "RGB":
        return np.asarray
    if mode.startswith("I;16"):
        # Converted ourselves: Pillow's convert("L") clips 16-bit values at 255 instead of scaling.
        return lambda strip: _array_to_rgb(_native(np.asarray(strip)), label)
    if mode == "I":
        to_8bit = _int32_to_uint8(*im.getextrema(), label)  # type: ignore[misc]
        return lambda strip: _array_to_rgb(to_8bit(_native(np.asarray(strip))), label)
    if mode == "F":
        stats = [_float_stats(np.asarray(strip)) for _, strip in _strips(im)]
        _check_unit_floats(sum(s[0] for s in stats), min(s[1] for s in stats), max(s[2] for s in stats),
                           f"cannot use image {label}")
        return lambda strip: _array_to_rgb(np.asarray(strip), label)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    # P/L/RGB with a "transparency" entry go through RGBA so the transparent colour gets white.
    target = "RGBA" if has_alpha else "RGB"

    def convert(strip: Image.Image) -> np.ndarray:
        try:
            converted = strip.convert(target)
        except ValueError as exc:
            raise InvalidImageError(
                f"cannot read image {label}: colour mode {mode!r} cannot be converted to RGB; "
                "save the image as 8-bit RGB"
            ) from exc
        return _array_to_rgb(np.asarray(converted), label)

    return convert


def _native(arr: np.ndarray) -> np.ndarray:
    """``arr`` in native byte order (Pillow's I;16B arrays are big-endian)."""
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def _int32_to_uint8(lo: int, hi: int, label: str) -> Callable[[np.ndarray], np.ndarray]:
    """How 32-bit integer samples in lo..hi become 8-bit (the container says nothing of the white
    level, so the values decide): 0..255 are 8-bit data, kept; 0..65535 are 16-bit data, scaled
    like a 16-bit file; anything else is stretched from lo..hi to 0..255 (rounded), and an image of
    a single such value is refused."""
    if lo >= 0 and hi <= 255:
        return lambda arr: arr.astype(np.uint8)  # 8-bit data saved as int32: 16-bit scaling made it black
    if lo >= 0 and hi <= 65535:
        return lambda arr: arr.astype(np.uint16)  # then scaled as 16-bit
    if lo == hi:
        raise InvalidImageError(
            f"cannot read image {label}: every 32-bit integer sample is {lo}, outside 0..65535, so "
            "there is nothing to scale to 8 bits; save the image as 8- or 16-bit"
        )
    scale = 255.0 / (hi - lo)
    return lambda arr: np.rint((arr - np.float64(lo)) * scale).astype(np.uint8)


# ------------------------------------------------------------------------------------------ arrays


def _array_to_rgb(arr: np.ndarray, label: str) -> np.ndarray:
    """(H, W[, 1|3|4]) uint8 / uint16 / float in [0, 1] -> new (H, W, 3) uint8 RGB."""
    what = f"cannot use image {label}"
    if arr.dtype == np.bool_:
        raise InvalidImageError(
            f"{what}: boolean arrays are masks, not images; use mask.astype(np.uint8) * 255"
        )
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise InvalidImageError(
            f"{what}: shape {arr.shape} is not an image; expected (H, W), (H, W, 1), "
            "(H, W, 3) RGB or (H, W, 4) RGBA"
        )
    if arr.size == 0:
        raise InvalidImageError(f"{what}: it is empty (shape {arr.shape})")

    if arr.dtype == np.uint8:
        arr8 = arr
    elif arr.dtype == np.uint16:
        # round(x * 255 / 65535) = round(x / 257): 65535 -> 255, 32768 -> 128, no clipping.
        arr8 = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        arr8 = _float_to_uint8(arr, what)
    else:
        raise InvalidImageError(
            f"{what}: dtype {arr.dtype} is not supported; use uint8 (0..255), uint16 (0..65535) "
            "or float in [0, 1] (for integers in 0..255: arr.astype(np.uint8))"
        )

    if arr8.ndim == 2:
        arr8 = arr8[:, :, None]
    channels = arr8.shape[2]
    if channels == 1:
        return np.repeat(arr8, 3, axis=2)  # a new C-contiguous array
    if channels == 4:
        return _composite_on_white(arr8)
    return _owned(arr8)


def _float_to_uint8(arr: np.ndarray, what: str) -> np.ndarray:
    arr = arr.astype(np.float32, copy=False) if arr.dtype.itemsize < 4 else arr
    _check_unit_floats(*_float_stats(arr), what)
    return np.rint(arr * 255.0).astype(np.uint8)


def _float_stats(arr: np.ndarray) -> tuple[int, float, float]:
    """(non-finite values, min, max) of a float array; min and max are NaN when any is non-finite."""
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    return (bad, float("nan"), float("nan")) if bad else (0, float(arr.min()), float(arr.max()))


def _check_unit_floats(bad: int, lo: float, hi: float, what: str) -> None:
    """Refuse float samples that are non-finite or outside [0, 1] (stats from :func:`_float_stats`)."""
    if bad:
        raise InvalidImageError(f"{what}: it holds {bad} NaN or infinite values")
    if lo < 0.0 or hi > 1.0:
        raise InvalidImageError(
            f"{what}: float values must lie in [0, 1], got {lo:g}..{hi:g}"
            + ("; for 0..255 data pass arr.astype(np.uint8) or arr / 255" if hi <= 255.0 and lo >= 0 else "")
        )


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 RGBA -> (H, W, 3) uint8 RGB over a white background, rounded."""
    alpha = rgba[:, :, 3:4]
    if alpha.min() == 255:  # fully opaque: nothing to blend
        return _owned(rgba[:, :, :3])
    a = alpha.astype(np.uint16)
    # rgb*a + 255*(255-a) <= 255*255, so +127 still fits uint16; //255 with +127 rounds.
    out = (rgba[:, :, :3].astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _owned(arr: np.ndarray) -> np.ndarray:
    """A C-contiguous, writable array not shared with the caller (or with Pillow's bytes)."""
    return np.array(arr, dtype=np.uint8, order="C", copy=True)


# --------------------------------------------------------------------------------- pixel limit


def _check_pixels(width: int, height: int, max_pixels: int | None, label: str) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(_too_large_message(label, (width, height), width * height, max_pixels))


def _too_large_message(
    label: str, size: tuple[int, int] | None, pixels: int | None, max_pixels: int | None
) -> str:
    if size is not None:
        what = f"{size[0]}x{size[1]} = {size[0] * size[1] / 1e6:.1f} megapixels"
    elif pixels is not None:
        what = f"{pixels / 1e6:.1f} megapixels"
    else:
        what = "too many pixels"
    limit = (
        f"the limit of {max_pixels / 1e6:.1f} megapixels ({max_pixels:,} pixels)"
        if max_pixels is not None
        else "what Pillow will decode"
    )
    return (
        f"image {label} is {what}, more than {limit}; the limit guards against decompression bombs "
        f"(tiny files that claim huge sizes). {_RAISE_HINT}"
    )


def _pixels_in(exc: BaseException) -> int | None:
    """The pixel count in Pillow's DecompressionBombError message, if it is there."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return int(found.group(1)) if found else None


@contextlib.contextmanager
def _pillow_bomb_guard(max_pixels: int | None, *, only_if_needed: bool = False) -> Iterator[None]:
    """Keep Pillow's own bomb guard from firing on an image that our ``max_pixels`` allows.

    Pillow warns (DecompressionBombWarning) above ``Image.MAX_IMAGE_PIXELS`` and raises above twice
    that, from a process-wide setting. Inside this block its warning is ignored (we check the size
    ourselves, and pytest or ``-W error`` would turn it into an exception), and when ``max_pixels``
    is above twice Pillow's limit (or None) that limit is raised to ``max_pixels`` and restored on
    exit. Both changes are undone on exit and made under a lock. With ``only_if_needed`` (used
    around decoding, which may take long) nothing is done, and no lock taken, unless
    ``max_pixels`` exceeds Pillow's limit: below it Pillow's checks cannot fire for an image we
    accepted. The lock orders faceprint's own calls only; other threads that use Pillow or
    ``warnings.catch_warnings`` at the same moment can see the temporary settings, which is why
    they are changed only for as long as needed (the header, or the decode of an image larger than
    Pillow's limit).
    """
    pil_limit = Image.MAX_IMAGE_PIXELS
    if pil_limit is None or (
        only_if_needed and max_pixels is not None and max_pixels <= pil_limit
    ):
        yield
        return
    with _PIL_STATE_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        pil_limit = Image.MAX_IMAGE_PIXELS  # re-read under the lock
        raise_limit = pil_limit is not None and (max_pixels is None or max_pixels > 2 * pil_limit)
        if raise_limit:
            Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            if raise_limit:
                Image.MAX_IMAGE_PIXELS = pil_limit


def _decode_failed_message(label: str, exc: BaseException) -> str:
    detail = str(exc) or type(exc).__name__
    if "truncated" in detail.lower():
        return (
            f"cannot read image {label}: the file is truncated ({detail}); it was probably cut off "
            "while downloading or copying, so fetch or export it again"
        )
    return (
        f"cannot read image {label}: the data is damaged or not a supported image ({detail}); "
        "check the file opens in an image viewer, or re-save it as PNG or JPEG"
    )
