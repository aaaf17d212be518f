"""What happened in a video, as events: a face appears, is recognised, leaves.

Each event carries the video time (seconds) at which it *happened*, which may be earlier than the
frame on which it is reported: an arrival is confirmed a detection round after the first sighting
and dated back to it; a departure is known only ``max_age`` seconds after the last sighting.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

__all__ = ["Event", "EventKind", "JsonLinesWriter", "UNKNOWN"]

EventKind = Literal["appear", "recognised", "leave"]
UNKNOWN = "unknown"  # how a stranger is named in JSON and on screen


@dataclass(frozen=True)
class Event:
    """One event of one track.

    kind: "appear" (a new face, identity not decided yet), "recognised" (identity decided, or
        changed by a re-check), "leave" (the face is gone; identity is the last decision).
    track: the track id (unique within one run). time: video seconds; frame: frame index.
    identity: the person, or None for a stranger / not decided; ``known`` tells which of the two.
    distance: mean descriptor distance of the winning votes (recognised/leave), else None.
    box: (left, top, right, bottom) pixels at that moment.
    votes: how many descriptors the decision rests on.
    """

    kind: EventKind
    track: int
    time: float
    frame: int
    box: tuple[float, float, float, float]
    identity: str | None = None
    distance: float | None = None
    decided: bool = False
    votes: int = 0

    @property
    def name(self) -> str | None:
        """The identity as shown to people: the name, "unknown" for a stranger, None if undecided."""
        if not self.decided:
            return None
        return self.identity if self.identity is not None else UNKNOWN

    def to_dict(self) -> dict[str, Any]:
        """The JSON-lines record: box as [left, top, width, height], times rounded to milliseconds."""
        l, t, r, b = self.box
        return {
            "event": self.kind,
            "track": self.track,
            "time": round(self.time, 3),
            "frame": self.frame,
            "identity": self.name,
            # inf (an empty gallery) is not JSON
            "distance": None if self.distance is None or not math.isfinite(self.distance) else round(self.distance, 4),
            "votes": self.votes,
            "box": [round(l, 1), round(t, 1), round(r - l, 1), round(b - t, 1)],
        }


class JsonLinesWriter:
    """Write events as JSON lines to a path or an open text file, flushed per event (tail -f works)."""

    def __init__(self, target: str | Path | IO[str]) -> None:
        self._own = isinstance(target, (str, Path))
        self._fh: IO[str] = open(target, "w", encoding="utf-8") if self._own else target  # type: ignore[arg-type]

    def write(self, event: Event) -> None:
        self._fh.write(json.dumps(event.to_dict()) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._own:
            self._fh.close()

    def __enter__(self) -> JsonLinesWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
