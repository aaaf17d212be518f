"""Batch enrolment on real faces: in-process and on a real local Ray agree, bad files are reported,
reruns and partial runs converge to the same gallery, manifests and the CLI work."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import FacePipeline, Gallery, GalleryError
from faceprint.cli import app
from faceprint.gallery.batch import enrol_batch, read_source
from faceprint.pipeline import iter_known_dir

CELEB = "5-celebrity-faces"
PEOPLE = ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]
MODEL = "dlib-resnet-v1"  # the fastest registered model: these tests check the mechanics
BAD = {"truncated.jpg", "blank_white.png"}
runner = CliRunner()


@pytest.fixture(scope="module")
def pipe() -> FacePipeline:
    return FacePipeline(model=MODEL)


@pytest.fixture(scope="module")
def source(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two training photos per person, plus a truncated JPEG and a faceless image, as links."""
    root = tmp_path_factory.mktemp("batch") / "photos"
    for person in PEOPLE:
        (root / person).mkdir(parents=True)
        for photo in sorted((data_dir / CELEB / "train" / person).glob("*.jpg"))[:2]:
            (root / person / photo.name).symlink_to(photo)
    (root / "ben_afflek" / "truncated.jpg").symlink_to(data_dir / "misc" / "invalid" / "truncated.jpg")
    (root / "madonna" / "blank_white.png").symlink_to(data_dir / "misc" / "blank_white.png")
    return root


def snapshot(db: Path) -> dict[str, tuple[str, np.ndarray]]:
    """{photo sha256: (person, (D,) vector)} of a gallery."""
    with Gallery(db, create=False) as g:
        samples = g.samples()
        vectors = dict(zip(*g.sample_vectors([s.id for s in samples])))
    return {s.sha256: (s.person, vectors[s.id]) for s in samples}


def assert_same_gallery(a: dict[str, tuple[str, np.ndarray]], b: dict[str, tuple[str, np.ndarray]]) -> None:
    assert sorted(a) == sorted(b)
    for sha in a:
        assert a[sha][0] == b[sha][0]
        np.testing.assert_allclose(a[sha][1], b[sha][1], atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def runs(source: Path, pipe: FacePipeline, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict, Path]]:
    """The same source enrolled in-process and through a local Ray with one worker: (gallery, counts, report)."""
    out = tmp_path_factory.mktemp("galleries")
    result = {}
    for kind, report in (("local", out / "local.csv"), ("ray", out / "ray.jsonl")):
        db = out / f"{kind}.db"
        with Gallery(db, model=MODEL, pipeline=pipe) as g:
            counts = enrol_batch(g, source, ray=kind == "ray", workers=1, batch_size=4, report=report, progress=False)
        result[kind] = (db, counts, report)
    return result


def test_counts_and_report(runs: dict) -> None:
    for kind, (_, counts, report) in runs.items():
        assert {k: counts[k] for k in ("enrolled", "skipped", "failed")} == {"enrolled": 10, "skipped": 0, "failed": 2}, kind
        assert counts["seconds"] > 0 and counts["photos_per_s"] > 0
        if report.suffix == ".csv":
            with open(report, newline="") as fh:
                rows = list(csv.DictReader(fh))
        else:
            rows = [json.loads(line) for line in report.read_text().splitlines()]
        assert {Path(r["path"]).name for r in rows} == BAD, kind
        assert {r["name"] for r in rows} == {"ben_afflek", "madonna"}
        assert all(r["reason"] for r in rows)
        no_face = next(r for r in rows if r["path"].endswith("blank_white.png"))
        assert "no face" in no_face["reason"]


def test_ray_matches_in_process(runs: dict, source: Path) -> None:
    local, ray = snapshot(runs["local"][0]), snapshot(runs["ray"][0])
    assert_same_gallery(local, ray)
    assert sorted({person for person, _ in local.values()}) == PEOPLE
    # samples are known by the content hash of their photo, as Gallery.enrol stores them
    good = [p for _, p in iter_known_dir(source) if p.name not in BAD]
    assert set(local) == {hashlib.sha256(p.read_bytes()).hexdigest() for p in good}


def test_rerun_skips_everything(runs: dict, source: Path, pipe: FacePipeline) -> None:
    db = runs["local"][0]
    before = snapshot(db)
    with Gallery(db, pipeline=pipe) as g:
        counts = enrol_batch(g, source, progress=False)
    assert (counts["enrolled"], counts["skipped"], counts["failed"]) == (0, 10, 2)
    assert_same_gallery(snapshot(db), before)
    assert len(snapshot(db)) == 10


