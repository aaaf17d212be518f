"""The gallery facade: enrol people from photos, keep them in SQLite, identify faces against them.

    >>> from faceprint import Gallery
    >>> with Gallery("people.db") as g:
    ...     g.enrol_folder("known/")                  # one sub-folder (or one photo) per person
    ...     g.identify("door.jpg")                    # [(Face, [Match(identity or None, distance)])]

The SQLite file (:mod:`.store`) is the truth; the vector index (:mod:`.index`) is a cache of it,
synchronised before every search by the store's generation counter, and (for the IVF backend)
saved beside the file as ``<db>.index`` so a large gallery opens without a rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import zipfile
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._resources import sha256_file
from ..decide import quality_floor, rank_people
from ..errors import FaceprintError, GalleryError, LowQualityError, ModelMismatchError, StorageError
from ..imageio import ImageSource
from ..models import DEFAULT_MODEL, ModelSpec, get_model_spec
from ..pipeline import FacePipeline, iter_known_dir, select_face
from ..quality import DEFAULT_MIN_QUALITY
from ..types import Face, Match
from .index import EXACT_MAX, ExactIndex, IVFIndex, load_index, make_index, save_index
from .store import NewSample, Sample, Sighting, check_name, is_url, open_store, unix_time

__all__ = ["EXPORT_FORMAT", "EnrolReport", "EnrolResult", "Gallery", "read_export"]

EXPORT_FORMAT = "faceprint-gallery/1"

Status = Literal["enrolled", "duplicate", "failed"]


@dataclass(frozen=True)
class EnrolResult:
    """What happened to one photo: enrolled (committed, with its sample id), duplicate or failed."""

    person: str
    source: str
    status: Status
    sample_id: int | None = None
    message: str = ""


@dataclass
class EnrolReport:
    """Every photo's :class:`EnrolResult`, in the order they were given."""

    results: list[EnrolResult] = field(default_factory=list)

    def _count(self, status: Status) -> list[EnrolResult]:
        return [r for r in self.results if r.status == status]

    @property
    def enrolled(self) -> list[EnrolResult]:
        return self._count("enrolled")

    @property
    def duplicates(self) -> list[EnrolResult]:
        return self._count("duplicate")

    @property
    def failed(self) -> list[EnrolResult]:
        return self._count("failed")


def _weights_sha(spec: ModelSpec, pipeline: FacePipeline | None) -> str:
    explicit = pipeline.embedder.weights if pipeline is not None else None
    return sha256_file(explicit) if explicit is not None else spec.weights.sha256


