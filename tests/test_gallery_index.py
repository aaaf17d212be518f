"""Every vector index backend honours one contract, checked against the exact index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceprint.gallery.index import BACKENDS, ExactIndex, IVFIndex, load_index, make_index, save_index

D = 128


def face_like(n_people: int, per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit-scale vectors: ``per`` samples around each of ``n_people`` centres; (N, D), person."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_people, D)).astype(np.float32) / np.sqrt(D)
    x = np.repeat(centres, per, 0) + rng.standard_normal((n_people * per, D)).astype(np.float32) * 0.3 / np.sqrt(D)
    return x.astype(np.float32), np.repeat(np.arange(n_people), per)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, _ = face_like(400, 5)
    ids = np.arange(len(x), dtype=np.int64) * 3 + 7  # ids are the caller's, not row numbers
    rng = np.random.default_rng(1)
    probes = x[rng.choice(len(x), 200, replace=False)] + rng.standard_normal((200, D)).astype(np.float32) * 0.2 / np.sqrt(D)
    return x, ids, probes


@pytest.fixture(params=sorted(BACKENDS))
def index(request: pytest.FixtureRequest) -> ExactIndex | IVFIndex:
    return BACKENDS[request.param](D)


def test_search_agrees_with_exact(index: ExactIndex | IVFIndex, data: tuple) -> None:
    x, ids, probes = data
    ref = ExactIndex(D)
    for idx in (index, ref):
        idx.add(x[:1000], ids[:1000])
        idx.add(x[1000:], ids[1000:])  # a second batch after training
    assert len(index) == len(x)
    np.testing.assert_array_equal(np.sort(index.ids()), np.sort(ids))
    d, i = index.search(probes, 5)
    rd, ri = ref.search(probes, 5)
    assert d.shape == i.shape == (len(probes), 5) and d.dtype == np.float32 and i.dtype == np.int64
    assert (np.diff(d, axis=1) >= -1e-6).all()  # nearest first
    assert (i[:, 0] == ri[:, 0]).mean() >= 0.98  # recall@1
    # distances are squared L2 of the ids returned, whatever the backend
    row = {int(v): k for k, v in enumerate(ids)}
    true = ((x[[row[int(v)] for v in i[:, 0]]] - probes) ** 2).sum(1)
    np.testing.assert_allclose(d[:, 0], true, rtol=2e-3, atol=1e-5)


def test_remove_then_add(index: ExactIndex | IVFIndex, data: tuple) -> None:
    x, ids, _ = data
    index.add(x, ids)
    gone = ids[::2]
    assert index.remove(gone) == len(gone)
    assert index.remove(gone) == 0  # already gone
    assert len(index) == len(ids) - len(gone)
    _, i = index.search(x[::2], 3)
    assert not np.isin(i, gone).any()
    index.add(x[:2] * 1.0, np.array([10**12, 10**12 + 1]))
    _, i = index.search(x[:1], 1)
    assert i[0, 0] == 10**12


def test_padding_and_empty(index: ExactIndex | IVFIndex, data: tuple) -> None:
    x, ids, _ = data
    d, i = index.search(x[:2], 3)
    assert (i == -1).all() and np.isinf(d).all()
    index.add(x[:200], ids[:200])
    d, i = index.search(x[:2], 500)
    assert (i[:, :200] >= 0).all() and (i[:, 200:] == -1).all() and np.isinf(d[:, 200:]).all()
    assert index.search(np.zeros((0, D), np.float32), 1)[1].shape == (0, 1)


def test_bad_inputs(index: ExactIndex | IVFIndex, data: tuple) -> None:
    x, ids, _ = data
    with pytest.raises(ValueError, match="vectors"):
        index.add(x[:3, :10], ids[:3])
    with pytest.raises(ValueError, match="one id per vector"):
        index.add(x[:3], ids[:2])
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.full((1, D), np.nan, np.float32), ids[:1])
    with pytest.raises(ValueError, match="k must"):
        index.search(x[:1], 0)
    assert len(index) == 0


def test_make_index_by_size() -> None:
    assert isinstance(make_index("auto", D, 100), ExactIndex)
    assert isinstance(make_index("auto", D, 10**6), IVFIndex)
    with pytest.raises(ValueError, match="unknown index"):
        make_index("hnsw", D, 10)


def test_ivf_save_load_and_damage(tmp_path: Path, data: tuple) -> None:
    x, ids, probes = data
    idx = IVFIndex(D)
    idx.add(x, ids)
    path = tmp_path / "g.db.index"
    save_index(idx, path, {"model_id": "m", "epoch": "0"})
    loaded, stamp = load_index(path)  # type: ignore[misc]
    assert stamp["model_id"] == "m" and stamp["trained_on"] == len(x)
    for a, b in zip(idx.search(probes, 4), loaded.search(probes, 4)):
        np.testing.assert_array_equal(a, b)
    path.write_bytes(path.read_bytes()[:1000])  # truncated file: rebuilt, never trusted
    assert load_index(path) is None
    assert load_index(tmp_path / "missing.index") is None
