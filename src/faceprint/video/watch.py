"""One call from a video source to events, an annotated video and greetings (what `faceprint watch` runs)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .events import Event
from .greeter import Greeter
from .output import AnnotatedVideoWriter
from .recognizer import Identifier, VideoRecognizer
from .source import VideoSource

__all__ = ["WatchSummary", "watch"]


@dataclass
class WatchSummary:
    """What a run did: frames read, seconds of video and of wall clock, events, people recognised."""

    frames: int = 0
    video_seconds: float = 0.0
    wall_seconds: float = 0.0
    skipped_frames: int = 0
    reconnects: int = 0
    events: list[Event] = field(default_factory=list)

    @property
    def fps(self) -> float:
        """Frames processed per wall-clock second."""
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def people(self) -> list[str]:
        """Known people recognised at least once, in order of first recognition."""
        names = [e.identity for e in self.events if e.kind == "recognised" and e.identity is not None]
        return list(dict.fromkeys(names))


def watch(
    source: str | int | os.PathLike[str] | VideoSource,
    gallery: Identifier,
    *,
    on_event: Callable[[Event], Any] | None = None,
    output: str | Path | None = None,
    greeter: Greeter | None = None,
    max_frames: int | None = None,
    **options: Any,
) -> WatchSummary:
    """Recognise people in ``source`` until it ends (files) or ``max_frames`` frames were read.

    on_event: called with every event as it is reported (e.g. a JsonLinesWriter's ``write``).
    output: write the annotated video here (.mp4 or .avi). greeter: greet recognised people.
    options: passed to :class:`VideoRecognizer` (every, votes, recheck, max_age, detect_width, ...).
    """
    summary = WatchSummary()
    rec = VideoRecognizer(gallery, **options)
    src = source if isinstance(source, VideoSource) else VideoSource(source)
    writer = AnnotatedVideoWriter(output, src.fps) if output is not None else None

    def emit(events: list[Event]) -> None:
        for ev in events:
            summary.events.append(ev)
            if on_event is not None:
                on_event(ev)
            if greeter is not None:
                greeter(ev)

    start = time.perf_counter()
    try:
        for result in rec.run(src):
            emit(result.events)
            if writer is not None:
                writer.write(result)
            summary.frames += 1
            summary.video_seconds = result.frame.time
            if max_frames is not None and summary.frames >= max_frames:
                break
        emit(rec.finish())
    finally:
        summary.wall_seconds = time.perf_counter() - start
        summary.skipped_frames, summary.reconnects = src.skipped, src.reconnects
        if writer is not None:
            writer.close()
        if src is not source:
            src.close()
    return summary
