"""The LFW View-2 reader on the official file, and a tiny end-to-end protocol run with its cache."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from faceprint import FacePipeline, FaceprintError
from faceprint.evaluate.lfw import evaluate_lfw, read_lfw_pairs


def test_official_pairs_file(data_dir: Path) -> None:
    pairs = read_lfw_pairs(data_dir / "lfw" / "pairs.txt")
    assert len(pairs) == 6000
    per_fold = Counter((p.fold, p.same) for p in pairs)
    assert set(per_fold.values()) == {300} and len(per_fold) == 20
    assert all(p.name_a == p.name_b for p in pairs if p.same)
    assert all(p.name_a != p.name_b for p in pairs if not p.same)


def test_malformed_pairs_file(tmp_path: Path) -> None:
    bad = tmp_path / "pairs.txt"
    bad.write_text("2 1\nA 1 2\n")
    with pytest.raises(FaceprintError, match="expected 4 pairs"):
        read_lfw_pairs(bad)


def test_tiny_protocol_run_scores_every_pair_and_caches(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEPRINT_CACHE", str(tmp_path / "cache"))
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(
        "2 1\n"
        "Colin_Powell 1 2\nColin_Powell 3 Serena_Williams 1\n"
        "Serena_Williams 1 2\nAaron_Peirsol 1 Colin_Powell 1\n"
    )
    pipe = FacePipeline()
    root = data_dir / "lfw" / "lfw-deepfunneled"
    first = evaluate_lfw(pipe, root, pairs, progress=False)
    assert first["pairs"] == 4 and first["images"] == 6 and first["no_face"] == 0
    assert first["accuracy_mean"] == 1.0  # these four pairs are easy
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npz"))) == 1
    again = evaluate_lfw(pipe, root, pairs, progress=False)  # from the cache: same distances
    assert (again["_distances"] == first["_distances"]).all()
