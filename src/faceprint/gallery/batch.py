"""Batch enrolment of large photo collections, in this process or spread over Ray Data actors.

    >>> from faceprint import Gallery
    >>> from faceprint.gallery.batch import enrol_batch
    >>> with Gallery("people.db", model="dlib-resnet-v1") as g:
    ...     enrol_batch(g, "photos/")             # or photos.csv / photos.parquet with path,name columns
    {'enrolled': 13233, 'skipped': 0, 'failed': 0, 'seconds': 410.2, 'photos_per_s': 32.3}

Three stages, whichever backend runs the networks:

1. plan (driver): list the (person, photo) pairs, hash every file (a thread pool: it is I/O), and
   drop photos whose sha256 the gallery already holds (fetched once, one query) or that appear twice.
2. embed: :func:`_embed_rows`, the same code in-process (the gallery's own pipeline) and in every
   Ray actor (its own pipeline, loaded once per actor): the most central face of each photo.
3. commit (driver only): one transaction per batch of results; unusable photos go to the report.

Resumable and idempotent: a photo is known by its content hash, and ``store.add`` checks it again
inside the write lock, so a rerun after a kill, a photo listed twice, or another process enrolling
the same collection never stores one photo twice. A killed run loses only the batches it had not
committed; the rerun skips what is stored and ends with the gallery an uninterrupted run makes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from .._resources import sha256_file
from ..errors import FaceprintError, GalleryError, LowQualityError
from ..imageio import DEFAULT_MAX_PIXELS, load_image
from ..pipeline import FacePipeline, iter_known_dir, select_face
from .gallery import Gallery
from .store import NewSample, check_name

__all__ = ["MANIFEST_SUFFIXES", "enrol_batch", "read_source", "require_ray"]

MANIFEST_SUFFIXES = (".csv", ".parquet")
SCALE_EXTRA = "pip install 'faceprint[scale]'"

Rows = dict[str, np.ndarray]  # columns of one batch, all of the same length n


# -- 1. the source and the plan ------------------------------------------------------------------
def read_source(source: str | Path) -> list[tuple[str, Path]]:
    """(person, photo path) pairs of a folder (one sub-folder, or one photo, per person) or of a
    ``.csv`` / ``.parquet`` manifest with ``path`` and ``name`` columns (relative paths are taken
    from the manifest's folder). GalleryError when the source is missing or not one of these."""
    p = Path(source)
    if p.is_dir():
        return list(iter_known_dir(p))
    if not p.exists():
        raise GalleryError(
            f"{p} does not exist: give a folder of photos (one sub-folder per person) or a .csv/.parquet "
            "manifest with path,name columns"
        )
    if p.suffix.lower() not in MANIFEST_SUFFIXES:
        raise GalleryError(f"{p} is a {p.suffix or 'suffix-less'} file: give a folder, or a manifest ending in .csv or .parquet")
    try:
        import pandas as pd  # ray[data] brings pandas and pyarrow; plain installs need not have them
    except ImportError:
        raise GalleryError(f"reading the manifest {p} needs pandas: {SCALE_EXTRA}") from None
    try:
        if p.suffix.lower() == ".csv":
            # every cell as text: a person called "1984" stays a name, an empty cell stays ""
            df = pd.read_csv(p, dtype=str, keep_default_na=False)
        else:
            df = pd.read_parquet(p)
    except ImportError as exc:  # parquet without pyarrow
        raise GalleryError(f"reading the manifest {p} needs pyarrow ({exc}): {SCALE_EXTRA}") from None
    except (OSError, ValueError) as exc:  # pandas' parse errors and pyarrow's ArrowInvalid are ValueErrors
        raise GalleryError(f"cannot read the manifest {p}: {exc}") from None
    if not {"path", "name"} <= set(df.columns):
        raise GalleryError(
            f"the manifest {p} has columns {[str(c) for c in df.columns]}; it needs 'path' and 'name' (one row per photo)"
        )
    # Path / an absolute path is that path: only relative ones are taken from the manifest's folder
    return [(_text(name), p.parent / _text(path)) for path, name in zip(df["path"], df["name"])]


def _text(value: object) -> str:
    """A manifest cell as text: a missing one (None, NaN in parquet) as ""."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _name_problem(name: str) -> str:
    """Why a person name cannot be stored ("" when it can): the store would refuse the whole
    batch for it, so such a photo is reported alone instead."""
    try:
        check_name(name)
    except GalleryError as exc:
        return str(exc)
    return ""


def _digest(path: Path) -> tuple[str | None, str]:
    """(sha256 hex, "") of a file, or (None, why it cannot be read)."""
    try:
        return sha256_file(path), ""
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"


def _plan(
    gallery: Gallery, items: Sequence[tuple[str, Path]], report: _Report
) -> tuple[list[tuple[str, str, str]], int]:
    """The (person, path, sha256) still to enrol, and how many photos are skipped (already stored,
    or listed twice). Photos that cannot be read or named go to ``report``."""
    stored = gallery.store.hashes()
    todo: list[tuple[str, str, str]] = []
    skipped = 0
    chunk = 4096  # futures for a few thousand files at a time, not for a million
    with ThreadPoolExecutor(max_workers=8) as pool:  # hashing is file reading: threads overlap it
        for a in range(0, len(items), chunk):
            part = items[a : a + chunk]
            for (name, path), (sha, why) in zip(part, pool.map(_digest, [p for _, p in part])):
                why = why or _name_problem(name)
                if why:
                    report.add(str(path), name, why)
                elif sha in stored:
                    skipped += 1
                else:
                    stored.add(sha)  # type: ignore[arg-type]  # a second copy of a photo is skipped too
                    todo.append((name, str(path), sha))  # type: ignore[arg-type]
    return todo, skipped


# -- 2. embedding: the same function in-process and in each Ray actor ----------------------------
def _embed_rows(
    pipeline: FacePipeline, paths: Sequence[str], shas: Sequence[str], min_quality: float | None = None
) -> Rows:
    """The most central face of each photo, the way :meth:`Gallery.enrol` picks it (and refuses
    it below the quality floor: ``min_quality``, else the pipeline's).

    Returns n rows: vector (n, D) float32, box (n, 4) pixels (left, top, right, bottom),
    landmarks (n, 5, 2) pixels (NaN when the detector gives none), quality (n,) in [0, 1], and
    error (n,) str: "" for a face, else why the photo is unusable (its vector is then zeros).
    """
    n, dim = len(paths), pipeline.spec.embedding_size
    out: Rows = {
        "vector": np.zeros((n, dim), np.float32),
        "box": np.full((n, 4), np.nan),
        "landmarks": np.full((n, 5, 2), np.nan),
        "quality": np.full(n, np.nan),
        "error": np.array([""] * n, dtype=object),
    }
    rows, images = [], []
    for i, (path, sha) in enumerate(zip(paths, shas)):
        try:
            data = Path(path).read_bytes()
            # the stored hash must be that of the pixels embedded, even if the file changed since planning
            if hashlib.sha256(data).hexdigest() != sha:
                raise GalleryError(f"{path} changed while it was being enrolled; run again")
            images.append(load_image(data, max_pixels=pipeline.max_pixels, name=str(path)))
            rows.append(i)
        except (OSError, FaceprintError) as exc:
            out["error"][i] = str(exc) or type(exc).__name__
    for i, image, faces in zip(rows, images, pipeline.faces_batch(images) if images else []):
        if not faces:
            out["error"][i] = f"no face found in {paths[i]}"
            continue
        face = faces[select_face([f.detection for f in faces], image.shape, "center")]
        det = face.detection
        floor = pipeline.min_quality if min_quality is None else min_quality
        if det.quality is not None and det.quality < floor:
            out["error"][i] = str(LowQualityError.of(det.quality, floor, paths[i]))
            continue
        out["vector"][i] = face.embedding.vector
        out["box"][i] = det.box
        if det.landmarks is not None:
            out["landmarks"][i] = det.landmarks
        out["quality"][i] = det.quality
    return out


def _local_batches(
    gallery: Gallery, todo: Sequence[tuple[str, str, str]], batch_size: int
) -> Generator[Rows, None, None]:
    """Results of ``todo`` embedded here by the gallery's own pipeline (built on the first batch)."""
    for a in range(0, len(todo), batch_size):
        names, paths, shas = zip(*todo[a : a + batch_size])
        yield {"name": np.array(names, object), "path": np.array(paths, object), "sha256": np.array(shas, object),
               **_embed_rows(gallery.pipeline, paths, shas, gallery.min_quality)}


class RayEmbedder:
    """A Ray Data actor: loads the models once, then embeds batches of {path, name, sha256} rows.

    settings: FacePipeline keyword arguments (:func:`_worker_settings`); threads is always 1.
    """

    def __init__(self, **settings: Any) -> None:
        from ..runtime import set_default_threads

        set_default_threads(1)  # one CPU per actor: no thread oversubscription between actors
        self.pipeline = FacePipeline(threads=1, **settings)

    def __call__(self, batch: Rows) -> Rows:
        return {**batch, **_embed_rows(self.pipeline, [str(p) for p in batch["path"]], [str(s) for s in batch["sha256"]])}


def require_ray(address: str | None = None) -> Any:
    """The ``ray`` module with Ray Data; GalleryError naming the extra to install when it is
    missing, or when nothing answers at a ``host:port`` cluster ``address`` (``ray.init`` would
    wait minutes for it)."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise GalleryError(f"enrolling with Ray needs ray[data]: {SCALE_EXTRA}") from None
    host, sep, port = (address or "").split("://", 1)[-1].rpartition(":")
    if sep and port.isdigit():  # not "auto"/"local", which Ray resolves itself
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise GalleryError(
                f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one there with "
                "`ray start --head`, or leave out the address to start a local Ray"
            ) from None
    return ray


def _worker_settings(gallery: Gallery) -> dict[str, Any]:
    """The FacePipeline arguments that make each actor's descriptors the gallery pipeline's own."""
    pipe = gallery._pipeline  # set when the gallery was given a pipeline: follow its choices
    if pipe is None:  # the gallery builds its own from its model and detector name
        return {"model": gallery.spec.name, "detector": gallery._detector, "max_pixels": DEFAULT_MAX_PIXELS,
                "min_quality": gallery._min_quality}
    if pipe.embedder.weights is not None:
        raise GalleryError(
            "the gallery's pipeline loads an explicit weights file, which Ray workers may not see; enrol without --ray"
        )
    return {
        "model": gallery.spec.name, "detector": pipe.detector.name, "max_pixels": pipe.max_pixels,
        "landmarks": pipe.landmarks, "flip": pipe.embedder.flip, "jitter": pipe.embedder.jitter,
        "min_quality": gallery.min_quality,
    }


@contextmanager
def _quiet_ray_data(ray: Any) -> Iterator[None]:
    """Ray Data logs and draws progress bars for every execution on the console (and warns when
    they are off): keep only its errors while we run (our own bar counts committed photos), then
    put its settings back."""
    logger = logging.getLogger("ray.data")
    with warnings.catch_warnings():
        # Ray 2.60's DataContext() warns about its own defaults for deprecated fields (a Ray bug)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.data\.context")
        ctx = ray.data.DataContext.get_current()
    saved = logger.level, ctx.enable_progress_bars, ctx.print_on_execution_start
    logger.setLevel(logging.ERROR)
    ctx.enable_progress_bars = ctx.print_on_execution_start = False
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        ctx.enable_progress_bars, ctx.print_on_execution_start = saved[1:]


def _ray_batches(
    gallery: Gallery, todo: Sequence[tuple[str, str, str]], *, address: str | None, workers: int | None, batch_size: int
) -> Generator[Rows, None, None]:
    """Results of ``todo`` embedded by a pool of Ray actors (``workers``, one CPU each), as they
    come (in any order). Starts a Ray here unless this process already runs one, and shuts down
    only the one it started."""
    settings = _worker_settings(gallery)
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage-stats notice on the console
        try:
            ray.init(
                address=address, num_cpus=None if address else workers, include_dashboard=False,
                log_to_driver=False, logging_level=logging.ERROR,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"join the Ray cluster at {address}" if address else "start a local Ray"
            raise GalleryError(f"could not {where}: {exc}") from None
    try:
        with _quiet_ray_data(ray):
            blocks = max(1, math.ceil(len(todo) / batch_size))  # one block per batch
            # never more actors than batches: an idle actor only loads models (and Ray warns)
            size = min(blocks, workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
            ds = ray.data.from_items(
                [{"path": p, "name": n, "sha256": s} for n, p, s in todo], override_num_blocks=blocks
            )
            ds = ds.map_batches(
                RayEmbedder, fn_constructor_kwargs=settings, compute=ray.data.ActorPoolStrategy(size=size),
                batch_size=batch_size, num_cpus=1, batch_format="numpy",
            )
            try:
                yield from ds.iter_batches(batch_size=batch_size, batch_format="numpy")
            except ray.exceptions.RayError as exc:  # a worker could not load its models, or died
                lines = [line for line in str(exc).splitlines() if line.strip()]
                raise GalleryError(f"a Ray worker failed: {lines[-1] if lines else type(exc).__name__}") from exc
    finally:
        if started:
            ray.shutdown()


# -- 3. committing and reporting ------------------------------------------------------------------
class _Report:
    """Unusable photos: kept in memory, and written as they come to a CSV (``.csv``) or JSON lines
    file (any other suffix) with path, name and reason, so a killed run's report is complete so far."""

    def __init__(self, path: Path | None) -> None:
        self.rows: list[dict[str, str]] = []
        self._fh: IO[str] | None = None
        self._csv: Any = None
        if path is not None:
            try:
                self._fh = open(path, "w", newline="", encoding="utf-8")
            except OSError as exc:
                raise GalleryError(f"cannot write the report {path}: {exc.strerror or exc}") from None
            if path.suffix.lower() == ".csv":
                self._csv = csv.DictWriter(self._fh, fieldnames=["path", "name", "reason"])
                self._csv.writeheader()

    def add(self, path: str, name: str, reason: str) -> None:
        row = {"path": path, "name": name, "reason": reason}
        self.rows.append(row)
        if self._fh is not None:
            if self._csv is not None:
                self._csv.writerow(row)
            else:
                self._fh.write(json.dumps(row) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def _commit(gallery: Gallery, rows: Rows, report: _Report) -> tuple[int, int]:
    """Store one batch of results in one transaction: (enrolled, skipped as stored meanwhile)."""
    samples = []
    for i, error in enumerate(rows["error"]):
        path, name = str(rows["path"][i]), str(rows["name"][i])
        if error:
            report.add(path, name, str(error))
            continue
        lm = rows["landmarks"][i]
        samples.append(
            NewSample(
                name, np.asarray(rows["vector"][i], np.float32), os.path.abspath(path), str(rows["sha256"][i]),
                tuple(float(v) for v in rows["box"][i]), None if np.isnan(lm).any() else lm,
                float(rows["quality"][i]),
            )
        )
    ids = gallery.store.add(samples) if samples else []
    new = sum(i is not None for i in ids)
    return new, len(ids) - new  # None: another process stored the photo since we planned


def enrol_batch(
    gallery: Gallery,
    source: str | Path | Iterable[tuple[str, str | Path]],
    *,
    ray: bool = False,
    ray_address: str | None = None,
    workers: int | None = None,
    batch_size: int = 32,
    report: Path | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Enrol a photo collection, one sample per photo (its most central face), resumably.

    source: a folder (one sub-folder per person), a ``.csv``/``.parquet`` manifest with ``path``
        and ``name`` columns, or (person, photo) pairs.
    ray: embed on Ray Data actors, one CPU each: a local Ray with ``workers`` CPUs started (and
        shut down) here, or the cluster at ``ray_address`` (implies ``ray``), or the Ray this
        process already runs.
        Only this process writes. Without ``ray``, the gallery's own pipeline runs here.
    workers: Ray actors (default: one per CPU of the Ray cluster); batch_size: photos per network
        batch and per transaction.
    report: write unusable photos (unreadable, not an image, truncated, no face, bad name) here,
        CSV for ``.csv`` else JSON lines, with path, name and reason. They never stop the run.

    Returns {"enrolled", "skipped" (already stored or listed twice), "failed", "seconds" (wall
    time, Ray start-up included), "photos_per_s" (photos of the source per second)}.
    """
    if batch_size < 1:
        raise GalleryError(f"batch_size must be at least 1, got {batch_size}")
    if workers is not None and workers < 1:
        raise GalleryError(f"workers must be at least 1, got {workers}")
    t0 = time.perf_counter()
    if isinstance(source, (str, Path)):
        items = read_source(source)
    else:
        items = [(name, Path(path)) for name, path in source]
    ray = ray or ray_address is not None
    if ray:
        require_ray(ray_address)  # fail before any work when Ray is missing or the cluster is not there
    out = _Report(report)
    try:
        todo, skipped = _plan(gallery, items, out)
        enrolled = 0
        if ray and todo:
            batches: Generator[Rows, None, None] = _ray_batches(
                gallery, todo, address=ray_address, workers=workers, batch_size=batch_size
            )
        else:
            batches = _local_batches(gallery, todo, batch_size)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="enrolling", unit="photo", file=sys.stderr, disable=not progress or None)
        try:
            for rows in batches:
                new, known = _commit(gallery, rows, out)
                enrolled, skipped = enrolled + new, skipped + known
                bar.update(len(rows["error"]))
                bar.set_postfix(enrolled=enrolled, failed=len(out.rows), refresh=False)
        finally:
            batches.close()  # now, not at garbage collection: a Ray started here shuts down
            bar.close()
    finally:
        out.close()
    seconds = time.perf_counter() - t0
    return {
        "enrolled": enrolled,
        "skipped": skipped,
        "failed": len(out.rows),
        "seconds": round(seconds, 3),
        "photos_per_s": round(len(items) / seconds, 2) if seconds > 0 else 0.0,
    }
