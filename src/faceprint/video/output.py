"""Annotated video: each frame with its tracks' boxes, track ids and names drawn on it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..draw import KNOWN_BGR, UNKNOWN_BGR, draw_labels
from ..errors import VideoError
from .recognizer import FrameResult

__all__ = ["AnnotatedVideoWriter", "render"]

PENDING_BGR = (0, 170, 255)  # amber: a face followed but not decided yet
_CODECS = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "MJPG"}


def render(result: FrameResult) -> np.ndarray:
    """The frame as (H, W, 3) uint8 BGR with "#id name distance" boxes and the video time."""
    canvas = cv2.cvtColor(result.frame.image, cv2.COLOR_RGB2BGR)
    labels, colours = [], []
    for t in result.tracks:
        name = t.name
        labels.append((t.box, f"#{t.id} {name or '...'}", t.distance if t.identity else None))
        colours.append(PENDING_BGR if name is None else UNKNOWN_BGR if t.identity is None else KNOWN_BGR)
    draw_labels(canvas, labels, colours)
    stamp = f"t={result.frame.time:.2f}s" + (" [detect]" if result.detected else "")
    at = (8, canvas.shape[0] - 10)
    cv2.putText(canvas, stamp, at, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3)  # outline: legible on any scene
    cv2.putText(canvas, stamp, at, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    return canvas


class AnnotatedVideoWriter:
    """Write rendered frames to ``path`` (.mp4/.mov/.m4v: MPEG-4 part 2; .avi/.mkv: Motion JPEG).

    The file is opened on the first frame, whose size fixes the video's.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _CODECS:
            raise VideoError(f"cannot write video {self.path}: use a .mp4, .avi, .mov, .m4v or .mkv file name")
        self.fps, self._fourcc = fps, cv2.VideoWriter_fourcc(*_CODECS[suffix])
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, result: FrameResult) -> None:
        canvas = render(result)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = canvas.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), self._fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise VideoError(f"cannot write video {self.path}: check the folder is writable")
        self._writer.write(canvas)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()

    def __enter__(self) -> AnnotatedVideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
