"""``faceprint train``: triplet-loss training / fine-tuning on a folder-per-identity dataset."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

__all__ = ["register", "train"]


def train(
    data: Path = typer.Option(
        ..., "--data", help="Training folder: one sub-folder of photos (or aligned chips) per identity."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Run folder: config.json, metrics.jsonl, checkpoint.pt, model.pt, model.ts, model.onnx.",
    ),
    model: str = typer.Option(
        "dlib-resnet-v1", "--model", "-m", help="Registered model (or a trained model.pt) to start from."
    ),
    init: str = typer.Option(
        "pretrained", "--init", help="pretrained (fine-tune the model's weights) or scratch (random init)."
    ),
    weights: Optional[Path] = typer.Option(
        None, "--weights", help="Explicit weights file/folder for --init pretrained (offline machines)."
    ),
    epochs: int = typer.Option(10, "--epochs", min=1),
    p: int = typer.Option(16, "--p", min=2, help="Identities per batch."),
    k: int = typer.Option(4, "--k", min=2, help="Photos per identity per batch."),
    steps_per_epoch: Optional[int] = typer.Option(
        None,
        "--steps-per-epoch",
        min=1,
        help="Cap on steps per epoch (default: one pass over the identities).",
    ),
    miner: str = typer.Option(
        "semi-hard", "--miner", help="semi-hard, batch-hard, batch-all or batch-all-active."
    ),
    margin: float = typer.Option(0.2, "--margin", help="Triplet margin alpha, squared-distance units."),
    optimizer: Optional[str] = typer.Option(
        None, "--optimizer", help="adagrad, adam or sgd (default: adagrad from scratch, adam to fine-tune)."
    ),
    lr: Optional[float] = typer.Option(
        None, "--lr", help="Learning rate (default: 0.05 from scratch as FaceNet, 1e-5 to fine-tune)."
    ),
    schedule: str = typer.Option("cosine", "--schedule", help="constant, cosine or step."),
    clip_grad: float = typer.Option(10.0, "--clip-grad", help="Max gradient norm; 0 turns clipping off."),
    freeze: list[str] = typer.Option(
        [], "--freeze", help="Parameter-name pattern kept fixed (repeatable), e.g. 'stem.*'."
    ),
    aligned: bool = typer.Option(
        False, "--aligned", help="The photos are already aligned chips: no detection."
    ),
    detector: str = typer.Option("mtcnn", "--detector", "-d", help="Face detector for photos."),
    max_per_identity: Optional[int] = typer.Option(
        None, "--max-per-identity", min=2, help="Use at most this many photos per identity."
    ),
    val_every: int = typer.Option(
        0, "--val-every", min=0, help="Hold back every N-th identity of --data for validation (0: none)."
    ),
    val_root: Optional[Path] = typer.Option(
        None, "--val-root", help="LFW-layout image folder of held-out identities."
    ),
    val_pairs: Optional[Path] = typer.Option(
        None, "--val-pairs", help="LFW pairs file over --val-root, scored every epoch."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (mixed precision is used on cuda)."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt."),
    export: bool = typer.Option(
        True, "--export/--no-export", help="Write and check model.ts and model.onnx."
    ),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: torch's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Train or fine-tune an embedding network with the FaceNet triplet loss and online mining."""
    try:
        import torch
    except ImportError:
        Console(stderr=True).print("[red]error:[/] faceprint train needs PyTorch: pip install 'faceprint\\[train]'")
        raise typer.Exit(2) from None

    from ..pipeline import FacePipeline
    from ..train import PairSet, TrainConfig, Trainer, hold_out_identities, load_identity_folder

    if threads:
        torch.set_num_threads(threads)
    if (val_root is None) != (val_pairs is None):
        raise typer.BadParameter("give both --val-root and --val-pairs, or neither", param_hint="--val-pairs")
    if val_every and val_root:
        raise typer.BadParameter("use either --val-every or --val-root/--val-pairs", param_hint="--val-every")
    if val_every == 1:
        raise typer.BadParameter("--val-every 1 would hold back every identity", param_hint="--val-every")
    scratch = init == "scratch"
    try:
        config = TrainConfig(
            model=model, init=init, weights=str(weights) if weights else None, epochs=epochs, p=p, k=k,
            steps_per_epoch=steps_per_epoch, miner=miner, margin=margin,
            optimizer=optimizer or ("adagrad" if scratch else "adam"), lr=lr or (0.05 if scratch else 1e-5),
            schedule=schedule, clip_grad=clip_grad or None, freeze=list(freeze), device=device, seed=seed, export=export,
        )  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    progress = not json_out
    pipe = FacePipeline(detector=detector, model=model)
    train_set = load_identity_folder(
        data, pipe, aligned=aligned, max_per_identity=max_per_identity, progress=progress
    )
    for path in train_set.skipped:
        typer.echo(f"no face found, skipped: {path}", err=True)
    val = PairSet.from_lfw(val_root, val_pairs, pipe, progress=progress) if val_root and val_pairs else None
    if val_every:
        train_set, held = hold_out_identities(train_set, val_every)
        val = PairSet.from_labels(held.chips, held.labels)
    trainer = Trainer(config, train_set, out, val=val, progress=progress)
    summary = trainer.fit(resume=resume)
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=1) + "\n")
        return
    typer.echo(
        f"trained on {len(train_set)} photos of {len(train_set.classes)} identities in {summary['seconds']:.0f} s"
    )
    for h in summary["history"]:
        v = h.get("val")
        line = f"epoch {h['epoch']}: " + (
            f"loss {h['loss']:.4f}, active {h['active_fraction']:.2f}" if "loss" in h else "before training"
        )
        if v:
            line += f"; held-out accuracy {100 * v['accuracy']:.2f}%, VAL@FAR=1e-3 {100 * v['val_at_far_1e-3']:.2f}%"
        typer.echo(line)
    typer.echo(f"model: {summary['model']} (use it with --model {summary['model']})")


def register(app: typer.Typer) -> None:
    """Add ``faceprint train`` to the main application."""
    app.command("train")(train)
