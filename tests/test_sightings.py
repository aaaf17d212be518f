"""The sightings log (issue 16): known people's "recognised" and "left" events stored in the
gallery, listed by the API, the CLI and HTTP, purged past their retention, erased with their person."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import Gallery, UnknownPersonError
from faceprint.cli import app
from faceprint.gallery.store import Sighting, iso_time, unix_time
from faceprint.video import Event
from faceprint.video.sightings import SightingsRecorder, sighting_of

runner = CliRunner()
DAY = 86400.0
NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
KEYS = {"person", "stream", "event", "time", "distance"}


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    if request.param == "postgres":
        return request.getfixturevalue("pg").new_database()
    return tmp_path / "g.db"


def make_gallery(db: Path | str, names: tuple[str, ...] = ("ada", "bea")) -> None:
    with Gallery(db, model="dlib-resnet-v1") as g:
        g.add_embeddings(list(names), np.random.default_rng(0).standard_normal((len(names), 128)))


def event(kind: str, t: float, identity: str | None = "ada", decided: bool = True, distance: float | None = 0.4) -> Event:
    return Event(kind, 1, t, int(t * 10), (0.0, 0.0, 10.0, 10.0), identity, distance, decided, 3)  # type: ignore[arg-type]


def test_times_are_iso_utc_both_ways() -> None:
    assert iso_time(NOW) == "2025-06-15T15:06:40.000Z"
    assert unix_time("2025-06-15T15:06:40Z") == unix_time("2025-06-15T17:06:40+02:00") == NOW
    assert unix_time("2025-06-15T15:06:40") == NOW  # no zone: UTC, whatever the machine's
    assert unix_time("2025-06-15") == NOW - (15 * 3600 + 6 * 60 + 40)
    with pytest.raises(ValueError, match="not ISO-8601"):
        unix_time("yesterday")


def test_record_list_and_purge_past_the_retention(location: Path | str) -> None:
    make_gallery(location)
    with Gallery(location, create=False) as g:
        stored = g.record_sightings([
            Sighting("ada", "door", "recognised", NOW - 40 * DAY, 0.31),
            Sighting("ada", "door", "left", NOW - 40 * DAY + 5, 0.32),
            Sighting("bea", "hall", "recognised", NOW - 2 * DAY, float("inf")),
            Sighting("ada", "hall", "recognised", NOW - 60, None),
            Sighting("nobody", "door", "recognised", NOW, 0.2),  # not enrolled: dropped
        ])  # fmt: skip
        assert stored == 4
        page, total = g.sightings_page(limit=2)
        assert total == 4 and [(s.person, s.stream, s.time) for s in page] == [("ada", "hall", NOW - 60), ("bea", "hall", NOW - 2 * DAY)]
        assert page[1].distance is None  # inf is not a distance anyone can use
        assert [s.to_dict() for s in g.sightings(person="ada", since=iso_time(NOW - 41 * DAY), limit=5)] == [
            {"person": "ada", "stream": "hall", "event": "recognised", "time": iso_time(NOW - 60), "distance": None},
            {"person": "ada", "stream": "door", "event": "left", "time": iso_time(NOW - 40 * DAY + 5), "distance": 0.32},
            {"person": "ada", "stream": "door", "event": "recognised", "time": iso_time(NOW - 40 * DAY), "distance": 0.31},
        ]
        assert g.sightings_page(since=NOW - 3 * DAY, offset=1)[1] == 2
        with pytest.raises(UnknownPersonError):
            g.sightings(person="nobody")
        gen = g.store.generation()
        assert g.purge_sightings(30, now=NOW) == 2  # the two 40-day-old ones
        assert g.purge_sightings(30, now=NOW) == 0
        assert [s.time for s in g.sightings()] == [NOW - 60, NOW - 2 * DAY]
        assert g.store.generation() == gen  # sightings do not make the vector index stale
        assert g.check() == "ok"


def test_the_recorder_stores_known_people_and_purges_at_most_once_a_minute(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    make_gallery(db)
    clock = [NOW]
    with Gallery(db, create=False) as g:
        g.record_sightings([Sighting("bea", "old", "left", NOW - 31 * DAY)])
        rec = SightingsRecorder(g, "front door", retention_days=30, started=NOW - 100, clock=lambda: clock[0])
        assert rec(event("appear", 1.0, None, decided=False)) is None
        assert rec(event("recognised", 2.0, None)) is None  # a stranger
        assert rec(event("leave", 2.5, "ada", decided=False)) is None  # never decided
        got = rec(event("recognised", 2.0))
        assert got == Sighting("ada", "front door", "recognised", NOW - 98, 0.4)
        assert g.sightings(person="bea") == []  # the first sighting purged the 31-day-old one
        g.record_sightings([Sighting("bea", "old", "left", NOW - 31 * DAY)])
        clock[0] += 30
        rec(event("leave", 9.0))
        assert len(g.sightings(person="bea")) == 1  # 30 s later: no purge yet
        clock[0] += 31
        rec(event("recognised", 70.0))
        assert g.sightings(person="bea") == [] and rec.purged == 2
        assert [(s.event, s.time) for s in g.sightings(person="ada")] == [
            ("recognised", NOW - 30), ("left", NOW - 91), ("recognised", NOW - 98)
        ]
        assert rec.recorded == 3
        g.remove("ada")
        assert rec(event("recognised", 80.0)) is not None and rec.recorded == 3  # removed meanwhile: not stored
    assert sighting_of(event("leave", 1.0), "s", 0.0).event == "left"  # type: ignore[union-attr]


def test_deleting_a_person_deletes_their_sightings(location: Path | str) -> None:
    make_gallery(location)
    with Gallery(location, create=False) as g:
        g.add_person("cyd")  # no face: only sightings hold them
        stream = "Zelda-Quintessa-Private-Gate"  # a string no other row holds
        g.record_sightings([Sighting(n, stream, "recognised", NOW + i, 0.3) for i, n in enumerate(["ada", "bea", "cyd", "ada"])])
        g.remove("ada")
        g.remove_person(g.store.person_id("cyd"))
        assert [(s.person, s.stream) for s in g.sightings()] == [("bea", stream)]
        count = g.store.db.execute("SELECT COUNT(*) FROM sightings").fetchone()[0]
        assert count == 1 and g.check() == "ok"
        g.remove("bea")
        assert g.sightings() == []
        if isinstance(location, Path):  # SQLite: the rows' bytes leave the file and its WAL too
            for path in location.parent.glob(location.name + "*"):
                assert stream.encode() not in path.read_bytes(), path.name


def test_merging_two_names_keeps_the_sightings(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    make_gallery(db)
    with Gallery(db, create=False) as g:
        g.record_sightings([Sighting("ada", "door", "recognised", NOW), Sighting("bea", "door", "left", NOW + 1)])
        g.merge("ada", "bea")
        assert [s.person for s in g.sightings()] == ["bea", "bea"]


def test_cli_lists_sightings_as_json(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    make_gallery(db)
    with Gallery(db, create=False) as g:
        g.record_sightings([
            Sighting("ada", "door", "recognised", NOW, 0.41234), Sighting("ada", "door", "left", NOW + 12.5, 0.4),
            Sighting("bea", "hall", "recognised", NOW - DAY, None),
        ])  # fmt: skip
    res = runner.invoke(app, ["sightings", "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert all(set(r) == KEYS and ISO.match(r["time"]) for r in rows)
    assert rows[0] == {"person": "ada", "stream": "door", "event": "left", "time": "2025-06-15T15:06:52.500Z", "distance": 0.4}
    assert [(r["person"], r["event"]) for r in rows] == [("ada", "left"), ("ada", "recognised"), ("bea", "recognised")]
    res = runner.invoke(app, ["sightings", "--db", str(db), "--since", "2025-06-15T15:00:00Z", "--person", "ada", "--limit", "1", "--json"])
    assert res.exit_code == 0 and [r["event"] for r in json.loads(res.stdout)] == ["left"]
    res = runner.invoke(app, ["sightings", "--db", str(db)])
    assert res.exit_code == 0 and "hall" in res.stdout and "2025-06-14T15:06:40.000Z" in res.stdout
    res = runner.invoke(app, ["sightings", "--db", str(db), "--person", "zed", "--json"])
    assert res.exit_code == 2 and "zed" in json.loads(res.stdout)["error"]
    res = runner.invoke(app, ["sightings", "--db", str(db), "--since", "last tuesday"])
    assert res.exit_code == 2 and "ISO-8601" in res.output
    res = runner.invoke(app, ["sightings", "--db", str(tmp_path / "none.db")])
    assert res.exit_code == 2 and "no gallery" in res.output


def test_http_get_sightings(tmp_path: Path) -> None:
    httpx = pytest.importorskip("httpx", reason="the service's test extra is not installed: pip install -e '.[test]'")
    pytest.importorskip("fastapi", reason="the service extra is not installed: pip install -e '.[service]'")
    from faceprint.models import DEFAULT_MODEL, get_model_spec
    from faceprint.service.testing import running_server

    db = tmp_path / "g.db"
    dim = get_model_spec(DEFAULT_MODEL).embedding_size
    now = time.time()
    with Gallery(db, model=DEFAULT_MODEL) as g:
        g.add_embeddings(["ada", "bea"], np.random.default_rng(0).standard_normal((2, dim)))
        g.record_sightings([
            Sighting("ada", "door", "recognised", now - 3600, 0.5), Sighting("ada", "door", "left", now - 3000, 0.5),
            Sighting("bea", "hall", "recognised", now - 40 * DAY, 0.2),  # past the 30-day retention: never served
        ])  # fmt: skip
    env = {"FACEPRINT_API_KEY": "read-1", "FACEPRINT_ADMIN_KEY": "admin-2", "FACEPRINT_SIGHTINGS_RETENTION_DAYS": "30"}
    with running_server(db, env) as url, httpx.Client(base_url=url, headers={"X-API-Key": "read-1"}, timeout=60) as c:
        r = c.get("/v1/sightings")
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"sightings", "total"} and body["total"] == 2
        assert [(s["person"], s["event"]) for s in body["sightings"]] == [("ada", "left"), ("ada", "recognised")]
        assert all(set(s) == KEYS and ISO.match(s["time"]) for s in body["sightings"])
        with Gallery(db, create=False) as g:  # another process records while the service runs
            g.record_sightings([Sighting("bea", "hall", "left", now, 0.25)])
        r = c.get("/v1/sightings", params={"person": "bea", "since": iso_time(now - 60), "limit": 5})
        assert r.json() == {"sightings": [{"person": "bea", "stream": "hall", "event": "left", "time": iso_time(now),
                                           "distance": 0.25}], "total": 1}
        r = c.get("/v1/sightings", params={"limit": 1, "offset": 1})
        assert r.json()["total"] == 3 and r.json()["sightings"][0]["event"] == "left"
        assert r.json()["sightings"][0]["person"] == "ada"
        for params, status, code in (
            ({"person": "zed"}, 404, "person_not_found"),
            ({"since": "soon"}, 422, "invalid_request"),
            ({"limit": 0}, 422, "invalid_request"),
        ):
            r = c.get("/v1/sightings", params=params)
            assert r.status_code == status and r.json()["error"]["code"] == code, r.text
        r = httpx.get(f"{url}/v1/sightings")  # no key
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert "/v1/sightings" in c.get("/openapi.json").json()["paths"]


def test_watch_records_sightings_and_writes_greetings(tmp_path: Path, data_dir: Path) -> None:
    """`faceprint watch --db` end to end on a real clip: Tony Blair's arrival and departure are
    stored as sightings under the stream's name; --greet-to writes his greeting as a WAV file."""
    import shutil

    from faceprint import FacePipeline
    from faceprint.video.scene import Actor, door_scene, lfw_photo, write_scene

    db = tmp_path / "people.db"
    with Gallery(db, pipeline=FacePipeline()) as g:
        assert len(g.enrol([("Tony_Blair", lfw_photo(data_dir, "Tony_Blair", i)) for i in (1, 2)]).enrolled) == 2
    blair = [Actor(lfw_photo(data_dir, "Tony_Blair", 10), "Tony_Blair", 0.4, 2.6, (0.3, 0.5), (0.6, 0.5), (120, 150))]
    clip = write_scene(tmp_path / "clip.mp4", blair, door_scene(data_dir, (320, 240))[1], fps=10, duration=3.0)
    args = ["watch", str(clip), "--db", str(db), "--every", "4", "--stream", "lobby", "--json"]
    speech = shutil.which("espeak-ng") or shutil.which("espeak")
    if speech:
        args += ["--greet-to", str(tmp_path / "hello.wav"), "--greet-template", "Hello {name}"]
    before = time.time()
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["sightings"] == 2
    with Gallery(db, create=False) as g:
        seen = g.sightings()
    assert [(s.person, s.stream, s.event) for s in seen] == [("Tony_Blair", "lobby", "left"), ("Tony_Blair", "lobby", "recognised")]
    # dated from the run's start by video time (a file plays faster than real time): within the 3 s clip
    assert before <= seen[1].time < seen[0].time <= before + 3.0 + 60 and seen[1].distance < 0.6
    assert 1.0 < seen[0].time - seen[1].time < 3.0
    if speech:
        assert [p.name for p in tmp_path.glob("hello*.wav")] == ["hello-0001.wav"]
    res = runner.invoke(app, ["watch", str(clip), "--db", str(db), "--every", "4", "--no-sightings", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["sightings"] is None
    with Gallery(db, create=False) as g:
        assert len(g.sightings()) == 2
