"""Training data: folder-per-identity photos -> aligned chips (cached), and verification pairs.

Chips are made by the same detector and alignment the model is used with (a FacePipeline built
for its spec), so a network trains on exactly the geometry it will see. Making a chip (detection,
landmarks, warp) costs far more than a training step on CPU, so each chip is cached as a .npy
file keyed by the image bytes and the chip settings: later epochs and runs only read them.

Augmentation by a named degradation (:mod:`faceprint.degrade`, e.g. ``mask``) is done on the
photo, before detection, as it happens to a real photo: the degraded photo is detected and
aligned like any other, so the network trains on the chips it will get at test time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from .._resources import cache_dir
from ..degrade import get_condition, seed_for
from ..errors import FaceprintError, InvalidImageError
from ..evaluate.lfw import central_box_detection, lfw_image_path, read_lfw_pairs
from ..pipeline import IMAGE_SUFFIXES, FacePipeline, select_face

__all__ = [
    "ChipSet",
    "PairSet",
    "hold_out_identities",
    "identity_images",
    "load_identity_folder",
    "make_chips",
]


def identity_images(
    root: str | Path,
    *,
    identities: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    min_images: int = 1,
    max_per_identity: int | None = None,
) -> list[tuple[str, Path]]:
    """(identity, image path) for a folder with one sub-folder of photos per identity, sorted.

    identities restricts to those names (a split); exclude leaves those names out (e.g. the
    people of a test set); min_images drops identities with fewer photos; max_per_identity keeps
    the first photos (sorted by name) of large identities.
    """
    root = Path(root)
    if not root.is_dir():
        raise FaceprintError(
            f"{root} is not a folder: give a folder with one sub-folder of photos per identity"
        )
    wanted = set(identities) if identities is not None else None
    unwanted = set(exclude or ())
    items: list[tuple[str, Path]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if (wanted is not None and folder.name not in wanted) or folder.name in unwanted:
            continue
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(photos) < min_images:
            continue
        items += [(folder.name, p) for p in photos[:max_per_identity]]
    return items


def _chip_settings(pipe: FacePipeline, aligned: bool) -> dict[str, object]:
    s = pipe.settings()
    keep = {k: s[k] for k in ("detector", "detector_params", "landmarks", "chip")}
    return {**keep, "alignment": pipe.spec.alignment, "aligned_input": aligned}


def _degrader(condition: str, variant: int, seed: int) -> Callable[[np.ndarray, Path], np.ndarray]:
    """photo, path -> the photo under ``condition``, seeded by the condition, the variant, the
    photo's ``Name/file`` and ``seed``: the same photo always gets the same degraded copy."""
    cond = get_condition(condition)

    def degrade(image: np.ndarray, path: Path) -> np.ndarray:
        key = f"{condition}/{variant}/{path.parent.name}/{path.name}"
        return cond(image, rng=seed_for(key, seed))

    return degrade


def make_chips(
    paths: Sequence[Path],
    pipe: FacePipeline,
    *,
    aligned: bool = False,
    fallback: str = "skip",
    cache: Path | None | bool = True,
    batch: int = 16,
    progress: bool = True,
    condition: str | None = None,
    variant: int = 0,
    seed: int = 0,
) -> tuple[np.ndarray, list[str]]:
    """One aligned chip per image: (N, S, S, 3) uint8 and how each was made.

    aligned: the images are already aligned chips (resized to S if needed; no detection).
    Otherwise the face nearest the image centre is detected and aligned with the pipeline's model
    geometry. A photo without a face gets fallback="center" (the central box, as the LFW protocol
    does) or is skipped (how = "none", chip all zeros). how: "chip", "detector", "center", "none".
    cache: a folder, True for the user cache, False/None for none.
    condition: a degradation (:func:`faceprint.degrade.get_condition`) applied to each photo before
    detection; variant and seed pick its random draw (see :func:`_degrader`).
    """
    size = pipe.spec.chip_size
    degrade = _degrader(condition, variant, seed) if condition else None
    chips = np.zeros((len(paths), size, size, 3), np.uint8)
    how = [""] * len(paths)
    store: Path | None = None
    if cache:
        settings = _chip_settings(pipe, aligned)
        if condition:
            settings["degrade"] = {"condition": condition, "variant": variant, "seed": seed}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        store = (Path(cache) if isinstance(cache, (str, Path)) else cache_dir("chips")) / digest
        store.mkdir(parents=True, exist_ok=True)
    keys = [hashlib.sha256(Path(p).read_bytes()).hexdigest()[:32] for p in paths] if store else []
    todo = []
    for i in range(len(paths)):
        hit = store / f"{keys[i]}.npz" if store else None
        if hit is not None and hit.is_file():
            with np.load(hit) as z:
                chips[i], how[i] = z["chip"], str(z["how"])
        else:
            todo.append(i)
    bar = tqdm(total=len(todo), desc="aligning", unit="img", disable=not progress or not todo)
    for start in range(0, len(todo), batch):
        idx = todo[start : start + batch]
        images = [pipe.load(paths[i]) for i in idx]
        if degrade is not None:
            images = [degrade(img, Path(paths[i])) for i, img in zip(idx, images)]
        if aligned:
            for i, img in zip(idx, images):
                if img.shape[:2] != (size, size):
                    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
                chips[i], how[i] = img, "chip"
        else:
            for i, img, dets in zip(idx, images, pipe.detector.detect_batch(images)):
                if dets:
                    det, how[i] = dets[select_face(dets, img.shape, "center")], "detector"
                elif fallback == "center":
                    det, how[i] = central_box_detection(img.shape), "center"
                else:
                    how[i] = "none"
                    continue
                chips[i] = pipe.align(img, [det])[0].pixels
        if store:
            for i in idx:
                np.savez(store / f"{keys[i]}.npz", chip=chips[i], how=how[i])
        bar.update(len(idx))
    bar.close()
    return chips, how


