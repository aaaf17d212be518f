"""Evaluation beside the inference path: the LFW protocol and verification metrics."""

from .lfw import LfwPair, read_lfw_pairs
from .metrics import FoldResult, eer, kfold_accuracy, roc_auc, val_at_far

__all__ = ["FoldResult", "LfwPair", "eer", "kfold_accuracy", "read_lfw_pairs", "roc_auc", "val_at_far"]
