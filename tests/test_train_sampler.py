"""P identities x K images per batch, deterministic per (seed, epoch)."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint.train import PKSampler

LABELS = np.array([0] * 5 + [1] * 2 + [2] * 3 + [3] * 1 + [4] * 4 + [5] * 2)


def test_batches_hold_p_identities_with_k_images() -> None:
    s = PKSampler(LABELS, p=2, k=3, seed=0)
    assert len(s) == 2  # 5 identities with >= 2 images (3 is a singleton), 2 per batch
    seen = []
    for batch in s:
        assert len(batch) == 6
        ids = LABELS[batch].reshape(2, 3)
        assert (ids == ids[:, :1]).all() and ids[0, 0] != ids[1, 0]
        for row in batch.reshape(2, 3):  # every image of a small identity appears before a repeat
            assert len(set(row.tolist())) == min(3, (LABELS == LABELS[row[0]]).sum())
        seen += ids[:, 0].tolist()
        assert 3 not in ids
    assert len(set(seen)) == 4  # an epoch visits distinct identities


def test_same_seed_and_epoch_give_the_same_batches() -> None:
    a, b = PKSampler(LABELS, 2, 2, seed=1), PKSampler(LABELS, 2, 2, seed=1)
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    b.set_epoch(1)
    assert [x.tolist() for x in a] != [x.tolist() for x in b]


def test_too_few_identities_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="lower --p"):
        PKSampler(LABELS, p=6, k=2)


def test_hold_out_identities_splits_by_person() -> None:
    from faceprint.train import ChipSet, PairSet, hold_out_identities

    labels = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3])
    data = ChipSet(np.arange(9)[:, None], labels, ["a", "b", "c", "d"], [str(i) for i in range(9)])
    train, held = hold_out_identities(data, 2)
    assert held.classes == ["a", "c"] and train.classes == ["b", "d"]
    assert held.labels.tolist() == [0, 0, 1, 1] and held.chips.ravel().tolist() == [0, 1, 5, 6]
    assert train.labels.tolist() == [0, 0, 0, 1, 1] and train.paths == ["2", "3", "4", "7", "8"]
    pairs = PairSet.from_labels(held.chips, held.labels)
    assert pairs.same.sum() == 2 and (~pairs.same).sum() == 2  # both same pairs, as many different
    assert all((held.labels[a] == held.labels[b]) == s for a, b, s in zip(pairs.a, pairs.b, pairs.same))