@dataclass
class ChipSet:
    """Aligned training chips: (N, S, S, 3) uint8 with (N,) integer labels into ``classes``.

    variants: per degradation name, (V, N, S, S, 3) chips of V degraded copies of each photo
    (training augmentation; where the detector finds no face in a copy, the clean chip stands in).
    """

    chips: np.ndarray
    labels: np.ndarray
    classes: list[str]
    paths: list[str]
    skipped: list[str] = field(default_factory=list)  # photos where no face was found
    variants: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


def load_identity_folder(
    root: str | Path,
    pipe: FacePipeline,
    *,
    aligned: bool = False,
    identities: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    min_images: int = 2,
    max_per_identity: int | None = None,
    cache: Path | None | bool = True,
    progress: bool = True,
    augment: Sequence[str] = (),
    variants: int = 2,
    seed: int = 0,
) -> ChipSet:
    """A folder-per-identity dataset as aligned chips; photos without a face are left out.

    augment: degradation names; each photo also gets ``variants`` degraded copies per name,
    detected and aligned like the clean photo (``ChipSet.variants``), seeded by ``seed``.
    """
    items = identity_images(
        root, identities=identities, exclude=exclude, min_images=min_images, max_per_identity=max_per_identity
    )
    if not items:
        raise FaceprintError(f"no identity in {root} has {min_images} or more photos")
    paths = [p for _, p in items]
    chips, how = make_chips(paths, pipe, aligned=aligned, cache=cache, progress=progress)
    keep = [i for i, h in enumerate(how) if h != "none"]
    copies: dict[str, np.ndarray] = {}
    for name in dict.fromkeys(augment):
        made = []
        for v in range(variants):
            degraded, dhow = make_chips(
                [paths[i] for i in keep], pipe, aligned=aligned, cache=cache, progress=progress,
                condition=name, variant=v, seed=seed,
            )  # fmt: skip
            missed = np.array([h == "none" for h in dhow], bool)
            degraded[missed] = chips[keep][missed]  # no face in the degraded copy: the clean chip
            made.append(degraded)
        copies[name] = np.stack(made) if made else np.zeros((0, len(keep), *chips.shape[1:]), np.uint8)
    classes = sorted({items[i][0] for i in keep})
    index = {c: j for j, c in enumerate(classes)}
    return ChipSet(
        chips=chips[keep],
        labels=np.array([index[items[i][0]] for i in keep], np.int64),
        classes=classes,
        paths=[str(items[i][1]) for i in keep],
        skipped=[str(items[i][1]) for i, h in enumerate(how) if h == "none"],
        variants=copies,
    )


