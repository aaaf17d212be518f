"""One check for the pixel arrays that stages take (not user files: imageio handles those)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .errors import InvalidImageError

__all__ = ["check_pixels"]


def check_pixels(image: Any, who: str, gray: Literal["reject", "keep", "expand"] = "reject") -> np.ndarray:
    """Validate an (H, W, 3) uint8 RGB array, or with ``gray`` allowed an (H, W[, 1]) uint8 one.

    gray="keep" returns gray images as (H, W); "expand" repeats them to (H, W, 3) as dlib does.
    ``who`` names the caller in the message (e.g. "MTCNNDetector.detect, image 3").
    """
    img = image if isinstance(image, np.ndarray) else None
    if img is not None and gray != "reject" and img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    ok = img is not None and img.dtype == np.uint8 and (
        (img.ndim == 3 and img.shape[2] == 3) or (img.ndim == 2 and gray != "reject")
    )
    if not ok:
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        wanted = "an (H, W, 3) uint8 RGB array" + (" or an (H, W) uint8 gray one" if gray != "reject" else "")
        raise InvalidImageError(
            f"{who} needs {wanted}, got {got}; load files with faceprint.load_image or convert the array"
        )
    assert img is not None  # for the type checker: ok implies an array
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise InvalidImageError(f"{who} got an empty image of shape {img.shape}")
    if img.ndim == 2 and gray == "expand":
        return np.repeat(img[:, :, None], 3, axis=2)
    return img
