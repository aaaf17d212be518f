"""Video recognition end to end on real faces: a scene made from LFW photos, a real gallery, real networks.

The scene (:func:`faceprint.video.scene.door_scene`: 480x360, 10 fps, 7.5 s, Motion JPEG) has two
enrolled people and one stranger walking and growing across a real landscape photo; Colin Powell
is hidden for 0.2 s mid-way. The photos in the video are not the enrolled ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import FacePipeline, Gallery, get_detector
from faceprint.cli import app
from faceprint.video import AnnotatedVideoWriter, Event, FrameResult, VideoRecognizer, VideoSource
from faceprint.video.scene import Actor, door_scene, lfw_photo, write_scene

FPS, DURATION, SIZE = 10.0, 7.5, (480, 360)
ENROLLED = ("Colin_Powell", "Tony_Blair")


def actors(data_dir: Path) -> list[Actor]:
    return door_scene(data_dir, SIZE)[0]


def background(data_dir: Path, size: tuple[int, int] = SIZE) -> np.ndarray:
    return door_scene(data_dir, size)[1]


@pytest.fixture(scope="module")
def gallery_db(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    db = tmp_path_factory.mktemp("video") / "people.db"
    with Gallery(db, pipeline=FacePipeline()) as g:
        report = g.enrol([(p, lfw_photo(data_dir, p, i)) for p in ENROLLED for i in (1, 2)])
    assert len(report.enrolled) == 4
    return db


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("scene") / "scene.avi"
    return write_scene(out, actors(data_dir), background(data_dir), fps=FPS, duration=DURATION)


@pytest.fixture(scope="module")
def watched(gallery_db: Path, scene: Path) -> tuple[list[Event], list[FrameResult], Path]:
    """Events and every frame's result of the scene, detection every 3rd frame; annotated video written."""
    out = scene.with_name("annotated.mp4")
    with Gallery(gallery_db, create=False) as g, VideoSource(scene) as src, AnnotatedVideoWriter(out, src.fps) as w:
        rec = VideoRecognizer(g, every=3, detector=get_detector("mtcnn", min_face_size=40))
        events, results = [], []
        for r in rec.run(src):
            events += r.events
            results.append(r)
            w.write(r)
        events += rec.finish()
    return events, results, out


def by_kind(events: list[Event], kind: str) -> list[Event]:
    return sorted((e for e in events if e.kind == kind), key=lambda e: e.time)


def test_events_name_the_right_people_in_order_on_time(watched: tuple, data_dir: Path) -> None:
    events, _, _ = watched
    truth = actors(data_dir)
    appear = by_kind(events, "appear")
    # one arrival per continuous appearance: Powell's 0.2 s behind cover is bridged, not a new arrival
    assert len(appear) == 3 and len({e.track for e in appear}) == 3
    decided = {e.track: e for e in events if e.kind == "recognised"}
    assert [decided[e.track].identity for e in appear] == ["Colin_Powell", None, "Tony_Blair"]  # None = stranger
    assert [decided[e.track].name for e in appear] == ["Colin_Powell", "unknown", "Tony_Blair"]
    leave = {e.track: e for e in events if e.kind == "leave"}
    for actor, arrival in zip(truth, appear):
        assert abs(arrival.time - actor.enter) <= 1.0, (actor.name, arrival)
        assert abs(decided[arrival.track].time - actor.enter) <= 1.0, (actor.name, decided[arrival.track])
        assert abs(leave[arrival.track].time - actor.leave) <= 1.0, (actor.name, leave[arrival.track])
        assert leave[arrival.track].identity == decided[arrival.track].identity
    # each track: appear, then recognised, then leave; no identity changes on this short clip
    for track in decided:
        kinds = [e.kind for e in events if e.track == track]
        assert kinds == ["appear", "recognised", "leave"], (track, kinds)
    known = [e for e in decided.values() if e.identity is not None]
    assert all(e.distance is not None and e.distance < 0.6 for e in known) and all(e.votes >= 2 for e in known)


def test_frames_show_named_tracks(watched: tuple) -> None:
    _, results, _ = watched
    at = {round(r.frame.time, 1): r for r in results}
    assert len(results) == int(FPS * DURATION) and at[1.0].tracks and not at[0.0].tracks
    names = lambda t: sorted(x.name or "..." for x in at[t].tracks)  # noqa: E731
    assert names(3.0) == ["Colin_Powell", "unknown"]
    assert names(6.5) == ["Tony_Blair"]
    assert sum(r.detected for r in results) == 25  # one frame in three


def test_annotated_video_is_written(watched: tuple) -> None:
    _, results, out = watched
    with VideoSource(out) as src:
        frames = list(src)
        assert src.size == SIZE
    assert len(frames) == len(results)
    # the labelled frame differs from the plain one where the boxes are drawn, only there
    r = next(r for r in results if round(r.frame.time, 1) == 3.0)
    diff = cv2.absdiff(frames[r.frame.index].image, r.frame.image).max(axis=2) > 60
    l, t, rr, b = (int(v) for v in r.tracks[0].box)
    assert diff.any() and diff[max(t - 20, 0) : b + 5, max(l - 5, 0) : rr + 5].any()


runner = CliRunner()


def test_cli_watch_events_output_and_greeting(gallery_db: Path, tmp_path: Path, data_dir: Path) -> None:
    blair = [Actor(lfw_photo(data_dir, "Tony_Blair", 10), "Tony_Blair", 0.4, 2.6, (0.3, 0.5), (0.6, 0.5), (120, 150))]
    clip = write_scene(tmp_path / "clip.mp4", blair, background(data_dir, (320, 240)), fps=10, duration=3.0)
    events, video = tmp_path / "events.jsonl", tmp_path / "out.avi"
    res = runner.invoke(
        app, ["watch", str(clip), "--db", str(gallery_db), "--events", str(events), "--output", str(video),
              "--greet", "--every", "4", "--cooldown", "60"],
    )
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert [(x["event"], x["identity"]) for x in lines] == [
        ("appear", None), ("recognised", "Tony_Blair"), ("leave", "Tony_Blair")
    ]
    assert set(lines[0]) == {"event", "track", "time", "frame", "identity", "distance", "votes", "box"}
    if shutil.which("espeak-ng") is None and shutil.which("espeak") is None:
        assert res.output.count("Welcome Tony_Blair, have a nice day!") == 1
    assert video.stat().st_size > 0 and "30 frames" in res.output


def test_cli_watch_errors(gallery_db: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["watch", str(tmp_path / "none.mp4"), "--db", str(gallery_db)])
    assert res.exit_code == 2 and "no video file" in res.output
    (tmp_path / "junk.avi").write_bytes(b"junk" * 100)
    res = runner.invoke(app, ["watch", str(tmp_path / "junk.avi"), "--db", str(gallery_db), "--json"])
    assert res.exit_code == 2 and "cannot open video" in json.loads(res.stdout)["error"]
    res = runner.invoke(app, ["watch", str(tmp_path / "junk.avi"), "--db", str(tmp_path / "missing.db")])
    assert res.exit_code == 2 and "no gallery" in res.output
