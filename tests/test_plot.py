"""Plots of embeddings: each writes a readable PNG of the expected size; bad inputs fail clearly."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceprint import FaceprintError, Verification, plot_distance_matrix, plot_embedding_map, plot_pair
from faceprint.plot import embedding_map


def vectors(n_people: int = 3, each: int = 8) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(n_people, 128))
    x = np.concatenate([c + rng.normal(scale=0.1, size=(each, 128)) for c in centres])
    return x, [f"person {k}" for k in range(n_people) for _ in range(each)]


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_embedding_map_keeps_people_apart(tmp_path: Path) -> None:
    x, names = vectors()
    xy = embedding_map(x)
    assert xy.shape == (24, 2)
    # Each person's points are nearer their own centroid than any other's.
    lab = np.array(names)
    centroids = np.stack([xy[lab == p].mean(0) for p in sorted(set(names))])
    nearest = np.argmin(((xy[:, None] - centroids[None]) ** 2).sum(2), axis=1)
    assert (np.array(sorted(set(names)))[nearest] == lab).all()
    subsets = ["train", "val"] * 12
    out = plot_embedding_map(x, names, tmp_path / "map.png", markers=subsets)
    assert png_size(out) == (850, 650)


def test_small_sets_fall_back_to_pca_and_umap_is_optional() -> None:
    x, _ = vectors(n_people=2, each=2)
    assert embedding_map(x).shape == (4, 2)  # t-SNE needs more points than this
    assert embedding_map(x[:1]).tolist() == [[0.0, 0.0]]
    assert embedding_map(x, "pca").shape == (4, 2)
    with pytest.raises(ValueError, match="tsne"):
        embedding_map(x, "mds")
    if importlib.util.find_spec("umap") is None:
        with pytest.raises(FaceprintError, match="umap-learn"):
            embedding_map(x, "umap")


def test_distance_matrix_with_and_without_threshold(tmp_path: Path) -> None:
    x, names = vectors()
    a = plot_distance_matrix(x, names, tmp_path / "d.png", threshold=5.0)
    b = plot_distance_matrix(x, names, tmp_path / "sub" / "d2.png")
    assert png_size(a) == png_size(b) == (800, 700)
    with pytest.raises(ValueError, match="labels"):
        plot_distance_matrix(x, names[:-1], tmp_path / "bad.png")


def test_pair_sheet(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 255, size=(2, 150, 150, 3), dtype=np.uint8)
    out = plot_pair(chips[0], chips[1], Verification(0.42, 0.6, True), tmp_path / "pair.png", titles=("a", "b"))
    assert png_size(out) == (640, 400)
