"""The gallery in PostgreSQL with pgvector: one gallery shared by many processes and machines.

One database per gallery (the URL's dbname). The tables are :mod:`.store`'s, with identity columns
and a ``vector(D)`` column under an HNSW index in the model's metric, so searches run in the
server and every process sees every acknowledged write at once: no in-memory index to keep in step.

Transactions follow the SQLite backend's model. A write takes ``pg_advisory_xact_lock`` on the
gallery's key as its first statement, so writers queue one at a time and each check-then-write (is
this photo stored? does this person still exist?) sees the state it changes; readers are never
blocked (MVCC). The lock ends with the transaction, also when the client is killed.

HNSW parameters (pgvector's defaults, measured in ``benchmarks/bench_gallery.py``): ``m`` 16 and
``ef_construction`` 64 at build, ``ef_search`` 64 per search (at least the number of candidates).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import GalleryError
from .store import SCHEMA_VERSION, SqlStore, redact

__all__ = ["HNSW_EF_CONSTRUCTION", "HNSW_EF_SEARCH", "HNSW_M", "PgStore"]

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 64
_WRITE_LOCK = 0x66707274  # "fprt": the advisory lock key of the gallery's writer lock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    added DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT,
    sha256 TEXT UNIQUE,
    box TEXT,
    landmarks TEXT,
    quality DOUBLE PRECISION,
    added DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_person ON samples(person_id)
"""


class _Conn:
    """A psycopg connection that takes the shared SQL's ``?`` placeholders."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, args: Sequence[object] = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), tuple(args))

    def close(self) -> None:
        self.conn.close()


class PgStore(SqlStore):
    """A gallery in the PostgreSQL database named by ``url`` (``postgresql://user@host:port/db``).

    timeout: seconds to wait for the server to answer a connection, and for another writer.
    """

    native_search = True

    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        try:
            import psycopg
            from pgvector.psycopg import register_vector
        except ImportError:
            raise GalleryError(
                "a PostgreSQL gallery needs the scale extra: pip install 'faceprint[scale]'"
            ) from None
        self.location = redact(url)
        self._psycopg = psycopg
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(min(timeout, 30))))
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GalleryError(
                f"cannot connect to PostgreSQL at {self.location}: {first}; check the URL, the credentials and "
                "that the server runs"
            ) from None
        self.db = _Conn(conn)
        try:
            conn.execute(f"SET lock_timeout = '{int(timeout * 1000)}ms'")
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as exc:
                raise GalleryError(
                    f"PostgreSQL at {self.location} has no usable pgvector extension ({str(exc).strip().splitlines()[0]}): "
                    "install pgvector on the server (https://github.com/pgvector/pgvector) or ask its admin to run "
                    "CREATE EXTENSION vector"
                ) from None
            register_vector(conn)
            conn.execute(f"SET hnsw.ef_search = {HNSW_EF_SEARCH}")
            with self.write():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
            schema = self.get_meta("schema")
        except BaseException:
            conn.close()
            raise
        if schema is not None and int(schema) > SCHEMA_VERSION:
            conn.close()
            raise GalleryError(
                f"{self.location} has gallery schema {schema}, this faceprint reads up to {SCHEMA_VERSION}: "
                "upgrade faceprint"
            )

    # -- transactions -----------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[_Conn]:
        self.db.execute("BEGIN")
        try:
            self.db.execute("SELECT pg_advisory_xact_lock(?)", (_WRITE_LOCK,))
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[_Conn]:
        self.db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield self.db
        finally:
            self.db.execute("COMMIT")

    # -- vectors ----------------------------------------------------------------------------------
    def _vector_param(self, vec: np.ndarray) -> object:
        return np.asarray(vec, np.float32).reshape(-1)

    def _vectors_from(self, values: Sequence[object], dim: int) -> np.ndarray:
        if not values:
            return np.zeros((0, dim), np.float32)
        # pgvector's adapter gives numpy arrays, or Vector objects for binary results
        rows = [v.to_numpy() if hasattr(v, "to_numpy") else v for v in values]
        return np.stack([np.asarray(v, np.float32) for v in rows]).reshape(len(values), dim)

    def _init_vectors(self, dim: int, metric: str) -> None:
        ops = "vector_cosine_ops" if metric == "cosine" else "vector_l2_ops"
        self.db.execute(
            f"CREATE TABLE IF NOT EXISTS embeddings (sample_id BIGINT PRIMARY KEY REFERENCES samples(id) "
            f"ON DELETE CASCADE, vector vector({int(dim)}) NOT NULL)"
        )
        self.db.execute(
            f"CREATE INDEX IF NOT EXISTS embeddings_hnsw ON embeddings USING hnsw (vector {ops}) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
        )

    def search(self, queries: np.ndarray, k: int, metric: str) -> list[tuple[np.ndarray, list[str]]]:
        """The ``k`` nearest samples of each (Q, D) query by the HNSW index: per query, distances (n,)
        in the gallery's metric (Euclidean, or cosine distance 1 - cos) and the owners' names."""
        op = "<=>" if metric == "cosine" else "<->"
        self.db.execute(f"SET hnsw.ef_search = {max(HNSW_EF_SEARCH, int(k))}")
        out = []
        with self.read():
            for q in np.asarray(queries, np.float32):
                rows = self.db.execute(
                    f"SELECT n.d, p.name FROM (SELECT sample_id, vector {op} ? AS d FROM embeddings "
                    f"ORDER BY vector {op} ? LIMIT ?) n JOIN samples s ON s.id = n.sample_id "
                    "JOIN people p ON p.id = s.person_id ORDER BY n.d",
                    (q, q, int(k)),
                ).fetchall()
                out.append((np.array([r[0] for r in rows], np.float64), [str(r[1]) for r in rows]))
        return out

    def _engine_check(self) -> list[str]:
        bad = self.db.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname IN ('people', 'samples', 'embeddings') "
            "AND NOT i.indisvalid"
        ).fetchall()
        return [f"index {r[0]} is not valid" for r in bad]
