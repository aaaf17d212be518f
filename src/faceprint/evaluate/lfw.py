"""The LFW View-2 protocol: pairs.txt parsing and scoring of all 6000 pairs over 10 folds."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._resources import cache_dir
from ..decide import paired_distances
from ..errors import FaceprintError
from ..pipeline import FacePipeline, select_face
from ..types import Detection
from .metrics import best_threshold, eer, kfold_accuracy, roc_auc, val_at_far

__all__ = ["LfwPair", "central_box_detection", "embed_images", "lfw_image_path", "read_lfw_pairs"]


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


def central_box_detection(shape: tuple[int, ...], fraction: float = 0.45) -> Detection:
    """A square box of ``fraction`` x the shorter side at the image centre.

    LFW images are centred on the face (the detector that made LFW put it there), so this is
    the documented last resort when no detector finds a face: the pair is still scored.
    """
    h, w = shape[:2]
    side = fraction * min(h, w)
    cx, cy = w / 2.0, h / 2.0
    return Detection((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2), 0.0, None, "center")


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
    store = _EmbeddingCache(pipe) if cache else None
    vectors = np.zeros((len(paths), pipe.spec.embedding_size), np.float32)
    how = [""] * len(paths)
    todo = []
    for i, p in enumerate(paths):
        hit = store.get(p) if store else None
        if hit is None:
            todo.append(i)
        else:
            vectors[i], how[i] = hit
    bar = tqdm(total=len(todo), desc="embedding", unit="img", disable=not progress)
    for start in range(0, len(todo), batch):
        idx = todo[start : start + batch]
        images = [pipe.load(paths[i]) for i in idx]
        for i, image, faces in zip(idx, images, pipe.faces_batch(images)):
            if faces:
                k = select_face([f.detection for f in faces], image.shape, "center")
                vectors[i], how[i] = faces[k].embedding.vector, "detector"
                continue
            faces = fallback.faces_batch([image])[0] if fallback is not None else []
            if faces:
                k = select_face([f.detection for f in faces], image.shape, "center")
                vectors[i], how[i] = faces[k].embedding.vector, "fallback"
            else:
                vectors[i], how[i] = pipe.embed(image, [central_box_detection(image.shape)])[0], "center"
        if store:
            store.put([paths[i] for i in idx], vectors[idx], [how[i] for i in idx])
            if (start // batch) % 50 == 49:
                store.save()  # an interrupted run keeps most of its work
        bar.update(len(idx))
    bar.close()
    if store:
        store.save()
    return vectors, how


class _EmbeddingCache:
    """{sha256 of image bytes: (vector, how)} in one .npz per pipeline configuration."""

    def __init__(self, pipe: FacePipeline) -> None:
        key = json.dumps(pipe.settings(), sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.path = cache_dir("embeddings") / f"{pipe.spec.name}-{digest}.npz"
        self.data: dict[str, tuple[np.ndarray, str]] = {}
        if self.path.exists():
            try:
                with np.load(self.path) as z:
                    for k, v, h in zip(z["keys"], z["vectors"], z["how"]):
                        self.data[str(k)] = (v, str(h))
            except (OSError, ValueError, KeyError):
                self.data = {}  # a damaged cache is rebuilt, never trusted

    @staticmethod
    def _key(path: Path) -> str:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    def get(self, path: Path) -> tuple[np.ndarray, str] | None:
        return self.data.get(self._key(path))

    def put(self, paths: Sequence[Path], vectors: np.ndarray, how: Sequence[str]) -> None:
        for p, v, h in zip(paths, vectors, how):
            self.data[self._key(p)] = (np.array(v), h)

    def save(self) -> None:
        keys = list(self.data)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            keys=np.array(keys),
            vectors=np.stack([self.data[k][0] for k in keys]) if keys else np.zeros((0, 0), np.float32),
            how=np.array([self.data[k][1] for k in keys]),
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
    root = Path(root)
    paths = sorted({lfw_image_path(root, p.name_a, p.index_a) for p in pairs}
                   | {lfw_image_path(root, p.name_b, p.index_b) for p in pairs})
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FaceprintError(f"{len(missing)} LFW images are missing under {root}, e.g. {missing[0]}")
    vectors, how = embed_images(pipe, paths, fallback=fallback, progress=progress)
    row = {p: i for i, p in enumerate(paths)}
    ia = np.array([row[lfw_image_path(root, p.name_a, p.index_a)] for p in pairs])
    ib = np.array([row[lfw_image_path(root, p.name_b, p.index_b)] for p in pairs])
    metric = metric or pipe.spec.metric
    d = paired_distances(vectors[ia], vectors[ib], metric)
    y = np.array([p.same for p in pairs])
    f = np.array([p.fold for p in pairs])
    folds = kfold_accuracy(d, y, f)
    accs = np.array([r.accuracy for r in folds])
    val, _ = val_at_far(d, y, 1e-3)
    return {
        "accuracy_mean": float(accs.mean()),
        "accuracy_std": float(accs.std()),
        "val_at_far_1e-3": val,
        "roc_auc": roc_auc(d, y),
        "eer": eer(d, y),
        "threshold": best_threshold(d, y),
        "folds": [{"fold": r.fold, "threshold": r.threshold, "accuracy": r.accuracy} for r in folds],
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
