"""Vector indexes over enrolled face descriptors, with one faiss-shaped interface.

Every backend stores (N, D) float32 vectors under caller-chosen int64 ids and answers
``search(queries (Q, D), k) -> (distances (Q, k) float32, ids (Q, k) int64)``, nearest first,
with *squared* Euclidean distances (as faiss's L2 indexes do). Rows past the number of stored
vectors are padded with distance ``inf`` and id ``-1``. Ids must be unique; the gallery uses
SQLite row ids, which are never reused.

* :class:`ExactIndex` - brute force in numpy; the reference every other backend is tested against.
* :class:`IVFIndex` - faiss inverted lists over k-means cells with float16 codes (256 B per
  128-d face). Chosen over HNSW (usearch, hnswlib, faiss-HNSW) after measuring at 100k faces on
  2 cores (``benchmarks/bench_gallery.py --compare``): 5x faster to build, same recall on face-like
  queries, removal supported (faiss HNSW has none), and faiss-cpu ships wheels for every platform
  (hnswlib compiles from source here).

:func:`make_index` picks the backend by gallery size (exact below :data:`EXACT_MAX` faces).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = ["EXACT_MAX", "ExactIndex", "IVFIndex", "VectorIndex", "load_index", "make_index"]

# Exact search at 20k 128-d faces is ~1 ms a query in numpy; past it the IVF index is faster
# and its k-means training has enough points (measured in benchmarks/bench_gallery.py).
EXACT_MAX = 20_000


class VectorIndex(Protocol):
    """What the gallery needs from a backend (faiss-shaped)."""

    name: str
    dim: int

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None: ...
    def remove(self, ids: np.ndarray) -> int: ...
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def ids(self) -> np.ndarray: ...
    def __len__(self) -> int: ...


def _as_vectors(x: np.ndarray, dim: int) -> np.ndarray:
    v = np.ascontiguousarray(np.atleast_2d(np.asarray(x, np.float32)))
    if v.ndim != 2 or v.shape[1] != dim:
        raise ValueError(f"expected (N, {dim}) vectors, got shape {np.shape(x)}")
    if not np.isfinite(v).all():
        raise ValueError("vectors contain NaN or infinity")
    return v


def _as_ids(ids: np.ndarray, n: int) -> np.ndarray:
    i = np.ascontiguousarray(np.asarray(ids, np.int64).reshape(-1))
    if i.shape != (n,):
        raise ValueError(f"need one id per vector: {i.shape[0]} ids for {n} vectors")
    if (i < 0).any():
        raise ValueError("ids must be non-negative (-1 marks a missing result)")
    return i


def _empty_result(q: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((q, k), np.inf, np.float32), np.full((q, k), -1, np.int64)


class ExactIndex:
    """Brute-force squared-L2 search over vectors kept in one growing float32 matrix.

    Distances of the k results are recomputed in float64 from the stored rows, so they match
    :func:`faceprint.decide.distances` (squared) rather than the cancellation-prone expanded form.
    """

    name = "exact"

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)
        self._vec = np.zeros((0, self.dim), np.float32)
        self._sq = np.zeros(0, np.float32)  # squared norms of the rows
        self._ids = np.zeros(0, np.int64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def ids(self) -> np.ndarray:
        return self._ids[: self._n].copy()

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        v = _as_vectors(vectors, self.dim)
        i = _as_ids(ids, len(v))
        need = self._n + len(v)
        if need > len(self._vec):  # grow geometrically: adding one face at a time stays O(1)
            cap = max(need, 2 * len(self._vec), 64)
            for attr in ("_vec", "_sq", "_ids"):
                old = getattr(self, attr)
                new = np.zeros((cap, *old.shape[1:]), old.dtype)
                new[: self._n] = old[: self._n]
                setattr(self, attr, new)
        self._vec[self._n : need] = v
        self._sq[self._n : need] = (v * v).sum(1)
        self._ids[self._n : need] = i
        self._n = need

    def remove(self, ids: np.ndarray) -> int:
        gone = np.isin(self._ids[: self._n], np.asarray(ids, np.int64).reshape(-1))
        keep = np.flatnonzero(~gone)
        m = len(keep)
        for attr in ("_vec", "_sq", "_ids"):
            arr = getattr(self, attr)
            arr[:m] = arr[keep]
        removed = self._n - m
        self._n = m
        return int(removed)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = _as_vectors(queries, self.dim)
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        dist, ids = _empty_result(len(q), k)
        n = self._n
        if n == 0 or len(q) == 0:
            return dist, ids
        kk = min(k, n)
        vec, sq = self._vec[:n], self._sq[:n]
        step = max(1, 4_000_000 // n)  # 16 MB of float32 scores per block of queries
        for a in range(0, len(q), step):
            qb = q[a : a + step]
            score = sq[None, :] - 2.0 * (qb @ vec.T)  # ||x||^2 - 2 q.x: same order as ||q - x||^2
            part = np.argpartition(score, kk - 1, axis=1)[:, :kk] if kk < n else np.tile(np.arange(n), (len(qb), 1))
            diff = vec[part].astype(np.float64) - qb[:, None, :].astype(np.float64)
            exact = (diff * diff).sum(2)
            order = np.argsort(exact, axis=1, kind="stable")
            dist[a : a + len(qb), :kk] = np.take_along_axis(exact, order, 1)
            ids[a : a + len(qb), :kk] = self._ids[np.take_along_axis(part, order, 1)]
        return dist, ids

    def memory_bytes(self) -> int:
        return int(self._vec.nbytes + self._sq.nbytes + self._ids.nbytes)


_omp_default: int | None = None  # faiss's own thread count, restored for batches after single queries


class IVFIndex:
    """faiss IVF index with float16 codes: k-means cells, only ``nprobe`` of them scanned a query.

    nlist: cells (default ~4 sqrt(N) as a power of two, fixed at training); nprobe: cells scanned
    (default 4 sqrt(nlist): 64 of 256 cells at 10k faces, 128 of 1024 at 100k, 256 of 4096 at 1M,
    where real LFW probes find their exact nearest face 99.6%, 99.2% and 99.2% of the time; a
    fixed share does not hold, nlist/16 gives 96.4% at 100k: see benchmarks/bench_gallery.py scale);
    codes: "fp16" (256 B/face at 128-d, distances within ~1e-3) or "sq8" (128 B/face, coarser);
    threads: OpenMP threads for search and training (process-wide in faiss).

    The index trains itself on the first batch added; a gallery that grows far beyond that size
    should be rebuilt (:attr:`trained_on` tells when), which the gallery does on its own.
    """

    name = "ivf"

    def __init__(
        self,
        dim: int,
        *,
        nlist: int | None = None,
        nprobe: int | None = None,
        codes: str = "fp16",
        threads: int | None = None,
    ) -> None:
        if codes not in ("fp16", "sq8"):
            raise ValueError(f"codes must be 'fp16' or 'sq8', got {codes!r}")
        self.dim = int(dim)
        self.nlist = nlist
        self.nprobe = nprobe
        self.codes = codes
        self.threads = threads
        self.trained_on = 0
        self._index: Any = None
        self._ids = np.zeros(0, np.int64)  # sorted: membership, listing, sync with the store

    @staticmethod
    def _faiss() -> Any:
        import faiss  # imported on use: small galleries and the CLI's other commands never load it

        return faiss

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> np.ndarray:
        return self._ids.copy()

    @staticmethod
    def auto_nlist(n: int) -> int:
        """~4 sqrt(n) rounded to a power of two, with >= 39 training points per cell (faiss's floor)."""
        target = 4.0 * np.sqrt(max(n, 1))
        nlist = 1 << max(0, int(round(np.log2(target))))
        while nlist > 1 and n < 39 * nlist:
            nlist //= 2
        return nlist

    def train(self, sample: np.ndarray, total: int) -> None:
        """Train the cells on ``sample`` (M, D), drawn from the ``total`` faces about to be added
        (a random draw: a gallery's first rows, e.g. its oldest enrolments, may not be typical)."""
        self._train(_as_vectors(sample, self.dim))
        self.trained_on = int(total)

    def _train(self, v: np.ndarray) -> None:
        faiss = self._faiss()
        if self.threads:
            faiss.omp_set_num_threads(int(self.threads))
        nlist = self.nlist or self.auto_nlist(len(v))
        qtype = faiss.ScalarQuantizer.QT_fp16 if self.codes == "fp16" else faiss.ScalarQuantizer.QT_8bit
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatL2(self.dim), self.dim, nlist, qtype, faiss.METRIC_L2)
        # 64 points per cell and 10 k-means rounds: training at 1M faces takes seconds, not minutes,
        # for no measurable loss of recall (benchmarks/bench_gallery.py).
        sample = v if len(v) <= 64 * nlist else v[np.random.default_rng(0).choice(len(v), 64 * nlist, replace=False)]
        index.cp.seed = 1234
        index.cp.niter = 10
        index.train(sample)
        index.nprobe = self.nprobe or min(nlist, max(16, int(round(4 * np.sqrt(nlist)))))
        self._index, self.nlist, self.trained_on = index, nlist, len(v)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        v = _as_vectors(vectors, self.dim)
        i = _as_ids(ids, len(v))
        if len(v) == 0:
            return
        if self._index is None:
            self._train(v)
        self._index.add_with_ids(v, i)
        self._ids = np.union1d(self._ids, i)

    def remove(self, ids: np.ndarray) -> int:
        i = np.intersect1d(np.asarray(ids, np.int64).reshape(-1), self._ids)
        if len(i) == 0 or self._index is None:
            return 0
        self._index.remove_ids(self._faiss().IDSelectorBatch(i))
        self._ids = np.setdiff1d(self._ids, i, assume_unique=True)
        return int(len(i))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = _as_vectors(queries, self.dim)
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if self._index is None or len(self._ids) == 0 or len(q) == 0:
            return _empty_result(len(q), k)
        faiss = self._faiss()
        global _omp_default
        if _omp_default is None:
            _omp_default = faiss.omp_get_max_threads()
        # Without a set count, one query runs on one thread: waking a second costs more than it
        # saves (1M faces, Xeon: p99 3.7 ms on 1 thread, 5.1 ms on 2; bench_gallery.py e2e).
        faiss.omp_set_num_threads(int(self.threads) if self.threads else 1 if len(q) == 1 else _omp_default)
        dist, ids = self._index.search(q, k)
        dist = np.where(ids < 0, np.inf, np.maximum(dist, 0.0)).astype(np.float32)
        return dist, ids.astype(np.int64)

    def memory_bytes(self) -> int:
        if self._index is None:
            return 0
        codes = self._index.sa_code_size() if hasattr(self._index, "sa_code_size") else self.dim * 2
        # per face: its code and its 8-byte id in the inverted list, plus our sorted id copy
        return int(len(self._ids) * (codes + 16) + self.nlist * self.dim * 4)

    # -- persistence ------------------------------------------------------------------------------
    def to_bytes(self) -> np.ndarray:
        return self._faiss().serialize_index(self._index)

    @classmethod
    def from_bytes(cls, blob: np.ndarray, ids: np.ndarray, params: dict[str, Any]) -> IVFIndex:
        self = cls(int(params["dim"]), codes=params["codes"], threads=params.get("threads"))
        self._index = cls._faiss().deserialize_index(np.asarray(blob, np.uint8))
        self.nlist, self.nprobe = int(params["nlist"]), params.get("nprobe")
        self.trained_on = int(params["trained_on"])
        self._ids = np.asarray(ids, np.int64)
        return self


