"""`faceprint gallery --db PATH ...`: a persistent gallery of enrolled people (issue 4).

JSON shapes (stable): ``list --json`` -> ``[{"name": str, "samples": int}]``; ``identify --json``
-> the same list as ``faceprint identify --json``; ``enrol --json`` -> ``{"enrolled": [...],
"duplicates": [...], "failed": [{"image", "person", "error"}]}``.
Exit codes: 0 done, 1 some inputs could not be used, 2 error (nothing changed by the failed step).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import FaceprintError
from .common import (
    AnnotateOpt, DetectorOpt, FarOpt, JsonOpt, MinQualityOpt, ThreadsOpt, _emit, fail, identify_images,
    print_identities,
)

gallery_app = typer.Typer(
    help="A persistent gallery of enrolled people in a SQLite file or a PostgreSQL database: enrol, identify, edit, export.",
    no_args_is_help=True,
)

GALLERY_MODEL = typer.Option(
    None, "--model", "-m", help="Embedding model (default: the gallery's own; dlib-resnet-v1 for a new one)."
)


@gallery_app.callback()
def _main(
    ctx: typer.Context,
    db: str = typer.Option(
        ..., "--db", envvar="FACEPRINT_GALLERY",
        help="The gallery: a SQLite file (created on first enrol) or postgresql://user@host:port/dbname.",
    ),
    model: Optional[str] = GALLERY_MODEL,
    detector: Optional[str] = DetectorOpt,
    threads: Optional[int] = ThreadsOpt,
    index: str = typer.Option("auto", "--index", help="Search index: auto (exact below 20k faces, then faiss IVF), exact, ivf."),
    min_quality: Optional[float] = MinQualityOpt,
) -> None:
    ctx.obj = {
        "db": db, "model": model, "detector": detector, "threads": threads, "index": index, "min_quality": min_quality,
    }


def _is_new(db: str) -> bool:
    """Whether --db names no gallery yet (a missing file; a PostgreSQL database without one)."""
    from ..gallery.store import is_url, open_store

    if not is_url(db):
        return not Path(db).exists()
    try:
        store = open_store(db)
    except FaceprintError as exc:
        fail(exc)
    try:
        return store.get_meta("model_id") is None
    finally:
        store.close()


@contextmanager
def _open(ctx: typer.Context, *, create: bool = False, json_out: bool = False, model: str | None = None) -> Iterator[Any]:
    """The gallery of --db; a FaceprintError prints its message and exits 2."""
    from ..gallery import Gallery

    o = ctx.obj
    try:
        g = Gallery(
            o["db"], model=model or o["model"], detector=o["detector"], threads=o["threads"], index=o["index"],
            create=create, min_quality=o.get("min_quality"),
        )
        try:
            yield g
        finally:
            g.close()
    except FaceprintError as exc:
        fail(exc, json_out)


def _enrol_items(paths: list[Path], names: list[str]) -> list[tuple[str, Path]]:
    """(person, photo) pairs: folders as in `identify --known`; files named by --name (in order) or their stem."""
    from ..pipeline import iter_known_dir

    files = [p for p in paths if not p.is_dir()]
    if names and len(names) != len(files):
        raise typer.BadParameter(
            f"{len(names)} --name for {len(files)} image file(s): give one --name per image, in order, or none "
            "(each image is then named after its file)", param_hint="--name",
        )
    given = iter(names)
    items: list[tuple[str, Path]] = []
    for p in paths:
        if p.is_dir():
            items += list(iter_known_dir(p))
        else:
            items.append((next(given) if names else p.stem, p))
    return items


@gallery_app.command()
def enrol(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="Folders (one sub-folder or one photo per person) and/or photos."),
    name: list[str] = typer.Option([], "--name", "-n", help="Person of each photo argument, in order."),
    json_out: bool = JsonOpt,
) -> None:
    """Enrol people; photos already enrolled (same content) are skipped, unusable ones reported."""
    from tqdm.auto import tqdm

    items = _enrol_items(paths, name)
    with _open(ctx, create=True, json_out=json_out) as g:
        bar = tqdm(total=len(items), desc="enrolling", unit="photo", file=sys.stderr, disable=json_out or None)

        def progress(r: Any) -> None:
            bar.update(1)
            if r.status == "failed":
                bar.write(f"skipped {r.source}: {r.message}", file=sys.stderr)

        report = g.enrol(items, on_result=progress)
        bar.close()
    out = {
        "enrolled": [{"image": r.source, "person": r.person, "sample": r.sample_id} for r in report.enrolled],
        "duplicates": [{"image": r.source, "person": r.person} for r in report.duplicates],
        "failed": [{"image": r.source, "person": r.person, "error": r.message} for r in report.failed],
    }
    if json_out:
        _emit(out)
    else:
        typer.echo(
            f"enrolled {len(report.enrolled)} photo(s); {len(report.duplicates)} already enrolled, "
            f"{len(report.failed)} unusable"
        )
    raise typer.Exit(1 if report.failed else 0)


@gallery_app.command()
def identify(
    ctx: typer.Context,
    images: list[Path] = typer.Argument(..., help="Photos to identify."),
    threshold: Optional[float] = typer.Option(None, help="Distance threshold (default: the gallery's, else the model's)."),
    far: Optional[float] = FarOpt,
    json_out: bool = JsonOpt,
    annotate: Optional[Path] = AnnotateOpt,
) -> None:
    """Who is in these photos? Faces farther than the threshold from everyone are unknown."""
    with _open(ctx, json_out=json_out) as g:
        try:
            threshold = g.threshold_at_far(far) if far is not None else threshold if threshold is not None else g.threshold
        except FaceprintError as exc:
            fail(exc, json_out)
        results, failed = identify_images(g, images, None, threshold, annotate)
    if json_out:
        _emit(results)
    else:
        print_identities(results)
    raise typer.Exit(1 if failed else 0)


@gallery_app.command("list")
def list_people(ctx: typer.Context, json_out: bool = JsonOpt) -> None:
    """Everyone enrolled, with their number of samples."""
    with _open(ctx, json_out=json_out) as g:
        people = g.people()
    if json_out:
        _emit([{"name": n, "samples": c} for n, c in people])
        return
    table = Table("name", "samples")
    for n, c in people:
        table.add_row(n, str(c))
    Console().print(table)


@gallery_app.command()
def remove(ctx: typer.Context, name: str = typer.Argument(..., help="Person to remove with all their samples.")) -> None:
    """Remove a person and their samples."""
    with _open(ctx) as g:
        n = g.remove(name)
    typer.echo(f"removed {name} ({n} sample(s))")


@gallery_app.command()
def rename(ctx: typer.Context, old: str = typer.Argument(...), new: str = typer.Argument(...)) -> None:
    """Rename a person (use merge to join two people)."""
    with _open(ctx) as g:
        g.rename(old, new)
    typer.echo(f"renamed {old} -> {new}")


@gallery_app.command()
def merge(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="Person whose samples move (removed afterwards)."),
    target: str = typer.Argument(..., help="Person who receives them."),
) -> None:
    """Merge two people: all samples of SOURCE become TARGET's."""
    with _open(ctx) as g:
        n = g.merge(source, target)
    typer.echo(f"merged {source} into {target} ({n} sample(s) moved)")


