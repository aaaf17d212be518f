"""LFW ablation: which detector, alignment, test-time augmentation and distance, each row a full
10-fold View-2 run over all 6000 pairs of the official pairs.txt.

    .venv/bin/python benchmarks/ablation_lfw.py [--jitter 4] [--rows all]

Every piece is computed once and cached under the faceprint cache folder (ablation/): the
detection each detector keeps per image (the face nearest the centre), and each *view* of each
chip (the chip, its mirror, jittered copies) for each (detector, alignment, padding). A row is
then the mean of some views, a distance and the 10-fold protocol, so all rows cost little more
than their distinct views (~45 s of network time each on 2 cores for the ~7,700 pair images).

Rows follow the library's rule for faceless images: the row's detectors in order, then the
central box (faceprint.evaluate.lfw.central_box_detection), so all 6000 pairs are scored.
Prints a Markdown table and saves JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from common import data_root, save, table

from faceprint import Detection, Embedder, get_detector, paired_distances, select_face
from faceprint._resources import cache_dir
from faceprint.align import dlib_rect, extract_dlib_chip, jitter_chip, mtcnn_to_dlib5
from faceprint.evaluate.lfw import central_box_detection, lfw_image_path, read_lfw_pairs
from faceprint.evaluate.metrics import eer, kfold_accuracy, roc_auc, val_at_far
from faceprint.imageio import load_image
from faceprint.shape_predictor import ShapePredictor

CACHE = cache_dir("ablation")
CACHE_SUFFIX: list[str] = []  # "-smoke": a smoke run keeps its own result file


@dataclass(frozen=True)
class Row:
    """One ablation row: a detector chain, an alignment, the views averaged, the distance."""

    group: str
    label: str
    chain: tuple[str, ...] = ("mtcnn",)
    aligns: tuple[str, ...] = ("pts",)  # "pts": the detector's 5 points (sp5 when it has none); "sp5"
    padding: float = 0.25
    flip: bool = True
    jitter: int = 0
    metric: str = "euclidean"


def rows_for(jitter: int) -> list[Row]:
    d = "MTCNN (points), flip, L2"
    return [
        Row("detector", "MTCNN -> centre box", ("mtcnn",)),
        Row("detector", "MMOD -> centre box", ("mmod",)),
        Row("detector", "Haar -> centre box", ("haar",)),
        Row("detector", "MTCNN -> MMOD-up1 -> centre box  (default)", ("mtcnn", "mmod-up1")),
        Row("detector", "MMOD -> MTCNN -> centre box", ("mmod", "mtcnn")),
        Row("detector", "Haar -> MTCNN -> centre box", ("haar", "mtcnn")),
        Row("alignment", f"{d}: 5-point predictor in the MTCNN box", ("mtcnn", "mmod-up1"), ("sp5",)),
        Row("alignment", f"{d}: mean of MTCNN points and predictor", ("mtcnn", "mmod-up1"), ("pts", "sp5")),
        Row("alignment", f"{d}: chip padding 0.20", ("mtcnn", "mmod-up1"), padding=0.20),
        Row("alignment", f"{d}: chip padding 0.30", ("mtcnn", "mmod-up1"), padding=0.30),
        Row("flip", "MTCNN (points), no flip, L2", ("mtcnn", "mmod-up1"), flip=False),
        Row("jitter", f"MTCNN (points), no flip, {jitter} jitters", ("mtcnn", "mmod-up1"), flip=False, jitter=jitter),
        Row("jitter", f"{d} + {jitter} jitters", ("mtcnn", "mmod-up1"), jitter=jitter),
        Row("jitter", f"{d} + {jitter} jitters, mean of points and predictor", ("mtcnn", "mmod-up1"), ("pts", "sp5"), jitter=jitter),
        Row("distance", "MTCNN (points), flip, cosine", ("mtcnn", "mmod-up1"), metric="cosine"),
        Row("distance", "MTCNN (points), no flip, cosine", ("mtcnn", "mmod-up1"), flip=False, metric="cosine"),
        Row("distance", f"{d} + {jitter} jitters, mean of both, cosine", ("mtcnn", "mmod-up1"), ("pts", "sp5"), jitter=jitter, metric="cosine"),
    ]


class Store:
    """An npz-backed {image key: array} map per name, saved atomically."""

    def __init__(self, name: str) -> None:
        self.path = CACHE / f"{name}.npz"
        self.data: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as z:
                self.data = {str(k): v for k, v in zip(z["keys"], z["values"])}

    def save(self) -> None:
        if not self.data:
            return
        keys = sorted(self.data)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), values=np.stack([self.data[k] for k in keys]))
        tmp.replace(self.path)


class Ablation:
    def __init__(self, root: Path, paths: list[Path], batch: int = 32) -> None:
        self.root, self.paths, self.batch = root, paths, batch
        self.keys = [str(p.relative_to(root)) for p in paths]
        self.embedder = Embedder("dlib-resnet-v1", flip=False)
        self.sp = ShapePredictor.load()
        self._stores: dict[str, Store] = {}

    def _store(self, name: str) -> Store:
        """The cache file ``name``, read from disk once per run."""
        if name not in self._stores:
            self._stores[name] = Store(name)
        return self._stores[name]

    # -- detections: per image, the kept face as [l, t, r, b, score, 10 landmark coords or NaN]
    def detections(self, name: str, idx: list[int]) -> Store:
        store = self._store(f"det-{name}")
        todo = [i for i in idx if self.keys[i] not in store.data]
        if todo:
            det = get_detector(name)
            for s in tqdm(range(0, len(todo), self.batch), desc=f"detect {name}", unit="batch"):
                chunk = todo[s : s + self.batch]
                images = [load_image(self.paths[i]) for i in chunk]
                for i, image, dets in zip(chunk, images, det.detect_batch(images)):
                    row = np.full(15, np.nan)
                    if dets:
                        d = dets[select_face(dets, image.shape, "center")]
                        row[:5] = (*d.box, d.score)
                        if d.landmarks is not None:
                            row[5:] = np.asarray(d.landmarks).ravel()
                    store.data[self.keys[i]] = row
                if s % (20 * self.batch) == 0:
                    store.save()  # an interrupted run keeps its work
            store.save()
        return store

    def source(self, chain: tuple[str, ...]) -> list[tuple[str, Detection]]:
        """Per image: which detector of the chain found its face (or "center") and the detection."""
        out: list[tuple[str, Detection] | None] = [None] * len(self.paths)
        todo = list(range(len(self.paths)))
        for name in chain:
            store = self.detections(name, todo)
            left = []
            for i in todo:
                row = store.data[self.keys[i]]
                if np.isnan(row[0]):
                    left.append(i)
                else:
                    pts = None if np.isnan(row[5]) else row[5:].reshape(5, 2)
                    out[i] = (name, Detection(tuple(row[:4]), float(row[4]), pts, name))
            todo = left
        for i in todo:
            h, w = _shape(self.paths[i])
            out[i] = ("center", central_box_detection((h, w)))
        return out  # type: ignore[return-value]

    # -- views: descriptors of one kind of chip for each image
    def views(self, chain: tuple[str, ...], align: str, padding: float, view: str) -> np.ndarray:
        src = self.source(chain)
        # one cache file per detector that found the faces: chains share each other's views
        stores = [self._store(f"view-{name}-{align}-{padding:.2f}-{view}") for name, _ in src]
        out = np.zeros((len(self.paths), 128), np.float32)
        todo: list[int] = []
        for i, store in enumerate(stores):
            if self.keys[i] in store.data:
                out[i] = store.data[self.keys[i]]
            else:
                todo.append(i)
        for s in tqdm(range(0, len(todo), self.batch), desc=f"{align} {padding} {view}", unit="batch", disable=not todo):
            chunk = todo[s : s + self.batch]
            chips = np.stack([self._chip(i, src[i][1], align, padding, view) for i in chunk])
            vecs = self.embedder.embed(chips)
            for i, v in zip(chunk, vecs):
                out[i] = v
                stores[i].data[self.keys[i]] = v
        for store in {id(stores[i]): stores[i] for i in todo}.values():  # only the files that changed
            store.save()
        return out

    def _chip(self, i: int, det: Detection, align: str, padding: float, view: str) -> np.ndarray:
        image = load_image(self.paths[i])
        if align == "pts" and det.landmarks is not None:
            points = mtcnn_to_dlib5(det.landmarks)
        else:
            points = self.sp.predict(image, dlib_rect(det)).astype(np.float64)
        chip = extract_dlib_chip(image, points, size=150, padding=padding).pixels
        if view == "raw":
            return chip
        if view == "mirror":
            return np.ascontiguousarray(chip[:, ::-1])
        # "jitK": the K-th copy from the chip's own generator, as Embedder(jitter=N) draws them
        rng = np.random.default_rng(zlib.crc32(chip.tobytes()))
        for _ in range(int(view[3:])):
            copy = jitter_chip(chip, rng)
        return copy

    def descriptors(self, row: Row) -> np.ndarray:
        parts = []
        for align in row.aligns:
            names = ["raw"] + (["mirror"] if row.flip else []) + [f"jit{k}" for k in range(1, row.jitter + 1)]
            parts += [self.views(row.chain, align, row.padding, v) for v in names]
        return np.mean(parts, axis=0)


_SHAPES: dict[Path, tuple[int, int]] = {}


def _shape(path: Path) -> tuple[int, int]:
    if path not in _SHAPES:
        _SHAPES[path] = load_image(path).shape[:2]
    return _SHAPES[path]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jitter", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--only", default="", help="comma-separated row groups to run (default: all)")
    ap.add_argument("--smoke", type=int, default=0, help="only the first N same and N different pairs of each fold")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    root = data_root() / "lfw" / "lfw-deepfunneled"
    pairs = read_lfw_pairs(data_root() / "lfw" / "pairs.txt")
    if args.smoke:
        pairs = [p for i, p in enumerate(pairs) if i % 300 < args.smoke]
        CACHE_SUFFIX.append("-smoke")
    paths = sorted({lfw_image_path(root, p.name_a, p.index_a) for p in pairs} | {lfw_image_path(root, p.name_b, p.index_b) for p in pairs})
    row_of = {p: i for i, p in enumerate(paths)}
    ia = np.array([row_of[lfw_image_path(root, p.name_a, p.index_a)] for p in pairs])
    ib = np.array([row_of[lfw_image_path(root, p.name_b, p.index_b)] for p in pairs])
    y = np.array([p.same for p in pairs])
    f = np.array([p.fold for p in pairs])
    ab = Ablation(root, paths)
    rows = [r for r in rows_for(args.jitter) if not args.only or r.group in args.only.split(",")]
    out, results = [], []
    for r in rows:
        t = time.perf_counter()
        vecs = ab.descriptors(r)
        d = paired_distances(vecs[ia], vecs[ib], r.metric)
        accs = np.array([fr.accuracy for fr in kfold_accuracy(d, y, f)])
        src = ab.source(r.chain)
        fallback = sum(s != r.chain[0] for s, _ in src)
        res = {
            **r.__dict__, "accuracy_mean": float(accs.mean()), "accuracy_std": float(accs.std()),
            "val_at_far_1e-3": val_at_far(d, y, 1e-3)[0], "roc_auc": roc_auc(d, y), "eer": eer(d, y),
            "first_detector_missed": fallback, "center_box": sum(s == "center" for s, _ in src),
            "seconds": time.perf_counter() - t,
        }
        results.append(res)
        out.append([r.group, r.label, f"{100 * accs.mean():.2f} ± {100 * accs.std():.2f}", 100 * res["val_at_far_1e-3"],
                     f"{res['roc_auc']:.4f}", 100 * res["eer"], f"{fallback}/{res['center_box']}"])
        print(f"{r.label}: {100 * accs.mean():.2f} ± {100 * accs.std():.2f}", flush=True)
    print(table(["group", "row", "accuracy % (mean ± std, 10 folds)", "VAL@FAR=1e-3 %", "AUC", "EER %",
                 "first detector missed / centre box"], out))
    digest = hashlib.sha256(json.dumps([r.__dict__ for r in rows], sort_keys=True).encode()).hexdigest()[:8]
    print(f"saved {save(('lfw-ablation' + ''.join(CACHE_SUFFIX)) if not args.only else 'lfw-ablation-' + digest, {'pairs': len(pairs), 'images': len(paths), 'rows': results})}")


if __name__ == "__main__":
    main()