def test_partial_run_then_rerun_equals_one_run(runs: dict, source: Path, pipe: FacePipeline, tmp_path: Path) -> None:
    """What a killed run leaves (some photos committed, by Gallery.enrol here) is completed, never duplicated."""
    good = [(name, p) for name, p in iter_known_dir(source) if p.name not in BAD]
    db = tmp_path / "resumed.db"
    with Gallery(db, model=MODEL, pipeline=pipe) as g:
        first = g.enrol(good[:4])
        assert len(first.enrolled) == 4
        counts = enrol_batch(g, source, batch_size=3, progress=False)
    assert (counts["enrolled"], counts["skipped"], counts["failed"]) == (6, 4, 2)
    assert_same_gallery(snapshot(db), snapshot(runs["local"][0]))


def test_manifest_csv(runs: dict, data_dir: Path, pipe: FacePipeline, tmp_path: Path) -> None:
    photos = [sorted((data_dir / CELEB / "train" / p).glob("*.jpg"))[0] for p in PEOPLE[:3]]
    manifest = tmp_path / "lists" / "photos.csv"
    manifest.parent.mkdir()
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "path", "note"])  # column order and extra columns do not matter
        w.writerow([PEOPLE[0], os.path.relpath(photos[0], manifest.parent), ""])  # relative to the manifest
        w.writerow([PEOPLE[1], str(photos[1]), ""])  # absolute
        w.writerow([PEOPLE[2], os.path.relpath(photos[2], manifest.parent), ""])
        w.writerow([PEOPLE[2], str(photos[2]), "the same photo again"])
        w.writerow([PEOPLE[0], "missing.jpg", "not there"])
        w.writerow([" padded", str(photos[0]), "a name the gallery refuses: reported, the run goes on"])
    db, report = tmp_path / "manifest.db", tmp_path / "report.jsonl"
    with Gallery(db, model=MODEL, pipeline=pipe) as g:
        counts = enrol_batch(g, manifest, report=report, progress=False)
    assert (counts["enrolled"], counts["skipped"], counts["failed"]) == (3, 1, 2)
    reasons = {json.loads(line)["name"]: json.loads(line)["reason"] for line in report.read_text().splitlines()}
    assert "unreadable" in reasons[PEOPLE[0]] and "leading/trailing spaces" in reasons[" padded"]
    got, full = snapshot(db), snapshot(runs["local"][0])
    assert_same_gallery(got, {sha: full[sha] for sha in got})


def test_read_source_parquet_and_errors(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.DataFrame({"path": ["a/1.jpg", "/abs/2.jpg"], "name": ["Ann", "Bob"]}).to_parquet(tmp_path / "m.parquet")
    assert read_source(tmp_path / "m.parquet") == [("Ann", tmp_path / "a" / "1.jpg"), ("Bob", Path("/abs/2.jpg"))]
    (tmp_path / "photos.txt").write_text("a.jpg\n")
    with pytest.raises(GalleryError, match=r"\.csv or \.parquet"):
        read_source(tmp_path / "photos.txt")
    with pytest.raises(GalleryError, match="does not exist"):
        read_source(tmp_path / "nowhere")


def test_cli(data_dir: Path, tmp_path: Path) -> None:
    photo = sorted((data_dir / CELEB / "train" / "madonna").glob("*.jpg"))[0]
    manifest = tmp_path / "photos.csv"
    manifest.write_text(f"path,name\n{photo},madonna\n{data_dir / 'misc' / 'blank_white.png'},madonna\n")
    db, report = tmp_path / "cli.db", tmp_path / "bad.csv"
    args = ["gallery", "--db", str(db), "--model", MODEL, "enrol-batch", str(manifest), "--report", str(report), "--json"]
    r = runner.invoke(app, args)
    assert r.exit_code == 1, r.output  # 1: some photos could not be used
    counts = json.loads(r.stdout)
    assert (counts["enrolled"], counts["skipped"], counts["failed"]) == (1, 0, 1)
    assert "blank_white.png" in report.read_text()
    r = runner.invoke(app, args)
    assert json.loads(r.stdout)["skipped"] == 1

    # errors: a message, exit 2, no traceback, and no gallery made
    new = tmp_path / "new.db"
    r = runner.invoke(app, ["gallery", "--db", str(new), "enrol-batch", str(tmp_path / "nowhere")])
    text = " ".join(r.output.split())  # rich wraps long lines on narrow consoles
    assert r.exit_code == 2 and "does not exist" in text and "Traceback" not in text, r.output
    wrong = tmp_path / "wrong_columns.csv"
    wrong.write_text("file,person\nx.jpg,Ann\n")
    r = runner.invoke(app, ["gallery", "--db", str(new), "enrol-batch", str(wrong)])
    assert r.exit_code == 2 and "needs 'path' and 'name'" in " ".join(r.output.split()), r.output
    assert not new.exists()


def test_unreachable_ray_cluster_fails_fast(source: Path, pipe: FacePipeline, tmp_path: Path) -> None:
    with Gallery(tmp_path / "g.db", model=MODEL, pipeline=pipe) as g:
        with pytest.raises(GalleryError, match="no Ray cluster answers at 127.0.0.1:1"):
            enrol_batch(g, source, ray_address="127.0.0.1:1", progress=False)
        assert len(g) == 0