@gallery_app.command("export")
def export_cmd(ctx: typer.Context, file: Path = typer.Argument(..., help="Portable .npz file to write.")) -> None:
    """Write people, samples and descriptors to a portable file."""
    with _open(ctx) as g:
        n = g.export(file)
    typer.echo(f"exported {n} sample(s) to {file}")


@gallery_app.command("import")
def import_cmd(ctx: typer.Context, file: Path = typer.Argument(..., help="A file written by `gallery export`.")) -> None:
    """Add the people and samples of an exported gallery (same model); known photos are skipped."""
    from ..gallery import read_export

    model = None
    if _is_new(ctx.obj["db"]):  # a new gallery takes the export's model
        try:
            model = read_export(file)[0]["model_id"]
        except FaceprintError as exc:
            fail(exc)
    with _open(ctx, create=True, model=model) as g:
        r = g.import_file(file)
    typer.echo(f"imported {r['added']} sample(s), {r['duplicates']} already present")


@gallery_app.command()
def reembed(
    ctx: typer.Context,
    to_model: str = typer.Option(..., "--to", help="Model to re-embed every sample with."),
    drop_missing: bool = typer.Option(False, "--drop-missing", help="Remove samples whose photo is gone or changed."),
) -> None:
    """Re-embed every sample from its photo with another model (all or nothing)."""
    from ..pipeline import FacePipeline

    o = ctx.obj
    with _open(ctx) as g:
        pipe = FacePipeline(detector=o["detector"], model=to_model, threads=o["threads"])
        r = g.reembed(pipe, drop_missing=drop_missing)
    typer.echo(f"re-embedded {r['reembedded']} sample(s) with {r['model']}; {r['dropped']} dropped")


