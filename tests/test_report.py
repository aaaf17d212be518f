"""faceprint.evaluate.report: the files of `faceprint eval lfw --out`, from a hand-made result."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from PIL import Image  # noqa: E402

from faceprint.evaluate.lfw import LfwPair, read_lfw_pairs  # noqa: E402
from faceprint.evaluate.metrics import kfold_accuracy  # noqa: E402
from faceprint.evaluate.report import write_lfw_report  # noqa: E402


def _fake(data_dir: Path) -> tuple[dict, list[LfwPair], Path]:
    """40 real LFW pairs (10 same + 10 different in each of folds 0 and 1) with made-up distances."""
    all_pairs = read_lfw_pairs(data_dir / "lfw" / "pairs.txt")
    pairs = []
    for fold in (0, 1):
        for same in (True, False):
            pairs += [p for p in all_pairs if p.fold == fold and p.same == same][:10]
    rng = np.random.default_rng(0)
    y = np.array([p.same for p in pairs])
    f = np.array([p.fold for p in pairs])
    d = np.where(y, rng.normal(0.45, 0.08, len(y)), rng.normal(0.70, 0.08, len(y)))
    d[0], d[10] = 0.95, 0.20  # one sure false reject, one sure false accept
    folds = kfold_accuracy(d, y, f)
    accs = np.array([r.accuracy for r in folds])
    result = {
        "accuracy_mean": float(accs.mean()),
        "accuracy_std": float(accs.std()),
        "val_at_far_1e-3": 0.25,
        "roc_auc": 0.9,
        "eer": 0.1,
        "threshold": 0.58,
        "folds": [{"fold": r.fold, "threshold": r.threshold, "accuracy": r.accuracy} for r in folds],
        "pairs": len(pairs),
        "images": 80,
        "no_face": 3,
        "found_by": {"center": 1, "detector": 77, "fallback": 2},
        "metric": "euclidean",
        "settings": {"detector": "mtcnn", "model": "dlib-resnet-v1"},
        "_distances": d,
        "_labels": y,
        "_folds": f,
    }
    return result, pairs, data_dir / "lfw" / "lfw-deepfunneled"


def test_report_writes_every_file(data_dir: Path, tmp_path: Path) -> None:
    result, pairs, root = _fake(data_dir)
    out = tmp_path / "report"
    written = write_lfw_report(result, pairs, root, out, worst=4)

    assert set(written) == {"csv", "roc", "distances", "worst_pairs", "report"}
    for path in written.values():
        assert path.parent == out and path.is_file() and path.stat().st_size > 0

    with written["csv"].open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["name_a", "index_a", "name_b", "index_b", "same", "fold", "distance", "predicted_same"]
    assert len(rows) == 40
    thresholds = {r["fold"]: r["threshold"] for r in result["folds"]}
    for row, p, dist in zip(rows, pairs, result["_distances"]):
        assert (row["name_a"], int(row["index_a"]), row["name_b"], int(row["index_b"])) == (
            p.name_a, p.index_a, p.name_b, p.index_b)
        assert int(row["same"]) == p.same and int(row["fold"]) == p.fold
        assert float(row["distance"]) == dist
        assert int(row["predicted_same"]) == (dist <= thresholds[p.fold])
    assert int(rows[0]["predicted_same"]) == 0 and int(rows[10]["predicted_same"]) == 1  # the planted errors

    for key in ("roc", "distances", "worst_pairs"):
        with Image.open(written[key]) as im:
            im.verify()
        with Image.open(written[key]) as im:
            assert im.format == "PNG" and im.width > 100 and im.height > 100
            assert np.asarray(im.convert("L")).std() > 5  # something was drawn

    md = written["report"].read_text()
    assert f"{100 * result['accuracy_mean']:.2f}%" in md
    assert "25.00%" in md and "0.9000" in md and "10.00%" in md  # VAL, AUC, EER
    for r in result["folds"]:
        assert f"| {r['fold']} | {r['threshold']:.4f} |" in md
    for name in ("roc.png", "distances.png", "worst_pairs.png", "pairs.csv"):
        assert f"({name})" in md
    assert '"detector": "mtcnn"' in md


def test_report_rejects_mismatched_pairs(data_dir: Path, tmp_path: Path) -> None:
    result, pairs, root = _fake(data_dir)
    with pytest.raises(ValueError, match="pairs"):
        write_lfw_report(result, pairs[:-1], root, tmp_path)
    with pytest.raises(ValueError, match="pairs"):
        write_lfw_report(result, pairs[::-1], root, tmp_path)


def test_missing_image_is_a_placeholder(data_dir: Path, tmp_path: Path) -> None:
    result, pairs, _ = _fake(data_dir)
    written = write_lfw_report(result, pairs, tmp_path / "nowhere", tmp_path / "out", worst=2)
    with Image.open(written["worst_pairs"]) as im:
        assert im.width > 100
