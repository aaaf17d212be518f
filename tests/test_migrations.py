"""Schema migrations (issue 13): a gallery made by an older faceprint is brought up to date when it
is opened, on both backends, once even when several processes open it at once, losing nothing; a
gallery from a newer faceprint is refused untouched."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceprint import Gallery, GalleryError
from faceprint.gallery import store as store_module
from faceprint.gallery.store import MIGRATIONS, SCHEMA_VERSION, Sighting, SqlStore, open_store

# The tables of schema 1 exactly as faceprint 1 wrote them (SQLite): frozen here on purpose, so the
# test keeps building a real old gallery whatever the current code creates.
V1_SQLITE = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, added REAL NOT NULL);
CREATE TABLE samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT, sha256 TEXT UNIQUE, box TEXT, landmarks TEXT, quality REAL, added REAL NOT NULL
);
CREATE INDEX samples_person ON samples(person_id);
CREATE TABLE embeddings (sample_id INTEGER PRIMARY KEY REFERENCES samples(id) ON DELETE CASCADE, vector BLOB NOT NULL);
"""
DLIB_SHA = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
NAMES = ["ada", "ada", "bea", "cyd", "cyd", "cyd"]


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's gallery lives: a SQLite file, or a fresh database on the test PostgreSQL."""
    if request.param == "postgres":
        return request.getfixturevalue("pg").new_database()
    return tmp_path / "old.db"


