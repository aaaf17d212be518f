"""Clustering: the algorithms on hand-made descriptors with known groups, the metrics on hand-worked
examples, and real faces of the 5-celebrity set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import faceprint.cluster as fc
from faceprint import FacePipeline, cluster_embeddings, cluster_images
from faceprint.cluster import CLUSTER_METHODS, chinese_whispers, neighbor_pairs
from faceprint.evaluate.clustering import clustering_metrics, lfw_people

SIZES = [9, 7, 5, 3, 1]  # four people and one lone face


def blobs(sizes: list[int] = SIZES, spread: float = 0.02, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm 128-d centres (pairwise distance ~1.4) with faces ~0.23 around them: (N, 128), (N,)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), 128))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.concatenate([c + rng.normal(scale=spread, size=(k, 128)) for c, k in zip(centres, sizes)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    order = rng.permutation(len(x))  # the methods must not rely on input order
    return x[order], truth[order]


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two labelings group the items identically (label values aside)."""
    pairs = {(int(x), int(y)) for x, y in zip(a, b)}
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("method", list(CLUSTER_METHODS))
def test_every_method_finds_the_people(method: str) -> None:
    x, truth = blobs()
    labels = cluster_embeddings(x, method)
    lone = truth == len(SIZES) - 1
    assert same_partition(labels[~lone], truth[~lone])
    if method == "hdbscan":
        return  # scale-free: on 25 points it puts the lone face in the smallest group
    assert (labels[lone] == -1).all()  # min_size=2 by default
    # Groups are numbered by size: label 0 is the person seen most.
    assert np.bincount(labels[labels >= 0]).tolist() == SIZES[:-1]


def test_hdbscan_cannot_see_a_single_person() -> None:
    # Why it is not the default: without a distance scale, one person's faces are all "noise".
    x, _ = blobs(sizes=[10])
    assert (cluster_embeddings(x, "hdbscan") == -1).all()
    assert (cluster_embeddings(x) == 0).all()


@pytest.mark.parametrize("method", ["chinese-whispers", "agglomerative", "dbscan"])
def test_min_size_one_keeps_lone_faces_as_groups(method: str) -> None:
    x, truth = blobs()
    labels = cluster_embeddings(x, method, min_size=1)
    assert (labels >= 0).all() and same_partition(labels, truth)


def test_threshold_controls_merging() -> None:
    x, truth = blobs()
    assert len(set(cluster_embeddings(x, "agglomerative", 0.1, min_size=1).tolist())) == len(x)  # nothing merges
    assert set(cluster_embeddings(x, "agglomerative", 3.0).tolist()) == {0}  # everyone merges


def test_chinese_whispers_is_dlibs_update_rule() -> None:
    # Two triangles and an isolated node: each triangle settles on its smallest label.
    rows, cols = np.array([0, 0, 1, 3, 3, 4]), np.array([1, 2, 2, 4, 5, 5])
    labels = chinese_whispers(7, rows, cols)
    assert labels.tolist() == [0, 0, 0, 3, 3, 3, 6]
    # A tie between two labels goes to the smaller one (dlib's std::map order).
    assert chinese_whispers(2, np.array([0]), np.array([1])).tolist() == [0, 0]
    # Seeded: the same seed gives the same labels.
    x, _ = blobs(spread=0.05)
    r, c = neighbor_pairs(x, 0.8)
    assert (chinese_whispers(len(x), r, c, seed=3) == chinese_whispers(len(x), r, c, seed=3)).all()


def test_neighbor_pairs_match_brute_force_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(23, 4))
    monkeypatch.setattr(fc, "_CHUNK_CELLS", 40)  # blocks of one or two rows
    rows, cols = neighbor_pairs(x, 2.0)
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    want = {(i, j) for i in range(23) for j in range(i + 1, 23) if d[i, j] < 2.0}
    assert set(zip(rows.tolist(), cols.tolist())) == want and len(rows) == len(want)


def test_agglomerative_by_components_equals_one_linkage() -> None:
    from sklearn.cluster import AgglomerativeClustering

    x, _ = blobs(sizes=[12, 10, 8, 6, 4, 2, 1], spread=0.04, seed=5)
    for t in (0.4, 0.55, 0.7):
        ours = cluster_embeddings(x, "agglomerative", t, min_size=1)
        whole = AgglomerativeClustering(n_clusters=None, distance_threshold=t, linkage="average").fit_predict(x)
        assert same_partition(ours, whole)


