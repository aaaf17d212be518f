"""Video and webcam recognition (issue 8): frames -> tracks -> per-track votes -> events.

    source.py      VideoSource: file / camera index / URL frames, corrupt frames skipped, streams retried
    tracker.py     Tracker: optical-flow box propagation between detections, IoU association
    recognizer.py  VideoRecognizer: detect every N frames, embed a few best detections per track, vote
    events.py      Event (appear / recognised / leave) and the JSON-lines writer
    output.py      the annotated video (boxes, track ids, names)
    greeter.py     "Welcome NAME" spoken (espeak-ng) or printed, with a cooldown
    watch.py       watch(): all of it in one call, as `faceprint watch` runs it
"""

from __future__ import annotations

from .events import UNKNOWN, Event, JsonLinesWriter
from .greeter import Greeter, find_speech_engine
from .output import AnnotatedVideoWriter, render
from .recognizer import FrameResult, Identifier, TrackView, VideoRecognizer
from .source import Frame, VideoSource, parse_source
from .tracker import Track, Tracker, iou_matrix
from .watch import WatchSummary, watch

__all__ = [
    "AnnotatedVideoWriter",
    "Event",
    "Frame",
    "FrameResult",
    "Greeter",
    "Identifier",
    "JsonLinesWriter",
    "Track",
    "TrackView",
    "Tracker",
    "UNKNOWN",
    "VideoRecognizer",
    "VideoSource",
    "WatchSummary",
    "find_speech_engine",
    "iou_matrix",
    "parse_source",
    "render",
    "watch",
]
