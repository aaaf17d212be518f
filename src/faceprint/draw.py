"""Annotated output images and video frames: boxes, names and distances drawn on the pixels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = ["annotate_image", "draw_labels"]

Label = tuple[tuple[float, float, float, float], "str | None", "float | None"]
Colour = tuple[int, int, int]
UNKNOWN_BGR: Colour = (0, 0, 220)
KNOWN_BGR: Colour = (0, 180, 0)


def annotate_image(image: np.ndarray, labels: Sequence[Label], out: str | Path) -> Path:
    """Draw (box, name, distance) labels on a copy of an (H, W, 3) RGB image and save it (PNG/JPEG).

    box: (left, top, right, bottom) pixels. Unknown faces are red, known ones green.
    """
    canvas = draw_labels(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), labels)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), canvas):
        raise OSError(f"could not write {out}: check the folder is writable and the suffix is .png or .jpg")
    return out


def draw_labels(
    canvas: np.ndarray, labels: Sequence[Label], colours: Sequence[Colour] | None = None
) -> np.ndarray:
    """Draw (box, text, distance) labels in place on an (H, W, 3) BGR canvas and return it.

    colours: one BGR colour per label; default red for unknown (None/"unknown"), green otherwise.
    """
    # Scale strokes with the image so the labels stay legible on 250 px and 4000 px photos alike.
    unit = max(1, round(max(canvas.shape[:2]) / 500))
    for i, (box, name, distance) in enumerate(labels):
        l, t, r, b = (int(round(v)) for v in box)
        if colours is not None:
            colour = colours[i]
        else:
            colour = UNKNOWN_BGR if name in (None, "unknown") else KNOWN_BGR
        cv2.rectangle(canvas, (l, t), (r, b), colour, 2 * unit)
        if name is not None:
            text = name if distance is None else f"{name} {distance:.2f}"
            scale = 0.5 * unit
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, unit)
            y = max(t, th + base + 2)
            x = max(0, min(l, canvas.shape[1] - tw - 4))  # keep the label inside the picture
            cv2.rectangle(canvas, (x, y - th - base - 2), (x + tw + 4, y), colour, -1)
            cv2.putText(canvas, text, (x + 2, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), unit)
    return canvas
