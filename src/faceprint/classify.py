"""Classifiers on face descriptors: scikit-learn estimators with an optional "unknown" answer.

:class:`SVMFaceClassifier` is the FaceNet-tutorial recipe (seed 004): L2-normalised embeddings,
label encoding, a linear SVC with probabilities (temperature-scaled). :class:`KNNFaceClassifier`
votes among the nearest enrolled faces. Both follow the estimator contract (parameters stored by ``__init__``,
learned state ending in ``_``, ``fit`` returns self) and pass ``sklearn.utils.estimator_checks``.

Open set: a classifier always names one of the people it was trained on, even for a stranger.
``unknown_proba`` answers ``unknown_label`` when the top probability is below it;
``unknown_distance`` does so when no training face is within that distance (the embedding
model's metric on the raw, un-normalised descriptors) - the better guard against strangers, whom
an SVM often places confidently in some class. The 1:1 threshold (0.6 for dlib's ResNet) is loose
for thousands of enrolled faces: on 158 LFW people it rejects 6% of strangers, 0.5 rejects 84%.

``embedding_model`` records which model's descriptors the classifier takes, so a saved file
cannot be fed another model's descriptors by mistake (:func:`load_classifier` checks it).

``predict`` is the arg-max of ``predict_proba`` and ``decision_function`` is its log-odds, so the
three never disagree (a bare SVC's Platt probabilities can contradict its own ``predict``).

Only load classifier files you made or trust: they are pickles (joblib), which run code on load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .decide import distances
from .errors import FaceprintError

__all__ = ["KNNFaceClassifier", "SVMFaceClassifier", "load_classifier", "save_classifier"]

_FORMAT = "faceprint-classifier"
_EPS = 1e-12


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)


def _store_params(estimator: BaseEstimator, params: dict[str, Any]) -> None:
    """scikit-learn's contract: ``__init__`` stores each argument, unchanged, under its own name."""
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


