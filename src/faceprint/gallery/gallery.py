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
import zipfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._resources import sha256_file
from ..decide import rank_people
from ..errors import FaceprintError, GalleryError, ModelMismatchError
from ..imageio import ImageSource
from ..models import DEFAULT_MODEL, ModelSpec, get_model_spec
from ..pipeline import FacePipeline, iter_known_dir, select_face
from ..types import Face, Match
from .index import EXACT_MAX, ExactIndex, IVFIndex, load_index, make_index, save_index
from .store import NewSample, Sample, is_url, open_store

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
        except BaseException:
            self.store.close()
            raise
        self._pipeline = pipeline
        self._detector, self._threads = detector, threads
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
            self._pipeline = FacePipeline(detector=self._detector, model=self.spec, threads=self._threads)
        return self._pipeline

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
        already enrolled are "duplicate"; unreadable or faceless ones "failed"; neither stops the run.
        Detection and embedding run ``batch_size`` photos at a time.
        """
        report = EnrolReport()
        items = list(items)
        for name, _ in items:
            if not isinstance(name, str) or not name or name != name.strip():
                raise GalleryError(f"person name {name!r} is empty or has leading/trailing spaces")

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
        """
        if face.embedding.model_id and face.embedding.model_id != self.spec.name:
            raise ModelMismatchError(
                f"the face was embedded with {face.embedding.model_id!r}, this gallery holds {self.spec.name!r}"
            )
        det = face.detection
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

    def owner_of(self, sha256: str) -> str | None:
        """Who a photo with this content hash is enrolled as, or None."""
        return self.store.has_sha(sha256)

    # -- editing ----------------------------------------------------------------------------------
    def remove_samples(self, ids: Sequence[int]) -> int:
        """Remove samples by id; the number removed."""
        return self.store.remove_samples(ids)

    def remove(self, name: str) -> int:
        """Remove a person and their samples; the number of samples removed."""
        return self.store.remove_person(name)

    def rename(self, old: str, new: str) -> None:
        self.store.rename(old, new)

    def merge(self, source: str, target: str) -> int:
        """Move all of ``source``'s samples to ``target`` and drop ``source``; samples moved."""
        return self.store.merge(source, target)

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
                # A rebuild streams every row in chunks large enough to train IVF's k-means on the first.
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
        """Every face in a photo with its ranked matches (the first None when unknown)."""
        faces = self.pipeline.faces(source)
        if not faces:
            return []
        ranked = self.identify_vectors(
            np.stack([f.embedding.vector for f in faces]), top_k=top_k, threshold=threshold
        )
        return list(zip(faces, ranked))

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

    def import_file(self, path: str | Path) -> dict[str, int]:
        """Add an exported gallery's samples in one transaction: {"added": n, "duplicates": m}.

        Samples whose photo (sha256) is already here are skipped; people are joined by name. The
        file must come from the same model (ModelMismatchError otherwise).
        """
        manifest, vectors = read_export(path)
        self._check_model(self.store.meta(), manifest["model_id"], manifest["weights_sha256"])
        items = [
            NewSample(
                s["person"], v, s.get("source"), s.get("sha256"), s.get("box"), s.get("landmarks"),
                s.get("quality"), s.get("added"),
            )
            for s, v in zip(manifest["samples"], vectors)
        ]
        with self.store.write():
            # Samples without a photo hash (added as descriptors) are matched by their exact bytes.
            known = {hashlib.sha256(v.tobytes()).digest() for v in self.store.vectors(self.store.hashless())[1]}
            items = [s for s in items if s.sha256 is not None or hashlib.sha256(
                np.asarray(s.vector, "<f4").tobytes()).digest() not in known]
            ids = self.store.insert(items)
            for name in manifest.get("people", []):  # people with no samples travel too
                self.store.ensure_person(name, time.time())
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
        return {"model": spec.name, "reembedded": len(updates), "dropped": len(missing)}


def read_export(path: str | Path) -> tuple[dict[str, Any], np.ndarray]:
    """(manifest, (N, D) float32 descriptors) of a gallery export; GalleryError if it is not one."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            manifest = json.loads(str(z["manifest"]))
            vectors = np.asarray(z["vectors"], np.float32)
    except FileNotFoundError:
        raise GalleryError(f"export file {path} not found") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise GalleryError(f"{path} is not a faceprint gallery export ({exc})") from None
    if manifest.get("format") != EXPORT_FORMAT:
        raise GalleryError(f"{path} has format {manifest.get('format')!r}, this faceprint reads {EXPORT_FORMAT!r}")
    if vectors.ndim != 2 or len(vectors) != len(manifest.get("samples", [])) or (
        len(vectors) and vectors.shape[1] != int(manifest["dim"])
    ):
        raise GalleryError(f"{path}: {vectors.shape} descriptors do not match its {len(manifest['samples'])} samples")
    return manifest, vectors
