"""The PostgreSQL + pgvector gallery on a real server: one-line errors, writers in parallel, the CLI
and two service processes on one gallery. The contract tests of test_gallery.py run here too."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("psycopg", reason="the scale extra is not installed: pip install -e '.[test]'")

from faceprint import Gallery, GalleryError  # noqa: E402
from faceprint.cli import app  # noqa: E402
from faceprint.gallery.store import NewSample  # noqa: E402

runner = CliRunner()


def test_unreachable_server_and_missing_database_fail_in_one_line(pg) -> None:  # noqa: ANN001
    with pytest.raises(GalleryError, match=r"cannot connect to PostgreSQL at postgresql://kian:\*\*\*@127\.0\.0\.1:9/x") as e:
        Gallery("postgresql://kian:hunter2@127.0.0.1:9/x", model="dlib-resnet-v1", timeout=2)
    assert "hunter2" not in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(GalleryError, match="does not exist"):
        Gallery(pg.database_url("no_such_gallery"), model="dlib-resnet-v1")
    res = runner.invoke(app, ["gallery", "--db", pg.database_url("no_such_gallery"), "list"])
    assert res.exit_code == 2 and "does not exist" in res.output and "Traceback" not in res.output


def test_a_server_without_pgvector_is_named(pg) -> None:  # noqa: ANN001
    import psycopg

    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS fp_plain")
        conn.execute("DROP ROLE IF EXISTS fp_plain")
        conn.execute("CREATE ROLE fp_plain LOGIN PASSWORD 'pw'")
        conn.execute("CREATE DATABASE fp_plain OWNER fp_plain")  # no vector extension, no right to create it
    parts = urlsplit(pg.url)
    host = parts.netloc.split("@", 1)[1]
    url = urlunsplit(parts._replace(netloc=f"fp_plain:pw@{host}", path="/fp_plain"))
    with pytest.raises(GalleryError, match="no usable pgvector extension.*CREATE EXTENSION vector"):
        Gallery(url, model="dlib-resnet-v1")


def test_parallel_writers_store_each_photo_once(pg) -> None:  # noqa: ANN001
    """Four connections enrol the same 40 photos (by content hash) in different orders at once."""
    url = pg.new_database()
    Gallery(url, model="dlib-resnet-v1").close()
    vecs = np.random.default_rng(0).normal(size=(40, 128)).astype(np.float32)
    stored: list[int] = []
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        try:
            with Gallery(url) as g:
                for i in np.random.default_rng(seed).permutation(40):
                    sid = g.store.add([NewSample(f"p{i % 5}", vecs[i], sha256=f"{i:064x}")])[0]
                    if sid is not None:
                        stored.append(sid)
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with Gallery(url) as g:
        assert len(stored) == 40 and len(set(stored)) == 40 and len(g) == 40 and g.check() == "ok"
        assert g.people() == [(f"p{k}", 8) for k in range(5)]
        top = g.identify_vectors(vecs, top_k=1)
        assert [m[0].identity for m in top] == [f"p{i % 5}" for i in range(40)]


def test_hnsw_search_agrees_with_exact_search(pg) -> None:  # noqa: ANN001
    """2,000 faces in 200 people: the pgvector HNSW answer equals the in-memory exact index's."""
    vecs = np.random.default_rng(1).normal(size=(2000, 128)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    names = [f"person{i % 200}" for i in range(2000)]
    probes = vecs[:100] + np.random.default_rng(2).normal(scale=0.02, size=(100, 128)).astype(np.float32)
    answers = []
    for where in (pg.new_database(), None):
        with Gallery(where or Path(pytest.importorskip("tempfile").mkdtemp()) / "g.db", model="dlib-resnet-v1") as g:
            g.add_embeddings(names, vecs)
            answers.append(g.identify_vectors(probes, top_k=3, threshold=10.0))
    (hnsw, exact) = answers
    assert [[m.identity for m in r] for r in hnsw] == [[m.identity for m in r] for r in exact]
    np.testing.assert_allclose([[m.distance for m in r] for r in hnsw], [[m.distance for m in r] for r in exact], atol=1e-4)


def test_cli_gallery_on_a_url(pg, data_dir: Path) -> None:  # noqa: ANN001
    url = pg.new_database()
    known = data_dir / "5-celebrity-faces" / "train"
    res = runner.invoke(app, ["gallery", "--db", url, "--model", "dlib-resnet-v1", "enrol", str(known)])
    assert res.exit_code == 1 and "enrolled 92 photo(s)" in res.output, res.output  # 1 photo without a face
    res = runner.invoke(app, ["gallery", "--db", url, "list", "--json"])
    assert res.exit_code == 0 and '"madonna"' in res.output, res.output
    probe = sorted((data_dir / "5-celebrity-faces" / "val" / "madonna").glob("*.jpg"))[0]
    res = runner.invoke(app, ["gallery", "--db", url, "identify", str(probe), "--json"])
    assert res.exit_code == 0 and '"madonna"' in res.output, res.output
    res = runner.invoke(app, ["gallery", "--db", url, "info", "--check", "--json"])
    assert res.exit_code == 0 and '"index": "pgvector-hnsw"' in res.output and '"integrity": "ok"' in res.output


def test_a_server_that_refuses_writes_is_a_storage_error_and_loses_nothing(pg) -> None:  # noqa: ANN001
    """A read-only server (a standby, or an admin's default_transaction_read_only) and a writer lock
    held past the timeout: StorageError (HTTP 503), one line, what was stored still there."""
    import psycopg

    from faceprint.errors import StorageError, StorageFullError
    from faceprint.service.errors import faceprint_status

    url = pg.new_database()
    vec = np.random.default_rng(1).normal(size=(2, 128)).astype(np.float32)
    with Gallery(url, model="dlib-resnet-v1") as g:
        g.add_embeddings(["kian"], vec[:1])
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    try:
        with Gallery(url) as g:
            with pytest.raises(StorageError, match="cannot be written.*read-only") as e:
                g.add_embeddings(["ana"], vec[1:])
            assert not isinstance(e.value, StorageFullError) and "\n" not in str(e.value)
            assert faceprint_status(e.value)[0] == 503
            assert [n for n, _ in g.store.counts()] == ["kian"]
    finally:
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {name} RESET default_transaction_read_only")
    with Gallery(url, timeout=0.5) as g, psycopg.connect(url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (0x66707274,))  # the gallery's writer lock, held
        with pytest.raises(StorageError, match="locked by another process"):
            g.add_embeddings(["ana"], vec[1:])
        holder.rollback()
        g.add_embeddings(["ana"], vec[1:])  # free again: the same gallery writes
        assert sorted(n for n, _ in g.store.counts()) == ["ana", "kian"]
