"""P identities x K images per batch: the batches online triplet mining needs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["PKSampler"]


class PKSampler:
    """Batches of ``p`` identities with ``k`` images each (indices into the dataset).

    Only identities with at least 2 images can give anchor-positive pairs, so only those are
    drawn, unless ``min_images=1``: with augmentation a photo and its degraded copy make a pair,
    so an identity with one photo gets it ``k`` times (the trainer shows the repeats degraded). An epoch visits every such identity once, in a shuffled order (the last partial batch
    is dropped); an identity with fewer than ``k`` images repeats some (FaceNet samples ~40 faces
    per identity per mini-batch; with LFW's few images per person, repeats are unavoidable).
    Deterministic: the batches of epoch ``e`` depend only on (seed, e).
    """

    def __init__(
        self, labels: Sequence[int] | np.ndarray, p: int, k: int, seed: int = 0, *, min_images: int = 2
    ) -> None:
        if p < 2 or k < 2:
            raise ValueError(f"need p >= 2 identities and k >= 2 images per batch, got p={p}, k={k}")
        if min_images not in (1, 2):
            raise ValueError(f"min_images must be 1 (augmented pairs) or 2, got {min_images}")
        labels = np.asarray(labels)
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        groups: dict[int, list[int]] = {}
        for i, lab in enumerate(labels.tolist()):
            groups.setdefault(int(lab), []).append(i)
        self.groups = {lab: np.array(idx) for lab, idx in sorted(groups.items()) if len(idx) >= min_images}
        if len(self.groups) < self.p:
            raise ValueError(
                f"only {len(self.groups)} identities have {min_images} or more images; a batch needs "
                f"p={self.p}: lower --p or add images"
            )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.groups) // self.p

    def __iter__(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        ids = np.array(list(self.groups))
        order = rng.permutation(ids)
        for b in range(len(self)):
            batch = []
            for lab in order[b * self.p : (b + 1) * self.p]:
                idx = self.groups[int(lab)]
                if len(idx) >= self.k:
                    batch.append(rng.choice(idx, self.k, replace=False))
                else:  # every image once, then random repeats
                    batch.append(np.concatenate([rng.permutation(idx), rng.choice(idx, self.k - len(idx))]))
            yield np.concatenate(batch)
