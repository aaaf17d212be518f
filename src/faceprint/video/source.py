"""Frames from a video file, a camera index or a stream URL (OpenCV capture), as RGB arrays.

Files are read to the end: a frame that fails to decode is skipped (up to ``max_bad_frames`` in a
row), never fatal. Live sources (cameras, URLs) are reopened with exponential back-off when they
stop delivering, up to ``retries`` attempts in a row; only then :class:`VideoError`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import VideoError

__all__ = ["Frame", "VideoSource", "parse_source"]

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0  # when a container does not say (some streams and raw files report 0)


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    index: frame number in the source (0-based; skipped corrupt frames still count, so it maps to time).
    time: video time in seconds (files: index / fps; live sources: seconds since the first frame).
    image: (H, W, 3) uint8 RGB.
    """

    index: int
    time: float
    image: np.ndarray = field(compare=False, repr=False)


def parse_source(source: str | int | os.PathLike[str]) -> tuple[str | int, bool]:
    """(what to give cv2.VideoCapture, whether it is live): "0" -> camera 0, "rtsp://..." -> URL, else a file."""
    if isinstance(source, int):
        return source, True
    text = os.fspath(source)
    if text.isdigit():
        return int(text), True
    if "://" in text:
        return text, True
    if not Path(text).is_file():
        raise VideoError(f"no video file at {text}: give a video file, a camera index (0) or a stream URL")
    return text, False


class VideoSource:
    """Iterate :class:`Frame` s from ``source`` (path, camera index or URL).

    retries: reconnection attempts in a row for a live source before giving up (VideoError).
    backoff, max_backoff: first wait and longest wait in seconds between attempts (doubling).
    max_bad_frames: undecodable frames in a row a file may have before it is taken as ended.
    fps: override the frame rate the container reports (files' time stamps are index / fps).
    opener, sleep, clock: injectable for tests (cv2.VideoCapture, time.sleep, time.monotonic).
    """

    def __init__(
        self,
        source: str | int | os.PathLike[str],
        *,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_bad_frames: int = 25,
        fps: float | None = None,
        opener: Callable[[Any], Any] = cv2.VideoCapture,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target, self.live = parse_source(source)
        self.name = str(source)
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.max_bad_frames = max_bad_frames
        self._opener, self._sleep, self._clock = opener, sleep, clock
        self.reconnects = 0  # times a live source was reopened
        self.skipped = 0  # frames that could not be decoded
        self._cap = self._open_with_retry() if self.live else self._open()
        if self._cap is None or not self._cap.isOpened():
            raise VideoError(
                f"cannot open video {self.name}: not a video OpenCV can read (damaged, truncated MP4, "
                "or an unsupported codec); check it plays, or re-encode it (e.g. ffmpeg -i IN -c:v mjpeg OUT.avi)"
            )
        reported = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = float(fps) if fps else (reported if 0 < reported < 1000 else DEFAULT_FPS)
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not self.live else 0

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels as the capture reports them (0 when unknown)."""
        return int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def _open(self) -> Any:
        try:
            return self._opener(self.target)
        except cv2.error as exc:  # some backends raise instead of returning a closed capture
            raise VideoError(f"cannot open video {self.name}: {exc}") from exc

    def _open_with_retry(self) -> Any:
        """Open a live source, waiting backoff, 2*backoff, ... (at most max_backoff) between tries."""
        wait = self.backoff
        for attempt in range(self.retries + 1):
            cap = self._open()
            if cap.isOpened():
                return cap
            cap.release()
            if attempt == self.retries:
                break
            log.warning("video source %s not available; retrying in %.1f s", self.name, wait)
            self._sleep(wait)
            wait = min(wait * 2, self.max_backoff)
        raise VideoError(
            f"cannot open video source {self.name} after {self.retries + 1} attempts: check the camera "
            "is connected and free, or the stream URL is reachable"
        )

    def __iter__(self) -> Iterator[Frame]:
        return self._iter_live() if self.live else self._iter_file()

    def _iter_file(self) -> Iterator[Frame]:
        index, bad = -1, 0
        while True:
            ok, image = self._cap.read()
            index += 1
            if ok and _usable(image):
                bad = 0
                yield Frame(index, index / self.fps, _rgb(image))
                continue
            # A failed read is the end of the file unless the container says frames remain.
            if self.frame_count and index < self.frame_count - 1 and bad < self.max_bad_frames:
                bad += 1
                self.skipped += 1
                log.warning("%s: frame %d could not be decoded; skipped", self.name, index)
                continue
            return

    def _iter_live(self) -> Iterator[Frame]:
        index, start = -1, None
        while True:
            ok, image = self._cap.read()
            if ok and _usable(image):
                now = self._clock()
                start = now if start is None else start
                index += 1
                yield Frame(index, now - start, _rgb(image))
                continue
            # A camera unplugged or a stream dropped: reopen with back-off (VideoError when it stays lost).
            self.skipped += 1
            self._cap.release()
            self._cap = self._open_with_retry()
            self.reconnects += 1

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _usable(image: object) -> bool:
    return isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.size > 0


def _rgb(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
