"""The trainer: it learns, resumes exactly, exports faithfully; and the `faceprint train` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from faceprint import Embedder, FacePipeline, get_model_spec
from faceprint.cli import app
from faceprint.models import ModelSpec, WeightsSource, _registry
from faceprint.models.dlib_resnet_torch import load_dlib_resnet
from faceprint.train import ChipSet, PairSet, TrainConfig, Trainer, evaluate_pairs
from faceprint.train.export import export_onnx, export_torchscript


class TinyNet(torch.nn.Module):
    """A 16x16 -> 8-d embedding network: the trainer's mechanics without a real network's cost."""

    chip_size = 16

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
        return torch.nn.functional.normalize(self.fc(x), dim=1)

    def preprocess(self, chips: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(chips)).permute(0, 3, 1, 2).float() / 255.0


@pytest.fixture(autouse=True)
def tiny_model(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelSpec(
        name="test-tiny", weights=WeightsSource(filename="none", sha256="", licence="test"), chip_size=16,
        alignment="dlib-5pt", padding=0.25, normalisation="RGB / 255", embedding_size=8, metric="euclidean",
        threshold=1.0, loader="test_train_trainer:TinyNet", arch="test_train_trainer:TinyNet",
    )  # fmt: skip
    monkeypatch.setitem(_registry._REGISTRY, spec.name, spec)


def synthetic_faces(identities: int, per_identity: int, seed: int = 0, size: int = 16) -> ChipSet:
    """Tiny "faces": each identity is a fixed random low-frequency pattern, each photo a noisy,
    slightly shifted copy, so identity is learnable but not trivially pixel-identical."""
    rng = np.random.default_rng(seed)
    chips, labels = [], []
    for ident in range(identities):
        base = rng.integers(0, 256, (4, 4, 3)).astype(np.float32)
        big = np.kron(base, np.ones((size // 4, size // 4, 1)))
        for _ in range(per_identity):
            dy, dx = rng.integers(-1, 2, 2)
            img = np.roll(big, (dy, dx), axis=(0, 1)) + rng.normal(0, 25, big.shape)
            chips.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(ident)
    return ChipSet(
        np.stack(chips), np.array(labels), [f"id{i}" for i in range(identities)], [""] * len(labels)
    )


def pairs_of(data: ChipSet) -> PairSet:
    n = len(data)
    a, b = np.triu_indices(n, 1)
    same = data.labels[a] == data.labels[b]
    return PairSet(data.chips, a, b, same, np.arange(len(a)) % 5)


def config(**kw: object) -> TrainConfig:
    base = dict(model="test-tiny", init="scratch", epochs=2, p=3, k=2, steps_per_epoch=2,
                optimizer="adagrad", lr=0.05, export=False, seed=3)  # fmt: skip
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_training_runs_logs_and_writes_a_usable_model(tmp_path: Path) -> None:
    train = synthetic_faces(6, 3, seed=0)
    held_out = pairs_of(synthetic_faces(4, 2, seed=1))  # other identities
    trainer = Trainer(config(miner="batch-hard"), train, tmp_path, val=held_out, progress=False)
    summary = trainer.fit()
    assert [h["epoch"] for h in summary["history"]] == [0, 1, 2]  # 0: before training
    lines = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if r["type"] == "step"]
    assert len(steps) == 4 and {"loss", "active_fraction", "pos_dist", "neg_dist", "lr", "triplets"} <= set(
        steps[0]
    )
    assert steps[-1]["lr"] < steps[0]["lr"]  # cosine schedule
    # the trained file is a model faceprint can use anywhere a model name goes
    model_file = tmp_path / "model.pt"
    spec = get_model_spec(str(model_file))
    assert spec.name.startswith("test-tiny+")
    kept = summary["history"][summary["epoch"]]["val"]  # keep_best: the best-validating epoch
    assert kept["accuracy"] == max(h["val"]["accuracy"] for h in summary["history"])
    assert spec.threshold == pytest.approx(kept["threshold"])
    trainer.net.eval()
    expected = Embedder(trainer.spec, net=trainer.net).embed(held_out.chips[:2])
    np.testing.assert_allclose(Embedder(str(model_file)).embed(held_out.chips[:2]), expected, atol=1e-5)
    assert FacePipeline(model=str(model_file)).spec.chip_size == 16


def test_optimisation_drives_the_triplet_loss_down(tmp_path: Path) -> None:
    data = synthetic_faces(4, 4)
    cfg = config(optimizer="adam", lr=1e-2, miner="batch-all", schedule="constant", p=4, k=4, margin=0.5)
    trainer = Trainer(cfg, data, tmp_path, progress=False)
    losses = [trainer.train_step(data.chips, data.labels)["loss"] for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_resume_continues_exactly(tmp_path: Path) -> None:
    data = synthetic_faces(6, 3)
    straight = Trainer(config(), data, tmp_path / "a", progress=False)
    straight.fit()
    Trainer(config(), data, tmp_path / "b", progress=False).fit(until=1)  # interrupted after epoch 1
    resumed = Trainer(config(), data, tmp_path / "b", progress=False)
    resumed.fit(resume=True)
    assert resumed.step == straight.step == 4
    for (name, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="margin"):
        Trainer(config(margin=0.5), data, tmp_path / "b", progress=False).fit(resume=True)


def test_freeze_and_config_validation(tmp_path: Path) -> None:
    data = synthetic_faces(6, 2)
    t = Trainer(config(freeze=["conv.*", "bn.weight"]), data, tmp_path, progress=False)
    frozen = {n for n, p in t.net.named_parameters() if not p.requires_grad}
    assert frozen == {"conv.weight", "conv.bias", "bn.weight"}
    before = {n: p.detach().clone() for n, p in t.net.named_parameters()}
    t.fit()
    after = dict(t.net.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in frozen)
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    with pytest.raises(ValueError, match="optimizer"):
        config(optimizer="rmsprop")
    with pytest.raises(ValueError, match="semi-hard"):
        config(miner="hardest")


@pytest.mark.parametrize("which", ["tiny", "dlib"])
def test_exports_match_the_pytorch_module(tmp_path: Path, which: str) -> None:
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net, size = (TinyNet().eval(), 16) if which == "tiny" else (load_dlib_resnet(), 150)
    x = torch.rand(2, 3, size, size)
    assert export_torchscript(net, tmp_path / "m.ts", x) < 1e-5
    assert export_onnx(net, tmp_path / "m.onnx", x) < 1e-4


def test_evaluate_pairs_reports_verification_figures() -> None:
    data = synthetic_faces(3, 2)
    spec = get_model_spec("test-tiny")
    result = evaluate_pairs(spec.build_untrained(), spec, pairs_of(data))
    assert set(result) == {"accuracy", "val_at_far_1e-3", "val_at_far_1e-2", "roc_auc", "threshold"}


def test_train_command_on_aligned_chips(tmp_path: Path) -> None:
    data = synthetic_faces(4, 3)
    root = tmp_path / "data"
    for chip, label, i in zip(data.chips, data.labels, range(len(data))):
        folder = root / f"person_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(chip).save(folder / f"{i}.png")
    out = tmp_path / "run"
    args = ["train", "--data", str(root), "--out", str(out), "--aligned", "--model", "test-tiny",
            "--init", "scratch", "--epochs", "1", "--p", "2", "--k", "2", "--json"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert Path(summary["model"]).is_file() and summary["export"]["torchscript_max_abs_diff"] < 1e-5
    assert (out / "model.onnx").is_file() and (out / "checkpoint.pt").is_file()
    res = CliRunner().invoke(
        app, args[:-1] + ["--val-every", "2", "--no-export", "--out", str(tmp_path / "run2")]
    )
    assert res.exit_code == 0, res.output
    assert (
        json.loads((tmp_path / "run2" / "metrics.jsonl").read_text().splitlines()[0])["val"]["accuracy"] >= 0
    )
    res = CliRunner().invoke(app, ["train", "--data", str(root), "--out", str(out), "--val-root", str(root)])
    assert res.exit_code != 0 and "--val-pairs" in res.output


def test_other_commands_take_a_trained_model_file(tmp_path: Path, data_dir: Path) -> None:
    Trainer(config(epochs=1, steps_per_epoch=1), synthetic_faces(4, 2), tmp_path, progress=False).fit()
    a, b = sorted((data_dir / "lfw" / "lfw-deepfunneled" / "Aaron_Peirsol").glob("*.jpg"))[:2]
    res = CliRunner().invoke(app, ["verify", str(a), str(b), "--model", str(tmp_path / "model.pt"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["threshold"] == 1.0 and out["distance"] >= 0  # no validation set: the base model's threshold
