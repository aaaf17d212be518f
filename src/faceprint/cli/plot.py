"""``faceprint plot map|distances|pair``: PNG pictures of embeddings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from ..errors import FaceprintError
from .common import DetectorOpt, MaxPixelsOpt, ModelOpt, ThreadsOpt, _pipeline, err

__all__ = ["plot_app", "register"]

plot_app = typer.Typer(help="Pictures of embeddings: 2-D map, distance heat map, pair sheet.", no_args_is_help=True)

OutOpt = typer.Option(..., "--out", "-o", help="PNG file to write.")


def register(app: typer.Typer) -> None:
    app.add_typer(plot_app, name="plot")


def _labelled_faces(pipe: Any, folders: list[Path]) -> tuple[Any, list[str], list[str]]:
    """(N, D) descriptors, person and folder name per face, of folders of one sub-folder per person."""
    import numpy as np

    vectors, people, subsets = [], [], []
    for folder in folders:
        known = pipe.known_faces(folder, on_error="skip")
        for path, reason in pipe.skipped:
            err.print(f"[yellow]skipped[/] {path}: {reason}")
        vectors.append(known.vectors.reshape(len(known), -1))
        people += list(known.names)
        subsets += [folder.name] * len(known)
    if not people:
        raise FaceprintError(f"no usable face in {', '.join(map(str, folders))}: give folders of photos with faces")
    return np.concatenate(vectors), people, subsets


def _run(draw: Callable[[Any], Path], detector: str, model: str, threads: Optional[int], max_pixels: int) -> None:
    """Build the pipeline, let ``draw(pipe)`` write the picture, report it or the error (exit 2)."""
    try:
        path = draw(_pipeline(detector, model, threads, max_pixels))
    except (FaceprintError, ValueError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    typer.echo(f"wrote {path}")


@plot_app.command("map")
def plot_map(
    folders: list[Path] = typer.Argument(..., help="Folders with one sub-folder per person (several: marked apart)."),
    out: Path = OutOpt,
    method: str = typer.Option("tsne", "--method", help="tsne, pca or umap (needs umap-learn)."),
    seed: int = typer.Option(0, "--seed"),
    detector: str = DetectorOpt,
    model: str = ModelOpt,
    threads: Optional[int] = ThreadsOpt,
    max_pixels: int = MaxPixelsOpt,
) -> None:
    """2-D map of the faces' embeddings, coloured by person."""
    from ..plot import plot_embedding_map

    def draw(pipe: Any) -> Path:
        vectors, people, subsets = _labelled_faces(pipe, folders)
        marks = subsets if len(folders) > 1 else None
        return plot_embedding_map(vectors, people, out, method=method, metric=pipe.spec.metric, seed=seed, markers=marks)

    _run(draw, detector, model, threads, max_pixels)


@plot_app.command("distances")
def plot_distances(
    folders: list[Path] = typer.Argument(..., help="Folders with one sub-folder per person."),
    out: Path = OutOpt,
    threshold: Optional[float] = typer.Option(None, help="Colour split (default: the model's threshold)."),
    detector: str = DetectorOpt,
    model: str = ModelOpt,
    threads: Optional[int] = ThreadsOpt,
    max_pixels: int = MaxPixelsOpt,
) -> None:
    """Heat map of the distances between all faces, grouped by person."""
    from ..plot import plot_distance_matrix

    def draw(pipe: Any) -> Path:
        vectors, people, _ = _labelled_faces(pipe, folders)
        thr = pipe.spec.threshold if threshold is None else threshold
        return plot_distance_matrix(vectors, people, out, metric=pipe.spec.metric, threshold=thr)

    _run(draw, detector, model, threads, max_pixels)


@plot_app.command("pair")
def plot_pair_cmd(
    image_a: Path = typer.Argument(..., help="First photo."),
    image_b: Path = typer.Argument(..., help="Second photo."),
    out: Path = OutOpt,
    threshold: Optional[float] = typer.Option(None, help="Distance threshold (default: the model's)."),
    detector: str = DetectorOpt,
    model: str = ModelOpt,
    threads: Optional[int] = ThreadsOpt,
    max_pixels: int = MaxPixelsOpt,
) -> None:
    """The aligned central faces of two photos side by side, with their distance and verdict."""
    from ..decide import verify_embeddings
    from ..errors import NoFaceError
    from ..pipeline import select_face
    from ..plot import plot_pair

    def draw(pipe: Any) -> Path:
        faces = []
        for path in (image_a, image_b):
            image = pipe.load(path)
            found = pipe.faces_batch([image], keep_chips=True)[0]
            if not found:
                raise NoFaceError(f"no face found in {path}; use a photo where the face is visible")
            faces.append(found[select_face([f.detection for f in found], image.shape)])
        thr = pipe.spec.threshold if threshold is None else threshold
        v = verify_embeddings(faces[0].embedding.vector, faces[1].embedding.vector, thr, pipe.spec.metric)
        chips = [f.chip.pixels for f in faces]
        return plot_pair(chips[0], chips[1], v, out, titles=(image_a.name, image_b.name))

    _run(draw, detector, model, threads, max_pixels)
