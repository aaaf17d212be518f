"""Shared fixtures: real face data from ../shared/data (override with FACEPRINT_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("FACEPRINT_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not (root / "lfw").is_dir():
        pytest.skip(f"face data not found at {root}: set FACEPRINT_DATA to the shared data folder")
    return root


class PgServer:
    """A real PostgreSQL 16 with pgvector: FACEPRINT_TEST_PG_URL's server, else one started from
    the pgserver wheel in a temporary folder for the test session. Each gallery gets a database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._n = 0

    def database_url(self, name: str) -> str:
        """The server's URL with its database name replaced by ``name``."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path="/" + name))

    def new_database(self, template: str | None = None) -> str:
        """A fresh, empty database (or a copy of the database at URL ``template``): its URL."""
        import psycopg
        from urllib.parse import urlsplit

        if template is not None:
            template = urlsplit(template).path.strip("/")
        self._n += 1
        name = f"fp_test_{os.getpid()}_{self._n}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return self.database_url(name)


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> PgServer:
    url = os.environ.get("FACEPRINT_TEST_PG_URL")
    if url:
        yield PgServer(url)
        return
    pgserver = pytest.importorskip("pgserver", reason="pgserver is not installed: pip install -e '.[test]'")
    # a short path: the server's Unix socket lives in this folder, and socket paths are limited to ~100 bytes
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="fp-pg-"))
    server = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield PgServer(server.get_uri())
    finally:
        server.cleanup()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
