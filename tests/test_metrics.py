"""Protocol code on hand-made scores with known answers."""

import numpy as np
import pytest

from faceprint.evaluate.metrics import best_threshold, eer, kfold_accuracy, roc_auc, val_at_far


def test_best_threshold_separable() -> None:
    d = np.array([0.1, 0.2, 0.3, 0.7, 0.8])
    y = np.array([1, 1, 1, 0, 0], bool)
    t = best_threshold(d, y)
    assert 0.3 <= t < 0.7
    assert ((d <= t) == y).all()


def test_threshold_never_sees_the_test_fold() -> None:
    # Fold 1's same-pairs sit at 0.5 (too far for fold 0's threshold); the test fold must fail
    # them, which it would not if its own pairs leaked into the threshold choice.
    d = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.9, 0.9])
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0], bool)
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    res = kfold_accuracy(d, y, folds)
    assert res[1].threshold < 0.3 and res[1].accuracy == 0.5
    assert res[0].threshold >= 0.5 and res[0].accuracy == 0.5


def test_auc_eer_val_known_values() -> None:
    d = np.array([0.1, 0.2, 0.3, 0.4])
    y = np.array([1, 0, 1, 0], bool)
    # Same pairs {0.1, 0.3}, different {0.2, 0.4}: 3 of 4 (same, diff) orderings are right.
    assert roc_auc(d, y) == pytest.approx(0.75)
    assert eer(d, y) == pytest.approx(0.5)
    val, t = val_at_far(d, y, 0.0)
    assert val == pytest.approx(0.5) and 0.1 <= t < 0.2
    assert roc_auc(np.array([0.1, 0.9]), np.array([True, False])) == pytest.approx(1.0)
