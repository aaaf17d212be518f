"""``faceprint watch SOURCE --db PATH``: recognise people in a video file, a camera or a stream (issue 8).

Events go to ``--events FILE`` as JSON lines (``-`` for stdout), one object per event:
``{"event": "appear"|"recognised"|"leave", "track": int, "time": seconds, "frame": int,
"identity": name|"unknown"|null, "distance": float|null, "votes": int, "box": [l, t, w, h]}``.
Without ``--events`` they are printed as a readable log. Exit codes: 0 done, 2 error.

Each "recognised" and "leave" event of a known person is also stored in the gallery as a sighting
(``faceprint sightings``), unless ``--no-sightings``; sightings older than ``--retention-days`` are
purged as new ones come (at most once a minute).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ..errors import FaceprintError
from .common import CooldownOpt, DetectorOpt, GreetOpt, GreetTemplateOpt, GreetToOpt, JsonOpt, ThreadsOpt, _emit, err, fail

if TYPE_CHECKING:  # the video stack loads torch: imported when the command runs, not with the CLI
    from ..video import Event

__all__ = ["register", "watch_command"]


def register(app: typer.Typer) -> None:
    app.command("watch")(watch_command)


def watch_command(
    source: str = typer.Argument(..., help="Video file, camera index (0) or stream URL (rtsp://, http://)."),
    db: str = typer.Option(
        ..., "--db", envvar="FACEPRINT_GALLERY", help="The gallery of enrolled people: a SQLite file or a postgresql:// URL."
    ),
    events: Optional[str] = typer.Option(None, "--events", help="Write events as JSON lines to this file ('-': stdout)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the annotated video here (.mp4 or .avi)."),
    greet: bool = GreetOpt,
    greet_template: str = GreetTemplateOpt,
    greet_to: Optional[Path] = GreetToOpt,
    sightings: bool = typer.Option(
        True, "--sightings/--no-sightings", help="Store known people's recognised/leave events in the gallery (`faceprint sightings`)."
    ),
    retention_days: float = typer.Option(
        30.0, "--retention-days", min=0.0, envvar="FACEPRINT_SIGHTINGS_RETENTION_DAYS",
        help="Purge sightings older than this many days while recording (0: keep them).",
    ),
    stream: Optional[str] = typer.Option(
        None, "--stream", help="The name sightings are stored under (default: the source, without a password)."
    ),
    every: int = typer.Option(5, "--every", min=1, help="Run the face detector on one frame in N; track in between."),
    detector: Optional[str] = DetectorOpt,
    min_face: int = typer.Option(40, "--min-face", min=12, help="MTCNN: smallest face searched, px of the detection image."),
    detect_width: int = typer.Option(640, "--detect-width", min=0, help="Downscale wider frames to this for detection; 0 = never."),
    threshold: Optional[float] = typer.Option(None, help="Distance threshold (default: the gallery's)."),
    votes: int = typer.Option(3, "--votes", min=1, help="Descriptors per identity vote (a majority decides)."),
    recheck: float = typer.Option(10.0, "--recheck", min=0.0, help="Seconds between re-checks of a recognised face."),
    max_age: float = typer.Option(1.0, "--max-age", min=0.0, help="Seconds a face may go undetected before it has left."),
    cooldown: float = CooldownOpt,
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Stop after this many frames (cameras run until Ctrl-C)."),
    threads: Optional[int] = ThreadsOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Recognise people in a video: events when someone appears, is recognised, leaves."""
    from ..detect import get_detector
    from ..gallery import Gallery
    from ..gallery.store import redact
    from ..video import Greeter, JsonLinesWriter, watch
    from ..video.greeter import check_template
    from ..video.sightings import SightingsRecorder

    if threads:
        from ..runtime import set_default_threads

        set_default_threads(threads)
    if json_out and events == "-":
        err.print("[red]error:[/] --json and --events - both write to stdout: choose one")
        raise typer.Exit(2)
    try:
        check_template(greet_template)
    except ValueError as exc:  # before the gallery and the models are loaded
        raise typer.BadParameter(str(exc), param_hint="--greet-template") from None
    log: JsonLinesWriter | None = None
    greeter: Greeter | None = None
    recorder: SightingsRecorder | None = None
    try:
        with Gallery(db, detector=detector, threads=threads, create=False) as gallery:
            # MTCNN's search depth is the main cost of a frame: skip faces too small to recognise anyway.
            mtcnn = (detector or gallery.spec.detector) == "mtcnn"
            # camera frames are upright: no search of turned frames (it would run on every empty one)
            plain = getattr(gallery.pipeline.detector, "inner", gallery.pipeline.detector)
            det = get_detector("mtcnn", min_face_size=min_face) if mtcnn else plain
            if events is not None:
                log = JsonLinesWriter(sys.stdout if events == "-" else Path(events))
            # Printed greetings go to stdout unless stdout carries JSON.
            say = (lambda text: err.print(text)) if json_out or events == "-" else typer.echo
            if greet or greet_to is not None:
                greeter = Greeter(cooldown=cooldown, say=say, template=greet_template, to=greet_to)
            if sightings:
                recorder = SightingsRecorder(gallery, stream or redact(source), retention_days=retention_days)

            def on_event(ev: Event) -> None:
                if recorder is not None:
                    recorder(ev)
                if log is not None:
                    log.write(ev)
                elif not json_out:
                    _print_event(ev)

            summary = watch(
                source, gallery, on_event=on_event, output=output, greeter=greeter, max_frames=max_frames,
                every=every, detector=det, detect_width=detect_width or None, threshold=threshold,
                votes=votes, recheck=recheck, max_age=max_age,
            )
    except FaceprintError as exc:
        fail(exc, json_out)
    except KeyboardInterrupt:  # a camera runs until stopped; what was written stays valid
        err.print("stopped")
        raise typer.Exit(0) from None
    finally:
        if log is not None:
            log.close()
        if greeter is not None:
            greeter.close()
    result = {
        "frames": summary.frames,
        "video_seconds": round(summary.video_seconds, 3),
        "fps": round(summary.fps, 2),
        "skipped_frames": summary.skipped_frames,
        "reconnects": summary.reconnects,
        "people": summary.people,
        "events": len(summary.events),
        "sightings": None if recorder is None else recorder.recorded,
        "output": str(output) if output else None,
    }
    if json_out:
        _emit(result)
    else:
        who = ", ".join(summary.people) or "nobody known"
        err.print(
            f"{summary.frames} frames ({summary.video_seconds:.1f} s of video) at {summary.fps:.1f} fps; "
            f"recognised: {who}" + (f"; annotated video: {output}" if output else "")
        )


def _print_event(ev: Event) -> None:
    d = ev.to_dict()
    what = {"appear": "appears", "recognised": "recognised as", "leave": "leaves"}[ev.kind]
    who = "" if ev.kind == "appear" else f" {d['identity'] or 'unknown'}"
    dist = f" ({d['distance']:.2f})" if ev.kind == "recognised" and d["distance"] is not None else ""
    typer.echo(f"{ev.time:8.2f} s  face #{ev.track} {what}{who}{dist}")
