"""``faceprint cluster``: group every face of some photos by person, without labels."""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..cluster import CLUSTER_METHODS, DEFAULT_CLUSTER_METHOD, ClusteredFaces, cluster_images
from ..errors import FaceprintError
from ..pipeline import IMAGE_SUFFIXES
from .common import DetectorOpt, JsonOpt, MaxPixelsOpt, ModelOpt, ThreadsOpt, _emit, _pipeline, _round, err

__all__ = ["cluster", "find_images", "register"]


def register(app: typer.Typer) -> None:
    app.command("cluster")(cluster)


def find_images(paths: list[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files named or inside the folders (recursively, sorted), and (path, reason) for missing ones."""
    files: list[Path] = []
    missing: list[tuple[str, str]] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            missing.append((str(p), f"{p} does not exist: give image files or folders"))
    return files, missing


def cluster(
    paths: list[Path] = typer.Argument(..., help="Photos and/or folders of photos (searched recursively)."),
    method: str = typer.Option(
        DEFAULT_CLUSTER_METHOD, "--method", help=f"One of: {', '.join(CLUSTER_METHODS)}."
    ),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", help="Same-person distance (default: the method's tuned value)."
    ),
    min_size: int = typer.Option(
        2, "--min-size", min=1, help="Smallest group; faces in smaller ones are noise (1: lone faces are groups)."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Write one folder of face crops per group and an index.html contact sheet here."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of Chinese whispers' visiting order."),
    detector: Optional[str] = DetectorOpt,
    model: str = ModelOpt,
    json_out: bool = JsonOpt,
    threads: Optional[int] = ThreadsOpt,
    max_pixels: int = MaxPixelsOpt,
) -> None:
    """Group every face of some photos by person; faces in no group are noise.

    JSON: {"clusters": [{"id", "faces": [{"image", "box"}]}], "noise": [{"image", "box"}], "skipped": [...]}.
    """
    if method not in CLUSTER_METHODS:
        raise typer.BadParameter(f"{method!r} is not one of {', '.join(CLUSTER_METHODS)}", param_hint="--method")
    files, missing = find_images(paths)
    pipe = _pipeline(detector, model, threads, max_pixels)
    try:
        result = cluster_images(pipe, files, method, threshold, min_size=min_size, seed=seed, progress=True)
    except (FaceprintError, ValueError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    skipped = missing + list(result.skipped)
    for path, reason in skipped:
        err.print(f"[yellow]skipped[/] {path}: {reason}")

    def face(i: int) -> dict[str, Any]:
        return {"image": result.sources[i], "box": _round(result.faces[i].detection.ltwh())}

    payload = {
        "clusters": [{"id": k, "faces": [face(i) for i in members]} for k, members in enumerate(result.groups())],
        "noise": [face(i) for i in result.noise()],
        "skipped": [{"image": p, "error": r} for p, r in skipped],
    }
    if out is not None:
        sheet = write_contact_sheet(result, pipe, out)
        err.print(f"face crops and contact sheet written to {sheet}")
    if json_out:
        _emit(payload)
    else:
        table = Table("cluster", "faces", "photos")
        for c in payload["clusters"]:
            names = sorted({Path(f["image"]).name for f in c["faces"]})
            table.add_row(str(c["id"]), str(len(c["faces"])), ", ".join(names[:4]) + (" ..." if len(names) > 4 else ""))
        if payload["noise"]:
            table.add_row("noise", str(len(payload["noise"])), "")
        Console().print(table)
        typer.echo(f"{len(result.faces)} faces in {len(files) - len(result.skipped)} photos, {len(payload['clusters'])} clusters ({method})")
    raise typer.Exit(1 if skipped else 0)


def write_contact_sheet(result: ClusteredFaces, pipe: Any, out: Path, *, height: int = 112) -> Path:
    """Face crops in ``out/cluster_NNN/`` and ``out/noise/``, and ``out/index.html`` showing them all."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    folder = [f"cluster_{k:03d}" if k >= 0 else "noise" for k in result.labels]
    crops: list[str] = [""] * len(result.faces)
    by_image: dict[str, list[int]] = defaultdict(list)
    for i, src in enumerate(result.sources):
        by_image[src].append(i)
    for src, idx in by_image.items():  # each photo is decoded once
        image = pipe.load(src)
        for i in idx:
            left, top, right, bottom = result.faces[i].detection.box
            pad = 0.2 * max(right - left, bottom - top)  # some context around the face
            box = (max(0, int(left - pad)), max(0, int(top - pad)),
                   min(image.shape[1], int(right + pad)), min(image.shape[0], int(bottom + pad)))
            crop = Image.fromarray(image[box[1] : box[3], box[0] : box[2]])
            crop = crop.resize((max(1, round(crop.width * height / max(crop.height, 1))), height))
            rel = Path(folder[i]) / f"{i:05d}_{Path(src).stem}.jpg"
            (out / rel.parent).mkdir(exist_ok=True)
            crop.save(out / rel, quality=90)
            crops[i] = rel.as_posix()
    sections = [(f"Cluster {k}", members) for k, members in enumerate(result.groups())]
    if result.noise():
        sections.append(("Noise (belongs to no cluster)", result.noise()))
    body = []
    for title, members in sections:
        imgs = "".join(
            f'<img src="{html.escape(crops[i])}" title="{html.escape(result.sources[i])}" height="{height}">'
            for i in members
        )
        body.append(f"<h2>{html.escape(title)} <small>({len(members)} faces)</small></h2><div>{imgs}</div>")
    sheet = out / "index.html"
    sheet.write_text(
        "<!doctype html><meta charset='utf-8'><title>faceprint clusters</title>"
        "<style>body{font-family:sans-serif}img{margin:2px}</style>"
        f"<h1>{len(result.faces)} faces, {len(result.groups())} clusters</h1>" + "".join(body) + "\n"
    )
    return sheet
