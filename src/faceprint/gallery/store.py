"""The gallery's SQLite file: people, their face samples, the descriptors and the model that made them.

One file in WAL mode: readers never block the writer, a killed process loses only the transaction
it had not committed, and every write starts with ``BEGIN IMMEDIATE`` under a busy timeout so
that two processes writing at once queue instead of failing or losing rows.

Tables::

    meta(key, value)                 schema, model_id, weights_sha256, metric, dim, threshold,
                                     generation (bumped by every write), epoch (bumped by re-embedding)
    people(id, name UNIQUE, added)
    samples(id, person_id, source, sha256 UNIQUE, box, landmarks, quality, added)
    embeddings(sample_id, vector)    float32 little-endian bytes, one row per sample

Row ids come from AUTOINCREMENT, so a removed sample's id is never reused: the vector index
on disk keys faces by these ids and relies on it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GalleryError, UnknownPersonError

__all__ = ["SCHEMA_VERSION", "Sample", "Store"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT,
    sha256 TEXT UNIQUE,
    box TEXT,
    landmarks TEXT,
    quality REAL,
    added REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_person ON samples(person_id);
CREATE TABLE IF NOT EXISTS embeddings (
    sample_id INTEGER PRIMARY KEY REFERENCES samples(id) ON DELETE CASCADE,
    vector BLOB NOT NULL
);
"""


@dataclass(frozen=True)
class Sample:
    """One enrolled face: where it came from and how it was found.

    box: (left, top, right, bottom) pixels or None; landmarks: (5, 2) list or None;
    quality: detector confidence scaled down for small faces, in [0, 1], or None; added: Unix time.
    """

    id: int
    person: str
    source: str | None
    sha256: str | None
    box: tuple[float, ...] | None
    landmarks: list[list[float]] | None
    quality: float | None
    added: float


@dataclass(frozen=True)
class NewSample:
    """A sample to insert: the person's name, the descriptor (D,) and its provenance."""

    person: str
    vector: np.ndarray
    source: str | None = None
    sha256: str | None = None
    box: Sequence[float] | None = None
    landmarks: Sequence[Sequence[float]] | None = None
    quality: float | None = None
    added: float | None = None


def _json(value: object) -> str | None:
    if value is None:
        return None
    return json.dumps(np.asarray(value, np.float64).round(3).tolist())


