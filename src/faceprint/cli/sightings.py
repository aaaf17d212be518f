"""``faceprint sightings --db PATH``: who was seen where and when (issue 16).

`faceprint watch --db PATH` stores every "recognised" and "left" event of a known person in the
gallery; this lists them, newest first. ``--json`` prints a list of
``{"person": str, "stream": str, "event": "recognised"|"left", "time": ISO-8601 UTC, "distance": float|null}``.
Exit codes: 0 done, 2 error (no gallery, unknown person, a --since that is not a time).
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import FaceprintError
from .common import JsonOpt, _emit, fail

__all__ = ["register", "sightings_command"]


def register(app: typer.Typer) -> None:
    app.command("sightings")(sightings_command)


def sightings_command(
    db: str = typer.Option(
        ..., "--db", envvar="FACEPRINT_GALLERY", help="The gallery: a SQLite file or a postgresql:// URL."
    ),
    since: Optional[str] = typer.Option(
        None, "--since", metavar="ISO-TIME",
        help="Only sightings at or after this time, ISO-8601 (2024-05-01, 2024-05-01T08:00:00+02:00); no zone: UTC.",
    ),
    person: Optional[str] = typer.Option(None, "--person", help="Only this person's sightings."),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many, newest first."),
    json_out: bool = JsonOpt,
) -> None:
    """Sightings of known people stored by `faceprint watch`: person, stream, event, time, distance."""
    from ..gallery import Gallery
    from ..gallery.store import unix_time

    try:
        after = None if since is None else unix_time(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    try:
        with Gallery(db, create=False) as g:
            found = g.sightings(since=after, person=person, limit=limit)
    except FaceprintError as exc:
        fail(exc, json_out)
    rows = [s.to_dict() for s in found]
    if json_out:
        _emit(rows)
        return
    if not rows:
        Console(stderr=True).print("no sightings" + (f" of {person}" if person else "") + (f" since {since}" if since else ""))
        return
    table = Table("time (UTC)", "person", "event", "stream", "distance")
    for r in rows:
        dist = "-" if r["distance"] is None else f"{r['distance']:.3f}"
        table.add_row(r["time"], r["person"], r["event"], r["stream"], dist)
    Console().print(table)
