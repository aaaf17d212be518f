"""The command line: stable JSON shapes, exit codes, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint.cli import app

runner = CliRunner()
LFW = "lfw/lfw-deepfunneled"

def run(*args: str) -> tuple[int, object]:
    res = runner.invoke(app, list(args))
    out = res.stdout
    return res.exit_code, (json.loads(out) if out.strip().startswith(("{", "[")) else out)

def test_detect_json_shape_and_error_entries(data_dir: Path) -> None:
    code, out = run(
        "detect", str(data_dir / "misc" / "two_people.jpg"), str(data_dir / "misc" / "invalid" / "empty.png"), "--json"
    )
    assert code == 1  # one input could not be read
    ok, bad = out
    assert ok["image"].endswith("two_people.jpg") and len(ok["faces"]) == 2
    face = ok["faces"][0]
    assert len(face["box"]) == 4 and face["box"][2] > 0 and face["box"][3] > 0
    assert 0.8 <= face["score"] <= 1.0 and np.shape(face["landmarks"]) == (5, 2) and 0.5 < face["quality"] <= 1.0
    assert bad["image"].endswith("empty.png") and "empty.png" in bad["error"]

def test_verify_json(data_dir: Path) -> None:
    a = data_dir / LFW / "Colin_Powell" / "Colin_Powell_0001.jpg"
    b = data_dir / LFW / "Colin_Powell" / "Colin_Powell_0002.jpg"
    code, out = run("verify", str(a), str(b), "--json")
    assert code == 0 and out["same"] is True and out["decision"] == "same" and out["too_poor"] is False
    assert set(out) == {"distance", "threshold", "same", "far", "model", "metric", "decision", "too_poor", "quality",
                        "min_quality"}
    assert out["quality"] >= out["min_quality"]

def test_verify_no_face_is_a_clear_error(data_dir: Path) -> None:
    code, out = run("verify", str(data_dir / "misc" / "blank_white.png"), str(data_dir / "misc" / "obama.jpg"), "--json")
    assert code == 2 and "no face" in out["error"]

def test_identify_happy_house_style_folder(data_dir: Path, tmp_path: Path) -> None:
    hh = data_dir / "happy-house" / "images"
    known = tmp_path / "known"
    known.mkdir()
    for name in ("younes", "kian", "benoit", "andrew"):
        (known / f"{name}.jpg").write_bytes((hh / f"{name}.jpg").read_bytes())
    code, out = run(
        "identify", "--known", str(known), str(hh / "camera_0.jpg"), str(hh / "camera_2.jpg"),
        "--json", "--annotate", str(tmp_path / "ann"),
    )
    assert code == 0
    assert [r["faces"][0]["identity"] for r in out] == ["younes", "benoit"]
    assert all(set(f) == {"box", "identity", "distance", "decision", "too_poor", "quality"} for r in out for f in r["faces"])
    assert [r["faces"][0]["decision"] for r in out] == ["match", "match"]
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == ["camera_0.png", "camera_2.png"]

def test_unknown_detector_lists_choices(data_dir: Path) -> None:
    res = runner.invoke(app, ["detect", str(data_dir / "misc" / "obama.jpg"), "--detector", "nope"])
    assert res.exit_code != 0
    assert "mtcnn" in str(res.exception) or "mtcnn" in res.output



@pytest.mark.parametrize(
    ("command", "text"),
    [(["detect"], "(left, top, width, height)"), (["serve"], "FACEPRINT_HOST"), (["serve"], "FACEPRINT_GALLERY")],
)
def test_help_keeps_its_words(command: list[str], text: str) -> None:
    """Help is rendered as rich markup, where "[...]" vanishes: these words must survive."""
    res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and text in res.output
