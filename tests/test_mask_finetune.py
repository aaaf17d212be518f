"""The mask fine-tune (issue 15): `faceprint train --augment` on real faces, `--save-as` into the
cache, and the registered model that reads what was saved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import FacePipeline, get_model_spec
from faceprint._resources import sha256_file
from faceprint.cli import app
from faceprint.errors import WeightsNotFoundError
from faceprint.evaluate.lfw import read_lfw_pairs
from faceprint.train import TrainConfig, Trainer, load_identity_folder

MASK_MODEL = "dlib-resnet-v1-mask"


def unseen_people(lfw: Path, several: int, single: int) -> tuple[list[str], list[str]]:
    """The first LFW people (sorted) in none of pairs.txt's pairs: with 2+ photos, and with one."""
    used = {n for p in read_lfw_pairs(lfw / "pairs.txt") for n in (p.name_a, p.name_b)}
    free = sorted(p for p in (lfw / "lfw-deepfunneled").iterdir() if p.is_dir() and p.name not in used)
    counts = {p.name: len(list(p.glob("*.jpg"))) for p in free}
    multi = [n for n, c in counts.items() if c >= 2][:several]
    one = [n for n, c in counts.items() if c == 1][:single]
    return multi, one


@pytest.fixture()
def tiny_lfw(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of a few real LFW people unseen by pairs.txt, and an empty faceprint cache (so the
    built weights land in it, never in the user's)."""
    monkeypatch.setenv("FACEPRINT_CACHE", str(tmp_path / "cache"))
    lfw = data_dir / "lfw"
    multi, one = unseen_people(lfw, 3, 3)
    root = tmp_path / "faces"
    for name in multi + one:
        photos = sorted((lfw / "lfw-deepfunneled" / name).glob("*.jpg"))[:3]
        (root / name).mkdir(parents=True)
        for photo in photos:
            shutil.copy(photo, root / name / photo.name)
    return root


def test_augment_rejects_unknown_names(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--augment", "mask,scarf"]
    )
    assert res.exit_code == 2
    said = " ".join(res.output.split())
    assert "--augment" in said and "unknown degradation 'scarf'" in said and "mask" in said
    with pytest.raises(ValueError, match="unknown degradation 'scarf'"):
        TrainConfig(augment=["scarf"])
    with pytest.raises(ValueError, match="'clean' is the photo itself"):
        TrainConfig(augment=["clean"])


def test_exclude_folds_must_be_fold_numbers(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--exclude-folds", "five"]
    )
    assert res.exit_code == 2 and "5-9" in " ".join(res.output.split())


def test_one_photo_people_train_and_validation_pairs_get_degraded_copies() -> None:
    from faceprint.train import ChipSet, PairSet, PKSampler, hold_out_identities

    labels = np.array([0, 0, 1, 2, 2, 3, 4, 4])  # b and d have one photo each
    chips = np.arange(8)[:, None]
    data = ChipSet(chips, labels, list("abcde"), [str(i) for i in range(8)], variants={"mask": 100 + chips[None]})
    train, held = hold_out_identities(data, 2)  # every 2nd person with 2+ photos: a and e
    assert held.classes == ["a", "e"] and train.classes == ["b", "c", "d"]
    assert train.variants["mask"][0].ravel().tolist() == [102, 103, 104, 105]
    assert len(PKSampler(train.labels, 3, 2, min_images=1).groups) == 3  # b and d pair with their copies
    pairs = PairSet.from_labels(held.chips, held.labels, degraded=[held.variants["mask"][0]])
    half = len(pairs.a) // 2
    assert len(pairs.chips) == 8 and (pairs.b[half:] >= 4).all() and (pairs.a[half:] == pairs.a[:half]).all()
    assert (pairs.same[half:] == pairs.same[:half]).all() and pairs.same.sum() == 4


def test_save_as_refuses_models_faceprint_does_not_build(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--save-as", "sface"]
    )
    assert res.exit_code == 2 and "dlib-resnet-v1-mask" in " ".join(res.output.split())


def test_tiny_real_mask_finetune_saves_registers_and_reloads(tiny_lfw: Path, tmp_path: Path) -> None:
    spec = get_model_spec(MASK_MODEL)
    assert spec.weights.licence.startswith("CC0") and spec.extra["base"] == "dlib-resnet-v1"
    face = next(tiny_lfw.glob("*/*.jpg"))
    # not built yet: the error says the command that builds the weights
    with pytest.raises(WeightsNotFoundError, match=f"faceprint train .*--save-as {MASK_MODEL}"):
        FacePipeline(model=MASK_MODEL).face(face)

    # the loss falls: repeated steps on one batch of real chips, clean and masked
    pipe = FacePipeline(detector="yunet", model="dlib-resnet-v1")
    data = load_identity_folder(tiny_lfw, pipe, min_images=1, augment=["mask"], variants=1, progress=False)
    assert len(data.classes) == 6 and data.variants["mask"].shape == (1, *data.chips.shape)
    assert not np.array_equal(data.variants["mask"][0], data.chips)  # the copies are masked
    config = TrainConfig(
        model="dlib-resnet-v1", epochs=1, p=6, k=2, miner="batch-all", margin=0.5, optimizer="adam", lr=1e-4,
        freeze=["stem.*", "blocks.[0-9].*"], augment=["mask"], export=False, flip=False,
    )  # fmt: skip
    trainer = Trainer(config, data, tmp_path / "api-run", progress=False)
    chips, labels, clean = next(trainer._batches(1))
    losses = [trainer.train_step(chips, labels, clean)["loss"] for _ in range(5)]
    assert losses[0] > 0 and losses[-1] < 0.8 * losses[0], losses
    frozen = dict(trainer.net.named_parameters())
    assert (
        not frozen["blocks.9.conv2.weight"].requires_grad and frozen["blocks.13.conv2.weight"].requires_grad
    )

    # the command: a few real steps, saved into the (test's) cache as the registered model
    run = tmp_path / "run"
    res = CliRunner().invoke(app, [
        "train", "--data", str(tiny_lfw), "--out", str(run), "--model", "dlib-resnet-v1", "--detector", "yunet",
        "--augment", "mask", "--augment-copies", "1", "--freeze", "stem.*", "--freeze", "blocks.[0-9].*",
        "--p", "3", "--k", "2", "--epochs", "1", "--lr", "1e-4", "--no-export", "--save-as", MASK_MODEL, "--json",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    saved = summary["saved_as"]
    path = Path(saved["path"])
    assert path == spec.weights.cache_path() and path.is_file() and saved["sha256"] == sha256_file(path)
    assert spec.weights.available()

    # reloaded through the registry (ONNX Runtime) it gives the trained network's descriptors
    registered = FacePipeline(model=MASK_MODEL)
    assert registered.embedder.backend == "onnxruntime"
    trained = FacePipeline(detector="yunet-upright", flip=False, model=str(run / "model.pt"))
    v = registered.face(face).embedding.vector
    assert v.shape == (128,)
    np.testing.assert_allclose(v, trained.face(face).embedding.vector, atol=1e-4)
    # the fused model: each member's unit vector scaled by sqrt(weight), so a unit vector
    fused = FacePipeline(model=f"{MASK_MODEL}+sface").face(face).embedding.vector
    assert fused.shape == (256,) and abs(float(np.linalg.norm(fused)) - 1.0) < 1e-5