def hold_out_identities(data: ChipSet, every: int) -> tuple[ChipSet, ChipSet]:
    """Split by identity: every ``every``-th class with two or more photos (sorted by name, starting
    with the first) goes to the second set, for validation on people the network never trains on.

    Identities with one photo (used in training with augmentation) always stay in the first set:
    they give no same-identity pair to validate on.
    """
    if every < 2:
        raise ValueError(f"every must be >= 2 (1 would hold back everyone), got {every}")
    several = np.flatnonzero(np.bincount(data.labels, minlength=len(data.classes)) >= 2)
    held = np.zeros(len(data.classes), bool)
    held[several[::every]] = True

    def subset(keep: np.ndarray) -> ChipSet:
        rows = keep[data.labels]
        remap = np.cumsum(keep) - 1  # old class index -> new
        return ChipSet(
            chips=data.chips[rows],
            labels=remap[data.labels[rows]],
            classes=[c for c, k in zip(data.classes, keep) if k],
            paths=[p for p, r in zip(data.paths, rows) if r],
            variants={name: v[:, rows] for name, v in data.variants.items()},
        )

    return subset(~held), subset(held)


@dataclass
class PairSet:
    """Verification pairs over a set of chips: (M, S, S, 3) chips and (P,) pair arrays."""

    chips: np.ndarray
    a: np.ndarray  # (P,) index of the first chip
    b: np.ndarray  # (P,) index of the second chip
    same: np.ndarray  # (P,) bool
    folds: np.ndarray  # (P,) fold number, for cross-validated thresholds

    @classmethod
    def from_labels(
        cls,
        chips: np.ndarray,
        labels: np.ndarray,
        *,
        seed: int = 0,
        folds: int = 10,
        degraded: Sequence[np.ndarray] = (),
    ) -> PairSet:
        """Every same-identity pair of ``chips`` and as many random different-identity pairs
        (a validation set carved from training data, e.g. identities held back for model selection).

        degraded: (N, S, S, 3) degraded copies of ``chips``; each adds every pair again with its
        second photo degraded (clean probe against a degraded one), in the same fold.
        """
        labels = np.asarray(labels)
        a, b = np.triu_indices(len(labels), 1)
        same = labels[a] == labels[b]
        rng = np.random.default_rng(seed)
        diff = rng.choice(np.flatnonzero(~same), min(int(same.sum()), int((~same).sum())), replace=False)
        keep = np.sort(np.concatenate([np.flatnonzero(same), diff]))
        a, b, same, fold = a[keep], b[keep], same[keep], rng.permutation(len(keep)) % folds
        n = len(labels)
        for j, copy in enumerate(degraded, start=1):
            if copy.shape != chips.shape:
                raise ValueError(f"degraded chips must match the chips' shape {chips.shape}, got {copy.shape}")
            a = np.concatenate([a, a[: len(keep)]])
            b = np.concatenate([b, b[: len(keep)] + j * n])
            same, fold = np.concatenate([same, same[: len(keep)]]), np.concatenate([fold, fold[: len(keep)]])
        all_chips = np.concatenate([chips, *degraded]) if len(degraded) else chips
        return cls(chips=all_chips, a=a, b=b, same=same, folds=fold)

    @classmethod
    def from_lfw(
        cls,
        root: str | Path,
        pairs_file: str | Path,
        pipe: FacePipeline,
        *,
        cache: Path | None | bool = True,
        progress: bool = True,
    ) -> PairSet:
        """LFW pairs (pairs.txt, or View 1's pairsDevTest.txt) with the LFW protocol's rule: a photo
        where the detector finds no face is aligned on the central box, never dropped.

        A one-fold file is split into 10 interleaved folds so accuracy is still cross-validated.
        """
        pairs = read_lfw_pairs(pairs_file)
        root = Path(root)
        paths = sorted(
            {lfw_image_path(root, p.name_a, p.index_a) for p in pairs}
            | {lfw_image_path(root, p.name_b, p.index_b) for p in pairs}
        )
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise InvalidImageError(
                f"{len(missing)} images of {pairs_file} are missing under {root}, e.g. {missing[0]}"
            )
        chips, _ = make_chips(paths, pipe, fallback="center", cache=cache, progress=progress)
        row = {p: i for i, p in enumerate(paths)}
        folds = np.array([p.fold for p in pairs])
        if len(set(folds.tolist())) == 1:
            folds = np.arange(len(pairs)) % 10
        return cls(
            chips=chips,
            a=np.array([row[lfw_image_path(root, p.name_a, p.index_a)] for p in pairs]),
            b=np.array([row[lfw_image_path(root, p.name_b, p.index_b)] for p in pairs]),
            same=np.array([p.same for p in pairs]),
            folds=folds,
        )
