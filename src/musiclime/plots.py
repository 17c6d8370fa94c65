"""Figures of one explanation: a stem x segment heatmap and a lyric-unit bar chart."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .explanation import Explanation
from .fileio import atomic_path

# Figures are built with matplotlib's object API, not pyplot: no global state, so workflow jobs
# that run in threads of one Snakemake process can plot at the same time.


def new_figure(**kwargs) -> Figure:
    return Figure(**kwargs)


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG atomically and close it."""
    path = Path(path)
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path


def plot_audio_heatmap(exp: Explanation, path: str | os.PathLike, label: int | None = None) -> Path:
    """Stems (rows) x temporal segments (columns), coloured by LIME weight (diverging, 0 white)."""
    label = exp.predicted_label if label is None else label
    grid = exp.audio_weight_grid(label)
    fig = new_figure(figsize=(1.0 + 0.6 * grid.shape[1], 1.2 + 0.5 * grid.shape[0]))
    ax = fig.subplots()
    finite = grid[np.isfinite(grid)]
    vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
    vmax = vmax or 1.0
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                   aspect="auto")
    ax.set_yticks(range(len(exp.features.stems)), exp.features.stems)
    seg_labels = []
    for t in range(exp.features.n_segments):
        f = next((f for f in exp.features.features if f.kind == "audio" and f.segment == t), None)
        seg_labels.append(f"T{t}\n{f.start:.0f}-{f.end:.0f}s" if f else f"T{t}")
    ax.set_xticks(range(exp.features.n_segments), seg_labels, fontsize=7)
    title = f"{exp.song_id}: audio weights for '{exp.label_name(label)}'"
    if not finite.size:
        title += " (audio not perturbed)"
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="LIME weight")
    return save_figure(fig, path)


def plot_lyrics_bars(exp: Explanation, path: str | os.PathLike, label: int | None = None,
                     max_units: int = 20) -> Path:
    """Horizontal bars of the lyric units' weights, largest |weight| first."""
    label = exp.predicted_label if label is None else label
    items = [(exp.features[i].name, w) for i, w in exp.ranked(label)
             if exp.features[i].kind == "lyrics"][:max_units]
    fig = new_figure(figsize=(7, 0.9 + 0.32 * max(1, len(items))))
    ax = fig.subplots()
    if items:
        names = [n if len(n) <= 48 else n[:45] + "..." for n, _ in items][::-1]
        weights = [w for _, w in items][::-1]
        ax.barh(range(len(items)), weights,
                color=["#b2182b" if w > 0 else "#2166ac" for w in weights])
        ax.set_yticks(range(len(items)), names, fontsize=8)
        ax.axvline(0, color="k", lw=0.8)
    else:
        ax.text(0.5, 0.5, "lyrics not perturbed", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("LIME weight")
    ax.set_title(f"{exp.song_id}: lyric {exp.features.lyrics_unit}s for "
                 f"'{exp.label_name(label)}'", fontsize=9)
    return save_figure(fig, path)
