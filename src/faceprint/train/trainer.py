"""The training loop: P x K batches -> online mining -> triplet loss -> optimiser step.

Everything a run needs to be repeated or continued lives in ``out/``: ``config.json``,
``metrics.jsonl`` (one JSON object per step and per epoch), ``checkpoint.pt`` (weights, optimiser,
schedule and the epoch reached; ``resume=True`` continues from it), and at the end ``model.pt``
(usable as ``--model out/model.pt``) with ``model.ts`` / ``model.onnx`` exports.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import json
import math
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..decide import paired_distances
from ..degrade import get_condition
from ..embed import Embedder
from ..errors import UnknownNameError
from ..evaluate.metrics import best_threshold, kfold_accuracy, roc_auc, val_at_far
from ..models import ModelSpec, get_model_spec
from ..models._checkpoint import save_model_file
from .data import ChipSet, PairSet
from .export import export_onnx, export_torchscript
from .losses import pairwise_sq_distances, triplet_loss
from .mining import get_miner
from .sampler import PKSampler

__all__ = ["TrainConfig", "Trainer", "evaluate_pairs"]

OPTIMIZERS = ("adagrad", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "step")


@dataclass
class TrainConfig:
    """Hyper-parameters of a run (saved as config.json and in every checkpoint).

    FaceNet's recipe is margin 0.2, AdaGrad, lr 0.05 from scratch; fine-tuning a trained network
    wants a far smaller step (Adam 1e-5 .. 1e-4) so the metric it already learned is kept.
    freeze: fnmatch patterns of parameter names kept fixed (e.g. "stem.*", "blocks.[0-6].*").
    p, k: identities per batch and images per identity. steps_per_epoch: cap (None: one pass
    over the identities). clip_grad: max global gradient norm (None: off). amp: float16 autocast
    on CUDA only (CPU runs stay float32). keep_best: with validation pairs, model.pt gets the
    weights of the epoch (0 = the starting weights) with the best validation accuracy (ties: AUC),
    so fine-tuning never hands back a model that validates worse than the one it started from.
    augment: degradation names (:mod:`faceprint.degrade`); each training photo is shown as one of
    its degraded copies (``ChipSet.variants``, condition and copy drawn at random) with probability
    augment_p, and always when it repeats within its identity's K photos, so an identity with a
    single photo (drawn too when augmenting) pairs the photo with a degraded copy of itself.
    keep_clean: weight of a penalty added to the triplet loss, the mean squared distance between
    the descriptors of the chips shown clean in a batch and the starting network's descriptors of
    the same chips: fine-tuning for a degradation without forgetting clean faces (0: off).
    """

    model: str = "dlib-resnet-v1"
    init: str = "pretrained"
    weights: str | None = None
    epochs: int = 10
    p: int = 16
    k: int = 4
    steps_per_epoch: int | None = None
    miner: str = "semi-hard"
    margin: float = 0.2
    reduction: str = "mean"
    optimizer: str = "adagrad"
    lr: float = 0.05
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "cosine"
    step_epochs: int = 10
    gamma: float = 0.1
    warmup_steps: int = 0
    clip_grad: float | None = 10.0
    freeze: list[str] = field(default_factory=list)
    flip: bool = True
    amp: bool = True
    device: str = "cpu"
    seed: int = 0
    eval_batch: int = 64
    keep_best: bool = True
    export: bool = True
    augment: list[str] = field(default_factory=list)
    augment_p: float = 0.5
    keep_clean: float = 0.0

    def __post_init__(self) -> None:
        if self.init not in ("pretrained", "scratch"):
            raise ValueError(f"init must be 'pretrained' or 'scratch', got {self.init!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        get_miner(self.miner)  # validates the name
        if self.epochs < 1 or self.lr <= 0 or self.margin < 0:
            raise ValueError("epochs must be >= 1, lr > 0 and margin >= 0")
        for name in self.augment:
            try:
                get_condition(name)
            except UnknownNameError as exc:
                raise ValueError(f"augment: {exc.args[0]}") from None
            if name == "clean":
                raise ValueError("augment: 'clean' is the photo itself; name degradations such as mask or blur")
        if not 0.0 <= self.augment_p <= 1.0:
            raise ValueError(f"augment_p must be between 0 and 1, got {self.augment_p}")
        if self.keep_clean < 0:
            raise ValueError(f"keep_clean must be >= 0, got {self.keep_clean}")


def evaluate_pairs(
    net: nn.Module, spec: ModelSpec, pairs: PairSet, *, batch_size: int = 64, device: str = "cpu"
) -> dict[str, float]:
    """Verification on pairs with the network as it is now (eval mode, restored afterwards).

    Returns accuracy (mean over folds, each threshold chosen on the other folds), VAL at FAR 1e-3
    and 1e-2, ROC AUC, and the best threshold on all pairs (the one a trained model file keeps).
    """
    was_training = net.training
    net.eval()
    try:
        vectors = Embedder(spec, net=net, batch_size=batch_size, device=device).embed(pairs.chips)
    finally:
        net.train(was_training)
    d = paired_distances(vectors[pairs.a], vectors[pairs.b], spec.metric)
    folds = kfold_accuracy(d, pairs.same, pairs.folds)
    return {
        "accuracy": float(np.mean([f.accuracy for f in folds])),
        "val_at_far_1e-3": val_at_far(d, pairs.same, 1e-3)[0],
        "val_at_far_1e-2": val_at_far(d, pairs.same, 1e-2)[0],
        "roc_auc": roc_auc(d, pairs.same),
        "threshold": best_threshold(d, pairs.same),
    }


class Trainer:
    """Train or fine-tune ``config.model`` on ``train`` chips, writing everything under ``out``.

    val: verification pairs of held-out identities, scored before training and after every epoch.
    """

    def __init__(
        self,
        config: TrainConfig,
        train: ChipSet,
        out: str | Path,
        *,
        val: PairSet | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.train_set = train
        self.val = val
        self.out = Path(out)
        self.progress = progress
        self.device = torch.device(config.device)
        self.spec = get_model_spec(config.model)
        self.base = str(self.spec.extra.get("base", self.spec.name))
        self.amp = config.amp and self.device.type == "cuda"
        torch.manual_seed(config.seed)
        self.net = self._build_net().to(self.device).train()
        self.reference: nn.Module | None = None  # the starting network, for keep_clean
        if config.keep_clean:
            self.reference = copy.deepcopy(self.net).eval().requires_grad_(False)
        chip = tuple(train.chips.shape[1:])
        size = self.spec.chip_size
        if chip != (size, size, 3):
            raise ValueError(f"{self.spec.name} takes {size}x{size} chips, the training set has {chip}")
        missing = [n for n in config.augment if len(train.variants.get(n, ())) == 0]
        if missing:
            raise ValueError(
                f"the training set has no degraded copies for {', '.join(missing)}: load it with "
                f"load_identity_folder(..., augment={list(config.augment)!r})"
            )
        min_images = 1 if config.augment else 2  # augmented, one photo makes a pair with its copy
        self.sampler = PKSampler(train.labels, config.p, config.k, seed=config.seed, min_images=min_images)
        self.steps_per_epoch = min(len(self.sampler), config.steps_per_epoch or len(self.sampler))
        self.total_steps = self.steps_per_epoch * config.epochs
        params = [p for p in self.net.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"--freeze {config.freeze} leaves no parameter to train")
        self.optimizer = self._build_optimizer(params)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.miner = get_miner(config.miner)
        self.epoch = 0  # epochs completed
        self.step = 0  # optimiser steps taken
        self.history: list[dict[str, Any]] = []
        self.best: tuple[tuple[float, float], int, dict[str, Tensor]] | None = None  # (score, epoch, weights)

    # -- construction -----------------------------------------------------------------------------
    def _build_net(self) -> nn.Module:
        cfg = self.config
        if cfg.init == "scratch":
            net = self.spec.build_untrained()
        else:
            net = self.spec.build(Path(cfg.weights) if cfg.weights else None)
        for name, p in net.named_parameters():
            if any(fnmatch.fnmatchcase(name, pat) for pat in cfg.freeze):
                p.requires_grad_(False)
        return net

    def _build_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        cfg = self.config
        if cfg.optimizer == "adagrad":
            return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.optimizer == "adam":
            return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    def _lr_factor(self, step: int) -> float:
        """Multiplier of the base learning rate after ``step`` optimiser steps."""
        cfg = self.config
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "cosine":
            t = min(step / max(self.total_steps, 1), 1.0)
            return 0.5 * (1.0 + math.cos(math.pi * t))
        if cfg.schedule == "step":
            return cfg.gamma ** ((step // self.steps_per_epoch) // cfg.step_epochs)
        return 1.0

    # -- checkpoints ------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def save_checkpoint(self) -> Path:
        """Everything needed to continue exactly where this epoch ended (atomic write)."""
        state = {
            "config": dataclasses.asdict(self.config),
            "epoch": self.epoch,
            "step": self.step,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "history": self.history,
            "best": None
            if self.best is None
            else {"score": list(self.best[0]), "epoch": self.best[1], "weights": self.best[2]},
        }
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.checkpoint_path)
        return self.checkpoint_path

    def load_checkpoint(self, path: str | Path | None = None) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` of a run with the same config."""
        state = torch.load(Path(path or self.checkpoint_path), map_location=self.device, weights_only=True)
        saved = {k: v for k, v in state["config"].items() if k not in ("epochs", "device", "export")}
        mine = {k: v for k, v in dataclasses.asdict(self.config).items() if k in saved}
        if saved != mine:
            diff = sorted(k for k in saved if saved[k] != mine.get(k))
            raise ValueError(
                f"checkpoint was written with different settings ({', '.join(diff)}); start a new --out folder"
            )
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.history = state["epoch"], state["step"], state["history"]
        best = state.get("best")
        self.best = None if best is None else (tuple(best["score"]), best["epoch"], best["weights"])

    # -- the loop ---------------------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        with open(self.out / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def _batches(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(chips, labels, shown clean) of each step of ``epoch``; the randomness depends only on
        (seed, epoch). shown clean: which chips are not degraded copies (mirrored ones count)."""
        self.sampler.set_epoch(epoch)
        rng = np.random.default_rng([self.config.seed, epoch, 1])
        for step, idx in enumerate(self.sampler):
            if step >= self.steps_per_epoch:
                return
            chips = self.train_set.chips[idx]
            clean = np.ones(len(idx), bool)
            if self.config.augment:
                chips, clean = self._augment(chips, idx, rng)
            if self.config.flip:  # mirrored faces are the same person: free augmentation
                mirror = rng.random(len(idx)) < 0.5
                chips = chips.copy()
                chips[mirror] = chips[mirror, :, ::-1]
            yield chips, self.train_set.labels[idx], clean

    def _augment(
        self, chips: np.ndarray, idx: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Swap chips for degraded copies: with probability augment_p, and every repeat of a photo.
        Returns the chips and which of them are still clean."""
        names = self.config.augment
        pick = rng.random(len(idx)) < self.config.augment_p
        first = np.zeros(len(idx), bool)
        first[np.unique(idx, return_index=True)[1]] = True
        pick |= ~first  # a repeated photo is never shown as an exact copy of itself
        which = rng.integers(len(names), size=len(idx))
        draw = rng.random(len(idx))
        chips = chips.copy()
        for j in np.flatnonzero(pick):
            copies = self.train_set.variants[names[which[j]]]
            chips[j] = copies[int(draw[j] * len(copies)), idx[j]]
        return chips, ~pick

    def train_step(
        self, chips: np.ndarray, labels: np.ndarray, clean: np.ndarray | None = None
    ) -> dict[str, float]:
        """One optimiser step on a batch; returns its loss and mining statistics.

        clean: which chips are shown undegraded (default all), for the keep_clean penalty."""
        cfg = self.config
        x = self.net.preprocess(chips).to(self.device)
        y = torch.as_tensor(labels, device=self.device)
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.amp else nullcontext()
        with autocast:
            emb = self.net(x)
        emb = emb.float()  # distances and the hinge in float32 even under AMP
        dist = pairwise_sq_distances(emb)
        a, p, n = self.miner(dist.detach(), y, cfg.margin)
        hinge = triplet_loss(emb[a], emb[p], emb[n], cfg.margin, reduction="none")
        loss = hinge.sum() if cfg.reduction == "sum" else hinge.sum() / max(len(hinge), 1)
        drift = None
        keep = torch.ones(len(y), dtype=torch.bool) if clean is None else torch.as_tensor(clean, dtype=torch.bool)
        if self.reference is not None and bool(keep.any()):
            keep = keep.to(self.device)
            with torch.no_grad(), autocast:
                ref = self.reference(x[keep]).float()
            drift = (emb[keep] - ref).pow(2).sum(dim=1).mean()
            loss = loss + cfg.keep_clean * drift
        self.optimizer.zero_grad(set_to_none=True)
        if len(hinge) or drift is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            if cfg.clip_grad:
                nn.utils.clip_grad_norm_([q for q in self.net.parameters() if q.requires_grad], cfg.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.scheduler.step()
        self.step += 1
        with torch.no_grad():
            same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool, device=y.device)
            d = dist.detach().sqrt()
            return {
                "loss": float(loss.detach()),
                "triplets": len(hinge),
                "active_fraction": float((hinge.detach() > 0).float().mean()) if len(hinge) else 0.0,
                "pos_dist": float(d[same].mean()),
                "neg_dist": float(d[y[:, None] != y[None, :]].mean()),
                "drift": float(drift) if drift is not None else 0.0,
            }

    def validate(self) -> dict[str, float] | None:
        if self.val is None:
            return None
        return evaluate_pairs(
            self.net, self.spec, self.val, batch_size=self.config.eval_batch, device=str(self.device)
        )

    def fit(self, resume: bool = False, until: int | None = None) -> dict[str, Any]:
        """Run the remaining epochs (up to epoch ``until`` when given: a run split over sessions);
        returns the summary also written to ``out/summary.json``."""
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        if resume and self.checkpoint_path.is_file():
            self.load_checkpoint()
        else:
            (self.out / "metrics.jsonl").unlink(missing_ok=True)
        (self.out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1) + "\n")
        start = time.perf_counter()
        if self.epoch == 0 and not self.history:
            before = self.validate()
            self.history.append({"epoch": 0, "val": before})
            self._log({"type": "epoch", "epoch": 0, "val": before})
            self._remember(0, before)
        for epoch in range(self.epoch + 1, min(cfg.epochs, until or cfg.epochs) + 1):
            torch.manual_seed(cfg.seed * 1_000_003 + epoch)  # dropout etc.: a resumed epoch replays exactly
            t0, images, sums = time.perf_counter(), 0, {"loss": 0.0, "active_fraction": 0.0}
            bar = tqdm(
                self._batches(epoch),
                total=self.steps_per_epoch,
                desc=f"epoch {epoch}/{cfg.epochs}",
                disable=not self.progress,
            )
            for chips, labels, clean in bar:
                stats = self.train_step(chips, labels, clean)
                images += len(chips)
                for key in sums:
                    sums[key] += stats[key]
                record = {
                    "type": "step",
                    "epoch": epoch,
                    "step": self.step,
                    "lr": self.scheduler.get_last_lr()[0],
                    **stats,
                }
                self._log(record)
                bar.set_postfix(loss=f"{stats['loss']:.4f}", active=f"{stats['active_fraction']:.2f}")
            seconds = time.perf_counter() - t0
            self.epoch = epoch
            val = self.validate()
            summary = {
                "epoch": epoch,
                "loss": sums["loss"] / self.steps_per_epoch,
                "active_fraction": sums["active_fraction"] / self.steps_per_epoch,
                "images_per_s": images / seconds,
                "seconds": seconds,
                "val": val,
            }
            self.history.append(summary)
            self._log({"type": "epoch", **summary})
            self._remember(epoch, val)
            self.save_checkpoint()
        return self._finish(time.perf_counter() - start)

    def _remember(self, epoch: int, val: dict[str, float] | None) -> None:
        """Keep a copy of the weights of the best-validating epoch so far (keep_best)."""
        if val is None or not self.config.keep_best:
            return
        score = (val["accuracy"], val["roc_auc"])
        if self.best is None or score > self.best[0]:
            weights = {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}
            self.best = (score, epoch, weights)

    def _finish(self, seconds: float) -> dict[str, Any]:
        """Write model.pt (the kept epoch, with its validation threshold) and the exports."""
        epoch = self.epoch
        if self.best is not None and self.best[1] != self.epoch:
            epoch = self.best[1]
            self.net.load_state_dict(self.best[2])
        val = next((h.get("val") for h in self.history if h["epoch"] == epoch), None)
        threshold = val["threshold"] if val else None
        meta = {"config": dataclasses.asdict(self.config), "history": self.history, "epoch": epoch}
        model_path = save_model_file(
            self.out / "model.pt", self.net, self.base, threshold=threshold, meta=meta
        )
        summary: dict[str, Any] = {
            "model": str(model_path),
            "epoch": epoch,
            "seconds": seconds,
            "history": self.history,
        }
        if self.config.export:
            summary["export"] = self.export()
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        return summary

    def export(self) -> dict[str, Any]:
        """model.ts and model.onnx next to model.pt, each checked against the PyTorch module."""
        net = self.net.eval().cpu()
        size = self.spec.chip_size
        example = net.preprocess(self.train_set.chips[:2])
        result: dict[str, Any] = {"input": f"(N, 3, {size}, {size}) float32: {self.spec.normalisation}"}
        result["torchscript_max_abs_diff"] = export_torchscript(net, self.out / "model.ts", example)
        try:
            result["onnx_max_abs_diff"] = export_onnx(net, self.out / "model.onnx", example)
        except ImportError as exc:  # onnx / onnxruntime are the optional extra faceprint[train]
            result["onnx_error"] = f"{exc}; install faceprint[train]"
        self.net.to(self.device).train()
        return result
