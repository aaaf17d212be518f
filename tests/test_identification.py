"""Identification metrics on hand-made descriptors with known answers (no image embedding)."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint.evaluate import identification as ident
from faceprint.evaluate.identification import identification_metrics, rank1_vs_gallery_size

# Seven people on a line, 10 apart: a=0, b=10, ..., g=60.
GALLERY = np.array([[10.0 * i, 0.0] for i in range(7)])
GALLERY_IDS = np.array(list("abcdefg"))
# (person, x): a@1 rank 1 (d=1); b@12 rank 1 (d=2); c@27 rank 2 (d to c 7, d is nearer at 3);
# a@43 rank 7 (e 3, f 7, d 13, g 17, c 23, b 33, a 43); d@34 rank 1 (d=4).
PROBES = np.array([[1.0, 0.0], [12.0, 0.0], [27.0, 0.0], [43.0, 0.0], [34.0, 0.0]])
PROBE_IDS = np.array(["a", "b", "c", "a", "d"])
# Strangers straight above a: their nearest gallery distance is their height.
HEIGHTS = [0.5, 1.5, 2.5, 3.5, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0]
STRANGERS = np.array([[0.0, h] for h in HEIGHTS])


def _run(**kw):
    return identification_metrics(GALLERY, GALLERY_IDS, PROBES, PROBE_IDS, STRANGERS, **kw)


def test_rank1_and_rank5():
    r = _run()
    assert r["rank1"] == pytest.approx(3 / 5)
    assert r["rank5"] == pytest.approx(4 / 5)
    assert (r["gallery_people"], r["gallery_images"], r["probes"], r["strangers"]) == (7, 7, 5, 10)
    assert r["metric"] == "euclidean"
    assert "at_threshold" not in r


def test_dir_at_far_sets_threshold_on_strangers():
    r = _run(fars=(0.3, 0.5, 0.1, 0.05))
    d = r["dir_at_far"]
    # FAR 0.3 of 10 strangers: accept 3 (heights up to 2.5) -> a@1 and b@12 are in.
    assert d["0.3"]["threshold"] == pytest.approx(2.5)
    assert d["0.3"]["far"] == pytest.approx(0.3)
    assert d["0.3"]["dir"] == pytest.approx(2 / 5)
    assert d["0.5"]["threshold"] == pytest.approx(4.5)
    assert d["0.5"]["dir"] == pytest.approx(3 / 5)  # d@34 at distance 4 joins
    assert d["0.1"]["threshold"] == pytest.approx(0.5)
    assert d["0.1"]["dir"] == 0.0
    # Less than one stranger may be accepted: the threshold lies below the nearest stranger.
    assert d["0.05"]["threshold"] < 0.5
    assert d["0.05"]["far"] == 0.0
    assert d["0.05"]["dir"] == 0.0


def test_default_fars_keys():
    assert set(_run()["dir_at_far"]) == {"0.01", "0.001"}


def test_far_threshold_steps_below_ties():
    strangers = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 2.0], [0.0, 3.0]])
    r = identification_metrics(GALLERY, GALLERY_IDS, PROBES, PROBE_IDS, strangers, fars=(0.25, 0.5))
    assert r["dir_at_far"]["0.25"]["far"] == 0.0  # accepting one would accept both tied strangers
    assert r["dir_at_far"]["0.25"]["threshold"] < 1.0
    assert r["dir_at_far"]["0.5"]["far"] == pytest.approx(0.5)
    assert r["dir_at_far"]["0.5"]["threshold"] == pytest.approx(1.0)


def test_fixed_threshold():
    at = _run(threshold=3.2)["at_threshold"]
    assert at["threshold"] == 3.2
    assert at["rank1"] == pytest.approx(2 / 5)  # a@1, b@12; d@34 is 4 away
    assert at["false_accept_rate"] == pytest.approx(3 / 10)
    # c@27 and a@43 are nearest to the wrong person, 3 away: accepted as someone else.
    assert at["wrong_person_rate"] == pytest.approx(2 / 5)


def test_no_strangers_gives_no_open_set_figures():
    r = identification_metrics(GALLERY, GALLERY_IDS, PROBES, PROBE_IDS, np.zeros((0, 2)), threshold=1.0)
    assert r["dir_at_far"] == {"0.01": None, "0.001": None}
    assert r["at_threshold"]["false_accept_rate"] is None
    assert r["rank1"] == pytest.approx(3 / 5)


def test_ties_count_against_the_probe():
    r = identification_metrics(GALLERY, GALLERY_IDS, np.array([[5.0, 0.0]]), np.array(["a"]), np.zeros((0, 2)))
    assert r["rank1"] == 0.0  # a and b both 5 away
    assert r["rank5"] == 1.0


def test_several_gallery_images_per_person_nearest_counts():
    gallery = np.array([[0.0, 0.0], [100.0, 0.0], [50.0, 0.0]])
    ids = np.array(["a", "a", "b"])
    r = identification_metrics(gallery, ids, np.array([[98.0, 0.0], [52.0, 0.0]]), np.array(["a", "b"]), np.zeros((0, 2)))
    assert r["rank1"] == 1.0
    assert (r["gallery_people"], r["gallery_images"]) == (2, 3)


def test_cosine_metric_3d():
    gallery = np.eye(3)
    ids = np.array(["x", "y", "z"])
    probes = np.array([[5.0, 0.5, 0.0], [0.0, 0.1, 0.2], [0.1, 3.0, 0.0]])  # x, z, y by angle
    probe_ids = np.array(["x", "y", "y"])
    strangers = np.array([[1.0, 1.0, 1.0]])
    r = identification_metrics(gallery, ids, probes, probe_ids, strangers, metric="cosine", threshold=0.5)
    assert r["rank1"] == pytest.approx(2 / 3)
    assert r["rank5"] == 1.0
    # cos to any axis is 1/sqrt(3): distance 1 - 0.577 = 0.42 <= 0.5, a false accept.
    assert r["at_threshold"]["false_accept_rate"] == 1.0


def test_chunking_does_not_change_results(monkeypatch):
    rng = np.random.default_rng(3)
    gallery = rng.normal(size=(40, 6))
    ids = np.arange(40)
    probe_ids = rng.integers(0, 40, 120)
    probes = gallery[probe_ids] + rng.normal(scale=0.8, size=(120, 6))
    strangers = rng.normal(size=(200, 6))
    kw = {"fars": (0.01, 0.1), "threshold": 2.0}
    whole = identification_metrics(gallery, ids, probes, probe_ids, strangers, **kw)
    whole_sizes = rank1_vs_gallery_size(gallery, ids, probes, probe_ids, [5, "all"], 1)
    monkeypatch.setattr(ident, "_CHUNK_CELLS", 7)
    chunked = identification_metrics(gallery, ids, probes, probe_ids, strangers, **kw)
    # The BLAS may round a last bit differently per chunk shape: compare the figures, not bits.
    for key in ("rank1", "rank5", "probes", "strangers"):
        assert chunked[key] == pytest.approx(whole[key])
    for far, row in whole["dir_at_far"].items():
        assert chunked["dir_at_far"][far] == pytest.approx(row)
    assert chunked["at_threshold"] == pytest.approx(whole["at_threshold"])
    assert rank1_vs_gallery_size(gallery, ids, probes, probe_ids, [5, "all"], 1) == whole_sizes


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((GALLERY, GALLERY_IDS[:-1], PROBES, PROBE_IDS, STRANGERS), "gallery_ids"),
        ((GALLERY, GALLERY_IDS, PROBES, PROBE_IDS[:-1], STRANGERS), "probe_ids"),
        ((GALLERY, GALLERY_IDS, PROBES[:, :1], PROBE_IDS, STRANGERS), "sizes differ"),
        ((GALLERY, GALLERY_IDS, PROBES, PROBE_IDS, STRANGERS[:, :1]), "strangers"),
        ((GALLERY, GALLERY_IDS, PROBES, np.array(["a", "b", "c", "a", "zz"]), STRANGERS), "no enrolled person"),
        ((GALLERY[0], GALLERY_IDS[:1], PROBES, PROBE_IDS, STRANGERS), "2-D"),
        ((GALLERY[:0], GALLERY_IDS[:0], PROBES, PROBE_IDS, STRANGERS), "empty"),
        ((GALLERY, GALLERY_IDS, PROBES[:0], PROBE_IDS[:0], STRANGERS), "no genuine probes"),
    ],
)
def test_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        identification_metrics(*args)


def test_bad_far():
    with pytest.raises(ValueError, match="FAR"):
        _run(fars=(0.0,))
    with pytest.raises(ValueError, match="FAR"):
        _run(fars=(1.5,))


def _synthetic(people=60, per=3, seed=7):
    rng = np.random.default_rng(seed)
    gallery = rng.normal(size=(people, 8))
    ids = np.array([f"p{i:03d}" for i in range(people)])
    probe_ids = np.repeat(ids, per)
    probes = np.repeat(gallery, per, axis=0) + rng.normal(scale=0.9, size=(people * per, 8))
    return gallery, ids, probes, probe_ids


def test_rank1_vs_gallery_size():
    gallery, ids, probes, probe_ids = _synthetic()
    rows = rank1_vs_gallery_size(gallery, ids, probes, probe_ids, [1, 10, 30, None, "all", 500], seed=0)
    assert [r["size"] for r in rows] == [1, 10, 30, "all", "all", 500]
    assert [r["people"] for r in rows] == [1, 10, 30, 60, 60, 60]
    assert [r["probes"] for r in rows] == [3, 30, 90, 180, 180, 180]
    assert rows[0]["rank1"] == 1.0  # one enrolled person: never wrong
    full = identification_metrics(gallery, ids, probes, probe_ids, np.zeros((0, 8)))
    assert rows[3]["rank1"] == pytest.approx(full["rank1"])
    assert rows[4] == rows[3] and rows[5]["rank1"] == rows[3]["rank1"]
    assert rows[1]["rank1"] >= rows[3]["rank1"]  # a small gallery is easier here
    # Deterministic for a seed; another seed draws other people.
    again = rank1_vs_gallery_size(gallery, ids, probes, probe_ids, [1, 10, 30, None, "all", 500], seed=0)
    assert again == rows
    other = rank1_vs_gallery_size(gallery, ids, probes, probe_ids, [10, 20, 30], seed=1)
    assert [r["probes"] for r in other] == [30, 60, 90]


def test_rank1_vs_gallery_size_subset_by_hand():
    # Two people; b's probe sits nearer a. With only b enrolled it is right, with both it is wrong.
    gallery = np.array([[0.0, 0.0], [10.0, 0.0]])
    ids = np.array(["a", "b"])
    probes = np.array([[4.0, 0.0], [1.0, 0.0]])
    probe_ids = np.array(["b", "a"])
    rows = rank1_vs_gallery_size(gallery, ids, probes, probe_ids, [1, "all"], seed=0)
    assert rows[1]["rank1"] == 0.5
    person = ids[np.random.default_rng(0).permutation(2)[0]]
    assert rows[0] == {"size": 1, "people": 1, "probes": 1, "rank1": 1.0}, person


@pytest.mark.parametrize("bad", [0, -3, "most", 2.5, True])
def test_rank1_vs_gallery_size_bad_sizes(bad):
    gallery, ids, probes, probe_ids = _synthetic(people=5)
    with pytest.raises(ValueError, match="gallery size"):
        rank1_vs_gallery_size(gallery, ids, probes, probe_ids, [bad], seed=0)


def test_rank1_vs_gallery_size_bad_inputs():
    gallery, ids, probes, probe_ids = _synthetic(people=5)
    with pytest.raises(ValueError, match="probe_ids"):
        rank1_vs_gallery_size(gallery, ids, probes, probe_ids[:-1], [2], seed=0)
    with pytest.raises(ValueError, match="no enrolled person"):
        rank1_vs_gallery_size(gallery, ids, probes, np.array(["x"] * len(probes)), [2], seed=0)


def test_lfw_split(tmp_path):
    for name, n in [("Ann", 3), ("Bob", 1), ("Cy", 2)]:
        (tmp_path / name).mkdir()
        for i in range(n, 0, -1):
            (tmp_path / name / f"{name}_{i:04d}.jpg").write_bytes(b"x")
    paths, names, roles = ident.lfw_identification_split(tmp_path)
    assert [p.name for p in paths] == [
        "Ann_0001.jpg", "Ann_0002.jpg", "Ann_0003.jpg", "Bob_0001.jpg", "Cy_0001.jpg", "Cy_0002.jpg"
    ]
    assert names == ["Ann", "Ann", "Ann", "Bob", "Cy", "Cy"]
    assert roles == ["gallery", "probe", "probe", "stranger", "gallery", "probe"]


def test_cli_rejects_bad_gallery_sizes(tmp_path):
    from typer.testing import CliRunner

    from faceprint.cli import app

    res = CliRunner().invoke(app, ["eval", "lfw-identify", "--root", str(tmp_path), "--gallery-sizes", "100,lots"])
    assert res.exit_code == 2
    assert "lots" in res.output
