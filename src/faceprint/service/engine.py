"""The service's one model pipeline and one gallery, shared by every request of a worker.

Networks run only in the micro-batcher's thread; the gallery (one SQLite connection) only under
``self.lock``. Route handlers call these blocking methods from the threadpool, never from the
event loop.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import queue
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..decide import distances, open_set, quality_floor, verify_embeddings
from ..errors import GalleryError, NoFaceError, UnknownPersonError
from ..gallery import Gallery, Sample
from ..gallery.store import check_name, is_url
from ..imageio import load_image
from ..pipeline import select_face
from ..types import Face, Match, Verification
from .batcher import MicroBatcher
from .photos import strip_metadata
from .errors import ApiError
from .settings import Settings

__all__ = ["Engine", "Person", "Upload"]


@dataclass(frozen=True)
class Upload:
    """An uploaded photo: its bytes, decoded pixels and content hash."""

    data: bytes
    pixels: np.ndarray
    sha256: str


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    samples: int


_PG_HANDLES = 8  # PostgreSQL connections per service process: requests beyond wait for one


class _HandlePool:
    """Gallery handles lent to request threads, at most ``size`` open at once; used like a re-entrant
    lock (``with pool:``), whose holder reaches its handle through :meth:`current`."""

    def __init__(self, first: Gallery, open_handle: Callable[[], Gallery], size: int) -> None:
        self._free: queue.LifoQueue[Gallery] = queue.LifoQueue()
        self._free.put(first)
        self._open, self._size = open_handle, size
        self._all = [first]
        self._mutex = threading.Lock()
        self._local = threading.local()

    def __enter__(self) -> Gallery:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            try:
                g = self._free.get_nowait()
            except queue.Empty:
                with self._mutex:
                    grow = len(self._all) < self._size
                g = self._grow() if grow else self._free.get()
            self._local.gallery = g
        self._local.depth = depth + 1
        return self._local.gallery

    def __exit__(self, *exc: object) -> None:
        self._local.depth -= 1
        if self._local.depth == 0:
            g, self._local.gallery = self._local.gallery, None
            self._free.put(g)

    def _grow(self) -> Gallery:
        g = self._open()
        with self._mutex:
            self._all.append(g)
        return g

    def current(self) -> Gallery:
        g = getattr(self._local, "gallery", None)
        if g is None:
            raise RuntimeError("the gallery is used outside `with engine.lock`")
        return g

    def close(self) -> None:
        with self._mutex:
            for g in self._all:
                g.close()


class Engine:
    """Models loaded once, the gallery opened once; batched inference; serialised gallery access.

    on_batch(size, seconds) is told about every network batch (metrics).
    """

    def __init__(self, settings: Settings, on_batch: Callable[[int, float], None] | None = None) -> None:
        self.settings = settings
        if not is_url(settings.db):
            Path(settings.db).parent.mkdir(parents=True, exist_ok=True)
        first = Gallery(
            settings.db, model=settings.model, detector=settings.detector, threads=settings.threads,
            min_quality=settings.min_quality,
        )
        self.pipeline = first.pipeline  # one network in memory, shared with every gallery handle
        self.photos = settings.photos_dir
        self.photos.mkdir(mode=0o700, parents=True, exist_ok=True)  # enrolled photos: owner-only
        if first.photos_dir != self.photos.resolve():
            # recorded in the gallery, so that every process (and `faceprint gallery remove`)
            # deletes a sample's kept photo with it
            first.keep_photos_in(self.photos)
        self._sweep_photos(first)
        # SQLite: one handle (its in-memory index is the big part) behind one lock. PostgreSQL: a
        # pool of handles (connections) lent to request threads, no global lock: the server
        # searches and orders the writes, as it does for other processes on the same gallery.
        self._first = first
        self.lock: Any = (
            threading.RLock() if not first.store.native_search
            else _HandlePool(first, lambda: Gallery(settings.db, pipeline=self.pipeline), size=_PG_HANDLES)
        )
        self.batcher = MicroBatcher(
            self._run_batch,
            max_batch=settings.max_batch,
            max_wait=settings.batch_wait_ms / 1000.0,
            max_queue=max(64, 4 * settings.max_inflight),
            on_batch=on_batch,
        )
        # Warm-up: the first call pays for lazy initialisation, not the first user.
        self.batcher.submit(("faces", np.zeros((64, 64, 3), np.uint8))).result()

    @property
    def gallery(self) -> Gallery:
        """The gallery handle of this thread's ``with self.lock`` (SQLite: the one shared handle)."""
        return self.lock.current() if isinstance(self.lock, _HandlePool) else self._first

    def close(self) -> None:
        self.batcher.close()
        if isinstance(self.lock, _HandlePool):
            self.lock.close()
        else:
            with self.lock:
                self._first.close()

    # -- inference ----------------------------------------------------------------------------------
    def _run_batch(self, items: Sequence[tuple[str, Any]]) -> list[object]:
        """("detect" | "faces", image) items -> detections or faces, one network call per kind;
        ("embed", (image, detections)) items (the stream workers' tracked faces) -> (N, D) descriptors."""
        out: list[object] = [None] * len(items)
        # "detect-frame": video frames (/v1/live) are upright and mostly empty, where the search of
        # turned photos ("<detector>-upright") would only quadruple the cost: the detector without it
        frames = getattr(self.pipeline.detector, "inner", self.pipeline.detector).detect_batch
        for kind, run in (
            ("detect", self.pipeline.detect_batch), ("detect-frame", frames), ("faces", self.pipeline.faces_batch)
        ):
            idx = [i for i, (k, _) in enumerate(items) if k == kind]
            if idx:
                for i, result in zip(idx, run([items[i][1] for i in idx])):
                    out[i] = result
        for i, (kind, item) in enumerate(items):
            if kind == "embed":
                out[i] = self.pipeline.embed(*item)
        return out

    def submit(self, kind: str, upload: Upload) -> concurrent.futures.Future:
        """Queue an image for the networks: a future of list[Detection] ("detect") or list[Face]."""
        return self.batcher.submit((kind, upload.pixels))

    def decode(self, data: bytes, field: str = "image") -> Upload:
        pixels = load_image(data, max_pixels=self.settings.max_pixels, name=f"upload field {field}")
        return Upload(data, pixels, hashlib.sha256(data).hexdigest())

    @staticmethod
    def central(faces: Sequence[Face], upload: Upload, field: str = "image") -> Face:
        """The face that stands for a photo (the most central); NoFaceError when there is none."""
        if not faces:
            raise NoFaceError(f"no face found in {field!r}; send a photo where a face is visible and at least ~40 px wide")
        return faces[select_face([f.detection for f in faces], upload.pixels.shape, "center")]

    # -- decisions ----------------------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        with self.lock:
            return self.gallery.threshold

    def _threshold(self, threshold: float | None, far: float | None, one_to_n: bool) -> float:
        """A request's threshold, else its FAR (or the service's), else the gallery's threshold.
        Call with the lock held."""
        if threshold is not None:
            return threshold
        far = far if far is not None else self.settings.far
        if far is None:
            return self.gallery.threshold
        return self.gallery.threshold_at_far(far) if one_to_n else self.gallery.spec.threshold_at(far)

    @property
    def min_quality(self) -> float:
        """The quality floor: faces below it are not enrolled, and not decided on."""
        return self.pipeline.min_quality

    def identify(
        self, vectors: np.ndarray, top_k: int, threshold: float | None, far: float | None = None,
        qualities: Sequence[float | None] | None = None,
    ) -> tuple[float, list[tuple[Match, list[Match]]]]:
        """The threshold used, and (decision, ranked named candidates) per (Q, D) descriptor.

        decision.identity is None for "unknown", and for "too poor to decide" (``too_poor``), which
        a face whose quality (``qualities``, one per descriptor) is below the floor gets.
        """
        with self.lock:
            thr = self._threshold(threshold, far, one_to_n=True)
            # Rank without the open-set rule so candidates keep their names; then apply it once.
            ranked = self.gallery.identify_vectors(vectors, top_k=top_k, threshold=float("inf"))
        out = []
        for i, row in enumerate(ranked):
            named = [m for m in row if m.identity is not None]
            q = qualities[i] if qualities is not None else None
            out.append((quality_floor(open_set(named, thr), q, self.min_quality)[0], named))
        return thr, out

    def verify_person(
        self, vector: np.ndarray, person_id: int, threshold: float | None, far: float | None = None,
        quality: float | None = None,
    ) -> tuple[Verification, Person]:
        """1:1 against a person: the distance to their nearest sample ("too poor to decide" when
        the face's ``quality`` is below the floor)."""
        with self.lock:
            person, samples = self.person(person_id)
            if not samples:
                raise GalleryError(f"person {person.name!r} has no face samples yet; enrol a photo first")
            refs = self.gallery.sample_vectors([s.id for s in samples])[1]
            metric, thr = self.gallery.metric, self._threshold(threshold, far, one_to_n=False)
        nearest = refs[int(np.argmin(distances(vector[None], refs, metric)[0]))]
        v = verify_embeddings(vector, nearest, thr, metric, quality=quality, min_quality=self.min_quality)
        return v, person

    def verify(
        self, a: np.ndarray, b: np.ndarray, threshold: float | None, far: float | None = None,
        quality: float | None = None,
    ) -> Verification:
        """1:1 of two descriptors; ``quality``: the worse face's ("too poor to decide" below the floor)."""
        with self.lock:
            metric, thr = self.gallery.metric, self._threshold(threshold, far, one_to_n=False)
        return verify_embeddings(a, b, thr, metric, quality=quality, min_quality=self.min_quality)

    # -- people -------------------------------------------------------------------------------------
    # The Gallery API names people; the HTTP API gives them stable ids (SQLite row ids, never
    # reused), so a rename does not break a client's links: Gallery.person_ids().
    def people(self, limit: int = 1000, offset: int = 0) -> tuple[list[Person], int]:
        """One page of people by name, and the total number of people."""
        with self.lock:
            page, total = self.gallery.people_page(limit, offset)
        return [Person(pid, name, n) for pid, name, n in page], total

    def person_id(self, name: str) -> int | None:
        """The id of the person of this name, or None (one indexed lookup)."""
        with self.lock:
            return self.gallery.store.person_id(name)

    def person_name(self, person_id: int) -> str:
        with self.lock:
            name = self.gallery.person_ids().get(int(person_id))
        if name is None:
            raise UnknownPersonError(f"no person with id {person_id}; GET /v1/people lists who is enrolled")
        return name

    def person(self, person_id: int) -> tuple[Person, list[Sample]]:
        with self.lock:
            name = self.person_name(person_id)
            samples = self.gallery.samples(name)
        return Person(int(person_id), name, len(samples)), samples

    def create_person(self, name: str) -> Person:
        _check_name(name)
        with self.lock:
            pid, created = self.gallery.add_person(name)
        if not created:
            raise ApiError(409, "person_exists", f"{name!r} is already enrolled; add faces to them instead")
        return Person(pid, name, 0)

    # Changes go by stable id, checked inside the write transaction: another process may have
    # renamed or removed the person since this one looked (never act on whoever holds the old name).
    def rename_person(self, person_id: int, new: str) -> Person:
        _check_name(new)
        with self.lock:
            self.gallery.rename_person(int(person_id), new)
            return Person(int(person_id), new, len(self.gallery.samples(new)))

    def delete_person(self, person_id: int) -> tuple[Person, int]:
        with self.lock:
            name = self.person_name(person_id)
            gone = self.gallery.remove_person(int(person_id))  # kept photos go with the samples
        return Person(int(person_id), name, len(gone)), len(gone)

    def enrol(self, person_id: int, upload: Upload, face: Face) -> int:
        """Add a face of the uploaded photo to a person; the new sample id (409 for a known photo)."""
        with self.lock:
            name = self.person_name(person_id)
            path, sha = self._keep_photo(upload)
            try:
                # by stable id, checked in the write transaction: another process may have removed or
                # renamed this person since person_name() looked
                sid = self.gallery.add_face(name, face, source=str(path), sha256=sha, person_id=int(person_id))
            except BaseException:
                self._drop_unused(path, sha)
                raise
            if sid is None:
                self._drop_unused(path, sha)
        if sid is None:
            raise ApiError(409, "duplicate_photo", f"this photo is already enrolled (as {self._owner(sha)!r})")
        return int(sid)

    def delete_sample(self, person_id: int, sample_id: int) -> Sample:
        with self.lock:
            self.person_name(person_id)  # 404 person_not_found before sample_not_found
            gone = self.gallery.remove_sample(int(person_id), int(sample_id))
        if gone is None:
            raise ApiError(404, "sample_not_found", f"person {person_id} has no face sample {sample_id}")
        return gone

    def sample_photo(self, person_id: int, sample_id: int) -> Path:
        _, samples = self.person(person_id)
        for s in samples:
            if s.id == sample_id and s.source and self.keeps(s.source) and Path(s.source).is_file():
                return Path(s.source)
        raise ApiError(404, "photo_not_found", f"no stored photo for sample {sample_id} of person {person_id}")

    def counts(self) -> tuple[int, int]:
        """(people, samples) in the gallery."""
        with self.lock:  # two counts, not the list of everyone (/healthz is polled)
            return self.gallery.people_page(1)[1], len(self.gallery)

    # -- stored photos ------------------------------------------------------------------------------
    def _keep_photo(self, upload: Upload) -> tuple[Path, str]:
        """Keep the photo without its metadata (EXIF GPS, camera, comments), named by the sha256 of
        what is kept, so samples can be shown and re-embedded (which checks that hash) later.
        Returns (path, sha256): the hash is also the sample's, the key of the duplicate check."""
        data, suffix = strip_metadata(upload.data)
        sha = hashlib.sha256(data).hexdigest()
        path = self.photos / f"{sha}{suffix}"
        if not path.exists():
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{id(upload)}.tmp")
            with os.fdopen(os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600), "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)  # readers never see half a file
        return path.resolve(), sha

    def _sweep_photos(self, gallery: Gallery, min_age_s: float = 600.0) -> None:
        """What a killed process may have left in the photo folder: partial files of dead processes,
        and photos written for an enrolment that never committed (older than ``min_age_s``, so a
        live process's enrolment in flight is not touched). Photos are biometric data too."""
        now = time.time()
        for tmp in self.photos.glob("*.tmp"):
            try:
                os.kill(int(tmp.name.split(".")[-3]), 0)  # <name>.<pid>.<id>.tmp: is its writer alive?
            except (ValueError, IndexError, ProcessLookupError):
                tmp.unlink(missing_ok=True)
            except PermissionError:
                pass  # alive, another user's
        old = [p for p in self.photos.iterdir() if p.suffix != ".tmp" and now - p.stat().st_mtime > min_age_s]
        # kept photos are named by their sample's sha256: one query per 900 files, not a sample list
        used = set(gallery.store._existing("SELECT sha256 FROM samples WHERE sha256 IN ({})", [p.stem for p in old]))
        for photo in old:
            if photo.stem not in used:
                photo.unlink(missing_ok=True)

    def _drop_unused(self, path: Path, sha: str) -> None:
        """Delete a kept photo that no sample refers to (a failed or duplicate enrolment): the
        same photo enrolled before keeps its file, which has this very name."""
        if not any(s.source == str(path) for s in self.gallery.samples_by_sha(sha)):
            path.unlink(missing_ok=True)

    def keeps(self, source: str) -> bool:
        """Whether a sample's source is a photo this service keeps (only those are served or deleted)."""
        return Path(source).resolve().parent == self.photos.resolve()

    def _owner(self, sha256: str) -> str | None:
        with self.lock:
            return self.gallery.owner_of(sha256)


def _check_name(name: str) -> None:
    try:
        check_name(name)  # the gallery's own rule, so the API and the CLI accept the same names
    except GalleryError as exc:
        raise ApiError(422, "invalid_name", str(exc)) from None
