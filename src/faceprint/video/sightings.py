"""The sightings log (issue 16): every "recognised" and "leave" event of a known person, stored in
the gallery as a sighting (person, stream, event, time, distance), and old ones purged.

    >>> with Gallery("people.db", create=False) as g:
    ...     rec = SightingsRecorder(g, stream="door", retention_days=30)
    ...     watch("rtsp://door/stream", g, on_event=rec)

An event's time is video seconds since the stream started; a sighting's is Unix time: the
recorder dates the first frame at its own creation (for a file, that is when it is played, not
when it was filmed). Strangers, faces not decided yet and arrivals ("appear") are not recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from ..errors import FaceprintError
from ..gallery.store import Sighting
from .events import Event

__all__ = ["DEFAULT_RETENTION_DAYS", "SightingsLog", "SightingsRecorder", "sighting_of"]

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 30.0
_KINDS = {"recognised": "recognised", "leave": "left"}


class SightingsLog(Protocol):
    """Where sightings go: a :class:`~faceprint.gallery.Gallery` (or anything with its two methods)."""

    def record_sightings(self, sightings: Sequence[Sighting]) -> int: ...

    def purge_sightings(self, older_than_days: float, *, now: float | None = None) -> int: ...


def sighting_of(event: Event, stream: str, started: float) -> Sighting | None:
    """The sighting an event makes (the stream's first frame at Unix time ``started``), or None
    when it makes none: not a recognised/leave event, or not a known person."""
    kind = _KINDS.get(event.kind)
    if kind is None or not event.decided or event.identity is None:
        return None
    return Sighting(event.identity, stream, kind, started + float(event.time), event.distance)  # type: ignore[arg-type]


class SightingsRecorder:
    """An event sink (``watch(..., on_event=recorder)``) that stores known people's sightings.

    stream: the name sightings are stored under (a camera's place, a file name).
    retention_days: sightings older than this are purged while recording, at most once every
        ``purge_every`` seconds (0: kept until purged by hand).
    started: Unix time of the stream's first frame (default: now). clock: for tests.

    A gallery that refuses a write (locked, disk full) loses that sighting, with a warning, rather
    than stopping the video: the events themselves still go to the other sinks.
    """

    def __init__(
        self,
        gallery: SightingsLog,
        stream: str,
        *,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        purge_every: float = 60.0,
        started: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not retention_days >= 0:
            raise ValueError(f"retention_days must be 0 (keep) or a positive number of days, got {retention_days!r}")
        self.gallery, self.stream = gallery, str(stream)
        self.retention_days, self.purge_every, self._clock = float(retention_days), float(purge_every), clock
        self.started = clock() if started is None else float(started)
        self._last_purge: float | None = None
        self.recorded = 0  # sightings stored
        self.purged = 0  # sightings removed by retention

    def __call__(self, event: Event) -> Sighting | None:
        """Store the sighting this event makes, if any (and purge when due); the sighting."""
        sighting = sighting_of(event, self.stream, self.started)
        if sighting is None:
            return None
        try:
            self.recorded += self.gallery.record_sightings([sighting])
            self.purge()
        except FaceprintError as exc:
            log.warning("sighting of %s not stored: %s", sighting.person, exc)
        return sighting

    def purge(self, *, force: bool = False) -> int:
        """Remove sightings past the retention, unless done less than ``purge_every`` seconds ago."""
        now = self._clock()
        if self.retention_days <= 0 or (
            not force and self._last_purge is not None and now - self._last_purge < self.purge_every
        ):
            return 0
        self._last_purge = now
        n = self.gallery.purge_sightings(self.retention_days, now=now)
        self.purged += n
        return n
