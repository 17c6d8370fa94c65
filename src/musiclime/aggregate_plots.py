"""Figures of the global (per-class) importances computed by :mod:`musiclime.aggregate`.

- ``global_heatmap_<importance>.png``: one stems (rows) x segment index (columns) heatmap per
  class, from the ``stem_segment`` table;
- ``global_top_audio.png`` / ``global_top_lyrics.png``: one bar chart per class of the
  ``top_k`` keys of the ``stem_segment`` / ``lyrics_text`` table, ranked by ``importance``.

Every file is always written (a placeholder text when a table is missing or empty), so a
workflow can declare them as outputs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .plots import new_figure, save_figure

IMPORTANCES = ("lime_importance", "avg_importance", "hw_importance")
# Open-Unmix's stems first, then the factorization's optional residual, then anything else.
STEM_ORDER = ("vocals", "drums", "bass", "other", "residual")


def _placeholder(path: Path, title: str, message: str) -> Path:
    fig = new_figure(figsize=(5, 2))
    ax = fig.subplots()
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def _classes(df: pd.DataFrame) -> list[str]:
    """Classes in table order (the table is sorted by class index)."""
    return list(dict.fromkeys(df["class"].tolist()))


def split_stem_segment(key: str) -> tuple[str, int]:
    """``drums_T3`` -> ``("drums", 3)``."""
    stem, _, seg = str(key).rpartition("_T")
    if not stem or not seg.isdigit():
        raise ValueError(f"not a stem_segment key: {key!r}")
    return stem, int(seg)


def order_stems(stems) -> list[str]:
    stems = set(stems)
    return [s for s in STEM_ORDER if s in stems] + sorted(stems - set(STEM_ORDER))


def plot_heatmaps(df: pd.DataFrame | None, path: str | os.PathLike,
                  importance: str = "hw_importance") -> Path:
    """Per-class stems x segments heatmap of ``importance`` (0 where a class has no row)."""
    path = Path(path)
    title = f"global {importance} per class (stem x segment)"
    if df is None or df.empty:
        return _placeholder(path, title, "no audio features")
    parsed = [split_stem_segment(k) for k in df["feature"]]
    stems = order_stems(s for s, _ in parsed)
    n_seg = max(t for _, t in parsed) + 1
    classes = _classes(df)
    grids = {}
    for name in classes:
        grid = np.zeros((len(stems), n_seg))
        sub = df[df["class"] == name]
        for key, value in zip(sub["feature"], sub[importance], strict=True):
            stem, seg = split_stem_segment(key)
            grid[stems.index(stem), seg] = value
        grids[name] = grid
    vmax = max(float(g.max()) for g in grids.values()) or 1.0
    width = 1.5 + 0.55 * n_seg
    fig = new_figure(layout="constrained",
                     figsize=(width, 0.6 + (1.0 + 0.4 * len(stems)) * len(classes)))
    axes = fig.subplots(len(classes), 1, squeeze=False)
    for ax, name in zip(axes[:, 0], classes, strict=True):
        im = ax.imshow(grids[name], cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
        ax.set_yticks(range(len(stems)), stems, fontsize=8)
        ax.set_xticks(range(n_seg), [f"T{t}" for t in range(n_seg)], fontsize=7)
        n = int(df.loc[df["class"] == name, "n_songs_class"].iloc[0])
        ax.set_title(f"{name} ({n} song{'s' if n != 1 else ''})", fontsize=9)
        fig.colorbar(im, ax=ax, label=importance)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_top_bars(df: pd.DataFrame | None, path: str | os.PathLike,
                  importance: str = "hw_importance", top_k: int = 10,
                  what: str = "features") -> Path:
    """Per-class horizontal bars of the ``top_k`` keys by ``importance`` (ties by name)."""
    path = Path(path)
    title = f"top {top_k} {what} per class by {importance}"
    if df is None or df.empty:
        return _placeholder(path, title, f"no {what}")
    classes = _classes(df)
    tops = {}
    for name in classes:
        sub = df[df["class"] == name].sort_values([importance, "feature"],
                                                  ascending=[False, True], kind="mergesort")
        tops[name] = sub.head(top_k)
    n_max = max(len(t) for t in tops.values())
    vmax = max(float(t[importance].max()) for t in tops.values())
    vmax = 1.05 * vmax if vmax > 0 else 1.0
    fig = new_figure(layout="constrained",
                     figsize=(4.2 * len(classes), 1.2 + 0.3 * max(1, n_max)))
    axes = fig.subplots(1, len(classes), squeeze=False)
    for ax, name in zip(axes[0], classes, strict=True):
        top = tops[name]
        labels = [k if len(k) <= 40 else k[:37] + "..." for k in top["feature"]][::-1]
        values = top[importance].to_numpy()[::-1]
        ax.barh(range(len(values)), values, color="#b2182b")
        ax.set_yticks(range(len(values)), labels, fontsize=7)
        ax.set_xlim(0.0, vmax)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel(importance, fontsize=8)
        n = int(top["n_songs_class"].iloc[0])
        ax.set_title(f"{name} ({n} song{'s' if n != 1 else ''})", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_global(tables: dict[str, pd.DataFrame], out_dir: str | os.PathLike,
                importance: str = "hw_importance", top_k: int = 10) -> list[Path]:
    """Write the global heatmap and the top-k bar charts; return the paths."""
    if importance not in IMPORTANCES:
        raise ValueError(f"importance must be one of {IMPORTANCES}, got {importance!r}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    out_dir = Path(out_dir)
    audio = tables.get("stem_segment")
    lyrics = tables.get("lyrics_text")
    return [
        plot_heatmaps(audio, out_dir / f"global_heatmap_{importance}.png", importance),
        plot_top_bars(audio, out_dir / "global_top_audio.png", importance, top_k,
                      "audio features (stem_segment)"),
        plot_top_bars(lyrics, out_dir / "global_top_lyrics.png", importance, top_k,
                      "lyric units (lyrics_text)"),
    ]
