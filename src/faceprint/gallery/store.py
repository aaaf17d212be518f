"""The gallery's database: people, their face samples, the descriptors and the model that made them.

Two backends share this module's SQL and one transaction model: every write is one transaction
that holds the gallery's single writer lock from its first statement, so every check-then-write
(is this photo stored? does this person still exist?) sees the state it changes, whichever
process runs it; readers never block and never see half a write.

* :class:`Store`: one SQLite file in WAL mode, the embedded default. ``BEGIN IMMEDIATE`` takes the
  write lock up front, under a busy timeout, so two processes writing at once queue.
* :class:`~faceprint.gallery.pgstore.PgStore`: PostgreSQL with pgvector, for galleries shared by
  many processes and machines. A transaction-scoped advisory lock is the writer lock; vectors live
  in a pgvector column with an HNSW index, searched by the server.

Tables::

    meta(key, value)                 schema, model_id, weights_sha256, metric, dim, threshold,
                                     generation (bumped by every write), epoch (bumped by re-embedding)
    people(id, name UNIQUE, added)
    samples(id, person_id, source, sha256 UNIQUE, box, landmarks, quality, added)
    embeddings(sample_id, vector)    float32 little-endian bytes, one row per sample

Row ids come from AUTOINCREMENT (identity columns in PostgreSQL), so a removed sample's id is never
reused: the vector index on disk keys faces by these ids and relies on it.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import unicodedata
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GalleryError, ModelMismatchError, UnknownPersonError

__all__ = ["SCHEMA_VERSION", "NewSample", "Sample", "SqlStore", "Store", "open_store"]

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
    #: add to this person (a stable id) instead of by name: UnknownPersonError if they were removed,
    #: never a new person under a stale name
    person_id: int | None = None


def _json(value: object) -> str | None:
    if value is None:
        return None
    return json.dumps(np.asarray(value, np.float64).round(3).tolist())


def check_name(name: object) -> str:
    """A person's name as the gallery stores it, or GalleryError: 1-200 characters, no leading or
    trailing space, and no character that hides or reorders text (controls such as NUL and
    newlines, bidirectional overrides, zero-width marks): a name is shown to people who decide."""
    if not isinstance(name, str) or not name or name != name.strip() or len(name) > 200:
        raise GalleryError(f"person name {name!r} is empty, over 200 characters or has leading/trailing spaces")
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]
    if bad:
        raise GalleryError(
            f"person name {name!r} holds invisible or text-reordering characters ({', '.join(f'U+{ord(c):04X}' for c in bad[:3])}); "
            "remove them"
        )
    return name


def redact(location: str | Path) -> str:
    """A --db value for messages: a URL without its password."""
    return re.sub(r"(://[^:/@]*):[^@/]+@", r"\1:***@", str(location))


def is_url(location: str | Path) -> bool:
    """Whether a --db value names a PostgreSQL server rather than a SQLite file."""
    return str(location).startswith(("postgresql://", "postgres://"))


def open_store(location: str | Path, *, timeout: float = 60.0) -> SqlStore:
    """The store for a SQLite path or a ``postgresql://`` URL."""
    if is_url(location):
        from .pgstore import PgStore  # psycopg is an extra: imported only for PostgreSQL galleries

        return PgStore(str(location), timeout=timeout)
    return Store(location, timeout=timeout)


