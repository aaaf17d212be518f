"""Recognise people in a stream of frames: detect every few frames, track between, vote per track.

    >>> from faceprint import Gallery
    >>> from faceprint.video import VideoRecognizer, VideoSource
    >>> with Gallery("people.db") as g, VideoSource("door.mp4") as frames:
    ...     rec = VideoRecognizer(g, every=5)
    ...     for result in rec.run(frames):          # one FrameResult per frame
    ...         for event in result.events:         # appear / recognised / leave
    ...             print(event.to_dict())
    ...     final = rec.finish()                    # "leave" for faces still there at the end

Cost per frame: detection runs on one frame in ``every`` (downscaled to ``detect_width``), the
optical-flow tracker on every frame, and the embedding network only a few times per track: up to
``votes`` descriptors from its better detections until a majority decides, then one more every
``recheck`` seconds (which can change the decision when a track switched people).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from ..detect import Detector
from ..pipeline import FacePipeline
from ..quality import assess
from ..types import Detection, Match
from .events import UNKNOWN, Event
from .source import Frame
from .tracker import Track, Tracker

__all__ = ["FrameResult", "Identifier", "TrackView", "VideoRecognizer"]


class Identifier(Protocol):
    """What the recogniser needs from a gallery (:class:`faceprint.Gallery` is one)."""

    @property
    def pipeline(self) -> FacePipeline: ...

    def identify_vectors(
        self, vectors: np.ndarray, *, top_k: int = 1, threshold: float | None = None
    ) -> list[list[Match]]: ...


@dataclass(frozen=True)
class TrackView:
    """A confirmed track as seen on one frame. box: (left, top, right, bottom) pixels.

    identity: the decided person, None for a stranger or while undecided (``decided`` tells).
    detected: the box comes from a detection on this frame (else from the tracker).
    """

    id: int
    box: tuple[float, float, float, float]
    identity: str | None
    distance: float | None
    decided: bool
    detected: bool

    @property
    def name(self) -> str | None:
        """The name to show: the person, "unknown", or None while undecided."""
        if not self.decided:
            return None
        return self.identity if self.identity is not None else UNKNOWN


@dataclass(frozen=True)
class FrameResult:
    """One processed frame: the confirmed tracks seen by the latest detection round, and the events."""

    frame: Frame
    tracks: list[TrackView]
    events: list[Event]
    detected: bool  # whether the detector ran on this frame


@dataclass
class _Votes:
    """A track's identity state: the latest descriptors' matches and the decision they support."""

    window: deque[Match]
    identity: str | None = None
    distance: float | None = None
    decided: bool = False
    last_sample: float = float("-inf")
    best_quality: float = 0.0
    passed_over: int = 0  # detections skipped in a row for low quality
    samples: int = 0
    announced: bool = field(default=False)  # "appear" already reported


class VideoRecognizer:
    """Turn frames into tracks and events against a gallery.

    gallery: a :class:`faceprint.Gallery` (or any :class:`Identifier`): its pipeline aligns and
        embeds, its ``identify_vectors`` decides (open set, its own threshold unless ``threshold``).
    every: run the detector on one frame in ``every`` (1 = every frame).
    votes: descriptors per decision window; a decision needs a majority of them (2 of 3).
    recheck: seconds between re-check descriptors once a track is decided.
    max_age: seconds a track survives without a detection (missed detections, brief occlusion).
    min_hits: detections before a face counts as arrived (one-off false detections never do).
    detect_width: frames wider than this are downscaled for detection (boxes map back); None = never.
    detector: detector instance to use instead of the gallery pipeline's (e.g. a larger min face).
    min_quality: a detection below this fraction of the track's best quality so far is not embedded
        (blurred, turned or half-hidden faces), unless two in a row were passed over already.
    """

    def __init__(
        self,
        gallery: Identifier,
        *,
        every: int = 5,
        votes: int = 3,
        recheck: float = 10.0,
        max_age: float = 1.0,
        min_hits: int = 2,
        detect_width: int | None = 640,
        detector: Detector | None = None,
        threshold: float | None = None,
        min_quality: float = 0.7,
    ) -> None:
        if every < 1 or votes < 1 or min_hits < 1:
            raise ValueError(f"every, votes and min_hits must be >= 1, got {every}, {votes}, {min_hits}")
        if detect_width is not None and detect_width < 32:
            raise ValueError(f"detect_width must be at least 32 px or None, got {detect_width}")
        self.gallery = gallery
        self.pipeline = gallery.pipeline
        # Camera frames are upright, and most have no face: the pipeline's search of turned photos
        # (which runs where nothing is found) would only quadruple the cost of empty frames.
        plain = getattr(self.pipeline.detector, "inner", self.pipeline.detector)
        self.detector = detector if detector is not None else plain
        self.every, self.votes, self.recheck = every, votes, recheck
        self.detect_width, self.threshold, self.min_quality = detect_width, threshold, min_quality
        self.tracker = Tracker(min_hits=min_hits, max_age=max_age)
        self._state: dict[int, _Votes] = {}
        self._seen = 0  # frames processed
        self._last: Frame | None = None

    # -- public API -----------------------------------------------------------------------------
    def run(self, frames: Iterable[Frame]) -> Iterator[FrameResult]:
        """One :class:`FrameResult` per frame; call :meth:`finish` afterwards for the last departures."""
        for frame in frames:
            yield self.step(frame)

    def events(self, frames: Iterable[Frame]) -> Iterator[Event]:
        """Only the events of a whole stream, the final departures included."""
        for result in self.run(frames):
            yield from result.events
        yield from self.finish()

    def step(self, frame: Frame) -> FrameResult:
        """Process one frame: detect (one frame in ``every``), track, embed where needed, decide."""
        detect = self._seen % self.every == 0
        self._seen += 1
        self._last = frame
        detections = self._detect(frame.image) if detect else None
        gray = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)
        born, ended = self.tracker.update(gray, frame.index, frame.time, detections)
        events = [ev for t in ended if (ev := self._leave(t, frame)) is not None]
        for t in born:
            st = self._votes(t)
            st.announced = True
            events.append(Event("appear", t.id, t.first_time, t.first_frame, t.box_tuple()))
            if st.decided:  # decided while still tentative (min_hits > 2): say so now
                events.append(self._recognised(t, frame))
        if detect:
            events += self._sample(frame)
        # A track the latest detection round missed is kept alive (to bridge an occlusion) but not
        # shown: its box would float over whatever is now there.
        views = [self._view(t) for t in self.tracker.tracks if t.confirmed and t.misses == 0]
        return FrameResult(frame, views, events, detect)

    def finish(self) -> list[Event]:
        """End every track (the video is over): their "leave" events at their last sighting."""
        frame = self._last
        if frame is None:
            return []
        return [ev for t in self.tracker.finish() if (ev := self._leave(t, frame)) is not None]

    # -- stages -----------------------------------------------------------------------------------
    def _detect(self, image: np.ndarray) -> list[Detection]:
        """Detections in full-frame pixels, found on a copy at most ``detect_width`` wide, with
        their quality measured on the full frame."""
        return assess(image, self._find(image))

    def _find(self, image: np.ndarray) -> list[Detection]:
        w = image.shape[1]
        if self.detect_width is None or w <= self.detect_width:
            return self.detector.detect(image)
        s = self.detect_width / w
        small = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        return [
            Detection(
                tuple(v / s for v in d.box),  # type: ignore[arg-type]
                d.score,
                None if d.landmarks is None else d.landmarks / s,
                d.detector,
            )
            for d in self.detector.detect(small)
        ]

    def _sample(self, frame: Frame) -> list[Event]:
        """Embed this frame's detections of the tracks that need a descriptor, one batch; vote."""
        chosen: list[Track] = []
        for t in self.tracker.tracks:
            det = t.detection
            if det is None:
                continue
            st = self._votes(t)
            if st.decided and frame.time - st.last_sample < self.recheck:
                continue
            q = det.quality if det.quality is not None else 0.0
            st.best_quality = max(st.best_quality, q)
            if q < self.min_quality * st.best_quality and st.passed_over < 2:
                st.passed_over += 1  # a better view may come on the next detection round
                continue
            st.passed_over = 0
            chosen.append(t)
        if not chosen:
            return []
        dets = [t.detection for t in chosen]
        vectors = self.pipeline.embed(frame.image, dets)  # type: ignore[arg-type]
        ranked = self.gallery.identify_vectors(vectors, threshold=self.threshold)
        events = []
        for t, matches in zip(chosen, ranked):
            st = self._state[t.id]
            st.window.append(matches[0])
            st.last_sample, st.samples = frame.time, st.samples + 1
            if self._decide(st) and st.announced:
                events.append(self._recognised(t, frame))
        return events

    def _votes(self, t: Track) -> _Votes:
        return self._state.setdefault(t.id, _Votes(deque(maxlen=self.votes)))

    def _decide(self, st: _Votes) -> bool:
        """Majority vote over the window; True when the decision is new or changed."""
        counts = Counter(m.identity for m in st.window)
        # Most votes wins; among equals, the nearer mean distance.
        best = min(counts, key=lambda k: (-counts[k], _mean_distance(st.window, k)))
        majority = counts[best] >= self.votes // 2 + 1
        full = len(st.window) >= self.votes
        if not st.decided and (majority or full):
            st.decided, st.identity, st.distance = True, best, _mean_distance(st.window, best)
            return True
        if st.decided:
            if majority and best != st.identity:  # a re-check outvoted the old decision
                st.identity, st.distance = best, _mean_distance(st.window, best)
                return True
            if best == st.identity:
                st.distance = _mean_distance(st.window, best)
        return False

    def _recognised(self, t: Track, frame: Frame) -> Event:
        st = self._state[t.id]
        return Event(
            "recognised", t.id, frame.time, frame.index, t.box_tuple(), st.identity, st.distance, True, len(st.window)
        )

    def _leave(self, t: Track, frame: Frame) -> Event | None:
        st = self._state.pop(t.id, None)
        if not t.confirmed or st is None or not st.announced:
            return None  # a tentative track never reported, so its end is silent too
        return Event(
            "leave", t.id, t.last_time, t.last_frame, t.box_tuple(), st.identity, st.distance, st.decided, len(st.window)
        )

    def _view(self, t: Track) -> TrackView:
        st = self._state.get(t.id)
        if st is None:
            return TrackView(t.id, t.box_tuple(), None, None, False, t.detection is not None)
        return TrackView(t.id, t.box_tuple(), st.identity, st.distance, st.decided, t.detection is not None)


def _mean_distance(window: Sequence[Match], identity: str | None) -> float:
    return float(np.mean([m.distance for m in window if m.identity == identity]))
