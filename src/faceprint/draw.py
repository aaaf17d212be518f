"""Annotated output images: boxes, names and distances drawn on a copy of the photo."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = ["annotate_image"]

Label = tuple[tuple[float, float, float, float], "str | None", "float | None"]


def annotate_image(image: np.ndarray, labels: Sequence[Label], out: str | Path) -> Path:
    """Draw (box, name, distance) labels on a copy of an (H, W, 3) RGB image and save it (PNG/JPEG).

    box: (left, top, right, bottom) pixels. Unknown faces are red, known ones green.
    """
    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    # Scale strokes with the image so the labels stay legible on 250 px and 4000 px photos alike.
    unit = max(1, round(max(image.shape[:2]) / 500))
    for box, name, distance in labels:
        l, t, r, b = (int(round(v)) for v in box)
        colour = (0, 0, 220) if name in (None, "unknown") else (0, 180, 0)
        cv2.rectangle(canvas, (l, t), (r, b), colour, 2 * unit)
        if name is not None:
            text = name if distance is None else f"{name} {distance:.2f}"
            scale = 0.5 * unit
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, unit)
            y = max(t, th + base + 2)
            x = max(0, min(l, canvas.shape[1] - tw - 4))  # keep the label inside the picture
            cv2.rectangle(canvas, (x, y - th - base - 2), (x + tw + 4, y), colour, -1)
            cv2.putText(canvas, text, (x + 2, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), unit)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), canvas):
        raise OSError(f"could not write {out}: check the folder is writable and the suffix is .png or .jpg")
    return out