def vectors() -> np.ndarray:
    v = np.random.default_rng(13).standard_normal((len(NAMES), 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_v1(db: Path | str) -> dict[str, Any]:
    """A version-1 gallery with people, samples, a person without samples and a gallery threshold:
    made by today's code, then taken back to schema 1 (its tables are schema 1's plus sightings,
    dropped). Returns what it holds (:func:`snapshot`)."""
    with Gallery(db, model="dlib-resnet-v1") as g:
        g.add_embeddings(NAMES, vectors(), sources=[f"/photos/{i}.jpg" for i in range(len(NAMES))])
        g.add_person("dee")
        g.set_threshold(0.55)
        held = snapshot(g.store)
        with g.store.write():
            g.store.db.execute("DROP TABLE sightings")
            g.store.set_meta("schema", "1")
    assert schema_of(db) == 1 and not has_sightings_table(db)
    return held


def meta_of(db: Path | str, key: str) -> str | None:
    """A meta value read straight from the database (opening a store would migrate it)."""
    if isinstance(db, Path):
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    else:
        import psycopg

        with psycopg.connect(db) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
    return None if row is None else str(row[0])


def schema_of(db: Path | str) -> int:
    return int(meta_of(db, "schema") or 0)


def has_sightings_table(db: Path | str) -> bool:
    if isinstance(db, Path):
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sightings'").fetchone() is not None
    import psycopg

    with psycopg.connect(db) as conn:
        return conn.execute("SELECT to_regclass('sightings')").fetchone()[0] is not None


def snapshot(store: SqlStore) -> dict[str, Any]:
    """Everything a gallery holds but its schema version: compared before and after a migration."""
    meta = store.meta()
    meta.pop("schema")
    ids, vecs = store.vectors()
    return {"meta": meta, "people": store.people_map(), "samples": store.samples(), "ids": ids.tolist(), "vectors": vecs}


def same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["meta"] == b["meta"] and a["people"] == b["people"] and a["samples"] == b["samples"]
    assert a["ids"] == b["ids"] and np.array_equal(a["vectors"], b["vectors"])


def test_migrations_are_ordered_and_end_at_the_schema_version() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions == list(range(2, SCHEMA_VERSION + 1))
    assert all(m.sqlite and m.postgresql and m.description for m in MIGRATIONS)


def test_an_old_gallery_is_migrated_on_open_and_keeps_everything(location: Path | str) -> None:
    before = make_v1(location)
    with Gallery(location, create=False) as g:
        assert g.info()["schema"] == SCHEMA_VERSION and g.check() == "ok"
        same(before, snapshot(g.store))
        assert g.threshold == 0.55 and [n for n, _ in g.people()] == ["ada", "bea", "cyd", "dee"]
        top = g.identify_vectors(vectors(), top_k=1)
        assert [m[0].identity for m in top] == NAMES
        # the new table works at once, against the people already there
        assert g.record_sightings([Sighting("bea", "door", "recognised", 1_700_000_000.0, 0.3)]) == 1
        assert [s.person for s in g.sightings()] == ["bea"]
    assert schema_of(location) == SCHEMA_VERSION and has_sightings_table(location)
    with Gallery(location, create=False) as g:  # a second open finds nothing to do
        assert g.store.meta()["schema"] == str(SCHEMA_VERSION) and len(g.sightings()) == 1


def test_a_gallery_written_with_the_version_1_tables_opens(tmp_path: Path) -> None:
    """A file made the way faceprint 1 made it (its DDL, its rows), not by today's code."""
    db = tmp_path / "v1.db"
    vecs = vectors()
    with sqlite3.connect(db) as conn:
        conn.executescript(V1_SQLITE)
        meta = {"schema": "1", "generation": "6", "epoch": "0", "model_id": "dlib-resnet-v1",
                "weights_sha256": DLIB_SHA, "metric": "euclidean", "dim": "128"}
        conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        for name in dict.fromkeys(NAMES):
            conn.execute("INSERT INTO people (name, added) VALUES (?, 1.0)", (name,))
        for i, (name, v) in enumerate(zip(NAMES, vecs)):
            pid = conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()[0]
            sid = conn.execute(
                "INSERT INTO samples (person_id, source, sha256, box, landmarks, quality, added) "
                "VALUES (?, ?, ?, '[1.0, 2.0, 3.0, 4.0]', NULL, 0.9, 2.0) RETURNING id",
                (pid, f"/p/{i}.jpg", f"{i:064x}"),
            ).fetchone()[0]
            conn.execute("INSERT INTO embeddings VALUES (?, ?)", (sid, v.astype("<f4").tobytes()))
    with Gallery(db, create=False) as g:
        assert g.info()["schema"] == SCHEMA_VERSION and g.info()["generation"] == 6 and g.check() == "ok"
        assert g.people() == [("ada", 2), ("bea", 1), ("cyd", 3)]
        s = g.samples("bea")[0]
        assert s.box == (1.0, 2.0, 3.0, 4.0) and s.sha256 == f"{2:064x}" and s.quality == 0.9
        assert [m[0].identity for m in g.identify_vectors(vecs)] == NAMES
        g.record_sightings([Sighting("ada", "hall", "left", 10.0)])
        g.remove("ada")  # the migrated foreign key cascades like the old ones
        assert g.sightings() == [] and len(g) == 4


def test_a_newer_gallery_is_refused_and_left_untouched(location: Path | str) -> None:
    Gallery(location, model="dlib-resnet-v1").close()
    store = open_store(location)
    with store.write():
        store.set_meta("schema", str(SCHEMA_VERSION + 1))
        store.db.execute("DROP TABLE sightings")  # a newer schema may have dropped it: no one recreates it
    store.close()
    with pytest.raises(GalleryError, match=rf"schema {SCHEMA_VERSION + 1}, this faceprint reads up to {SCHEMA_VERSION}: upgrade"):
        Gallery(location, create=False)
    assert schema_of(location) == SCHEMA_VERSION + 1 and not has_sightings_table(location)


def test_a_failing_step_leaves_the_gallery_as_it_was(location: Path | str, monkeypatch: pytest.MonkeyPatch) -> None:
    """All steps run in one transaction: when a later step fails, the earlier ones are undone too."""
    make_v1(location)

    def broken(store: SqlStore) -> None:
        store.db.execute("CREATE TABLE half_done (x INTEGER)")
        raise GalleryError("step 3 failed on purpose")

    extra = store_module.Migration(SCHEMA_VERSION + 1, "a step that fails", sqlite=broken, postgresql=broken)
    monkeypatch.setattr(store_module, "MIGRATIONS", (*MIGRATIONS, extra))
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(GalleryError, match="on purpose"):
        open_store(location)
    assert schema_of(location) == 1 and not has_sightings_table(location)
    monkeypatch.undo()
    with Gallery(location, create=False) as g:  # and the real migration still runs afterwards
        assert g.info()["schema"] == SCHEMA_VERSION


# Run by each process of the race below: adds a slow step that notes each run in a file (outside
# the database, so a run that is rolled back or overwritten is still counted).
RACER = """
import sys, time
import faceprint.gallery.store as st

def slow(store):
    with open(sys.argv[3], "a") as log:
        log.write("ran\\n")
    time.sleep(0.5)  # a long step: the other processes arrive while it runs

st.MIGRATIONS = (*st.MIGRATIONS, st.Migration(st.SCHEMA_VERSION + 1, "slow", sqlite=slow, postgresql=slow))
st.SCHEMA_VERSION += 1
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
st.open_store(sys.argv[1]).close()
"""


def test_processes_opening_an_old_gallery_at_once_migrate_it_once(location: Path | str, tmp_path: Path) -> None:
    make_v1(location)
    start = time.time() + 3.0  # all three open it at this moment
    runs = tmp_path / "runs.txt"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(location), str(start), str(runs)], stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    for p in procs:
        _, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
    assert runs.read_text().splitlines() == ["ran"]  # the slow step ran once, not three times
    assert schema_of(location) == SCHEMA_VERSION + 1 and has_sightings_table(location)
    # ...and that gallery is now newer than this faceprint: refused
    with pytest.raises(GalleryError, match="upgrade faceprint"):
        Gallery(location, create=False)