def test_bad_arguments_are_clear() -> None:
    x, _ = blobs()
    with pytest.raises(ValueError, match="agglomerative"):
        cluster_embeddings(x, "kmeans")
    with pytest.raises(ValueError, match="no distance threshold"):
        cluster_embeddings(x, "hdbscan", 0.5)
    with pytest.raises(ValueError, match="cosine"):
        cluster_embeddings(x, "dbscan", metric="cosine")
    with pytest.raises(ValueError, match=">= 0"):
        cluster_embeddings(x, "dbscan", -1.0)
    with pytest.raises(ValueError, match="2-D"):
        cluster_embeddings(x[0], "dbscan")
    assert cluster_embeddings(np.zeros((0, 128))).shape == (0,)
    assert cluster_embeddings(x[:1], "hdbscan").tolist() == [-1]


def test_cosine_metric_with_a_threshold() -> None:
    x, truth = blobs()
    labels = cluster_embeddings(x * 7.0, "chinese-whispers", 0.1, metric="cosine", min_size=1)  # scale-free
    assert same_partition(labels, truth)


# -- metrics ------------------------------------------------------------------------------------
def test_metrics_on_a_hand_worked_example() -> None:
    truth = np.array(["a", "a", "a", "b", "b", "c"])
    pred = np.array([0, 0, 1, 1, 1, -1])
    m = clustering_metrics(truth, pred)
    # Pairs claimed: {0,1} and {2,3},{2,4},{3,4}: 2 of the 4 are right; 4 same-person pairs exist.
    assert m["pairwise_precision"] == pytest.approx(0.5) and m["pairwise_recall"] == pytest.approx(0.5)
    assert m["pairwise_f1"] == pytest.approx(0.5)
    # BCubed per face: precision (1, 1, 1/3, 2/3, 2/3, 1), recall (2/3, 2/3, 1/3, 1, 1, 1).
    assert m["bcubed_precision"] == pytest.approx(14 / 18) and m["bcubed_recall"] == pytest.approx(14 / 18)
    assert m["bcubed_f1"] == pytest.approx(14 / 18)
    assert (m["clusters"], m["clusters_2plus"], m["true_clusters"], m["true_clusters_2plus"]) == (2, 2, 3, 2)
    assert (m["noise"], m["faces"]) == (1, 6)


def test_metrics_perfect_noise_and_relabelling() -> None:
    truth = np.array([5, 5, 7, 7, 7, 9])
    perfect = clustering_metrics(truth, np.array([1, 1, 0, 0, 0, 2]))
    assert all(perfect[k] == 1.0 for k in ("pairwise_f1", "bcubed_f1"))
    noise = clustering_metrics(truth, np.full(6, -1))
    assert noise["pairwise_precision"] == 1.0 and noise["pairwise_recall"] == 0.0 and noise["pairwise_f1"] == 0.0
    assert noise["bcubed_precision"] == 1.0 and noise["clusters"] == 0
    one = clustering_metrics(truth, np.zeros(6, int))
    assert one["pairwise_recall"] == 1.0 and one["pairwise_precision"] == pytest.approx(4 / 15)
    with pytest.raises(ValueError, match="same length"):
        clustering_metrics(truth, np.zeros(5, int))


def test_lfw_people_selects_by_image_count(data_dir: Path) -> None:
    paths, names = lfw_people(data_dir / "lfw" / "lfw-deepfunneled", min_images=100)
    counts = {n: names.count(n) for n in set(names)}
    assert counts["George_W_Bush"] == 530 and counts["Colin_Powell"] == 236 and len(counts) == 5
    assert all(p.parent.name == n for p, n in zip(paths, names))
    _, few = lfw_people(data_dir / "lfw" / "lfw-deepfunneled", min_images=100, max_images=130)
    assert sorted(set(few)) == ["Donald_Rumsfeld", "Gerhard_Schroeder"]


# -- real faces ---------------------------------------------------------------------------------
def test_real_faces_cluster_by_person(data_dir: Path) -> None:
    val = data_dir / "5-celebrity-faces" / "val"
    files = sorted(p for person in ("ben_afflek", "madonna", "mindy_kaling") for p in (val / person).iterdir())
    bad = data_dir / "misc" / "invalid" / "empty.png"
    result = cluster_images(FacePipeline(), [*files, bad])
    assert result.skipped and result.skipped[0][0] == str(bad)
    people = {Path(result.sources[i]).parent.name for i in range(len(result.faces))}
    assert people == {"ben_afflek", "madonna", "mindy_kaling"}
    groups = [{result.sources[i] for i in members} for members in result.groups()]
    for members in groups:  # no group mixes people
        assert len({Path(s).parent.name for s in members}) == 1
    # Ben Affleck's and Mindy Kaling's photos are found whole; the default threshold favours
    # precision, and Madonna's five very different photos (one greyscale) come out split.
    for person in ("ben_afflek", "mindy_kaling"):
        assert {str(p) for p in files if p.parent.name == person} in groups