BACKENDS = {"exact": ExactIndex, "ivf": IVFIndex}


def make_index(kind: str, dim: int, n: int, *, threads: int | None = None) -> ExactIndex | IVFIndex:
    """A new empty index: ``kind`` is "exact", "ivf", or "auto" (exact below EXACT_MAX faces)."""
    if kind == "auto":
        kind = "exact" if n < EXACT_MAX else "ivf"
    if kind == "exact":
        return ExactIndex(dim)
    if kind == "ivf":
        return IVFIndex(dim, nlist=IVFIndex.auto_nlist(n) if n else None, threads=threads)
    raise ValueError(f"unknown index {kind!r}: use 'auto', 'exact' or 'ivf'")


def save_index(index: IVFIndex, path: Path, stamp: dict[str, Any]) -> None:
    """Write an IVF index and the stamp it reflects (model, generation) atomically to ``path``."""
    params = {
        "dim": index.dim, "nlist": index.nlist, "nprobe": index._index.nprobe, "codes": index.codes,
        "threads": index.threads, "trained_on": index.trained_on,
    }
    tmp = path.with_name(path.name + ".tmp")
    # owner-only like the gallery file: the index holds every face's vector
    with os.fdopen(os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600), "wb") as fh:  # a file object: np.savez would append ".npz" to a name
        np.savez(fh, index=index.to_bytes(), ids=index.ids(), meta=np.array(json.dumps({**params, **stamp})))
    os.replace(tmp, path)  # a crash leaves the old file or the new one, never half of one


def load_index(path: Path) -> tuple[IVFIndex, dict[str, Any]] | None:
    """The saved index and its stamp, or None when missing or unreadable (it is then rebuilt)."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return IVFIndex.from_bytes(z["index"], z["ids"], meta), meta
    except (OSError, ValueError, KeyError, RuntimeError, EOFError, zipfile.BadZipFile):
        return None  # missing or damaged: never trusted, the store holds the truth and it is rebuilt
