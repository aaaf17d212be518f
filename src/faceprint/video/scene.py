"""Synthetic but real-faced test scenes: face photos pasted, moving and scaling, onto a background.

The tests, the benchmark and the README's frames use them so that the ground truth (who is on
screen when) is known exactly while the faces are real photos (e.g. LFW).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import VideoError
from ..imageio import load_image

__all__ = ["Actor", "door_scene", "lfw_photo", "render_scene", "write_scene"]


@dataclass(frozen=True)
class Actor:
    """One face in the scene.

    photo: a face photo (the face roughly centred, as in LFW); name: ground truth.
    enter/leave: seconds on screen [enter, leave). start/end: face centre as fractions of the
    frame (x, y) at enter and at leave, moving linearly. size: crop side in pixels at enter and
    at leave (the face is about half of it for LFW photos). hidden: (from, to) seconds it is off screen.
    """

    photo: Path
    name: str
    enter: float
    leave: float
    start: tuple[float, float] = (0.3, 0.5)
    end: tuple[float, float] = (0.7, 0.5)
    size: tuple[float, float] = (160.0, 200.0)
    hidden: tuple[tuple[float, float], ...] = ()
    crop: float = 0.7  # the central part of the photo pasted (LFW: the face with some margin)

    def visible(self, t: float) -> bool:
        return self.enter <= t < self.leave and not any(a <= t < b for a, b in self.hidden)


def _sprite(actor: Actor) -> tuple[np.ndarray, np.ndarray]:
    """(S, S, 3) float RGB crop and its (S, S, 1) feathered elliptical alpha."""
    image = load_image(actor.photo).astype(np.float32)
    h, w = image.shape[:2]
    side = int(min(h, w) * actor.crop)
    y0, x0 = (h - side) // 2, (w - side) // 2
    crop = image[y0 : y0 + side, x0 : x0 + side]
    yy, xx = np.mgrid[0:side, 0:side] / (side - 1) * 2 - 1
    r = np.sqrt((xx / 0.95) ** 2 + (yy / 0.98) ** 2)
    alpha = np.clip((1.0 - r) / 0.15, 0.0, 1.0)[..., None]  # soft edge: no hard border to detect
    return crop, alpha.astype(np.float32)


def render_scene(
    actors: Sequence[Actor],
    background: np.ndarray,
    *,
    fps: float = 10.0,
    duration: float = 5.0,
) -> Iterator[np.ndarray]:
    """Frames of the scene as (H, W, 3) uint8 RGB; the background is (H, W, 3) RGB, never changed."""
    sprites = [_sprite(a) for a in actors]
    H, W = background.shape[:2]
    for i in range(int(round(duration * fps))):
        t = i / fps
        frame = background.astype(np.float32)
        for a, (crop, alpha) in zip(actors, sprites):
            if not a.visible(t):
                continue
            u = (t - a.enter) / max(a.leave - a.enter, 1e-9)
            cx = (a.start[0] + u * (a.end[0] - a.start[0])) * W
            cy = (a.start[1] + u * (a.end[1] - a.start[1])) * H
            side = max(8, int(round(a.size[0] + u * (a.size[1] - a.size[0]))))
            c = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
            m = cv2.resize(alpha, (side, side), interpolation=cv2.INTER_LINEAR)[..., None]
            l, top = int(round(cx - side / 2)), int(round(cy - side / 2))
            # Clip to the frame: actors may walk in from an edge.
            x0, y0, x1, y1 = max(l, 0), max(top, 0), min(l + side, W), min(top + side, H)
            if x1 <= x0 or y1 <= y0:
                continue
            cc = c[y0 - top : y1 - top, x0 - l : x1 - l]
            mm = m[y0 - top : y1 - top, x0 - l : x1 - l]
            frame[y0:y1, x0:x1] = mm * cc + (1 - mm) * frame[y0:y1, x0:x1]
        yield np.clip(frame, 0, 255).astype(np.uint8)


def write_scene(
    path: str | Path,
    actors: Sequence[Actor],
    background: np.ndarray,
    *,
    fps: float = 10.0,
    duration: float = 5.0,
) -> Path:
    """Write :func:`render_scene` to a video file (.avi: Motion JPEG, else MPEG-4 part 2)."""
    path = Path(path)
    h, w = background.shape[:2]
    codec = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    if not writer.isOpened():
        raise VideoError(f"cannot write video {path}: check the folder and the suffix (.avi or .mp4)")
    try:
        for frame in render_scene(actors, background, fps=fps, duration=duration):
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def lfw_photo(data_dir: str | Path, person: str, n: int) -> Path:
    """An LFW (deep-funneled) photo: ``<data>/lfw/lfw-deepfunneled/Person/Person_000n.jpg``."""
    return Path(data_dir) / "lfw" / "lfw-deepfunneled" / person / f"{person}_{n:04d}.jpg"


def door_scene(data_dir: str | Path, size: tuple[int, int] = (480, 360)) -> tuple[list[Actor], np.ndarray]:
    """The tests' scene: (actors, (H, W, 3) RGB background) on the shared data folder, 7.5 s long.

    Colin Powell (0.5-4.0 s, hidden 2.0-2.2 s), a stranger (Ariel Sharon, 2.0-5.5 s) and Tony Blair
    (4.5-7.0 s) walk and grow over a landscape photo; enrol photos 1-2 of Powell and Blair, the
    scene uses photo 10 (Sharon's photo 1). Face sizes scale with the frame width.
    """
    k = size[0] / 480
    sz = lambda a, b: (a * k, b * k)  # noqa: E731
    actors = [
        Actor(lfw_photo(data_dir, "Colin_Powell", 10), "Colin_Powell", 0.5, 4.0, (0.2, 0.45), (0.45, 0.5),
              sz(110, 160), hidden=((2.0, 2.2),)),
        Actor(lfw_photo(data_dir, "Ariel_Sharon", 1), "stranger", 2.0, 5.5, (0.8, 0.4), (0.65, 0.55), sz(130, 110)),
        Actor(lfw_photo(data_dir, "Tony_Blair", 10), "Tony_Blair", 4.5, 7.0, (0.3, 0.6), (0.25, 0.4), sz(105, 145)),
    ]
    bg = load_image(Path(data_dir) / "misc" / "landscape_pilatus.jpg")
    return actors, cv2.resize(bg, size, interpolation=cv2.INTER_AREA)
