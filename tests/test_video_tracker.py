"""Tracker, voting, events and greeter on their own (no networks: scripted stand-ins), fast and exact."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from faceprint.types import Detection, Match
from faceprint.video import Event, Frame, Greeter, JsonLinesWriter, Tracker, VideoRecognizer, iou_matrix


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 5, 5]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    assert iou_matrix(a, b) == pytest.approx(np.array([[1, 50 / 150, 0], [0.25, 0, 0]]))
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def scene(t: int, rng_patch: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """(120, 200) gray frame with a textured 40 px patch moving 4 px right and 1 px down per frame."""
    frame = np.full((120, 200), 90, np.uint8)
    x, y = 20 + 4 * t, 30 + t
    frame[y : y + 40, x : x + 40] = rng_patch
    return frame, (float(x), float(y), float(x + 40), float(y + 40))


def det(box: tuple[float, float, float, float]) -> list[Detection]:
    return [Detection(box, 0.99)]


def test_boxes_follow_motion_between_detections_and_keep_their_id() -> None:
    patch = np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8)
    tr = Tracker(min_hits=2, max_age=1.0)
    f0, b0 = scene(0, patch)
    born, _ = tr.update(f0, 0, 0.0, det(b0))
    assert born == [] and not tr.tracks[0].confirmed  # tentative until seen twice
    f1, b1 = scene(1, patch)
    born, _ = tr.update(f1, 1, 0.1, det(b1))
    assert [t.id for t in born] == [1] and born[0].first_time == 0.0
    for i in range(2, 8):  # no detections: optical flow carries the box
        frame, truth = scene(i, patch)
        tr.update(frame, i, i / 10)
        assert tr.tracks[0].box == pytest.approx(truth, abs=2.0), i
        assert tr.tracks[0].detection is None
    frame, truth = scene(8, patch)
    born, ended = tr.update(frame, 8, 0.8, det(truth))
    assert born == [] and ended == [] and [t.id for t in tr.tracks] == [1] and tr.tracks[0].detection is not None


def test_track_ends_after_max_age_and_false_detections_die_silently() -> None:
    patch = np.random.default_rng(1).integers(0, 255, (40, 40), dtype=np.uint8)
    tr = Tracker(min_hits=2, max_age=0.5)
    frame, box = scene(0, patch)
    tr.update(frame, 0, 0.0, det(box))
    tr.update(frame, 1, 0.1, det(box))
    tr.update(frame, 2, 0.2, det((150.0, 5.0, 190.0, 45.0)))  # a one-off false detection elsewhere
    assert len(tr.tracks) == 2
    _, ended = tr.update(frame, 3, 0.3, [])  # detector ran and saw neither
    assert [t.id for t in ended] == [2] and not ended[0].confirmed  # the tentative one is gone at once
    _, ended = tr.update(frame, 4, 0.7, [])  # 0.6 s since the last sighting > max_age
    assert [t.id for t in ended] == [1] and ended[0].last_time == 0.1 and tr.tracks == []


def test_event_json_and_writer() -> None:
    ev = Event("recognised", 3, 1.23456, 12, (10.0, 20.0, 50.0, 80.0), None, 0.71234, True, 2)
    assert ev.name == "unknown"
    assert ev.to_dict() == {
        "event": "recognised", "track": 3, "time": 1.235, "frame": 12, "identity": "unknown",
        "distance": 0.7123, "votes": 2, "box": [10.0, 20.0, 40.0, 60.0],
    }
    assert Event("appear", 3, 1.0, 10, (0, 0, 1, 1)).to_dict()["identity"] is None  # not decided yet
    assert Event("recognised", 1, 0.0, 0, (0, 0, 1, 1), None, float("inf"), True).to_dict()["distance"] is None
    buf = io.StringIO()
    JsonLinesWriter(buf).write(ev)
    assert json.loads(buf.getvalue()) == ev.to_dict()


def test_greeter_cooldown_and_strangers() -> None:
    said: list[str] = []
    g = Greeter(cooldown=30.0, speak=False, say=said.append)

    def rec(name: str | None, t: float) -> Event:
        return Event("recognised", 1, t, 0, (0, 0, 1, 1), name, 0.3, True)

    assert g(rec("skuli", 1.0)) == "Welcome skuli, have a nice day!"
    assert g(rec("skuli", 20.0)) is None  # back in view too soon
    assert g(rec(None, 21.0)) is None and g(Event("appear", 2, 21.0, 0, (0, 0, 1, 1))) is None
    assert g(rec("anna", 22.0)) is not None and g(rec("skuli", 31.5)) is not None
    assert said == ["Welcome skuli, have a nice day!", "Welcome anna, have a nice day!", "Welcome skuli, have a nice day!"]


class FakePipeline:
    """Detector, aligner and embedder stand-ins: one fixed face, zero descriptors."""

    def __init__(self) -> None:
        self.detector, self.embedder = self, self

    def detect(self, image: np.ndarray) -> list[Detection]:
        return [Detection((40.0, 30.0, 100.0, 90.0), 0.99)]

    def embed(self, image: np.ndarray, dets: list[Detection]) -> np.ndarray:
        return np.zeros((len(dets), 4), np.float32)


class ScriptedGallery:
    """Answers each descriptor with the next identity of a script (None = stranger)."""

    def __init__(self, script: list[str | None]) -> None:
        self.pipeline, self.script, self.calls = FakePipeline(), list(script), 0

    def identify_vectors(self, vectors: np.ndarray, *, top_k: int = 1, threshold: float | None = None) -> list:
        self.calls += len(vectors)
        return [[Match(self.script.pop(0), 0.3)] for _ in range(len(vectors))]


def run_script(script: list[str | None], frames: int, **kw: object) -> tuple[list[Event], ScriptedGallery]:
    g = ScriptedGallery(script)
    rec = VideoRecognizer(g, every=1, **kw)  # type: ignore[arg-type]
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    events = [e for i in range(frames) for e in rec.step(Frame(i, i / 10, image)).events] + rec.finish()
    return events, g


def test_votes_decide_and_rechecks_change_only_on_a_majority() -> None:
    # decided at the 2nd descriptor; re-checks every 0.5 s: one outlier does not flip it, two do
    events, g = run_script(["anna", "anna", "bob", "anna", "bob", "bob"], 25, votes=3, recheck=0.5)
    assert [(e.kind, e.identity) for e in events] == [
        ("appear", None), ("recognised", "anna"), ("recognised", "bob"), ("leave", "bob")
    ]
    assert events[0].time == 0.0 and events[1].time == pytest.approx(0.1)
    assert g.calls == 6  # 2 to decide, then one per 0.5 s: the network does not run on every frame
    assert events[2].time == pytest.approx(1.6) and events[3].time == pytest.approx(2.4)


def test_stranger_is_decided_unknown() -> None:
    events, _ = run_script([None, None], 5, votes=3, recheck=60)
    assert [(e.kind, e.name) for e in events] == [("appear", None), ("recognised", "unknown"), ("leave", "unknown")]
