"""``faceprint classify train|predict``: an SVM or k-NN face classifier on embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from ..errors import FaceprintError
from ..models import DEFAULT_MODEL
from .common import DetectorOpt, JsonOpt, MaxPixelsOpt, ModelOpt, ThreadsOpt, _emit, _pipeline, _round, err, print_identities

__all__ = ["classify_app", "register"]

classify_app = typer.Typer(help="Train and use a face classifier (SVM or k-NN) on embeddings.", no_args_is_help=True)

UnknownProbaOpt = typer.Option(
    None, "--unknown-proba", min=0.0, max=1.0, help="Answer unknown when the top probability is below this."
)


def register(app: typer.Typer) -> None:
    app.add_typer(classify_app, name="classify")


@classify_app.command("train")
def train(
    folder: Path = typer.Argument(..., help="One sub-folder of photos per person (or photos named after people)."),
    out: Path = typer.Option(..., "--out", help="Classifier file to write."),
    method: str = typer.Option("svm", "--method", help="svm (linear SVM with probabilities) or knn."),
    c: float = typer.Option(10.0, "--C", help="SVM regularisation."),
    neighbors: int = typer.Option(5, "--neighbors", min=1, help="k for knn."),
    unknown_distance: Optional[float] = typer.Option(
        None, "--unknown-distance", help="Unknown when no training face is this close (default: the model's threshold; 0 = off)."
    ),
    unknown_proba: Optional[float] = UnknownProbaOpt,
    detector: Optional[str] = DetectorOpt,
    model: str = ModelOpt,
    json_out: bool = JsonOpt,
    threads: Optional[int] = ThreadsOpt,
    max_pixels: int = MaxPixelsOpt,
) -> None:
    """Embed the central face of every photo and fit a classifier; photos without a face are skipped."""
    from ..classify import KNNFaceClassifier, SVMFaceClassifier, save_classifier  # scikit-learn: slow import

    if method not in ("svm", "knn"):
        raise typer.BadParameter(f"{method!r} is not svm or knn", param_hint="--method")
    pipe = _pipeline(detector, model, threads, max_pixels)
    try:
        known = pipe.known_faces(folder, on_error="skip")
    except FaceprintError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    for path, reason in pipe.skipped:
        err.print(f"[yellow]skipped[/] {path}: {reason}")
    if len(known.people) < 2:
        err.print(f"[red]error:[/] a classifier needs faces of at least 2 people, {folder} gave {len(known.people)}")
        raise typer.Exit(2)
    distance = pipe.spec.threshold if unknown_distance is None else (unknown_distance or None)
    common: dict[str, Any] = {
        "unknown_distance": distance, "unknown_proba": unknown_proba, "metric": pipe.spec.metric,
        "embedding_model": pipe.spec.name,
    }
    clf = SVMFaceClassifier(C=c, **common) if method == "svm" else KNNFaceClassifier(neighbors, **common)
    clf.fit(known.vectors, list(known.names))
    save_classifier(clf, out)
    summary = {
        "model": str(out),
        "method": method,
        "embedding_model": pipe.spec.name,
        "people": known.people,
        "faces": len(known),
        "skipped": [{"image": p, "error": r} for p, r in pipe.skipped],
    }
    if json_out:
        _emit(summary)
    else:
        typer.echo(f"trained {method} on {len(known)} faces of {len(known.people)} people -> {out}")


@classify_app.command("predict")
def predict(
    images: list[Path] = typer.Argument(..., help="Photos; every face in them is classified."),
    model_file: Path = typer.Option(..., "--model", help="Classifier file from `faceprint classify train`."),
    unknown_distance: Optional[float] = typer.Option(
        None, "--unknown-distance", help="Override the file's distance rule (0 = off)."
    ),
    unknown_proba: Optional[float] = UnknownProbaOpt,
    detector: Optional[str] = DetectorOpt,
    json_out: bool = JsonOpt,
    threads: Optional[int] = ThreadsOpt,
    max_pixels: int = MaxPixelsOpt,
) -> None:
    """Who is in these photos, by the classifier: identity (or unknown), probability, nearest distance."""
    import numpy as np

    from ..classify import load_classifier

    try:
        clf = load_classifier(model_file)
    except FaceprintError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if unknown_distance is not None:
        clf.set_params(unknown_distance=unknown_distance or None)
    if unknown_proba is not None:
        clf.set_params(unknown_proba=unknown_proba or None)
    pipe = _pipeline(detector, clf.embedding_model or DEFAULT_MODEL, threads, max_pixels)
    results: list[dict[str, Any]] = []
    failed = False
    for path in images:
        try:
            faces = pipe.faces(path)
        except FaceprintError as exc:
            failed = True
            results.append({"image": str(path), "error": str(exc)})
            continue
        entry: list[dict[str, Any]] = []
        if faces:
            x = np.stack([f.embedding.vector for f in faces])
            names, proba, near = clf.predict(x), clf.predict_proba(x).max(axis=1), clf.nearest_distance(x)
            for f, name, p, d in zip(faces, names, proba, near):
                known = name != clf.unknown_label
                entry.append({
                    "box": _round(f.detection.ltwh()),
                    "identity": str(name) if known else None,
                    "probability": round(float(p), 4),
                    "distance": round(float(d), 6),
                })
        results.append({"image": str(path), "faces": entry})
    if json_out:
        _emit(results)
    else:
        print_identities(results)
    raise typer.Exit(1 if failed else 0)
