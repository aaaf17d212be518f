"""Video frames on the service's engine: what a :class:`~faceprint.video.VideoRecognizer` needs
(its detector, pipeline and gallery), for the live view (``/v1/live``) and the server-side streams.

Networks run in the engine's micro-batcher thread, as every request's do. Frames are detected with
"detect-frame": video is upright and most frames have no face, where the search of turned photos
would cost several times the detection. Decisions are made as ``/v1/identify`` makes them.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..types import Detection, Match
from .batcher import OverloadedError
from .engine import Engine

__all__ = ["FrameNetworks", "FramesStopped"]


class FramesStopped(Exception):
    """The stream was told to stop while it waited for the busy engine."""


class FrameNetworks:
    """The engine's networks and decisions in the shape the recogniser takes.

    stop: a background stream's stop event. With it, a full batcher makes the stream wait its turn
    (the requests come first) until ``stop`` is set (:class:`FramesStopped`); without it (a live
    connection, which answers each frame), :class:`~faceprint.service.batcher.OverloadedError`
    reaches the caller.
    """

    def __init__(self, engine: Engine, stop: threading.Event | None = None, *, timeout: float = 120.0) -> None:
        self.engine, self._stop, self._timeout = engine, stop, timeout
        self.name = getattr(engine.pipeline.detector, "inner", engine.pipeline.detector).name
        self.spec = engine.pipeline.spec

    def _run(self, item: tuple[str, Any]) -> Any:
        while True:
            try:
                return self.engine.batcher.submit(item).result(timeout=self._timeout)
            except OverloadedError:
                if self._stop is None:
                    raise
                if self._stop.wait(0.05):
                    raise FramesStopped() from None

    # as the recogniser's detector
    def detect(self, image: np.ndarray) -> list[Detection]:
        return self._run(("detect-frame", image))

    @property
    def detector(self) -> FrameNetworks:
        return self

    # as the recogniser's pipeline
    @property
    def pipeline(self) -> FrameNetworks:
        return self

    def embed(self, image: np.ndarray, detections: list[Detection]) -> np.ndarray:
        """(n, D) descriptors of the chosen detections of one frame."""
        if not detections:
            return np.zeros((0, self.spec.embedding_size), np.float32)
        return self._run(("embed", (image, list(detections))))

    # as the recogniser's gallery
    def identify_vectors(self, vectors: np.ndarray, *, top_k: int = 1, threshold: float | None = None) -> list[list[Match]]:
        _, decided = self.engine.identify(vectors, top_k, threshold)
        return [[decision] for decision, _ in decided]
