"""Thresholds by false-accept rate: the registry's calibration, 1:N adjustment, and the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faceprint import get_model_spec
from faceprint.cli import app
from faceprint.errors import ModelError
from faceprint.models import DEFAULT_MODEL, list_models

TABLE = {1e-1: 0.9, 1e-2: 0.7, 1e-3: 0.6, 1e-4: 0.5}


def spec_with(table: dict[float, float]):  # noqa: ANN201
    return dataclasses.replace(get_model_spec("dlib-resnet-v1"), far_thresholds=table)


def test_table_points_and_log_interpolation() -> None:
    spec = spec_with(TABLE)
    for far, t in TABLE.items():
        assert spec.threshold_at(far) == pytest.approx(t)
    assert spec.threshold_at(10**-2.5) == pytest.approx(0.65)  # halfway in log(FAR)


def test_one_to_n_asks_each_comparison_for_less() -> None:
    spec = spec_with(TABLE)
    # 1 - (1 - 0.01)^(1/10) is ~1.005e-3: about the 1:1 threshold at FAR 1e-3
    assert spec.threshold_at(1e-2, enrolled=10) == pytest.approx(0.6, abs=2e-3)
    ts = [spec.threshold_at(1e-2, enrolled=n) for n in (1, 2, 5, 10, 50)]
    assert all(a > b for a, b in zip(ts, ts[1:]))


def test_outside_the_calibration_is_refused_with_what_to_do() -> None:
    spec = spec_with(TABLE)
    with pytest.raises(ModelError, match="outside .* calibration.*threshold instead"):
        spec.threshold_at(1e-6)
    with pytest.raises(ModelError, match="outside"):
        spec.threshold_at(1e-3, enrolled=100)  # needs ~1e-5 per comparison
    with pytest.raises(ValueError):
        spec.threshold_at(0.0)
    with pytest.raises(ModelError, match="no FAR calibration"):
        spec_with({}).threshold_at(1e-3)


@pytest.mark.parametrize("name", [n for n in list_models() if get_model_spec(n).far_thresholds])
def test_registered_calibrations_are_monotone(name: str) -> None:
    table = get_model_spec(name).far_thresholds
    fars = sorted(table)
    assert len(fars) >= 5 and fars[0] <= 1e-5 and fars[-1] >= 1e-2
    assert all(table[a] < table[b] for a, b in zip(fars, fars[1:]))  # a looser FAR never means a tighter threshold


def test_default_model_is_calibrated() -> None:
    spec = get_model_spec(DEFAULT_MODEL)
    assert spec.far_thresholds and spec.weights.terms is None  # commercially usable
    assert spec.threshold_at(1e-3) < spec.threshold_at(1e-2)


def test_cli_verify_and_identify_at_a_far(data_dir: Path, tmp_path: Path) -> None:
    lfw = data_dir / "lfw" / "lfw-deepfunneled"
    a, b = lfw / "Tony_Blair/Tony_Blair_0001.jpg", lfw / "Tony_Blair/Tony_Blair_0002.jpg"
    runner = CliRunner()
    res = runner.invoke(app, ["verify", str(a), str(b), "--far", "1e-3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    spec = get_model_spec(DEFAULT_MODEL)
    assert out["far"] == 1e-3 and out["threshold"] == pytest.approx(spec.threshold_at(1e-3))
    assert out["model"] == DEFAULT_MODEL and out["same"] is True
    known = tmp_path / "known"
    known.mkdir()
    (known / "tony.jpg").write_bytes(b.read_bytes())
    (known / "george.jpg").write_bytes((lfw / "George_W_Bush/George_W_Bush_0001.jpg").read_bytes())
    res = runner.invoke(app, ["identify", "--known", str(known), str(a), "--far", "1e-2", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)[0]
    assert out["threshold"] == pytest.approx(spec.threshold_at(1e-2, enrolled=2), abs=1e-6)
    assert out["faces"][0]["identity"] == "tony"
    res = runner.invoke(app, ["verify", str(a), str(b), "--far", "1e-9", "--json"])
    assert res.exit_code == 2 and "outside" in json.loads(res.stdout)["error"]