class SqlStore:
    """The SQL both backends share, written with ``?`` placeholders; subclasses connect, create the
    schema and supply the dialect's few differences (transactions, vectors, integrity check).

    Every public write is one transaction (:meth:`write`) holding the writer lock.
    """

    db: Any  # the connection: ``execute(sql, args)`` returns a cursor
    location: str  # for messages: the file path or the URL without its password
    native_search = False  # True: :meth:`search` runs in the database (pgvector), no in-memory index
    #: (model id, weights sha256) the writer's descriptors come from: inserts are refused when the
    #: gallery holds another model's (set by Gallery; None: unchecked)
    expected_model: tuple[str, str] | None = None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def write(self) -> Iterator[Any]:
        """One write transaction holding the gallery's writer lock from its first statement."""
        raise NotImplementedError

    @contextmanager
    def read(self) -> Iterator[Any]:
        """One read snapshot: several queries that agree with each other."""
        raise NotImplementedError

    def _vector_param(self, vec: np.ndarray) -> object:
        """A (D,) float32 descriptor as the database stores it."""
        raise NotImplementedError

    def _vectors_from(self, values: Sequence[object], dim: int) -> np.ndarray:
        """Stored descriptors back as (n, D) float32."""
        raise NotImplementedError

    def integrity(self) -> str:
        """"ok", or the problems found: the engine's own check and the gallery's invariants."""
        problems = [p for p in self._engine_check() if p != "ok"]
        orphans = self.db.execute(
            "SELECT COUNT(*) FROM samples s LEFT JOIN embeddings e ON e.sample_id = s.id WHERE e.sample_id IS NULL"
        ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} samples without a descriptor")
        return "; ".join(problems) or "ok"

    def _engine_check(self) -> list[str]:
        return []

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Wrap a load of many faces (an engine may defer index upkeep to the end)."""
        yield

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
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def init_meta(self, values: dict[str, str]) -> dict[str, str]:
        """Set the meta of a new gallery (only where absent, under the write lock) and return it all."""
        with self.write():
            if self.get_meta("model_id") is None:
                for key, value in {"schema": str(SCHEMA_VERSION), "generation": "0", "epoch": "0", **values}.items():
                    self.set_meta(key, value)
            meta = self.meta()
            self._init_vectors(int(meta["dim"]), meta["metric"])
            return meta

    def _init_vectors(self, dim: int, metric: str) -> None:
        """Create what the vectors need once their size and metric are known (in the write lock)."""

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

    def people_page(self, limit: int, offset: int = 0) -> tuple[list[tuple[int, str, int]], int]:
        """(id, name, number of samples) of up to ``limit`` people by name from ``offset``, and how
        many people there are in all: one page, not the whole gallery."""
        rows = self.db.execute(
            "SELECT p.id, p.name, COUNT(s.id) FROM people p LEFT JOIN samples s ON s.person_id = p.id "
            "GROUP BY p.id ORDER BY p.name LIMIT ? OFFSET ?",
            (int(limit), int(offset)),
        )
        page = [(int(i), str(n), int(c)) for i, n, c in rows]
        return page, int(self.db.execute("SELECT COUNT(*) FROM people").fetchone()[0])

    def person_id(self, name: str) -> int | None:
        row = self.db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def _require_person(self, name: str) -> int:
        pid = self.person_id(name)
        if pid is None:
            raise UnknownPersonError(f"no person named {name!r} in {self.location}; `list` shows who is enrolled")
        return pid

    def has_sha(self, sha256: str) -> str | None:
        """The person a photo with this content hash is enrolled as, or None."""
        row = self.db.execute(
            "SELECT p.name FROM samples s JOIN people p ON p.id = s.person_id WHERE s.sha256 = ?", (sha256,)
        ).fetchone()
        return None if row is None else str(row[0])

    def hashes(self) -> set[str]:
        """The content hashes (sha256 hex) of every stored photo, in one query (batch enrolment's skip list)."""
        return {str(r[0]) for r in self.db.execute("SELECT sha256 FROM samples WHERE sha256 IS NOT NULL")}

    def samples(self, name: str | None = None) -> list[Sample]:
        if name is None:
            return self._samples_where("1 = 1", ())
        return self._samples_where("s.person_id = ?", (self._require_person(name),))

    def samples_by_id(self, ids: Sequence[int]) -> list[Sample]:
        """The samples among ``ids`` that exist, by id."""
        wanted = [int(i) for i in ids]
        out: list[Sample] = []
        for a in range(0, len(wanted), 900):
            part = tuple(wanted[a : a + 900])
            out += self._samples_where(f"s.id IN ({','.join('?' * len(part))})", part)
        return sorted(out, key=lambda x: x.id)

    def _samples_where(self, where: str, args: tuple[object, ...]) -> list[Sample]:
        sql = (
            "SELECT s.id, p.name, s.source, s.sha256, s.box, s.landmarks, s.quality, s.added "
            f"FROM samples s JOIN people p ON p.id = s.person_id WHERE {where} ORDER BY s.id"
        )
        out = []
        for sid, person, source, sha, box, lm, quality, added in self.db.execute(sql, args):
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
            return sids, self._vectors_from([r[1] for r in rows], dim)

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
    def count(self) -> int:
        """Number of samples."""
        return int(self.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def ensure_person(self, name: str, now: float) -> int:
        check_name(name)
        pid = self.person_id(name)
        if pid is None:
            row = self.db.execute("INSERT INTO people (name, added) VALUES (?, ?) RETURNING id", (name, now)).fetchone()
            pid = int(row[0])
        return pid

    def insert(self, items: Sequence[NewSample]) -> list[int | None]:
        """Insert samples in the caller's transaction: new sample id each, None for a known sha256
        (stored before, or earlier in ``items``). Lookups are batched, so 50k samples cost a few
        queries, not 50k round trips to a database server."""
        if self.expected_model is not None:
            self.check_model(*self.expected_model)  # in the write lock: no re-embedding slips in between
        dim = int(self.get_meta("dim") or 0)
        now = time.time()
        vectors = []
        for s in items:
            vec = np.asarray(s.vector, "<f4").reshape(-1)
            if vec.shape != (dim,) or not np.isfinite(vec).all():
                raise GalleryError(f"descriptor for {s.person!r} has shape {vec.shape} or non-finite values, expected ({dim},)")
            check_name(s.person)
            vectors.append(vec)
        # checked inside the write lock: two processes never both insert the same photo
        seen = set(self._existing("SELECT sha256 FROM samples WHERE sha256 IN ({})", [s.sha256 for s in items if s.sha256]))
        keep = []
        for i, s in enumerate(items):
            if s.sha256 is not None:
                if s.sha256 in seen:
                    continue
                seen.add(s.sha256)
            keep.append(i)
        out: list[int | None] = [None] * len(items)
        if not keep:
            return out
        owners = self._owners([items[i] for i in keep], now)
        rows = [
            (owner, items[i].source, items[i].sha256, _json(items[i].box), _json(items[i].landmarks),
             None if items[i].quality is None else float(items[i].quality),
             now if items[i].added is None else float(items[i].added), vectors[i])
            for owner, i in zip(owners, keep)
        ]  # fmt: skip
        for i, sid in zip(keep, self._write_samples(rows)):
            out[i] = sid
        self._bump()
        return out

    def _existing(self, sql: str, values: Sequence[object]) -> list[Any]:
        """First column of ``sql`` (with one ``IN ({})``) over ``values``, 900 at a time (SQLite's
        bound-parameter limit)."""
        found: list[Any] = []
        unique = list(dict.fromkeys(values))
        for a in range(0, len(unique), 900):
            part = unique[a : a + 900]
            found += [r[0] for r in self.db.execute(sql.format(",".join("?" * len(part))), part)]
        return found

    def _owners(self, items: Sequence[NewSample], now: float) -> list[int]:
        """The person id each new sample goes to, inside the caller's write transaction: by stable id
        when given (UnknownPersonError if they were removed meanwhile: a removed person is never
        revived under a stale name), else by name (created when new)."""
        wanted = [int(s.person_id) for s in items if s.person_id is not None]
        alive = set(self._existing("SELECT id FROM people WHERE id IN ({})", wanted))
        for s in items:
            if s.person_id is not None and int(s.person_id) not in alive:
                raise UnknownPersonError(f"person {s.person!r} (id {s.person_id}) was removed from {self.location}")
        names = [s.person for s in items if s.person_id is None]
        ids = {}
        for a in range(0, len(set(names)), 900):
            part = list(dict.fromkeys(names))[a : a + 900]
            ids.update(self.db.execute(f"SELECT name, id FROM people WHERE name IN ({','.join('?' * len(part))})", part))
        for name in dict.fromkeys(names):
            if name not in ids:
                ids[name] = int(self.db.execute("INSERT INTO people (name, added) VALUES (?, ?) RETURNING id", (name, now)).fetchone()[0])
        return [int(s.person_id) if s.person_id is not None else int(ids[s.person]) for s in items]

    def _write_samples(self, rows: Sequence[tuple]) -> list[int]:
        """Insert (person id, source, sha256, box, landmarks, quality, added, vector) rows; their ids."""
        ids = []
        for *sample, vec in rows:
            sid = int(
                self.db.execute(
                    "INSERT INTO samples (person_id, source, sha256, box, landmarks, quality, added) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    sample,
                ).fetchone()[0]
            )
            self.db.execute("INSERT INTO embeddings (sample_id, vector) VALUES (?, ?)", (sid, self._vector_param(vec)))
            ids.append(sid)
        return ids

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

    def forget(self) -> None:
        """After a deletion has committed: make the deleted bytes unreadable in the database's own
        files where the engine allows (SQLite: checkpoint and truncate the WAL)."""

    def check_model(self, model_id: str, weights_sha256: str) -> None:
        """ModelMismatchError unless the gallery still holds ``model_id``'s vectors: another process
        may have re-embedded it with another model while this one kept the old model loaded."""
        meta = self.meta()
        if (meta.get("model_id"), meta.get("weights_sha256")) != (model_id, weights_sha256):
            raise ModelMismatchError(
                f"{self.location} now holds {meta.get('model_id')!r} vectors (re-embedded while this process "
                f"ran with {model_id!r}): restart it so that it loads the gallery's model"
            )

    def remove_samples(self, ids: Sequence[int]) -> int:
        with self.write():
            return self.delete_samples(ids)

    def remove_person(self, name: str) -> int:
        """Remove a person and all their samples; the number of samples removed."""
        with self.write():
            return len(self.delete_person(self._require_person(name)))

    def delete_person(self, pid: int) -> list[Sample]:
        """Remove person ``pid`` and their samples in the caller's transaction; the samples removed
        (their sources may name kept photos to delete). UnknownPersonError if already gone."""
        gone = self._samples_where("s.person_id = ?", (int(pid),))
        if not self.db.execute("DELETE FROM people WHERE id = ?", (int(pid),)).rowcount:  # samples cascade
            raise UnknownPersonError(f"no person with id {pid} in {self.location}")
        self._bump()
        return gone

    def delete_sample_of(self, pid: int, sid: int) -> Sample | None:
        """Remove sample ``sid`` if it still belongs to person ``pid`` (caller's transaction)."""
        found = self._samples_where("s.id = ? AND s.person_id = ?", (int(sid), int(pid)))
        if found:
            self.delete_samples([int(sid)])
        return found[0] if found else None

    def rename(self, old: str, new: str) -> None:
        with self.write():
            self.rename_id(self._require_person(old), new)

    def rename_id(self, pid: int, new: str) -> None:
        """Rename person ``pid`` in the caller's transaction: GalleryError if ``new`` is taken,
        UnknownPersonError if they are gone (never a rename of whoever holds their old name now)."""
        check_name(new)
        row = self.db.execute("SELECT name FROM people WHERE id = ?", (int(pid),)).fetchone()
        if row is None:
            raise UnknownPersonError(f"no person with id {pid} in {self.location}")
        if row[0] == new:
            return
        if self.person_id(new) is not None:
            raise GalleryError(f"{new!r} is already enrolled; use `merge {row[0]} {new}` to join the two")
        self.db.execute("UPDATE people SET name = ? WHERE id = ?", (new, int(pid)))
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
                "UPDATE embeddings SET vector = ? WHERE sample_id = ?", (self._vector_param(vec), int(sid))
            )
            self.db.execute(
                "UPDATE samples SET box = ?, landmarks = ?, quality = ? WHERE id = ?",
                (_json(box), _json(lm), quality, int(sid)),
            )
        self._bump()
        self._bump("epoch")

class Store(SqlStore):
    """One SQLite gallery file.

    timeout: seconds a writer waits for another process's transaction before giving up.
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        if self.path.is_dir():
            raise GalleryError(f"{self.path} is a folder; give the path of a gallery file (e.g. people.db)")
        if not self.path.parent.is_dir():
            raise GalleryError(f"folder {self.path.parent} does not exist; create it or choose another --db path")
        if not self.path.exists():
            # owner-only from the first byte, whatever the umask: biometric data (SQLite gives the
            # -wal and -shm files the database file's permissions)
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass  # another process created it meanwhile
            except OSError as exc:
                raise GalleryError(f"cannot create {self.path}: {exc.strerror}; choose a writable --db path") from None
        try:
            # isolation_level=None: no implicit transactions; we open them ourselves (BEGIN IMMEDIATE).
            self.db = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False)
            self.db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            # NORMAL in WAL mode: a committed transaction survives a killed process (not a power cut).
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            # deleted rows are overwritten with zeros in the file, not left in free pages: a gallery
            # holds biometric data, and "delete" must mean gone (issue 14)
            self.db.execute("PRAGMA secure_delete = ON")
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

    # -- transactions -----------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE takes the write lock up front (no upgrade deadlock)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if self.db.in_transaction:  # a full disk or I/O error may have rolled it back already
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _engine_check(self) -> list[str]:
        return [str(r[0]) for r in self.db.execute("PRAGMA integrity_check")]

    def forget(self) -> None:
        # The WAL still holds the pages as they were written before the delete (names, vectors)
        # until a checkpoint copies them back and the file is cut: do both now. A reader in
        # another process can hold the checkpoint back; the next deletion retries.
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN")  # deferred: a read snapshot, no lock taken
        try:
            yield self.db
        finally:
            self.db.execute("COMMIT")

    def _vector_param(self, vec: np.ndarray) -> object:
        return np.asarray(vec, "<f4").tobytes()

    def _vectors_from(self, values: Sequence[object], dim: int) -> np.ndarray:
        return np.frombuffer(b"".join(values), "<f4").reshape(len(values), dim).copy()  # type: ignore[arg-type]
