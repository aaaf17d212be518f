"""Kept photos without their metadata: an enrolled photo is kept so that it can be shown and
re-embedded, but its EXIF GPS position, camera serial numbers, dates and comments are nobody's
business, and any read key may download it (issue 14, item 7)."""

from __future__ import annotations

import io
import struct

from PIL import Image

__all__ = ["strip_metadata"]

_ORIENTATION = 0x0112  # EXIF tag: how the camera was held; kept, or the photo turns sideways


def strip_metadata(data: bytes) -> tuple[bytes, str]:
    """(the photo without metadata, its file suffix). JPEG: segments dropped losslessly (APP1-APP15,
    comments), the EXIF orientation alone written back; PNG: pixels re-saved without text, EXIF or
    ICC chunks; other formats: re-saved as PNG (lossless) with the orientation applied."""
    if data[:2] == b"\xff\xd8":
        try:
            return _jpeg_without_metadata(data), ".jpeg"
        except ValueError:
            pass  # damaged segment structure: re-encode below as any other image
    image = Image.open(io.BytesIO(data))
    fmt = image.format
    if fmt != "PNG":
        from PIL import ImageOps

        image = ImageOps.exif_transpose(image)
    out = io.BytesIO()
    image.save(out, format="PNG")  # no pnginfo/exif/icc_profile given: none written
    return out.getvalue(), ".png"


def _jpeg_without_metadata(data: bytes) -> bytes:
    """A JPEG's bytes with APPn (n >= 1) and COM segments removed; the scan data untouched."""
    orientation = None
    try:
        orientation = Image.open(io.BytesIO(data)).getexif().get(_ORIENTATION)
    except (OSError, ValueError):
        pass
    out = [b"\xff\xd8"]
    if orientation not in (None, 1):
        exif = Image.Exif()
        exif[_ORIENTATION] = int(orientation)
        payload = exif.tobytes()  # b"Exif\0\0" + a TIFF block holding the one tag
        out.append(b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload)
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("not at a JPEG marker")
        marker = data[i + 1]
        if marker == 0xDA:  # start of scan: the rest is image data (and the end marker)
            out.append(data[i:])
            return b"".join(out)
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if length < 2 or i + 2 + length > len(data):
            raise ValueError("JPEG segment runs past the end")
        if not (0xE1 <= marker <= 0xEF or marker == 0xFE):
            out.append(data[i : i + 2 + length])
        i += 2 + length
    raise ValueError("no JPEG scan found")