@gallery_app.command()
def info(
    ctx: typer.Context,
    threshold: Optional[float] = typer.Option(None, "--set-threshold", help="Set this gallery's distance threshold."),
    reset_threshold: bool = typer.Option(False, "--reset-threshold", help="Go back to the model's threshold."),
    check: bool = typer.Option(False, "--check", help="Also run SQLite's integrity check."),
    json_out: bool = JsonOpt,
) -> None:
    """Model, threshold, sizes and index of the gallery (and set its threshold)."""
    with _open(ctx, json_out=json_out) as g:
        if threshold is not None or reset_threshold:
            g.set_threshold(None if reset_threshold else threshold)
        out = g.info()
        if check:
            out["integrity"] = g.check()
    if json_out:
        _emit(out)
    else:
        for k, v in out.items():
            typer.echo(f"{k}: {v}")
    if check and out["integrity"] != "ok":
        raise typer.Exit(1)


@gallery_app.command("enrol-batch")
def enrol_batch_cmd(
    ctx: typer.Context,
    source: Path = typer.Argument(
        ..., help="A folder (one sub-folder of photos per person) or a .csv/.parquet manifest with path,name columns."
    ),
    use_ray: bool = typer.Option(False, "--ray", help="Embed on Ray Data actors, one CPU each (a local Ray unless --ray-address)."),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="Join this Ray cluster (e.g. auto, ray://head:10001) instead of starting one; implies --ray."
    ),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Ray actors (default: one per CPU of the cluster)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Photos per network batch and per transaction."),
    report: Optional[Path] = typer.Option(
        None, "--report", help="Write unusable photos here (path, name, reason): CSV for .csv, else JSON lines."
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Enrol a large photo collection in batches, resumably: photos already stored are skipped, so a
    rerun after a kill finishes the job. JSON: {"enrolled", "skipped", "failed", "seconds", "photos_per_s"}."""
    from ..gallery.batch import enrol_batch, read_source, require_ray

    use_ray = use_ray or ray_address is not None
    try:  # check the source and Ray before the gallery is opened: a bad call creates no gallery
        items = read_source(source)
        if use_ray:
            require_ray(ray_address)
    except FaceprintError as exc:
        fail(exc, json_out)
    with _open(ctx, create=True, json_out=json_out) as g:
        counts = enrol_batch(
            g, items, ray=use_ray, ray_address=ray_address, workers=workers, batch_size=batch_size,
            report=report, progress=not json_out,
        )
    if json_out:
        _emit(counts)
    else:
        where = f" (listed in {report})" if report is not None else " (--report FILE lists them)" if counts["failed"] else ""
        typer.echo(
            f"enrolled {counts['enrolled']} photo(s); {counts['skipped']} already enrolled, {counts['failed']} "
            f"unusable{where}; {counts['photos_per_s']:.1f} photos/s"
        )
    raise typer.Exit(1 if counts["failed"] else 0)
