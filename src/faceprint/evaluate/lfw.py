"""The LFW View-2 protocol: pairs.txt parsing and scoring of all 6000 pairs over 10 folds."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._resources import cache_dir
from ..decide import paired_distances
from ..errors import FaceprintError
from ..pipeline import FacePipeline, select_face
from ..types import Detection
from .metrics import verification_summary

__all__ = [
    "EmbeddedImages",
    "LfwPair",
    "central_box_detection",
    "embed_images",
    "embed_images_detailed",
    "lfw_image_path",
    "pair_image_index",
    "read_lfw_pairs",
    "subset_pairs",
]


@dataclass(frozen=True)
class LfwPair:
    name_a: str
    index_a: int
    name_b: str
    index_b: int
    same: bool
    fold: int


def lfw_image_path(root: Path, name: str, index: int) -> Path:
    """``root/Name/Name_0001.jpg``: the LFW file layout."""
    return Path(root) / name / f"{name}_{index:04d}.jpg"


def read_lfw_pairs(path: str | Path) -> list[LfwPair]:
    """Parse pairs.txt: a header "folds n", then per fold n same-pairs and n different-pairs.

    View 1 files (pairsDevTrain.txt, pairsDevTest.txt) have the header "n": one fold.
    """
    lines = Path(path).read_text().split("\n")
    try:
        head = [int(v) for v in lines[0].split()]
        folds, n = head if len(head) == 2 else (1, *head)
    except (ValueError, TypeError):
        raise FaceprintError(f"{path}: first line must be '<folds> <pairs per class>', got {lines[0]!r}") from None
    rows = [ln.split() for ln in lines[1:] if ln.strip()]
    if len(rows) != folds * 2 * n:
        raise FaceprintError(f"{path}: expected {folds * 2 * n} pairs, found {len(rows)}")
    pairs = []
    for i, r in enumerate(rows):
        fold = i // (2 * n)
        if len(r) == 3:
            pairs.append(LfwPair(r[0], int(r[1]), r[0], int(r[2]), True, fold))
        elif len(r) == 4:
            pairs.append(LfwPair(r[0], int(r[1]), r[2], int(r[3]), False, fold))
        else:
            raise FaceprintError(f"{path}: line {i + 2} is neither a same nor a different pair: {r}")
    return pairs


def subset_pairs(pairs: Sequence[LfwPair], limit: int | None) -> list[LfwPair]:
    """About ``limit`` pairs kept in every fold and class: the first ``limit // (2 * folds)`` (at
    least 1) same-pairs and as many different-pairs of each fold, in file order.

    pairs.txt lists fold 0's 300 same-pairs first, so its first N lines would be one fold of one
    class; this keeps the 10-fold protocol meaningful on a small, fixed sample. None: all pairs.
    """
    if limit is None:
        return list(pairs)
    if limit < 1:
        raise ValueError(f"limit must be a positive number of pairs, got {limit!r}")
    folds = sorted({p.fold for p in pairs})
    per = max(1, limit // (2 * max(len(folds), 1)))
    taken: dict[tuple[int, bool], int] = {}
    out = []
    for p in pairs:
        k = (p.fold, p.same)
        if taken.get(k, 0) < per:
            taken[k] = taken.get(k, 0) + 1
            out.append(p)
    return out


def pair_image_index(root: str | Path, pairs: Sequence[LfwPair]) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """(the distinct image paths, sorted; row of each pair's first image; row of its second).

    Raises FaceprintError when an image is missing under ``root``.
    """
    root = Path(root)
    paths = sorted({lfw_image_path(root, p.name_a, p.index_a) for p in pairs}
                   | {lfw_image_path(root, p.name_b, p.index_b) for p in pairs})  # fmt: skip
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FaceprintError(f"{len(missing)} LFW images are missing under {root}, e.g. {missing[0]}")
    row = {p: i for i, p in enumerate(paths)}
    ia = np.array([row[lfw_image_path(root, p.name_a, p.index_a)] for p in pairs], dtype=np.int64)
    ib = np.array([row[lfw_image_path(root, p.name_b, p.index_b)] for p in pairs], dtype=np.int64)
    return paths, ia, ib


def central_box_detection(shape: tuple[int, ...], fraction: float = 0.45) -> Detection:
    """A square box of ``fraction`` x the shorter side at the image centre.

    LFW images are centred on the face (the detector that made LFW put it there), so this is
    the documented last resort when no detector finds a face: the pair is still scored.
    """
    h, w = shape[:2]
    side = fraction * min(h, w)
    cx, cy = w / 2.0, h / 2.0
    return Detection((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2), 0.0, None, "center")


@dataclass(frozen=True)
class EmbeddedImages:
    """What :func:`embed_images_detailed` gives per image, in the order of the paths.

    vectors: (N, D) float32 descriptors; how: "detector", "fallback" or "center" per image;
    quality: (N,) float64 ``Detection.quality`` of the face used (NaN where none was measured,
    e.g. the central box).
    """

    vectors: np.ndarray
    how: list[str]
    quality: np.ndarray


def embed_images(
    pipe: FacePipeline,
    paths: Sequence[Path],
    *,
    fallback: FacePipeline | None = None,
    batch: int = 32,
    cache: bool = True,
    progress: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """One descriptor per image, for the face nearest the centre: (N, D) float32 and how each was found.

    Rule, never dropping an image: the pipeline's detector; if it finds no face, the ``fallback``
    pipeline's detector (same model); if that finds none too, the central box of
    :func:`central_box_detection`. ``how`` records "detector", "fallback" or "center" per image.
    Descriptors are cached on disk keyed by image content and the pipeline settings.
    """
    done = embed_images_detailed(pipe, paths, fallback=fallback, batch=batch, cache=cache, progress=progress)
    return done.vectors, done.how


def embed_images_detailed(
    pipe: FacePipeline,
    paths: Sequence[Path],
    *,
    fallback: FacePipeline | None = None,
    load: Callable[[Path], np.ndarray] | None = None,
    cache_file: str | Path | None = None,
    batch: int = 32,
    cache: bool = True,
    progress: bool = True,
    desc: str = "embedding",
) -> EmbeddedImages:
    """:func:`embed_images` with the quality of each face used, an image loader and a cache file.

    load: path -> (H, W, 3) uint8 RGB image (default ``pipe.load``), e.g. loading then degrading;
        with a loader the cache key also holds the file name, since the loader may draw random
        numbers seeded by it.
    cache_file: the .npz that caches this run's descriptors (default: one per pipeline
        configuration in the faceprint cache folder). It is saved every 50 batches and at the end,
        so an interrupted run resumes where it stopped.
    """
    store = _EmbeddingCache(pipe, cache_file, by_name=load is not None) if cache else None
    load = load or pipe.load
    vectors = np.zeros((len(paths), pipe.spec.embedding_size), np.float32)
    how = [""] * len(paths)
    quality = np.full(len(paths), np.nan)
    todo = []
    for i, p in enumerate(paths):
        hit = store.get(p) if store else None
        if hit is None:
            todo.append(i)
        else:
            vectors[i], how[i], quality[i] = hit
    bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not progress)
    for start in range(0, len(todo), batch):
        idx = todo[start : start + batch]
        images = [load(paths[i]) for i in idx]
        for i, image, faces in zip(idx, images, pipe.faces_batch(images)):
            if faces:
                k = select_face([f.detection for f in faces], image.shape, "center")
                vectors[i], how[i], quality[i] = faces[k].embedding.vector, "detector", _quality(faces[k].detection)
                continue
            faces = fallback.faces_batch([image])[0] if fallback is not None else []
            if faces:
                k = select_face([f.detection for f in faces], image.shape, "center")
                vectors[i], how[i], quality[i] = faces[k].embedding.vector, "fallback", _quality(faces[k].detection)
            else:
                vectors[i], how[i] = pipe.embed(image, [central_box_detection(image.shape)])[0], "center"
        if store:
            store.put([paths[i] for i in idx], vectors[idx], [how[i] for i in idx], quality[idx])
            if (start // batch) % 50 == 49:
                store.save()  # an interrupted run keeps most of its work
        bar.update(len(idx))
    bar.close()
    if store:
        store.save()
    return EmbeddedImages(vectors, how, quality)


def _quality(det: Detection) -> float:
    q = getattr(det, "quality", None)
    return float("nan") if q is None else float(q)


class _EmbeddingCache:
    """{sha256 of image bytes (and file name): (vector, how, quality)} in one .npz per
    pipeline configuration, or in the file given."""

    def __init__(self, pipe: FacePipeline, path: str | Path | None = None, *, by_name: bool = False) -> None:
        if path is None:
            key = json.dumps(pipe.settings(), sort_keys=True)
            digest = hashlib.sha256(key.encode()).hexdigest()[:16]
            path = cache_dir("embeddings") / f"{pipe.spec.name}-{digest}.npz"
        self.path = Path(path)
        self.by_name = by_name
        self.data: dict[str, tuple[np.ndarray, str, float]] = {}
        if self.path.exists():
            try:
                with np.load(self.path) as z:
                    quality = z["quality"] if "quality" in z.files else np.full(len(z["keys"]), np.nan)
                    for k, v, h, q in zip(z["keys"], z["vectors"], z["how"], quality):
                        self.data[str(k)] = (v, str(h), float(q))
            except (OSError, ValueError, KeyError):
                self.data = {}  # a damaged cache is rebuilt, never trusted

    def _key(self, path: Path) -> str:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        return f"{digest}:{Path(path).name}" if self.by_name else digest

    def get(self, path: Path) -> tuple[np.ndarray, str, float] | None:
        return self.data.get(self._key(path))

    def put(self, paths: Sequence[Path], vectors: np.ndarray, how: Sequence[str], quality: np.ndarray) -> None:
        for p, v, h, q in zip(paths, vectors, how, quality):
            self.data[self._key(p)] = (np.array(v), h, float(q))

    def save(self) -> None:
        keys = list(self.data)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.stem + ".tmp.npz")
        np.savez(
            tmp,
            keys=np.array(keys),
            vectors=np.stack([self.data[k][0] for k in keys]) if keys else np.zeros((0, 0), np.float32),
            how=np.array([self.data[k][1] for k in keys]),
            quality=np.array([self.data[k][2] for k in keys], np.float64),
        )
        os.replace(tmp, self.path)  # atomic: a crash never leaves a half-written cache


def evaluate_lfw(
    pipe: FacePipeline,
    root: str | Path,
    pairs_file: str | Path,
    *,
    fallback: FacePipeline | None = None,
    metric: str | None = None,
    progress: bool = True,
) -> dict[str, object]:
    """Score all pairs of pairs.txt with 10-fold cross-validated thresholds.

    Returns the JSON-ready summary: accuracy_mean/std (fractions), val_at_far_1e-3, roc_auc,
    eer, threshold (chosen on all pairs, for reference), folds, pairs, no_face, and the
    per-pair distances under "_distances" / "_labels" / "_folds" for reports.
    """
    pairs = read_lfw_pairs(pairs_file)
    paths, ia, ib = pair_image_index(root, pairs)
    vectors, how = embed_images(pipe, paths, fallback=fallback, progress=progress)
    metric = metric or pipe.spec.metric
    d = paired_distances(vectors[ia], vectors[ib], metric)
    y = np.array([p.same for p in pairs])
    f = np.array([p.fold for p in pairs])
    return {
        **verification_summary(d, y, f),
        "pairs": len(pairs),
        "images": len(paths),
        "no_face": int(sum(h != "detector" for h in how)),
        "found_by": {k: how.count(k) for k in sorted(set(how))},
        "metric": metric,
        "settings": pipe.settings(),
        "_distances": d,
        "_labels": y,
        "_folds": f,
    }
