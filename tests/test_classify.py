"""Face classifiers: scikit-learn's estimator checks, the unknown rules, save/load, seed 004 on real faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from faceprint import FaceprintError, FacePipeline, KNNFaceClassifier, SVMFaceClassifier, load_classifier, save_classifier
from faceprint.pipeline import iter_known_dir


@parametrize_with_checks([SVMFaceClassifier(), KNNFaceClassifier(unknown_distance=1e9)])
def test_scikit_learn_estimator_checks(estimator, check) -> None:  # noqa: ANN001
    check(estimator)


def people(per_person: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three people 128-d (faces ~0.23 from their centre, centres ~1.4 apart) and a far stranger."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 128))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.concatenate([c + rng.normal(scale=0.02, size=(per_person, 128)) for c in centres[:3]])
    y = np.repeat(np.array(["ann", "bob", "cy"]), per_person)
    return x, y, centres[3:] + rng.normal(scale=0.02, size=(1, 128))


@pytest.mark.parametrize("cls", [SVMFaceClassifier, KNNFaceClassifier])
def test_fit_predict_and_the_unknown_rules(cls: type) -> None:
    x, y, stranger = people()
    clf = cls().fit(x, y)
    assert list(clf.classes_) == ["ann", "bob", "cy"]
    assert (clf.predict(x) == y).all()
    proba = clf.predict_proba(x)
    assert proba.shape == (18, 3) and np.allclose(proba.sum(1), 1.0)
    assert (clf.classes_[clf.decision_function(x).argmax(1)] == clf.predict(x)).all()
    # A stranger is always someone to a closed-set classifier ...
    assert clf.predict(stranger)[0] in clf.classes_
    # ... and unknown under the distance rule (the raw descriptors' distance, here ~1.4).
    clf.set_params(unknown_distance=0.6)
    assert clf.predict(stranger).tolist() == ["unknown"] and (clf.predict(x) == y).all()
    assert clf.nearest_distance(stranger)[0] > 1.0
    clf.set_params(unknown_distance=None, unknown_proba=1.01, unknown_label=None)
    assert clf.predict(x[:2]).tolist() == [None, None]


def test_one_photo_per_person_still_gives_probabilities() -> None:
    x, y, _ = people(per_person=1)
    clf = SVMFaceClassifier().fit(x, y)  # too few faces for calibration folds
    assert (clf.predict(x) == y).all() and clf.predict_proba(x).shape == (3, 3)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    x, y, stranger = people()
    clf = KNNFaceClassifier(unknown_distance=0.6, embedding_model="dlib-resnet-v1").fit(x, y)
    path = save_classifier(clf, tmp_path / "sub" / "model.joblib")
    back = load_classifier(path, model_id="dlib-resnet-v1")
    assert (back.predict(x) == y).all() and back.predict(stranger).tolist() == ["unknown"]
    with pytest.raises(FaceprintError, match="dlib-resnet-v1"):
        load_classifier(path, model_id="another-model")
    import joblib

    joblib.dump({"something": "else"}, tmp_path / "other.joblib")
    with pytest.raises(FaceprintError, match="not a faceprint classifier"):
        load_classifier(tmp_path / "other.joblib")
    (tmp_path / "junk.joblib").write_bytes(b"not a pickle")
    with pytest.raises(FaceprintError, match="cannot read"):
        load_classifier(tmp_path / "junk.joblib")


def test_seed_004_svm_on_5_celebrity_faces(data_dir: Path) -> None:
    """The FaceNet tutorial: SVM on embeddings of train (4 photos a person here, for speed) -> val."""
    root = data_dir / "5-celebrity-faces"
    pipe = FacePipeline()
    first4: list[tuple[str, Path]] = []
    for name, path in iter_known_dir(root / "train"):
        if sum(n == name for n, _ in first4) < 4:
            first4.append((name, path))
    train = pipe.known_faces_from_files(first4)
    val = pipe.known_faces(root / "val", on_error="skip")
    assert len(val) == 25
    clf = SVMFaceClassifier().fit(train.vectors, list(train.names))
    assert (clf.predict(val.vectors) == np.array(val.names)).mean() == 1.0
