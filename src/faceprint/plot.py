"""Pictures of embeddings (PNG): a 2-D map coloured by person, a distance heat map, a pair sheet.

matplotlib is imported inside the functions only, so importing faceprint never needs it; figures
are drawn on the Agg canvas directly (no pyplot, no global figure state, safe in threads).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .decide import distances
from .errors import FaceprintError
from .types import Verification

__all__ = ["embedding_map", "plot_degradation_curves", "plot_distance_matrix", "plot_embedding_map", "plot_pair"]

MAP_METHODS = ("tsne", "pca", "umap")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def embedding_map(vectors: np.ndarray, method: str = "tsne", *, metric: str = "euclidean", seed: int = 0) -> np.ndarray:
    """(N, D) descriptors -> (N, 2) map coordinates by t-SNE, PCA or UMAP (``umap-learn`` if installed).

    t-SNE keeps neighbourhoods (who is near whom), not global distances; its perplexity is capped
    for small sets, and sets under 5 faces fall back to PCA, which t-SNE cannot beat there.
    """
    x = np.asarray(vectors, np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"vectors must be a non-empty (N, D) array, got shape {x.shape}")
    if method not in MAP_METHODS:
        raise ValueError(f"unknown map method {method!r}: use one of {', '.join(MAP_METHODS)}")
    if method == "umap":
        try:
            import umap  # type: ignore[import-not-found]
        except ImportError:
            raise FaceprintError("the UMAP map needs umap-learn: pip install umap-learn, or use --method tsne") from None
        return umap.UMAP(n_components=2, metric=metric, random_state=seed).fit_transform(x)
    if method == "pca" or len(x) < 5:
        from sklearn.decomposition import PCA

        if len(x) == 1:
            return np.zeros((1, 2))
        xy = PCA(n_components=min(2, len(x), x.shape[1])).fit_transform(x)
        return np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, (len(x) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", metric=metric, random_state=seed).fit_transform(x)


def plot_embedding_map(
    vectors: np.ndarray,
    labels: Sequence[str],
    out: str | Path,
    *,
    method: str = "tsne",
    metric: str = "euclidean",
    seed: int = 0,
    title: str = "",
    markers: Sequence[str] | None = None,
) -> Path:
    """Scatter (N, D) descriptors on a 2-D map, one colour per person in ``labels`` (N,); write a PNG.

    markers: optional (N,) subset name per face (e.g. "train"/"val"), drawn with different symbols.
    """
    labels = [str(v) for v in labels]
    if len(labels) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors but {len(labels)} labels")
    xy = embedding_map(vectors, method, metric=metric, seed=seed)
    people = sorted(set(labels))
    subsets = sorted(set(markers)) if markers is not None else [""]
    symbols = "os^Dv<>P*X"
    fig = _figure(8.5, 6.5)
    ax = fig.add_subplot()
    cmap = _colours(len(people))
    lab = np.array(labels)
    sub = np.array([str(m) for m in markers]) if markers is not None else np.full(len(lab), "")
    for k, person in enumerate(people):
        for s, subset in enumerate(subsets):
            pick = (lab == person) & (sub == subset)
            if pick.any():
                name = f"{person} ({subset})" if subset else person
                ax.scatter(xy[pick, 0], xy[pick, 1], s=36, color=cmap[k], marker=symbols[s % len(symbols)],
                           edgecolors="k", linewidths=0.4, label=name if len(people) <= 30 else None)
    ax.set_title(title or f"{len(lab)} faces of {len(people)} people ({method.upper()} of the embeddings)")
    ax.set_xticks([])
    ax.set_yticks([])
    if len(people) <= 30:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.03, right=0.72 if len(people) <= 30 else 0.97, bottom=0.03, top=0.93)
    return _save(fig, out)


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_distance_matrix(
    vectors: np.ndarray,
    labels: Sequence[str],
    out: str | Path,
    *,
    metric: str = "euclidean",
    threshold: float | None = None,
    title: str = "",
) -> Path:
    """Heat map of all pairwise distances of (N, D) descriptors, faces grouped by person; write a PNG.

    With a threshold the colours diverge there: blue = closer (same person by that rule), red = farther.
    """
    lab = np.array([str(v) for v in labels])
    if len(lab) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors but {len(lab)} labels")
    order = np.argsort(lab, kind="stable")
    lab = lab[order]
    d = distances(np.asarray(vectors)[order], np.asarray(vectors)[order], metric)
    from matplotlib.colors import TwoSlopeNorm

    fig = _figure(8, 7)
    ax = fig.add_subplot()
    hi = float(d.max()) if d.size else 1.0
    if threshold is not None and 0 < threshold < hi:
        image = ax.imshow(d, cmap="RdBu_r", norm=TwoSlopeNorm(vmin=0.0, vcenter=threshold, vmax=hi))
    else:
        image = ax.imshow(d, cmap="viridis", vmin=0.0, vmax=hi)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label(f"{metric} distance" + (f" (threshold {threshold:g})" if threshold is not None else ""))
    # Person blocks: boundaries as lines, names at the middle of each block.
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    ends = np.r_[starts[1:], len(lab)]
    for s in starts[1:]:
        ax.axhline(s - 0.5, color="k", lw=0.6)
        ax.axvline(s - 0.5, color="k", lw=0.6)
    centres = (starts + ends - 1) / 2
    names = lab[starts]
    if len(names) <= 40:
        ax.set_xticks(centres, names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(centres, names, fontsize=8)
    ax.set_title(title or f"Distances between {len(lab)} faces of {len(names)} people")
    fig.subplots_adjust(left=0.16, right=0.9, bottom=0.18, top=0.94)
    return _save(fig, out)


def plot_pair(
    face_a: np.ndarray,
    face_b: np.ndarray,
    verification: Verification,
    out: str | Path,
    *,
    titles: tuple[str, str] = ("", ""),
) -> Path:
    """Two face images (H, W, 3) uint8 RGB side by side with their distance and verdict; write a PNG."""
    fig = _figure(6.4, 4.0)
    for k, (img, name) in enumerate(zip((face_a, face_b), titles)):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.imshow(np.asarray(img))
        ax.set_axis_off()
        if name:
            ax.set_title(name, fontsize=9)
    v = verification
    verdict = "same person" if v.same else "different people"
    fig.suptitle(f"{verdict}: distance {v.distance:.3f} (threshold {v.threshold:g})", fontsize=12,
                 color="tab:green" if v.same else "tab:red")
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.03, top=0.82, wspace=0.05)
    return _save(fig, out)


_DEGRADED = re.compile(r"^(jpeg|px)(\d+)$")


def _curve(values: Mapping[str, float | None], kind: str) -> tuple[list[int], list[float]]:
    """(x, y) of the "jpeg<quality>" or "px<pixels>" entries of ``values``, x ascending."""
    pts = sorted(
        (int(m.group(2)), float(v))
        for k, v in values.items()
        if v is not None and (m := _DEGRADED.match(k)) and m.group(1) == kind
    )
    return [x for x, _ in pts], [v for _, v in pts]


def plot_degradation_curves(
    measured: Mapping[str, float | None],
    out: str | Path,
    *,
    reference: Mapping[str, float] | None = None,
    label: str = "faceprint (LFW)",
    reference_label: str = "FaceNet, Table 4 (own hold-out set)",
    ylabel: str = "VAL at FAR = 1e-3 (%)",
) -> Path:
    """Two panels: a rate against JPEG quality and against face pixels (log scale); write a PNG.

    measured / reference: {condition name: fraction}, names "jpeg<quality>" and "px<pixels>"
    (:mod:`faceprint.degrade`); other names ("clean", "all degraded") are drawn as a dotted
    horizontal line when they are "clean", else ignored.
    """
    fig = _figure(10, 4.2)
    for k, (kind, xlabel) in enumerate((("jpeg", "JPEG quality"), ("px", "pixels of the face box"))):
        ax = fig.add_subplot(1, 2, k + 1)
        ticks: set[int] = set()
        for values, name, style, colour in (
            (measured, label, "o-", "tab:blue"), (reference or {}, reference_label, "s--", "tab:orange")
        ):  # fmt: skip
            x, y = _curve(values, kind)
            ticks.update(x)
            if x:
                ax.plot(x, [100 * v for v in y], style, color=colour, label=name)
        clean = measured.get("clean")
        if clean is not None:
            ax.axhline(100 * float(clean), color="gray", ls=":", label="faceprint, clean photos")
        if kind == "px":
            ax.set_xscale("log")
            ax.minorticks_off()
            ax.set_xticks(sorted(ticks), [f"{round(t ** 0.5)}²" if round(t**0.5) ** 2 == t else str(t) for t in sorted(ticks)])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Verification on degraded photos")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.9, wspace=0.22)
    return _save(fig, out)
