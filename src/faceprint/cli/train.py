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
    exclude_pairs: Optional[Path] = typer.Option(
        None,
        "--exclude-pairs",
        help="LFW pairs file whose people are left out of --data (keeps the test identities unseen).",
    ),
    exclude_folds: str = typer.Option(
        "",
        "--exclude-folds",
        help="Only the people of these folds of --exclude-pairs are left out, e.g. 5-9 (default: all): "
        "train on the other folds' people, test on these folds.",
    ),
    augment: str = typer.Option(
        "",
        "--augment",
        help="Comma list of degradations (faceprint.degrade: mask, blur, jpeg20, ...) applied at random "
        "to training photos; people with one photo then train too (photo vs its degraded copy).",
    ),
    augment_p: float = typer.Option(
        0.5, "--augment-p", min=0.0, max=1.0, help="Probability that a training photo is shown degraded."
    ),
    augment_copies: int = typer.Option(
        2, "--augment-copies", min=1, help="Degraded copies made (and cached) per photo and degradation."
    ),
    keep_clean: float = typer.Option(
        0.0,
        "--keep-clean",
        min=0.0,
        help="Weight of a penalty on clean photos' descriptors moving from the starting network's "
        "(fine-tune for a degradation without forgetting clean faces; 0: off).",
    ),
    save_as: Optional[str] = typer.Option(
        None,
        "--save-as",
        help="Also save the trained weights into the cache as this registered model (e.g. dlib-resnet-v1-mask).",
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

    from ..errors import FaceprintError
    from ..evaluate.lfw import read_lfw_pairs
    from ..pipeline import FacePipeline
    from ..train import PairSet, TrainConfig, Trainer, hold_out_identities, load_identity_folder
    from ..train.export import check_registered, save_registered

    if threads:
        torch.set_num_threads(threads)
    if (val_root is None) != (val_pairs is None):
        raise typer.BadParameter("give both --val-root and --val-pairs, or neither", param_hint="--val-pairs")
    if val_every and val_root:
        raise typer.BadParameter("use either --val-every or --val-root/--val-pairs", param_hint="--val-every")
    if val_every == 1:
        raise typer.BadParameter("--val-every 1 would hold back every identity", param_hint="--val-every")
    conditions = [c.strip() for c in augment.split(",") if c.strip()]
    try:
        TrainConfig(augment=conditions)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix("augment: "), param_hint="--augment") from None
    try:
        _fold_list(exclude_folds)
    except ValueError:
        raise typer.BadParameter(f"expected fold numbers such as 5-9 or 0,2,4, got {exclude_folds!r}",
                                 param_hint="--exclude-folds") from None  # fmt: skip
    if save_as:
        try:
            check_registered(save_as, model)
        except FaceprintError as exc:
            raise typer.BadParameter(str(exc), param_hint="--save-as") from None
    scratch = init == "scratch"
    try:
        config = TrainConfig(
            model=model, init=init, weights=str(weights) if weights else None, epochs=epochs, p=p, k=k,
            steps_per_epoch=steps_per_epoch, miner=miner, margin=margin,
            optimizer=optimizer or ("adagrad" if scratch else "adam"), lr=lr or (0.05 if scratch else 1e-5),
            schedule=schedule, clip_grad=clip_grad or None, freeze=list(freeze), device=device, seed=seed, export=export,
            augment=conditions, augment_p=augment_p, keep_clean=keep_clean,
        )  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    progress = not json_out
    pipe = FacePipeline(detector=detector, model=model)
    excluded: list[str] = []
    if exclude_pairs:
        folds = _fold_list(exclude_folds)
        chosen = [p for p in read_lfw_pairs(exclude_pairs) if folds is None or p.fold in folds]
        excluded = sorted({n for p in chosen for n in (p.name_a, p.name_b)})
    train_set = load_identity_folder(
        data, pipe, aligned=aligned, max_per_identity=max_per_identity, progress=progress, exclude=excluded,
        min_images=1 if conditions else 2, augment=conditions, variants=augment_copies, seed=seed,
    )  # fmt: skip
    for path in train_set.skipped:
        typer.echo(f"no face found, skipped: {path}", err=True)
    val = PairSet.from_lfw(val_root, val_pairs, pipe, progress=progress) if val_root and val_pairs else None
    if val_every:
        train_set, held = hold_out_identities(train_set, val_every)
        # with augmentation, also every pair with its second photo degraded (first copy of each)
        val = PairSet.from_labels(held.chips, held.labels, degraded=[held.variants[c][0] for c in conditions])
    trainer = Trainer(config, train_set, out, val=val, progress=progress)
    summary = trainer.fit(resume=resume)
    if save_as:
        path, digest, recorded = save_registered(trainer.net, save_as)
        summary["saved_as"] = {"model": save_as, "path": str(path), "sha256": digest, "recorded_sha256": recorded}
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
    if save_as:
        saved = summary["saved_as"]
        same = "the build the registry's figures come from" if saved["sha256"] == saved["recorded_sha256"] else (
            f"not byte-identical to the registry's measured build ({saved['recorded_sha256'][:12]}...)"
        )  # fmt: skip
        typer.echo(f"saved as {save_as}: {saved['path']} (sha256 {saved['sha256']}: {same}); use it with --model {save_as}")


def _fold_list(text: str) -> set[int] | None:
    """ "5-9" / "0,2,4" / "" (all) -> the fold numbers (None: all); ValueError when malformed."""
    folds: set[int] = set()
    for part in (t.strip() for t in text.split(",") if t.strip()):
        first, _, last = part.partition("-")
        folds.update(range(int(first), int(last or first) + 1))
    return folds or None


def register(app: typer.Typer) -> None:
    """Add ``faceprint train`` to the main application."""
    app.command("train")(train)
