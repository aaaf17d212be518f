"""One call from a video source to events, an annotated video and greetings (what `faceprint watch` runs)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .events import Event
from .greeter import Greeter
from .output import AnnotatedVideoWriter
from .recognizer import FrameResult, Identifier, VideoRecognizer
from .source import Frame, VideoSource

__all__ = ["WatchSummary", "paced", "watch"]


@dataclass
class WatchSummary:
    """What a run did: frames read, seconds of video and of wall clock, events, people recognised."""

    frames: int = 0
    video_seconds: float = 0.0
    wall_seconds: float = 0.0
    skipped_frames: int = 0
    reconnects: int = 0
    events: list[Event] = field(default_factory=list)
    event_count: int = 0  # all events, also when they are not kept (watch(keep_events=False))

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
    on_frame: Callable[[FrameResult], Any] | None = None,
    stop: threading.Event | None = None,
    fps: float | None = None,
    keep_events: bool = True,
    **options: Any,
) -> WatchSummary:
    """Recognise people in ``source`` until it ends (files), ``max_frames`` frames were read or ``stop`` is set.

    on_event: called with every event as it is reported (e.g. a JsonLinesWriter's ``write``).
    output: write the annotated video here (.mp4 or .avi). greeter: greet recognised people.
    on_frame: called with every processed frame (a live preview, statistics).
    stop: set it (from another thread) to end the run after the current frame; faces still in
        view then get their "leave" events. fps: process at most this many frames a second (see :func:`paced`).
    keep_events: collect the events in the summary (False for a source that runs for days).
    options: passed to :class:`VideoRecognizer` (every, votes, recheck, max_age, detect_width, ...).
    """
    summary = WatchSummary()
    rec = VideoRecognizer(gallery, **options)
    src = source if isinstance(source, VideoSource) else VideoSource(source)
    writer = AnnotatedVideoWriter(output, src.fps) if output is not None else None

    def emit(events: list[Event]) -> None:
        for ev in events:
            summary.event_count += 1
            if keep_events:
                summary.events.append(ev)
            if on_event is not None:
                on_event(ev)
            if greeter is not None:
                greeter(ev)

    start = time.perf_counter()
    try:
        frames: Iterable[Frame] = src if fps is None else paced(src, fps, live=src.live, stop=stop)
        for result in rec.run(frames):
            emit(result.events)
            if writer is not None:
                writer.write(result)
            if on_frame is not None:
                on_frame(result)
            summary.frames += 1
            summary.video_seconds = result.frame.time
            if max_frames is not None and summary.frames >= max_frames:
                break
            if stop is not None and stop.is_set():
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


def paced(
    frames: Iterable[Frame], fps: float, *, live: bool, stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Frame]:
    """At most ``fps`` frames a second of ``frames``: a file is slowed down to that rate (it plays
    as if live); a live source's frames that come early are dropped, so the ones processed stay recent."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    period, due = 1.0 / fps, None
    for frame in frames:
        now = clock()
        if due is not None and now < due:
            if live:
                continue
            if stop is not None:
                if stop.wait(due - now):
                    return
            else:
                time.sleep(due - now)
            now = clock()
        # A steady rate; but after falling behind (slow processing) start afresh rather than rush to catch up.
        due = now + period if due is None or now - due > period else due + period
        yield frame