class Store:
    """SQLite access for one gallery file; every public write is one transaction.

    timeout: seconds a writer waits for another process's transaction before giving up.
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise GalleryError(f"{self.path} is a folder; give the path of a gallery file (e.g. people.db)")
        if not self.path.parent.is_dir():
            raise GalleryError(f"folder {self.path.parent} does not exist; create it or choose another --db path")
        try:
            # isolation_level=None: no implicit transactions; we open them ourselves (BEGIN IMMEDIATE).
            self.db = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False)
            self.db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            # NORMAL in WAL mode: a committed transaction survives a killed process (not a power cut).
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            with self.write():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
        except sqlite3.DatabaseError as exc:
            raise GalleryError(
                f"{self.path} is not a faceprint gallery ({exc}); give a new file name or a gallery made by faceprint"
            ) from None
        if mode.lower() != "wal":
            raise GalleryError(f"{self.path}: SQLite could not switch to WAL mode (got {mode}); use a local disk")
        schema = self.get_meta("schema")
        if schema is not None and int(schema) > SCHEMA_VERSION:
            raise GalleryError(
                f"{self.path} has gallery schema {schema}, this faceprint reads up to {SCHEMA_VERSION}: upgrade faceprint"
            )

    def close(self) -> None:
        self.db.close()

    # -- transactions -----------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE takes the write lock up front (no upgrade deadlock)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _bump(self, key: str = "generation") -> int:
        gen = int(self.get_meta(key) or 0) + 1
        self.set_meta(key, str(gen))
        return gen

    # -- meta -------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def init_meta(self, values: dict[str, str]) -> dict[str, str]:
        """Set the meta of a new gallery (only where absent, under the write lock) and return it all."""
        with self.write():
            if self.get_meta("model_id") is None:
                for key, value in {"schema": str(SCHEMA_VERSION), "generation": "0", "epoch": "0", **values}.items():
                    self.set_meta(key, value)
            return self.meta()

    def meta(self) -> dict[str, str]:
        return {k: v for k, v in self.db.execute("SELECT key, value FROM meta")}

    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    # -- reads ------------------------------------------------------------------------------------
    def counts(self) -> list[tuple[str, int]]:
        """(name, number of samples) per person, by name."""
        rows = self.db.execute(
            "SELECT p.name, COUNT(s.id) FROM people p LEFT JOIN samples s ON s.person_id = p.id "
            "GROUP BY p.id ORDER BY p.name"
        )
        return [(str(n), int(c)) for n, c in rows]

    def person_id(self, name: str) -> int | None:
        row = self.db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def _require_person(self, name: str) -> int:
        pid = self.person_id(name)
        if pid is None:
            raise UnknownPersonError(f"no person named {name!r} in {self.path}; `list` shows who is enrolled")
        return pid

    def has_sha(self, sha256: str) -> str | None:
        """The person a photo with this content hash is enrolled as, or None."""
        row = self.db.execute(
            "SELECT p.name FROM samples s JOIN people p ON p.id = s.person_id WHERE s.sha256 = ?", (sha256,)
        ).fetchone()
        return None if row is None else str(row[0])

    def samples(self, name: str | None = None) -> list[Sample]:
        sql = (
            "SELECT s.id, p.name, s.source, s.sha256, s.box, s.landmarks, s.quality, s.added "
            "FROM samples s JOIN people p ON p.id = s.person_id"
        )
        args: tuple[object, ...] = ()
        if name is not None:
            sql += " WHERE s.person_id = ?"
            args = (self._require_person(name),)
        out = []
        for sid, person, source, sha, box, lm, quality, added in self.db.execute(sql + " ORDER BY s.id", args):
            out.append(
                Sample(
                    int(sid), str(person), source, sha,
                    tuple(json.loads(box)) if box else None, json.loads(lm) if lm else None, quality, float(added),
                )
            )
        return out

    def hashless(self) -> np.ndarray:
        """Ids of samples added as bare descriptors (no photo hash)."""
        return np.array([r[0] for r in self.db.execute("SELECT id FROM samples WHERE sha256 IS NULL")], np.int64)

    def people_map(self) -> dict[int, str]:
        return {int(i): str(n) for i, n in self.db.execute("SELECT id, name FROM people")}

    def sample_owners(self) -> tuple[np.ndarray, np.ndarray]:
        """(sample ids, person id of each), sorted by sample id: (N,) int64 each."""
        cur = self.db.execute("SELECT id, person_id FROM samples ORDER BY id")
        arr = np.fromiter(cur, dtype=[("id", "<i8"), ("person", "<i8")])  # no list of 1M tuples
        return arr["id"].copy(), arr["person"].copy()

    def iter_vectors(self, ids: np.ndarray | None = None, *, chunk: int = 65_536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(sample ids (n,) int64, descriptors (n, D) float32) in chunks, for ``ids`` or every sample.

        Streams: a rebuild at 1M faces never holds more than one chunk of SQLite rows.
        """
        dim = int(self.get_meta("dim") or 0)

        def unpack(rows: list) -> tuple[np.ndarray, np.ndarray]:
            sids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            return sids, np.frombuffer(b"".join(r[1] for r in rows), "<f4").reshape(len(rows), dim).copy()

        if ids is None:
            cur = self.db.execute("SELECT sample_id, vector FROM embeddings ORDER BY sample_id")
            while rows := cur.fetchmany(chunk):
                yield unpack(rows)
            return
        wanted = [int(i) for i in np.asarray(ids).reshape(-1)]
        for a in range(0, len(wanted), 900):  # stay under SQLite's bound-parameter limit
            part = wanted[a : a + 900]
            rows = self.db.execute(
                f"SELECT sample_id, vector FROM embeddings WHERE sample_id IN ({','.join('?' * len(part))})", part
            ).fetchall()
            if rows:
                yield unpack(rows)

    def vectors(self, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(sample ids (N,) int64, descriptors (N, D) float32) for ``ids`` or for every sample."""
        dim = int(self.get_meta("dim") or 0)
        parts = list(self.iter_vectors(ids))
        if not parts:
            return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    # -- writes (each call is one transaction unless the caller holds one) ------------------------
    def ensure_person(self, name: str, now: float) -> int:
        pid = self.person_id(name)
        if pid is None:
            pid = int(self.db.execute("INSERT INTO people (name, added) VALUES (?, ?)", (name, now)).lastrowid)
        return pid

    def insert(self, items: Sequence[NewSample]) -> list[int | None]:
        """Insert samples in the caller's transaction: new sample id each, None for a known sha256."""
        dim = int(self.get_meta("dim") or 0)
        now = time.time()
        out: list[int | None] = []
        for s in items:
            vec = np.asarray(s.vector, "<f4").reshape(-1)
            if vec.shape != (dim,) or not np.isfinite(vec).all():
                raise GalleryError(f"descriptor for {s.person!r} has shape {vec.shape} or non-finite values, expected ({dim},)")
            if not s.person or s.person != s.person.strip():
                raise GalleryError(f"person name {s.person!r} is empty or has leading/trailing spaces")
            if s.sha256 is not None and self.has_sha(s.sha256) is not None:
                out.append(None)  # checked inside the write lock: two processes never both insert it
                continue
            sid = int(
                self.db.execute(
                    "INSERT INTO samples (person_id, source, sha256, box, landmarks, quality, added) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.ensure_person(s.person, now), s.source, s.sha256, _json(s.box), _json(s.landmarks),
                        None if s.quality is None else float(s.quality), now if s.added is None else float(s.added),
                    ),
                ).lastrowid
            )
            self.db.execute("INSERT INTO embeddings (sample_id, vector) VALUES (?, ?)", (sid, vec.tobytes()))
            out.append(sid)
        if any(i is not None for i in out):
            self._bump()
        return out

    def add(self, items: Sequence[NewSample]) -> list[int | None]:
        with self.write():
            return self.insert(items)

    def delete_samples(self, ids: Sequence[int]) -> int:
        """Remove samples by id in the caller's transaction (their people stay, maybe with 0 samples)."""
        n = 0
        for sid in ids:
            n += self.db.execute("DELETE FROM samples WHERE id = ?", (int(sid),)).rowcount
        if n:
            self._bump()
        return n

    def remove_samples(self, ids: Sequence[int]) -> int:
        with self.write():
            return self.delete_samples(ids)

    def remove_person(self, name: str) -> int:
        """Remove a person and all their samples; the number of samples removed."""
        with self.write():
            pid = self._require_person(name)
            n = int(self.db.execute("SELECT COUNT(*) FROM samples WHERE person_id = ?", (pid,)).fetchone()[0])
            self.db.execute("DELETE FROM people WHERE id = ?", (pid,))  # samples and embeddings cascade
            self._bump()
            return n

    def rename(self, old: str, new: str) -> None:
        if not new or new != new.strip():
            raise GalleryError(f"new name {new!r} is empty or has leading/trailing spaces")
        with self.write():
            pid = self._require_person(old)
            if self.person_id(new) is not None:
                raise GalleryError(f"{new!r} is already enrolled; use `merge {old} {new}` to join the two")
            self.db.execute("UPDATE people SET name = ? WHERE id = ?", (new, pid))
            self._bump()

    def merge(self, source: str, target: str) -> int:
        """Move every sample of ``source`` to ``target`` (created if new) and drop ``source``."""
        if source == target:
            raise GalleryError(f"cannot merge {source!r} into itself")
        with self.write():
            src = self._require_person(source)
            dst = self.ensure_person(target, time.time())
            n = self.db.execute("UPDATE samples SET person_id = ? WHERE person_id = ?", (dst, src)).rowcount
            self.db.execute("DELETE FROM people WHERE id = ?", (src,))
            self._bump()
            return int(n)

    def replace_vectors(self, updates: Sequence[tuple[int, np.ndarray, object, object, float | None]]) -> None:
        """Re-embedding, in the caller's transaction: (sample id, vector, box, landmarks, quality) each."""
        for sid, vec, box, lm, quality in updates:
            self.db.execute(
                "UPDATE embeddings SET vector = ? WHERE sample_id = ?", (np.asarray(vec, "<f4").tobytes(), int(sid))
            )
            self.db.execute(
                "UPDATE samples SET box = ?, landmarks = ?, quality = ? WHERE id = ?",
                (_json(box), _json(lm), quality, int(sid)),
            )
        self._bump()
        self._bump("epoch")

    def integrity(self) -> str:
        """SQLite's own check: "ok" or the problems it found."""
        return "; ".join(str(r[0]) for r in self.db.execute("PRAGMA integrity_check"))
