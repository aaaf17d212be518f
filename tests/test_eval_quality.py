"""`faceprint eval quality`: the LFW protocol on degraded copies, on a small real subset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint.cli import app
from faceprint.evaluate.lfw import LfwPair, subset_pairs
from faceprint.evaluate.robustness import FACENET_TABLE4

runner = CliRunner()


def test_subset_pairs_keeps_every_fold_and_class() -> None:
    pairs = [LfwPair("a", i, "a" if s else "b", i + 1, s, f) for f in range(10) for s in (True, False) for i in range(300)]
    sub = subset_pairs(pairs, 40)
    assert len(sub) == 40
    assert {(p.fold, p.same) for p in sub} == {(f, s) for f in range(10) for s in (True, False)}
    assert sub == [p for p in pairs if p.index_a < 2]  # the first of each, in file order
    assert subset_pairs(pairs, None) == pairs and len(subset_pairs(pairs, 5)) == 20  # at least one each


def test_facenet_table4_figures() -> None:
    # Schroff et al. 2015, Table 4 (VAL at 1e-3 FAR)
    assert [FACENET_TABLE4[f"jpeg{q}"] for q in (10, 20, 30, 50, 70, 90)] == [0.673, 0.814, 0.839, 0.855, 0.861, 0.865]
    assert [FACENET_TABLE4[f"px{n}"] for n in (1600, 6400, 14400, 25600, 65536)] == [0.378, 0.795, 0.845, 0.857, 0.864]


def _run(args: list[str]) -> dict:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.mark.slow
def test_eval_quality_cli_small_subset(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "quality"
    args = [
        "eval", "quality", "--root", str(data_dir / "lfw" / "lfw-deepfunneled"), "--pairs", str(data_dir / "lfw" / "pairs.txt"),
        "--conditions", "clean,px1600", "--limit", "40", "--out", str(out), "--json",
    ]  # fmt: skip
    result = _run(args)
    assert {"conditions", "all_degraded", "pairs", "limit", "seed", "metric", "settings", "files"} <= set(result)
    assert result["pairs"] == 40 and result["limit"] == 40
    rows = {r["condition"]: r for r in result["conditions"]}
    assert list(rows) == ["clean", "px1600"]
    for r in rows.values():
        assert {"accuracy_mean", "accuracy_std", "val_at_far_1e-3", "roc_auc", "eer", "no_face", "found_by",
                "pairs", "images", "facenet_val_at_far_1e-3", "description", "params"} <= set(r)  # fmt: skip
        assert 0.5 <= r["accuracy_mean"] <= 1.0 and 0.0 <= r["val_at_far_1e-3"] <= 1.0 and len(r["folds"]) == 10
        assert sum(r["found_by"].values()) == r["images"] and r["no_face"] == r["images"] - r["found_by"].get("detector", 0)
    clean, low = rows["clean"], rows["px1600"]
    assert clean["facenet_val_at_far_1e-3"] is None and low["facenet_val_at_far_1e-3"] == 0.378
    # a 40 x 40 px face is no easier than the photo itself
    assert low["accuracy_mean"] <= clean["accuracy_mean"] and low["roc_auc"] <= clean["roc_auc"]
    pooled = result["all_degraded"]
    assert pooled["conditions"] == ["px1600"] and pooled["pairs"] == 40

    files = {k: Path(v) for k, v in result["files"].items()}
    assert all(p.is_file() for p in files.values()) and files["plot"].suffix == ".png"
    assert json.loads(files["json"].read_text())["conditions"][1]["condition"] == "px1600"
    assert "| px1600 |" in files["markdown"].read_text()
    with np.load(files["pairs"]) as z:
        assert len(z["distance"]) == 80 and set(z["condition"]) == {"clean", "px1600"}
        assert {"pair", "fold", "issame", "quality_a", "quality_b", "how_a", "how_b"} <= set(z.files)
        first = z["distance"].copy()
        d_clean, d_low = first[z["condition"] == "clean"], first[z["condition"] == "px1600"]
    assert np.abs(d_clean - d_low).mean() > 1e-3  # the degradation changed the descriptors
    assert len(list((out / "cache").glob("*.npz"))) == 2

    again = _run(args)  # from the run's cache: the same figures
    assert again["conditions"] == result["conditions"]
    with np.load(files["pairs"]) as z:
        assert (z["distance"] == first).all()


def test_eval_quality_unknown_condition_is_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, [
        "eval", "quality", "--root", str(data_dir / "lfw" / "lfw-deepfunneled"), "--pairs", str(data_dir / "lfw" / "pairs.txt"),
        "--conditions", "jpeg11", "--json",
    ])  # fmt: skip
    assert res.exit_code == 2 and "jpeg11" in json.loads(res.stdout)["error"]


def test_error_versus_discard_fixes_the_threshold_and_drops_the_worst_pairs() -> None:
    from faceprint.evaluate.robustness import error_versus_discard

    rng = np.random.default_rng(0)
    n = 4000
    same = rng.random(n) < 0.5
    quality = rng.random(n)
    # genuine pairs drift apart as quality falls; quality says nothing of impostors
    d = np.where(same, rng.normal(0.4, 0.1, n) + (1 - quality) * 0.4, rng.normal(1.0, 0.1, n))
    rows = error_versus_discard(d, same, quality)
    assert [r["discarded"] for r in rows] == [0.0, 0.05, 0.10, 0.20]
    assert len({r["threshold"] for r in rows}) == 1 and rows[0]["fmr"] <= 1e-3
    assert [r["pairs"] for r in rows] == [4000, 3800, 3600, 3200]
    fnmr = [r["fnmr"] for r in rows]
    assert fnmr == sorted(fnmr, reverse=True) and fnmr[2] < fnmr[0]
    # a quality that says nothing changes nothing much
    flat = error_versus_discard(d, same, rng.random(n))
    assert abs(flat[2]["fnmr"] - flat[0]["fnmr"]) < 0.03
