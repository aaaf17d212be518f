"""The cluster, classify and plot commands: JSON shapes, files written, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from faceprint.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, object]:
    res = runner.invoke(app, list(args))
    out = res.stdout
    return res.exit_code, (json.loads(out) if out.strip().startswith(("{", "[")) else out)


def test_cluster_json_contact_sheet_and_bad_files(data_dir: Path, tmp_path: Path) -> None:
    val = data_dir / "5-celebrity-faces" / "val"
    album = tmp_path / "album"
    for person in ("ben_afflek", "mindy_kaling"):
        shutil.copytree(val / person, album / person)
    shutil.copy(data_dir / "misc" / "invalid" / "empty.png", album / "empty.png")
    code, out = run("cluster", str(album), str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "out"), "--json")
    assert code == 1  # two inputs could not be read; the rest is still clustered
    assert set(out) == {"clusters", "noise", "skipped"}
    assert [c["id"] for c in out["clusters"]] == [0, 1]
    for c in out["clusters"]:
        assert len(c["faces"]) == 5 and len({Path(f["image"]).parent.name for f in c["faces"]}) == 1
        assert all(len(f["box"]) == 4 for f in c["faces"])
    assert sorted(Path(s["image"]).name for s in out["skipped"]) == ["empty.png", "missing.jpg"]
    sheet = (tmp_path / "out" / "index.html").read_text()
    assert sheet.count("<img") == 10 + len(out["noise"])
    assert len(list((tmp_path / "out" / "cluster_000").glob("*.jpg"))) == 5


def test_cluster_rejects_an_unknown_method(tmp_path: Path) -> None:
    res = runner.invoke(app, ["cluster", str(tmp_path), "--method", "kmeans"])
    assert res.exit_code == 2 and "kmeans" in res.output


def test_classify_train_and_predict(data_dir: Path, tmp_path: Path) -> None:
    root = data_dir / "5-celebrity-faces"
    train = tmp_path / "train"
    for person in ("madonna", "jerry_seinfeld"):
        (train / person).mkdir(parents=True)
        for photo in sorted((root / "train" / person).iterdir())[:3]:
            shutil.copy(photo, train / person / photo.name)
    model = tmp_path / "faces.joblib"
    code, out = run("classify", "train", str(train), "--out", str(model), "--json")
    assert code == 0 and out["people"] == ["jerry_seinfeld", "madonna"] and out["faces"] == 6 and model.is_file()
    probe = sorted((root / "val" / "madonna").iterdir())[0]
    code, out = run("classify", "predict", "--model", str(model), str(probe), "--json")
    assert code == 0
    face = out[0]["faces"][0]
    assert set(face) == {"box", "identity", "probability", "distance"} and face["identity"] == "madonna"
    code, out = run("classify", "predict", "--model", str(model), str(probe), "--unknown-distance", "0.01", "--json")
    assert out[0]["faces"][0]["identity"] is None
    code, _ = run("classify", "predict", "--model", str(probe), str(probe), "--json")
    assert code == 2  # a photo is not a classifier file


def test_plot_commands_write_pngs(data_dir: Path, tmp_path: Path) -> None:
    val = data_dir / "5-celebrity-faces" / "val"
    people = tmp_path / "people"
    for person in ("ben_afflek", "elton_john"):
        shutil.copytree(val / person, people / person)
    a, b = sorted((val / "ben_afflek").iterdir())[:2]
    for args in (
        ("map", str(people), "--out", str(tmp_path / "map.png")),
        ("distances", str(people), "--out", str(tmp_path / "dist.png")),
        ("pair", str(a), str(b), "--out", str(tmp_path / "pair.png")),
    ):
        code, out = run("plot", *args)
        assert code == 0, out
    assert all((tmp_path / f).stat().st_size > 10_000 for f in ("map.png", "dist.png", "pair.png"))
    code, _ = run("plot", "pair", str(a), str(data_dir / "misc" / "blank_white.png"), "--out", str(tmp_path / "x.png"))
    assert code == 2  # no face: a clear error, no picture