class _FaceClassifier(ClassifierMixin, BaseEstimator):
    """Shared fit/predict around an inner scikit-learn classifier (``estimator_``) on encoded labels.

    Subclasses define ``__init__`` (their parameters) and ``_fit_estimator(X, codes)``, which
    returns the inner classifier fitted on (N, D) prepared descriptors and (N,) encoded labels.
    """

    normalize: bool
    metric: str
    unknown_proba: float | None
    unknown_distance: float | None
    unknown_label: Any

    def _fit_estimator(self, X: np.ndarray, codes: np.ndarray) -> BaseEstimator:  # noqa: N803  # pragma: no cover
        raise NotImplementedError

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        return _unit(x) if self.normalize else x

    def fit(self, X: Any, y: Any) -> _FaceClassifier:  # noqa: N803 (scikit-learn's names)
        """Learn from (N, D) descriptors ``X`` and the (N,) person of each ``y``."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        codes = self.encoder_.transform(y)
        self.estimator_ = self._fit_estimator(self._prepare(X), codes)
        # Raw descriptors for the distance rule: thresholds are in the model's own metric.
        self.train_vectors_ = X.copy()
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        """(N, D) descriptors -> (N, C) probabilities over ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.estimator_.predict_proba(self._prepare(X))

    def decision_function(self, X: Any) -> np.ndarray:  # noqa: N803
        """Log-odds of ``predict_proba``: (N,) for two classes (> 0 means ``classes_[1]``), else (N, C)."""
        p = np.clip(self.predict_proba(X), _EPS, 1.0)
        if len(self.classes_) == 2:
            return np.log(p[:, 1]) - np.log(p[:, 0])
        return np.log(p)

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        """The most probable person per row of (N, D) ``X``, or ``unknown_label`` under the unknown rules."""
        proba = self.predict_proba(X)
        labels = self.classes_[np.argmax(proba, axis=1)]
        unknown = self._unknown(np.asarray(X, np.float64), proba)
        if not unknown.any():
            return labels
        out = labels.astype(object)
        out[unknown] = self.unknown_label
        return out

    def _unknown(self, X: np.ndarray, proba: np.ndarray) -> np.ndarray:  # noqa: N803
        unknown = np.zeros(len(proba), bool)
        if self.unknown_proba is not None:
            unknown |= proba.max(axis=1) < self.unknown_proba
        if self.unknown_distance is not None and len(X):
            unknown |= self.nearest_distance(X) > self.unknown_distance
        return unknown

    def nearest_distance(self, X: Any) -> np.ndarray:  # noqa: N803
        """(N,) distance from each row of ``X`` to the nearest training descriptor (raw, ``metric``)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return distances(X, self.train_vectors_, self.metric).min(axis=1)


class SVMFaceClassifier(_FaceClassifier):
    """Linear SVM with calibrated probabilities on L2-normalised descriptors (the FaceNet tutorial recipe).

    C: SVC regularisation. The tutorials' C=1 underfits large galleries of unit vectors (83% on
        158 LFW people against 99.6% for C=10, chosen by cross-validation on the training part in
        benchmarks/bench_cluster.py); 10 changes nothing on small ones.
    random_state: seeds the calibration folds.
    See the module docstring for ``normalize``, ``metric`` and the unknown rules.
    """

    def __init__(
        self,
        C: float = 10.0,  # noqa: N803
        *,
        normalize: bool = True,
        metric: str = "euclidean",
        unknown_proba: float | None = None,
        unknown_distance: float | None = None,
        unknown_label: Any = "unknown",
        embedding_model: str = "",
        random_state: int | None = 0,
    ) -> None:
        _store_params(self, locals())

    def _fit_estimator(self, X: np.ndarray, codes: np.ndarray) -> BaseEstimator:  # noqa: N803
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.frozen import FrozenEstimator
        from sklearn.model_selection import StratifiedKFold
        from sklearn.svm import SVC

        svc = SVC(kernel="linear", C=self.C)
        # Probabilities by temperature scaling (softmax of the SVM's one-vs-rest scores over one
        # fitted temperature) on out-of-fold scores, then one SVM on all faces. SVC(probability=True)
        # is deprecated (scikit-learn 1.9), and per-class sigmoids (Platt) re-rank the classes:
        # 70% against 99.5% accuracy on 158 LFW people. One temperature keeps the SVM's ranking.
        # Folds need two faces of each person; a person enrolled with one photo leaves only the
        # training scores to calibrate on (over-confident, but defined).
        folds = min(5, int(np.bincount(codes).min()))
        if folds < 2:
            everyone = np.arange(len(codes))
            return CalibratedClassifierCV(
                FrozenEstimator(svc.fit(X, codes)), method="temperature", cv=[(everyone, everyone)]
            ).fit(X, codes)
        cv = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        return CalibratedClassifierCV(svc, method="temperature", cv=cv, ensemble=False).fit(X, codes)


class KNNFaceClassifier(_FaceClassifier):
    """k nearest enrolled faces vote, weighted by inverse distance (normalised descriptors).

    n_neighbors: voters, capped at the number of training faces. See the module docstring for
    ``normalize``, ``metric`` and the unknown rules.
    """

    def __init__(
        self,
        n_neighbors: int = 5,
        *,
        weights: str = "distance",
        normalize: bool = True,
        metric: str = "euclidean",
        unknown_proba: float | None = None,
        unknown_distance: float | None = None,
        unknown_label: Any = "unknown",
        embedding_model: str = "",
    ) -> None:
        _store_params(self, locals())

    def _fit_estimator(self, X: np.ndarray, codes: np.ndarray) -> BaseEstimator:  # noqa: N803
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(
            n_neighbors=max(1, min(int(self.n_neighbors), len(codes))), weights=self.weights, metric=self.metric
        ).fit(X, codes)


def save_classifier(classifier: _FaceClassifier, path: str | Path) -> Path:
    """Write a fitted classifier to ``path`` (joblib)."""
    import joblib

    check_is_fitted(classifier)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"format": _FORMAT, "version": 1, "classifier": classifier}, path)
    return path


def load_classifier(path: str | Path, *, model_id: str | None = None) -> _FaceClassifier:
    """Read a classifier written by :func:`save_classifier`; with ``model_id``, check its embedding_model.

    Raises FaceprintError for a file that is not a faceprint classifier or was trained on the
    descriptors of another model. Loading unpickles: use only files you trust.
    """
    import joblib

    try:
        payload = joblib.load(Path(path))
    except (OSError, EOFError, ValueError, KeyError, ImportError) as exc:
        raise FaceprintError(f"cannot read classifier {path}: {exc}; train one with `faceprint classify train`") from exc
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise FaceprintError(f"{path} is not a faceprint classifier file; train one with `faceprint classify train`")
    saved = getattr(payload["classifier"], "embedding_model", "")
    if model_id is not None and saved and saved != model_id:
        raise FaceprintError(
            f"classifier {path} was trained on {saved!r} descriptors, not {model_id!r}: embed with {saved!r} or retrain it"
        )
    return payload["classifier"]