class Gallery:
    """A persistent face gallery in one SQLite file.

    path: the gallery file (created if missing, unless ``create=False``).
    model: embedding model name or spec for a new gallery; for an existing one it must match the
        model (and weights sha256) the gallery was made with, else :class:`ModelMismatchError`.
    pipeline: the FacePipeline to enrol and identify with (default: built on first use with
        ``detector``, the gallery's model and ``threads``); its model must match too.
    index: "auto" (exact below 20k faces, faiss IVF above), "exact" or "ivf".
    timeout: seconds to wait for another process's write before giving up.
    min_quality: the quality floor of enrolment (refused below it) and identification ("too poor
        to decide" below it); None: the pipeline's (``quality.DEFAULT_MIN_QUALITY`` by default).

    One Gallery object is for one thread at a time (its SQLite connection and in-memory index
    are not locked): open one per thread, or guard a shared one with a lock as the HTTP
    service does. Several processes may open the same file at once.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        model: str | ModelSpec | None = None,
        pipeline: FacePipeline | None = None,
        detector: str | None = None,
        threads: int | None = None,
        index: str = "auto",
        create: bool = True,
        timeout: float = 60.0,
        min_quality: float | None = None,
    ) -> None:
        if index not in ("auto", "exact", "ivf"):
            raise ValueError(f"index must be 'auto', 'exact' or 'ivf', got {index!r}")
        url = is_url(path)
        #: the SQLite file, or None for a PostgreSQL gallery; ``location`` names either in messages
        self.path: Path | None = None if url else Path(path)
        if self.path is not None and not create and not self.path.is_file():
            raise GalleryError(f"no gallery at {self.path}: enrol someone first or check --db")
        spec = pipeline.spec if pipeline is not None else None
        if model is not None:
            asked = model if isinstance(model, ModelSpec) else get_model_spec(model)
            if spec is not None and asked.name != spec.name:
                raise ValueError(f"model {asked.name!r} and the pipeline's model {spec.name!r} differ")
            spec = asked
        self.store = open_store(path, timeout=timeout)
        self.location = self.store.location
        try:
            if url and not create and self.store.get_meta("model_id") is None:
                raise GalleryError(f"no gallery at {self.location}: enrol someone first or check --db")
            new = spec or get_model_spec(DEFAULT_MODEL)
            meta = self.store.init_meta(
                {
                    "model_id": new.name,
                    "weights_sha256": _weights_sha(new, pipeline),
                    "metric": new.metric,
                    "dim": str(new.embedding_size),
                }
            )
            if spec is not None:
                self._check_model(meta, spec.name, _weights_sha(spec, pipeline))
            self.spec = spec or get_model_spec(meta["model_id"])
            self.store.expected_model = (meta["model_id"], meta["weights_sha256"]) if spec is None else (
                spec.name, _weights_sha(spec, pipeline))
        except BaseException:
            self.store.close()
            raise
        self._pipeline = pipeline
        self._detector, self._threads = detector, threads
        if min_quality is not None and not 0.0 <= min_quality <= 1.0:
            raise ValueError(f"min_quality must be between 0 and 1, got {min_quality}")
        self._min_quality = min_quality
        self.index_kind = index
        self._index: ExactIndex | IVFIndex | None = None
        self._gen = -1  # store generation the index and owner arrays reflect
        self._epoch = ""
        self._sids = np.zeros(0, np.int64)  # sorted sample ids
        self._pids = np.zeros(0, np.int64)  # person id of each
        self._names: dict[int, str] = {}
        self._unsaved = False

    def _check_model(self, meta: dict[str, str], name: str, sha: str) -> None:
        if meta["model_id"] != name or meta["weights_sha256"] != sha:
            raise ModelMismatchError(
                f"gallery {self.location} was made with model {meta['model_id']!r} (weights sha256 "
                f"{meta['weights_sha256'][:12]}...), not {name!r} (sha256 {sha[:12]}...): open it with its own "
                f"model, or convert it with `faceprint gallery --db {self.location} reembed --model {name}`"
            )

    # -- life cycle -------------------------------------------------------------------------------
    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Save the IVF index if it changed, and close the file."""
        if self._unsaved and isinstance(self._index, IVFIndex):
            self._save_index()
        self.store.close()

    @property
    def pipeline(self) -> FacePipeline:
        if self._pipeline is None:
            self._pipeline = FacePipeline(
                detector=self._detector, model=self.spec, threads=self._threads, min_quality=self._min_quality
            )
        return self._pipeline

    @property
    def min_quality(self) -> float:
        """The quality floor: the one given, else the pipeline's (the default when none is built yet)."""
        if self._min_quality is not None:
            return self._min_quality
        return self._pipeline.min_quality if self._pipeline is not None else DEFAULT_MIN_QUALITY

    @property
    def index_path(self) -> Path:
        """Where the IVF index is saved: beside the SQLite file (PostgreSQL galleries search in the server)."""
        if self.path is None:
            raise GalleryError(f"{self.location} keeps its index in PostgreSQL; there is no index file")
        return self.path.with_name(self.path.name + ".index")

    @property
    def metric(self) -> str:
        return self.store.get_meta("metric") or self.spec.metric

    @property
    def threshold(self) -> float:
        """The open-set distance threshold: the gallery's own, else the model's calibrated one."""
        value = self.store.get_meta("threshold")
        return self.spec.threshold if value is None else float(value)

    def threshold_at_far(self, far: float) -> float:
        """The distance threshold at which a stranger is taken for someone enrolled with rate
        ``far``, for this gallery's number of people (the model's calibration, 1:N-adjusted)."""
        return self.spec.threshold_at(far, enrolled=max(1, len(self.people())))

    def set_threshold(self, value: float | None) -> None:
        """Set this gallery's threshold (None: back to the model's)."""
        if value is not None and not (np.isfinite(value) and value > 0):
            raise GalleryError(f"threshold must be a positive number, got {value}")
        with self.store.write():
            self.store.set_meta("threshold", None if value is None else repr(float(value)))

    # -- reading ----------------------------------------------------------------------------------
    def people(self) -> list[tuple[str, int]]:
        """(name, number of samples) of everyone enrolled, by name."""
        return self.store.counts()

    def people_page(self, limit: int, offset: int = 0) -> tuple[list[tuple[int, str, int]], int]:
        """One page of people by name: ([(id, name, samples)], total number of people)."""
        return self.store.people_page(limit, offset)

    def samples(self, name: str | None = None) -> list[Sample]:
        """The samples of one person (UnknownPersonError if not enrolled) or of everyone."""
        return self.store.samples(name)

    def __len__(self) -> int:
        return self.store.count()

    def info(self) -> dict[str, Any]:
        meta = self.store.meta()
        people = self.people()
        return {
            "path": self.location,
            "model": meta["model_id"],
            "weights_sha256": meta["weights_sha256"],
            "metric": self.metric,
            "dim": int(meta["dim"]),
            "threshold": self.threshold,
            "threshold_source": "gallery" if "threshold" in meta else "model",
            "people": len(people),
            "samples": sum(n for _, n in people),
            "index": "pgvector-hnsw" if self.store.native_search else self._resolve_kind(sum(n for _, n in people)),
            "generation": int(meta.get("generation", 0)),
            "schema": int(meta.get("schema", 0)),
        }

    def check(self) -> str:
        """SQLite's integrity check: "ok" when the file is sound."""
        return self.store.integrity()

    # -- enrolment --------------------------------------------------------------------------------
    def enrol_folder(self, root: str | Path, **kw: Any) -> EnrolReport:
        """Enrol a folder: one sub-folder of photos per person, or one photo per person named after them."""
        return self.enrol(iter_known_dir(root), **kw)

    def enrol(
        self,
        items: Iterable[tuple[str, str | Path]],
        *,
        on_result: Callable[[EnrolResult], None] | None = None,
        batch_size: int = 16,
    ) -> EnrolReport:
        """Enrol (person, photo) pairs: the photo's most central face becomes a sample of the person.

        Each photo is committed in its own transaction *before* ``on_result`` hears of it, so a
        killed process loses only photos it had not reported. Photos whose content (sha256) is
        already enrolled are "duplicate"; unreadable or faceless ones, and faces below the quality
        floor (``min_quality``, the message says so), "failed"; neither stops the run.
        Detection and embedding run ``batch_size`` photos at a time.
        """
        report = EnrolReport()
        items = list(items)
        for name, _ in items:
            check_name(name)  # every name before any photo: a bad one stops the run before it starts

        def done(r: EnrolResult) -> None:
            report.results.append(r)
            if on_result is not None:
                on_result(r)

        for start in range(0, len(items), max(1, batch_size)):
            loaded: list[tuple[str, str, str, np.ndarray]] = []
            seen: set[str] = set()
            for name, path in items[start : start + batch_size]:
                src = str(path)
                try:
                    data = Path(path).read_bytes()
                    sha = hashlib.sha256(data).hexdigest()
                    owner = self.store.has_sha(sha)
                    if owner is not None or sha in seen:
                        done(EnrolResult(name, src, "duplicate", None, f"already enrolled as {owner or name}"))
                        continue
                    loaded.append((name, src, sha, self.pipeline.load(data)))
                    seen.add(sha)
                except (OSError, FaceprintError) as exc:
                    done(EnrolResult(name, src, "failed", None, str(exc) or type(exc).__name__))
            for (name, src, sha, image), faces in zip(loaded, self.pipeline.faces_batch([x[3] for x in loaded])):
                if not faces:
                    done(EnrolResult(name, src, "failed", None, f"no face found in {src}"))
                    continue
                face = faces[select_face([f.detection for f in faces], image.shape, "center")]
                det = face.detection
                if det.quality is not None and det.quality < self.min_quality:
                    low = LowQualityError.of(det.quality, self.min_quality, src)
                    done(EnrolResult(name, src, "failed", None, str(low)))
                    continue
                sid = self.store.add(
                    [
                        NewSample(
                            name, face.embedding.vector, os.path.abspath(src), sha, det.box,
                            det.landmarks, det.quality,
                        )
                    ]
                )[0]
                if sid is None:  # another process enrolled the same photo meanwhile
                    done(EnrolResult(name, src, "duplicate", None, "enrolled meanwhile by another process"))
                else:
                    done(EnrolResult(name, src, "enrolled", sid))
        return report

    def add_embeddings(
        self, names: Sequence[str], vectors: np.ndarray, *, sources: Sequence[str | None] | None = None
    ) -> list[int]:
        """Add precomputed (N, D) descriptors of this gallery's model, one transaction; new sample ids."""
        v = np.atleast_2d(np.asarray(vectors, np.float32))
        if len(names) != len(v):
            raise GalleryError(f"{len(names)} names for {len(v)} descriptors: give one name per row")
        srcs = list(sources) if sources is not None else [None] * len(v)
        ids = self.store.add([NewSample(n, x, s) for n, x, s in zip(names, v, srcs)])
        return [int(i) for i in ids if i is not None]

    def add_person(self, name: str) -> tuple[int, bool]:
        """Enrol a name with no face yet: (its person id, whether it was created now).

        Person ids are SQLite row ids, never reused, so they survive renames (the HTTP API's ids).
        """
        with self.store.write():
            known = self.store.person_id(name)
            if known is not None:
                return known, False
            return self.store.ensure_person(name, time.time()), True

    def add_face(
        self, name: str, face: Face, *, source: str | None = None, sha256: str | None = None, person_id: int | None = None
    ) -> int | None:
        """Add a face found by this gallery's model to a person (created if new), one transaction.

        person_id: add to this person by stable id instead, checked inside the write transaction:
            UnknownPersonError if another process removed them, and a rename meanwhile is followed.
        Returns the new sample id, or None when a photo with this sha256 is already enrolled.
        LowQualityError (nothing stored) when the face's quality is below ``min_quality``.
        """
        if face.embedding.model_id and face.embedding.model_id != self.spec.name:
            raise ModelMismatchError(
                f"the face was embedded with {face.embedding.model_id!r}, this gallery holds {self.spec.name!r}"
            )
        det = face.detection
        if det.quality is not None and det.quality < self.min_quality:
            raise LowQualityError.of(det.quality, self.min_quality, "this photo")
        sample = NewSample(
            name, face.embedding.vector, source, sha256, det.box, det.landmarks, det.quality, person_id=person_id
        )
        return self.store.add([sample])[0]

    def person_ids(self) -> dict[int, str]:
        """{person id: name} for everyone enrolled."""
        return self.store.people_map()

    def sample_vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(sample ids (N,) int64, descriptors (N, D) float32) of those of ``ids`` that exist."""
        return self.store.vectors(np.asarray(ids, np.int64))

    def samples_by_sha(self, sha256: str) -> list[Sample]:
        """The sample of the photo with this content hash (a list: empty when none)."""
        return self.store._samples_where("s.sha256 = ?", (sha256,))

    def owner_of(self, sha256: str) -> str | None:
        """Who a photo with this content hash is enrolled as, or None."""
        return self.store.has_sha(sha256)

    # -- editing ----------------------------------------------------------------------------------
    def remove_samples(self, ids: Sequence[int]) -> int:
        """Remove samples by id; the number removed."""
        with self.store.write():
            gone = self.store.samples_by_id(ids)
            self.store.delete_samples([g.id for g in gone])
        self._erase(gone)
        return len(gone)

    def remove(self, name: str) -> int:
        """Remove a person, their samples and sightings; the number of samples removed."""
        with self.store.write():
            gone = self.store.delete_person(self.store._require_person(name))
        self._erase(gone, person=True)
        return len(gone)

    def remove_person(self, person_id: int) -> list[Sample]:
        """Remove a person by stable id, with their samples (returned) and sightings; UnknownPersonError if gone."""
        with self.store.write():
            gone = self.store.delete_person(person_id)
        self._erase(gone, person=True)
        return gone

    def remove_sample(self, person_id: int, sample_id: int) -> Sample | None:
        """Remove one sample if it still belongs to the person; the sample, or None."""
        with self.store.write():
            gone = self.store.delete_sample_of(person_id, sample_id)
        self._erase([gone] if gone is not None else [])
        return gone

    def rename(self, old: str, new: str) -> None:
        self.store.rename(old, new)

    def rename_person(self, person_id: int, new: str) -> None:
        """Rename by stable id (UnknownPersonError if removed meanwhile, GalleryError if taken)."""
        with self.store.write():
            self.store.rename_id(person_id, new)

    # -- erasure ----------------------------------------------------------------------------------
    @property
    def photos_dir(self) -> Path | None:
        """The folder of photos kept for this gallery (the service's), whose files go with their samples."""
        value = self.store.get_meta("photos")
        return Path(value) if value else None

    def keep_photos_in(self, folder: str | Path) -> None:
        """Record where this gallery's kept photos live, so every process removes them with their samples."""
        with self.store.write():
            self.store.set_meta("photos", str(Path(folder).resolve()))

    def _erase(self, gone: Sequence[Sample], *, person: bool = False) -> None:
        """After a deletion committed: the bytes of the removed people go from every file of the
        gallery: the database's own (SQLite: secure_delete zeroes them in the file; the WAL is
        checkpointed and cut), the saved index (rewritten without them, or deleted) and kept photos.
        person: a person was removed (their name and sightings), even one without samples."""
        if not gone:
            if person:
                self.store.forget()
            return
        self.store.forget()
        if self.path is not None and self.index_path.is_file():
            self._sync()  # loads the saved index if need be and drops the removed ids from it...
            if isinstance(self._index, IVFIndex):
                self._save_index()  # ...then replaces the file on disk
            else:
                self.index_path.unlink(missing_ok=True)  # not an IVF gallery (any more): no file
        photos = self.photos_dir
        for s in gone:
            if photos is not None and s.source and Path(s.source).resolve().parent == photos:
                Path(s.source).unlink(missing_ok=True)

    def merge(self, source: str, target: str) -> int:
        """Move all of ``source``'s samples to ``target`` and drop ``source``; samples moved."""
        n = self.store.merge(source, target)
        self.store.forget()  # the merged-away person's row was deleted
        return n

    # -- sightings -------------------------------------------------------------------------------
    def record_sightings(self, sightings: Iterable[Sighting]) -> int:
        """Store sightings of enrolled people in one transaction; the number stored. Sightings of a
        name that is not enrolled (any more) are dropped: a removed person's are not kept."""
        items = list(sightings)
        if not items:
            return 0
        with self.store.write():
            return self.store.insert_sightings(items)

    def sightings_page(
        self,
        *,
        since: float | str | datetime | None = None,
        person: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Sighting], int]:
        """Sightings at or after ``since`` (Unix seconds, datetime or ISO-8601; no zone: UTC), of
        ``person`` (UnknownPersonError if not enrolled), newest first: up to ``limit`` from
        ``offset``, and how many match in all."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a non-negative integer, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
        with self.store.read():
            return self.store.sightings_page(
                since=None if since is None else unix_time(since), person=person, limit=limit, offset=offset
            )

    def sightings(
        self, *, since: float | str | datetime | None = None, person: str | None = None, limit: int = 100
    ) -> list[Sighting]:
        """Up to ``limit`` sightings at or after ``since``, of ``person`` or anyone, newest first
        (:meth:`sightings_page` without the total)."""
        return self.sightings_page(since=since, person=person, limit=limit)[0]

    def purge_sightings(self, older_than_days: float, *, now: float | None = None) -> int:
        """Remove sightings older than ``older_than_days`` days before ``now`` (default: the
        current time); the number removed, whose bytes then leave the database's files too."""
        if not (isinstance(older_than_days, (int, float)) and np.isfinite(older_than_days) and older_than_days >= 0):
            raise ValueError(f"older_than_days must be a non-negative number of days, got {older_than_days!r}")
        cutoff = (time.time() if now is None else float(now)) - float(older_than_days) * 86400.0
        with self.store.write():
            n = self.store.delete_sightings_before(cutoff)
        if n:
            self.store.forget()
        return n

    # -- search -----------------------------------------------------------------------------------
    def _resolve_kind(self, n: int) -> str:
        if self.index_kind != "auto":
            return self.index_kind
        return "exact" if n < EXACT_MAX else "ivf"

    def _prep(self, v: np.ndarray) -> np.ndarray:
        """Vectors as the index holds them: unit length for cosine (then ||a-b||^2 = 2 (1 - cos))."""
        v = np.ascontiguousarray(v, np.float32)
        if self.metric == "cosine":
            v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return v

    def _stamp(self) -> dict[str, Any]:
        meta = self.store.meta()
        return {k: meta.get(k) for k in ("model_id", "weights_sha256", "epoch", "metric", "dim")}

    def _sync(self) -> None:
        """Bring the index and the sample -> person arrays up to the store's current state."""
        if self._index is not None and self.store.generation() == self._gen:
            return
        with self.store.read():  # one read snapshot: ids, owners and vectors agree with each other
            if self.store.expected_model is not None:  # re-embedded by another process meanwhile?
                self.store.check_model(*self.store.expected_model)
            gen = self.store.generation()
            stamp = self._stamp()
            sids, pids = self.store.sample_owners()
            names = self.store.people_map()
            kind = self._resolve_kind(len(sids))
            idx = self._index
            stale = (
                idx is None
                or idx.name != kind
                or stamp["epoch"] != self._epoch
                or (isinstance(idx, IVFIndex) and len(sids) > 4 * max(idx.trained_on, 1))
            )
            if stale:
                idx = None
                if kind == "ivf":
                    loaded = load_index(self.index_path)
                    if loaded is not None and all(loaded[1].get(k) == v for k, v in stamp.items()):
                        if len(sids) <= 4 * max(loaded[0].trained_on, 1):  # else retrain on today's faces
                            idx = loaded[0]
                            idx.threads = self._threads
                if idx is None:
                    idx = make_index(kind, int(stamp["dim"]), len(sids), threads=self._threads)
                    self._unsaved = kind == "ivf"
            have = idx.ids()
            gone = np.setdiff1d(have, sids, assume_unique=True)
            new = np.setdiff1d(sids, have, assume_unique=True)
            if len(gone):
                idx.remove(gone)
            if len(new):
                if isinstance(idx, IVFIndex) and len(have) == 0 and len(sids) > 64 * (idx.nlist or 1):
                    # k-means on a random draw of every face, not on the first rows stored
                    pick = np.random.default_rng(0).choice(sids, 64 * (idx.nlist or 1), replace=False)
                    idx.train(self._prep(self.store.vectors(np.sort(pick))[1]), len(sids))
                # A rebuild streams every row, in chunks large enough to train IVF's k-means on the first.
                for got, vecs in self.store.iter_vectors(None if len(have) == 0 else new, chunk=262_144):
                    idx.add(self._prep(vecs), got)
            self._unsaved |= bool(len(gone) or len(new)) and kind == "ivf"
        self._index, self._gen, self._epoch = idx, gen, stamp["epoch"]
        self._sids, self._pids, self._names = sids, pids, names
        if stale and self._unsaved:
            self._save_index()  # a rebuild is the expensive part: keep it even if we are killed later

    def _save_index(self) -> None:
        stamp = self._stamp()
        # Only IVF indexes are saved (an exact one loads from SQLite as fast as from a file).
        if isinstance(self._index, IVFIndex) and stamp["epoch"] == self._epoch:
            save_index(self._index, self.index_path, stamp)
        self._unsaved = False

    def identify_vectors(
        self, vectors: np.ndarray, *, top_k: int = 1, threshold: float | None = None, candidates: int = 32
    ) -> list[list[Match]]:
        """Open-set identification of (Q, D) descriptors against the gallery.

        The ``candidates`` nearest samples are grouped by person (per-person best distance);
        returns Q lists of up to ``top_k`` Matches, nearest first, the first with identity None
        ("unknown") when even the best person is farther than the threshold.
        """
        q = np.atleast_2d(np.asarray(vectors, np.float32))
        dim = int(self.store.get_meta("dim") or 0)
        if q.size and q.shape[1] != dim:
            raise GalleryError(f"descriptors have {q.shape[1]} values, this gallery's model makes {dim}")
        thr = self.threshold if threshold is None else float(threshold)
        if len(q) == 0:
            return []
        k = max(candidates, top_k)
        return [rank_people(d, names, thr, top_k) for d, names in self._nearest(q, k)]

    def _nearest(self, q: np.ndarray, k: int) -> list[tuple[np.ndarray, list[str]]]:
        """Up to ``k`` nearest samples of each (Q, D) query: distances in the gallery's metric
        (n,) and the owners' names, nearest first. PostgreSQL searches in the server; SQLite in the
        in-memory index, brought up to date first."""
        if self.store.native_search:
            self.store.check_model(*self.store.expected_model)  # type: ignore[misc]
            return self.store.search(q, k, self.metric)  # type: ignore[attr-defined]
        self._sync()
        assert self._index is not None
        if len(self._index) == 0:
            return [(np.zeros(0), []) for _ in range(len(q))]
        sq, ids = self._index.search(self._prep(q), min(len(self._index), k))
        dist = np.sqrt(sq) if self.metric == "euclidean" else sq / 2.0
        rows = np.clip(np.searchsorted(self._sids, ids), 0, len(self._sids) - 1)
        owners = self._pids[rows]
        out = []
        for d, i, own in zip(dist, ids, owners):
            ok = i >= 0
            out.append((d[ok], [self._names[p] for p in own[ok]]))
        return out

    def identify(
        self, source: ImageSource, *, top_k: int = 1, threshold: float | None = None
    ) -> list[tuple[Face, list[Match]]]:
        """Every face in a photo with its ranked matches (the first None when unknown, or
        ``too_poor`` when the face's quality is below ``min_quality``)."""
        faces = self.pipeline.faces(source)
        if not faces:
            return []
        ranked = self.identify_vectors(
            np.stack([f.embedding.vector for f in faces]), top_k=top_k, threshold=threshold
        )
        floor = self.min_quality
        return [(f, quality_floor(r, f.detection.quality, floor)) for f, r in zip(faces, ranked)]

    def load(self, source: ImageSource) -> np.ndarray:
        """Decode a photo with the gallery pipeline's limits (for drawing results on it)."""
        return self.pipeline.load(source)

    # -- export / import --------------------------------------------------------------------------
    def export(self, path: str | Path) -> int:
        """Write every person, sample and descriptor to a portable .npz file; samples written."""
        samples = self.store.samples()
        ids, vecs = self.store.vectors()
        if not np.array_equal(ids, [s.id for s in samples]):
            raise GalleryError(f"{self.location}: samples and descriptors disagree; run `faceprint gallery check`")
        meta = self.store.meta()
        manifest = {
            "format": EXPORT_FORMAT,
            "model_id": meta["model_id"],
            "weights_sha256": meta["weights_sha256"],
            "metric": self.metric,
            "dim": int(meta["dim"]),
            "threshold": float(meta["threshold"]) if "threshold" in meta else None,
            "people": [name for name, _ in self.people()],
            "samples": [
                {"person": s.person, "source": s.source, "sha256": s.sha256, "box": s.box,
                 "landmarks": s.landmarks, "quality": s.quality, "added": s.added}
                for s in samples
            ],
        }
        out = Path(path)
        tmp = out.with_name(out.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, manifest=np.array(json.dumps(manifest)), vectors=vecs)
        os.replace(tmp, out)
        return len(samples)

    def _imported_source(self, source: str | None, sha256: str | None) -> str | None:
        """An imported sample's source, unless it names a kept photo that is not its own: the
        service serves and deletes kept photos by a sample's source, so a crafted export must not
        point a sample at another person's photo (issue 14, item 6)."""
        photos = self.photos_dir
        if source is None or photos is None or Path(source).resolve().parent != photos:
            return source
        try:
            own = sha256 is not None and sha256_file(source) == sha256
        except OSError:
            own = False
        return source if own else None

    def import_file(self, path: str | Path) -> dict[str, int]:
        """Add an exported gallery's samples in one transaction: {"added": n, "duplicates": m}.

        Samples whose photo (sha256) is already here are skipped; people are joined by name. The
        file must come from the same model (ModelMismatchError otherwise). The whole file is
        checked first (:func:`read_export`), so a malformed one changes nothing; a gallery that
        cannot be written raises StorageError (StorageFullError when the disk is full).
        """
        manifest, vectors = read_export(path)
        meta = self.store.meta()
        self._check_model(meta, manifest["model_id"], manifest["weights_sha256"])
        if manifest["dim"] != int(meta["dim"]):
            raise GalleryError(
                f"{path} holds descriptors of dim {manifest['dim']}, but {self.location}'s model "
                f"{meta['model_id']!r} makes {meta['dim']}; nothing was imported"
            )
        items = [
            NewSample(
                s["person"], v, self._imported_source(s.get("source"), s.get("sha256")), s.get("sha256"),
                s.get("box"), s.get("landmarks"), s.get("quality"), s.get("added"),
            )
            for s, v in zip(manifest["samples"], vectors)
        ]
        try:
            with self.store.write():
                # Samples without a photo hash (added as descriptors) are matched by their exact bytes.
                known = {hashlib.sha256(v.tobytes()).digest() for v in self.store.vectors(self.store.hashless())[1]}
                items = [s for s in items if s.sha256 is not None or hashlib.sha256(
                    np.asarray(s.vector, "<f4").tobytes()).digest() not in known]
                ids = self.store.insert(items)
                for name in manifest.get("people", []):  # people with no samples travel too
                    self.store.ensure_person(name, time.time())
        except (sqlite3.OperationalError, OSError) as exc:  # read-only, locked or full: one line, not a traceback
            storage = StorageError.of(exc)
            if storage is None or storage is exc:
                raise
            raise storage from exc
        added = sum(i is not None for i in ids)
        return {"added": added, "duplicates": len(manifest["samples"]) - added}

    # -- re-embedding -----------------------------------------------------------------------------
    def reembed(
        self,
        pipeline: FacePipeline | None = None,
        *,
        model: str | ModelSpec | None = None,
        drop_missing: bool = False,
        on_progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Re-embed every sample from its source photo with another model, in one transaction.

        Photos that are gone, changed (sha256) or faceless are "missing": with any of them the
        gallery is left untouched (GalleryError) unless ``drop_missing``, which removes those
        samples. The gallery's own threshold is dropped (it belonged to the old model).
        """
        if pipeline is None:
            pipeline = FacePipeline(detector=self._detector, model=model or self.spec, threads=self._threads)
        gen = self.store.generation()
        updates: list[tuple[int, np.ndarray, object, object, float | None]] = []
        missing: list[tuple[Sample, str]] = []
        for s in self.store.samples():
            try:
                if s.source is None:
                    raise GalleryError("no source photo was recorded")
                data = Path(s.source).read_bytes()
                if s.sha256 is not None and hashlib.sha256(data).hexdigest() != s.sha256:
                    raise GalleryError("the photo changed since it was enrolled")
                image = pipeline.load(data)
                faces = pipeline.faces_batch([image])[0]
                if not faces:
                    raise GalleryError("no face found")
            except (OSError, FaceprintError) as exc:
                missing.append((s, str(exc)))
                continue
            f = faces[select_face([x.detection for x in faces], image.shape, "center")]
            updates.append((s.id, f.embedding.vector, f.detection.box, f.detection.landmarks, f.detection.quality))
            if on_progress is not None:
                on_progress(len(updates) + len(missing))
        if missing and not drop_missing:
            s, why = missing[0]
            raise GalleryError(
                f"{len(missing)} sample(s) cannot be re-embedded, e.g. sample {s.id} of {s.person!r} "
                f"({s.source}): {why}; nothing was changed. Pass --drop-missing to remove them instead"
            )
        spec = pipeline.spec
        with self.store.write():
            if self.store.generation() != gen:
                raise GalleryError("the gallery changed while re-embedding; nothing was changed, run it again")
            self.store.delete_samples([s.id for s, _ in missing])
            for key, value in {
                "model_id": spec.name, "weights_sha256": _weights_sha(spec, pipeline),
                "metric": spec.metric, "dim": str(spec.embedding_size), "threshold": None,
            }.items():
                self.store.set_meta(key, value)
            self.store.replace_vectors(updates)
        self.spec, self._pipeline, self._index = spec, pipeline, None
        self.store.expected_model = (spec.name, _weights_sha(spec, pipeline))
        return {"model": spec.name, "reembedded": len(updates), "dropped": len(missing)}


# An export is np.savez's zip of manifest.npy (the JSON as a 0-d unicode array, 4 bytes a character)
# and vectors.npy ((N, D) float32); np.savez stores both uncompressed. A crafted file can still
# compress them, and its zip directory can claim any sizes: so the sizes are checked against each
# other and against the bytes stored before anything is inflated, and reading never goes past them.
_EXPORT_MEMBERS = ("manifest.npy", "vectors.npy")
_MAX_INFLATE = 32  # a member may inflate to 32x its stored bytes (np.savez's are 1x; deflate reaches ~1000x)
# A sample's JSON is ~350 characters; 4 Ki leaves room for long source paths, the fixed part for
# the header fields and the names of people without samples.
_MANIFEST_CHARS = (16 * 2**20, 4096)  # (fixed, per descriptor)
_READ_CHUNK = 2**20


def read_export(path: str | Path) -> tuple[dict[str, Any], np.ndarray]:
    """(manifest, (N, D) float32 descriptors) of a gallery export; GalleryError if it is not a
    valid one, with nothing loaded.

    The zip directory is checked before any member is inflated: exactly the two members, each at
    most 32x its stored size, the descriptors exactly as many bytes as their .npy header says, the
    manifest at most 16 Mi + 4 Ki characters per descriptor. So memory stays within the manifest's
    4 bytes a character (+ its parsed JSON) and N * D * 4 bytes of descriptors, which must match the
    manifest's samples and dim. Every field the import uses is then checked (types, shapes, finite
    values), so a malformed file is refused in one line, never half imported.
    """
    try:
        with open(path, "rb") as fh, zipfile.ZipFile(fh) as zf:
            names = sorted(i.filename for i in zf.infolist())
            if names != sorted(_EXPORT_MEMBERS):
                raise _ExportError(f"it holds {names}, not {list(_EXPORT_MEMBERS)}")
            members = {i.filename: i for i in zf.infolist()}
            for info in members.values():
                if info.file_size > _MAX_INFLATE * info.compress_size + 65536:
                    raise _ExportError(
                        f"{info.filename} would inflate from {info.compress_size:,} to {info.file_size:,} bytes "
                        f"(more than {_MAX_INFLATE}x: a zip bomb?), so it was not read"
                    )
            with zf.open(members["vectors.npy"]) as f:
                shape, dtype, _ = _npy_header(f, members["vectors.npy"])
            if dtype.kind != "f" or len(shape) != 2:
                raise _ExportError(f"vectors.npy holds a {shape} {dtype} array, expected (samples, dim) float32")
            fixed, per_row = _MANIFEST_CHARS
            manifest = _read_manifest(zf, members["manifest.npy"], max_chars=fixed + per_row * shape[0])
            _check_manifest(manifest, shape)
            vectors = _read_npy(zf, members["vectors.npy"]).astype(np.float32, copy=False)
        bad = int(vectors.size - np.count_nonzero(np.isfinite(vectors)))
        if bad:
            raise _ExportError(f"its descriptors hold {bad} NaN or infinite values")
    except FileNotFoundError:
        raise GalleryError(f"export file {path} not found") from None
    except _ExportError as exc:
        raise GalleryError(_refusal(path, f": {exc}")) from None
    except (OSError, ValueError, KeyError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
            zlib.error) as exc:  # RuntimeError: an encrypted member; NotImplementedError: its compression
        raise GalleryError(_refusal(path, f" ({' '.join(str(exc).split()) or type(exc).__name__})")) from None
    return manifest, vectors


def _refusal(path: str | Path, why: str) -> str:
    return (
        f"{path} is not a faceprint gallery export{why}; nothing was imported. Export the gallery again "
        "with `faceprint gallery --db SOURCE export FILE`"
    )


class _ExportError(ValueError):
    """What is wrong with an export file (read_export words it as a GalleryError)."""


def _npy_header(f: Any, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data bytes) of an .npy member, read from its header only; the member's
    declared size must be exactly header + data (no more bytes can hide behind it)."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise _ExportError(f"{info.filename} has .npy format version {version}, expected 1.0 or 2.0")
    if dtype.hasobject or fortran:
        raise _ExportError(f"{info.filename} holds Python objects or a Fortran-order array, not plain data")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if f.tell() + nbytes != info.file_size:
        raise _ExportError(
            f"{info.filename} is {info.file_size:,} bytes but its header promises {f.tell() + nbytes:,}"
        )
    return tuple(int(n) for n in shape), dtype, nbytes


def _read_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """An .npy member read into one array a chunk at a time (no second full-size buffer), exactly
    its declared bytes (the zip's CRC checked at the end)."""
    with zf.open(info) as f:
        shape, dtype, nbytes = _npy_header(f, info)
        out = np.empty(shape, dtype)
        view = memoryview(out.reshape(-1).view(np.uint8)) if nbytes else memoryview(b"")
        done = 0
        while done < nbytes:
            chunk = f.read(min(_READ_CHUNK, nbytes - done))
            if not chunk:
                raise _ExportError(f"{info.filename} ends after {done:,} of {nbytes:,} bytes")
            view[done : done + len(chunk)] = chunk
            done += len(chunk)
        if f.read(1):  # also makes zipfile check the member's CRC
            raise _ExportError(f"{info.filename} holds more bytes than its header says")
    return out


def _read_manifest(zf: zipfile.ZipFile, info: zipfile.ZipInfo, *, max_chars: int) -> dict[str, Any]:
    """The manifest JSON of an export, refused from its header when it is over ``max_chars``."""
    with zf.open(info) as f:
        shape, dtype, _ = _npy_header(f, info)
    if dtype.kind != "U" or shape != ():
        raise _ExportError(f"manifest.npy holds a {shape} {dtype} array, expected one JSON string")
    if dtype.itemsize // 4 > max_chars:
        raise _ExportError(
            f"its manifest is {dtype.itemsize // 4:,} characters, more than the {max_chars:,} its "
            "descriptors allow (a zip bomb?), so it was not read"
        )
    manifest = json.loads(str(_read_npy(zf, info)[()]))
    if not isinstance(manifest, dict):
        raise _ExportError(f"its manifest is a JSON {type(manifest).__name__}, expected an object")
    return manifest


def _check_manifest(m: dict[str, Any], shape: tuple[int, ...]) -> None:
    """Every manifest field the import uses has its type and shape, and agrees with the
    descriptors' (N, D) ``shape``; _ExportError naming the first field that does not."""
    if m.get("format") != EXPORT_FORMAT:
        raise _ExportError(f"it has format {m.get('format')!r}, this faceprint reads {EXPORT_FORMAT!r}")
    for key in ("model_id", "weights_sha256"):
        if not isinstance(m.get(key), str) or not m[key]:
            raise _ExportError(f"{key} is {m.get(key)!r}, expected a non-empty string")
    dim, samples = m.get("dim"), m.get("samples")
    if type(dim) is not int or dim < 1:
        raise _ExportError(f"dim is {dim!r}, expected a positive integer")
    if not isinstance(samples, list):
        raise _ExportError(f"samples is a {type(samples).__name__}, expected a list")
    if shape[0] != len(samples) or (shape[0] and shape[1] != dim):
        raise _ExportError(f"its {shape} descriptors do not match its {len(samples)} samples of dim {dim}")
    people = m.get("people", [])
    if not isinstance(people, list):
        raise _ExportError(f"people is a {type(people).__name__}, expected a list of names")
    for i, name in enumerate(people):
        _check_name(name, f"people[{i}]")
    for i, s in enumerate(samples):
        where = f"samples[{i}]"
        if not isinstance(s, dict):
            raise _ExportError(f"{where} is a {type(s).__name__}, expected an object")
        _check_name(s.get("person"), f"{where}.person")
        for key in ("source", "sha256"):
            if s.get(key) is not None and not isinstance(s[key], str):
                raise _ExportError(f"{where}.{key} is {s[key]!r}, expected a string or null")
        for key, numbers in (("box", (4,)), ("landmarks", (-1, 2)), ("quality", ()), ("added", ())):
            if s.get(key) is not None and not _numbers(s[key], numbers):
                raise _ExportError(f"{where}.{key} is {str(s[key])[:60]!r}, expected {_SHAPES[key]} or null")


_SHAPES = {"box": "4 numbers", "landmarks": "a list of [x, y] numbers", "quality": "a number", "added": "a number"}


def _check_name(name: object, where: str) -> None:
    if not isinstance(name, str) or not name or name != name.strip():
        raise _ExportError(f"{where} is {name!r}, expected a name without leading/trailing spaces")


def _numbers(value: object, shape: tuple[int, ...]) -> bool:
    """Whether ``value`` is JSON numbers (no booleans) of ``shape`` (-1: any length), all finite."""
    if not shape:  # ints as large as a float64 holds exactly: the store keeps them as float64
        return (type(value) is int and abs(value) < 2**53) or (type(value) is float and bool(np.isfinite(value)))
    if not isinstance(value, list) or (shape[0] != -1 and len(value) != shape[0]):
        return False
    return all(_numbers(v, shape[1:]) for v in value)
