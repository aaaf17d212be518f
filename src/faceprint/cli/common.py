"""What every ``faceprint`` sub-command shares: option objects, JSON output, errors, pipelines.

A module of its own so that sub-command modules never import the app that imports them.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import FaceprintError
from ..imageio import DEFAULT_MAX_PIXELS
from ..models import DEFAULT_MODEL, LICENCE_ENV

err = Console(stderr=True)

DetectorOpt = typer.Option(
    None, "--detector", "-d",
    help="Face detector: yunet, mtcnn, mmod, mmod-up1, haar; add -upright to search turned photos "
    "(default: the model's own, the one its threshold was calibrated with).",
)  # fmt: skip
ModelOpt = typer.Option(
    DEFAULT_MODEL, "--model", "-m", help="Embedding model (`faceprint models list`), or a model.pt from `faceprint train`."
)
AcceptLicenceOpt = typer.Option(
    None, "--accept-licence", envvar=LICENCE_ENV,
    help="Accept a model's non-commercial licence by name (e.g. insightface-non-commercial) to use it.",
)  # fmt: skip
FarOpt = typer.Option(
    None, "--far", min=0.0, max=0.5,
    help="Decide at this false-accept rate (e.g. 1e-3) through the model's calibration, instead of a distance threshold.",
)  # fmt: skip
MinQualityOpt = typer.Option(
    None, "--min-quality", min=0.0, max=1.0, envvar="FACEPRINT_MIN_QUALITY",
    help="Face-quality floor, 0-1: faces below it are not enrolled, and answered 'too poor to decide' "
    "instead of a decision (default: faceprint.quality.DEFAULT_MIN_QUALITY; 0: off).",
)  # fmt: skip
# The greeting (faceprint watch, faceprint serve's streams)
GreetOpt = typer.Option(False, "--greet", help="Say 'Welcome NAME' once per arrival (espeak-ng if installed, else printed).")
GreetTemplateOpt = typer.Option(
    "Welcome {name}, have a nice day!", "--greet-template", help="The greeting, with {name} for the person."
)
GreetToOpt = typer.Option(
    None, "--greet-to", metavar="FILE.wav",
    help="Write each greeting as a WAV file instead of playing it: FILE-0001.wav, FILE-0002.wav, ... "
    "(numbered on after those already there); implies --greet; needs espeak-ng.",
)  # fmt: skip
CooldownOpt = typer.Option(60.0, "--cooldown", min=0.0, help="Seconds before greeting the same person again.")
WeightsOpt = typer.Option(None, "--weights", help="The model's weights file/folder, for models downloaded on first use (offline machines).")
JsonOpt = typer.Option(False, "--json", help="Print JSON on stdout (stable shapes).")
ThreadsOpt = typer.Option(None, "--threads", help="CPU threads for the networks (default: one per core).")
MaxPixelsOpt = typer.Option(
    int(os.environ.get("FACEPRINT_MAX_PIXELS", DEFAULT_MAX_PIXELS)),
    "--max-pixels",
    help="Refuse images with more pixels than this (decompression-bomb guard); 0 = no limit.",
    min=0,
)
AnnotateOpt = typer.Option(None, "--annotate", help="Write annotated copies of the images to this folder.")


def _emit(payload: Any) -> None:
    """Print strict JSON: a non-finite number (an empty gallery's "no one, at infinite distance")
    becomes null, since Infinity/NaN are not JSON and break other tools' parsers."""
    sys.stdout.write(json.dumps(_finite(payload), indent=2, allow_nan=False) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def fail(exc: Exception, json_out: bool = False) -> NoReturn:
    """End a command on a FaceprintError: its message (JSON with --json) and exit code 2."""
    if json_out:
        _emit({"error": str(exc)})
    else:
        err.print(f"[red]error:[/] {escape(str(exc))}")
    raise typer.Exit(2) from None


def _round(values: Any, nd: int = 2) -> list[float]:
    return [round(float(v), nd) for v in values]


def _pipeline(detector: Optional[str], model: str, threads: Optional[int], max_pixels: int, **kw: Any):  # noqa: ANN202
    from ..pipeline import FacePipeline

    if threads:  # also the detector's sessions, made inside the pipeline
        from ..runtime import set_default_threads

        set_default_threads(threads)
    return FacePipeline(detector=detector, model=model, threads=threads, max_pixels=max_pixels or None, **kw)


def identify_images(pipe, images, known_faces, threshold, annotate) -> tuple[list[dict[str, Any]], bool]:  # noqa: ANN001
    """The identify JSON list for some images, and whether any could not be read.

    pipe: a FacePipeline with ``known_faces``, or a Gallery (``known_faces`` None) that knows its people.
    """
    results: list[dict[str, Any]] = []
    failed = False
    floor = getattr(pipe, "min_quality", 0.0)
    # the threshold each answer used, in the JSON: the given one, else the gallery's, else the model's
    used = threshold if threshold is not None else getattr(pipe, "threshold", None) or pipe.spec.threshold
    for path in images:
        try:
            if known_faces is None:
                matches = pipe.identify(path, threshold=threshold)
            else:
                matches = pipe.identify(path, known_faces, threshold=threshold)
        except FaceprintError as exc:
            failed = True
            results.append({"image": str(path), "error": str(exc)})
            continue
        faces = [
            {"box": _round(face.detection.ltwh()), "identity": ranked[0].identity,
             "distance": round(ranked[0].distance, 6), "decision": ranked[0].decision,
             "too_poor": ranked[0].too_poor, "quality": _quality(face.detection)}
            for face, ranked in matches
        ]
        results.append(
            {"image": str(path), "threshold": round(float(used), 6), "min_quality": floor, "faces": faces}
        )
        if annotate is not None:
            from ..draw import annotate_image

            labels = [(f.detection.box, _label(r[0]), r[0].distance) for f, r in matches]
            annotate_image(pipe.load(path), labels, Path(annotate) / f"{Path(path).stem}.png")
    return results, failed


def _quality(det: Any) -> float | None:
    return None if det.quality is None else round(float(det.quality), 4)


def _label(match: Any) -> str:
    names = {"too_poor": "too poor to decide", "unknown": "unknown"}
    return names.get(match.decision, match.identity or "unknown")


def print_identities(results: list[dict[str, Any]]) -> None:
    table = Table("image", "face box (l, t, w, h)", "identity", "distance")
    for r in results:
        name = Path(r["image"]).name
        if "error" in r:
            table.add_row(name, "-", f"[red]{r['error']}", "-")
        elif not r["faces"]:
            table.add_row(name, "-", "[yellow]no face", "-")
        for f in r.get("faces", []):
            box = "[" + ", ".join(f"{v:.0f}" for v in f["box"]) + "]"
            who = "too poor to decide" if f.get("too_poor") else f["identity"] or "unknown"
            table.add_row(name, box, who, f"{f['distance']:.3f}")
    Console().print(table)


