"""Figures of the global (per-class) importances computed by :mod:`musiclime.core.aggregate`.

- ``global_heatmap_<importance>.png``: one stems (rows) x segment index (columns) heatmap per
  class, from the stem x segment table;
- ``global_top_audio.png`` / ``global_top_lyrics.png``: one bar chart per class of the
  ``top_k`` audio features (stem x segment) / lyric units, ranked by the importance;
- ``global_modality.png``: per class, the mean modality bar (audio alone, lyrics alone, the two
  together) and the mean MM-SHAP audio share and interaction, from
  :func:`musiclime.core.aggregate.modality_table` (``global_modality.csv``).

Each figure says in words which importance it shows and, in a subtitle, what that measure is
(:data:`IMPORTANCE_LABELS`, :data:`IMPORTANCE_DESCRIPTIONS`). Every class panel has its own
scale (its own x range, its own colour bar): a class with few songs has smaller importances, and
a shared axis would squash its panel flat. ``vmax`` shares one scale on purpose.

:func:`plot_heatmaps` and :func:`plot_top_bars` return a Figure and save only when given a
path; :func:`plot_global` writes all three files (a placeholder text when a table is missing or
empty, so a workflow can declare them as outputs) and returns their paths.
"""

from __future__ import annotations

import csv
import io
import os
import textwrap
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..core.aggregate import aggregate_songs, load_explanations, modality_table, write_tables
from ..core.explanation import Explanation
from ..io.fileio import atomic_path, write_json
from .fonts import FigureText
from .plots import MODALITY_COLOURS, new_figure, save_figure

IMPORTANCES = ("lime_importance", "avg_importance", "hw_importance")
#: plain-language names of the importance columns (axis labels, titles)
IMPORTANCE_LABELS = {
    "lime_importance": "LIME importance",
    "avg_importance": "average importance",
    "hw_importance": "homogeneity-weighted importance",
}
#: what each importance measures, one line (the figures' subtitle)
IMPORTANCE_DESCRIPTIONS = {
    "lime_importance": "sqrt of the summed positive LIME weights over the songs predicted as "
                       "the class",
    "avg_importance": "summed positive LIME weights over the songs predicted as the class, "
                      "divided by the number of songs counted",
    "hw_importance": "LIME importance x (1 - normalised entropy of the feature across "
                     "classes): high when important and specific to one class",
}
# Open-Unmix's stems first, then the factorization's optional residual, then anything else.
STEM_ORDER = ("vocals", "drums", "bass", "other", "residual")


def importance_label(importance: str) -> str:
    return IMPORTANCE_LABELS.get(importance, importance.replace("_", " "))


def _subtitle(title: str, importance: str) -> str:
    desc = IMPORTANCE_DESCRIPTIONS.get(importance)
    if not desc:
        return title
    return f"{title}\n" + textwrap.fill(f"{importance_label(importance)} = {desc}", 100)


def _placeholder(path: str | os.PathLike | None, title: str, message: str) -> Figure:
    fig = new_figure(figsize=(5, 2))
    ax = fig.subplots()
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return _finish(fig, path)


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


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


def _songs(df: pd.DataFrame, name: str) -> str:
    n = int(df.loc[df["class"] == name, "n_songs_class"].iloc[0])
    return f"{name} ({n} song{'s' if n != 1 else ''})"


def plot_heatmaps(df: pd.DataFrame | None, path: str | os.PathLike | None = None,
                  importance: str = "hw_importance", vmax: float | None = None) -> Figure:
    """Per-class stems x segments heatmap of ``importance`` (0 where a class has no row).

    Each class has its own colour scale (0 to its largest value) unless ``vmax`` is given.
    """
    title = f"global {importance_label(importance)} per class (stem x segment)"
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
    width = 2.5 + 0.55 * n_seg
    fig = new_figure(layout="constrained",
                     figsize=(max(width, 6.5), 1.0 + (1.0 + 0.4 * len(stems)) * len(classes)))
    axes = fig.subplots(len(classes), 1, squeeze=False)
    for ax, name in zip(axes[:, 0], classes, strict=True):
        top = float(vmax) if vmax is not None else float(np.nanmax(grids[name]))
        im = ax.imshow(grids[name], cmap="viridis", vmin=0.0, vmax=top or 1.0, aspect="auto")
        ax.set_yticks(range(len(stems)), stems, fontsize=8)
        ax.set_xticks(range(n_seg), [f"T{t}" for t in range(n_seg)], fontsize=7)
        ax.set_xlabel("segment index", fontsize=8)
        ax.set_title(_songs(df, name), fontsize=9)
        fig.colorbar(im, ax=ax).set_label(importance_label(importance), fontsize=8)
    fig.suptitle(_subtitle(title, importance), fontsize=9)
    return _finish(fig, path)


def plot_top_bars(df: pd.DataFrame | None, path: str | os.PathLike | None = None,
                  importance: str = "hw_importance", top_k: int = 10,
                  what: str = "features", vmax: float | None = None) -> Figure:
    """Per-class horizontal bars of the ``top_k`` keys by ``importance`` (ties by name).

    Each class panel has its own x range (0 to 1.05 x its largest bar) unless ``vmax`` is given.
    """
    title = f"top {top_k} {what} per class by {importance_label(importance)}"
    if df is None or df.empty:
        return _placeholder(path, title, f"no {what}")
    classes = _classes(df)
    tops = {}
    for name in classes:
        sub = df[df["class"] == name].sort_values([importance, "feature"],
                                                  ascending=[False, True], kind="mergesort")
        tops[name] = sub.head(top_k)
    n_max = max(len(t) for t in tops.values())
    fig = new_figure(layout="constrained",
                     figsize=(max(4.6 * len(classes), 7.0), 1.5 + 0.3 * max(1, n_max)))
    axes = fig.subplots(1, len(classes), squeeze=False)
    text = FigureText()  # lyric texts in any script: one warning for what no font can draw
    for ax, name in zip(axes[0], classes, strict=True):
        top = tops[name]
        labels = [text(k if len(k) <= 40 else k[:37] + "...") for k in top["feature"]][::-1]
        values = top[importance].to_numpy()[::-1]
        ax.barh(range(len(values)), values, color="#b2182b")
        ax.set_yticks(range(len(values)), labels, fontsize=7, fontfamily=text.family)
        right = float(vmax) if vmax is not None else 1.05 * float(np.nanmax(values))
        ax.set_xlim(0.0, right if right > 0 else 1.0)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel(importance_label(importance), fontsize=8)
        ax.set_title(_songs(df, name), fontsize=9)
    fig.suptitle(_subtitle(title, importance), fontsize=9)
    text.report(path or title)
    return _finish(fig, path)


def plot_modality(df: pd.DataFrame | None, path: str | os.PathLike | None = None) -> Figure:
    """One stacked bar per class: the mean parts of the modality game (audio alone, lyrics
    alone, together), labelled with the mean MM-SHAP audio share and interaction."""
    title = ("modality per class: what the audio does alone, the lyrics alone and the two "
             "together\n(exact audio x lyrics game of the predicted label, mean over the songs "
             "predicted as the class)")
    if df is None or df.empty:
        return _placeholder(path, title.split("\n")[0], "no modality game recorded")
    fig = new_figure(layout="constrained", figsize=(8.0, 1.4 + 0.45 * len(df)))
    ax = fig.subplots()
    y = np.arange(len(df))[::-1]
    left = np.zeros(len(df))
    names = {"audio": "audio alone", "lyrics": "lyrics alone", "interaction": "together"}
    for part, name in names.items():
        width = np.nan_to_num(df[f"part_{part}"].to_numpy(dtype=float))
        ax.barh(y, width, left=left, color=MODALITY_COLOURS[part], label=name, height=0.6)
        left += width
    for yi, row in zip(y, df.to_dict("records"), strict=True):
        ax.text(1.02, yi, f"MM-SHAP audio share {row['share_audio']:.2f}, interaction "
                f"{row['interaction']:+.3f} (n = {row['n_songs']})", va="center", fontsize=7)
    ax.set_yticks(y, [str(c) for c in df["class"]], fontsize=8)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("share of |audio alone| + |lyrics alone| + |together|", fontsize=8)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3, fontsize=7,
              frameon=False)
    ax.set_title(title, fontsize=9)
    return _finish(fig, path)


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
    paths = [out_dir / f"global_heatmap_{importance}.png", out_dir / "global_top_audio.png",
             out_dir / "global_top_lyrics.png"]
    plot_heatmaps(audio, paths[0], importance)
    plot_top_bars(audio, paths[1], importance, top_k, "audio features (stem x segment)")
    plot_top_bars(lyrics, paths[2], importance, top_k, "lyric units")
    return paths


def write_global(explanation_paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                 avg_count: str = "positive", importance: str = "hw_importance",
                 top_k: int = 10, plots_dir: str | os.PathLike | None = None) -> dict:
    """Load explanations, write every table (:func:`musiclime.core.aggregate.aggregate_songs`),
    the plots, the modality table and figure (:func:`plot_modality`) and
    ``global_summary.json``. Plots go to ``plots_dir`` (default: ``out_dir``).

    Returns the summary: ``n_songs`` (loaded), ``n_songs_used``, ``skipped`` (song ids whose
    predicted label was not explained), ``n_songs_per_class`` (contributing songs, every class
    listed) and ``files`` (everything written, the summary last).
    """
    out_dir = Path(out_dir)
    explanations = load_explanations(explanation_paths)
    tables, summary = aggregate_songs(explanations, avg_count)
    modality = modality_table(explanations)
    files = write_tables({**tables, "modality": modality}, out_dir)
    files += plot_global(tables, plots_dir or out_dir, importance=importance, top_k=top_k)
    files.append(Path(plots_dir or out_dir) / "global_modality.png")
    plot_modality(modality, files[-1])
    summary_path = out_dir / "global_summary.json"
    summary.update(importance=importance, top_k=top_k,
                   files=[str(p) for p in files] + [str(summary_path)])
    write_json(summary_path, summary)
    return summary


def write_songs_table(explanation_paths: list[str | os.PathLike], out: str | os.PathLike
                      ) -> None:
    """A configuration's table of its songs (CSV): the predicted class, the fit's quality and
    warnings, and the top three features of each explanation."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["song", "predicted", "p", "surrogate R2", "held-out R2",
                     "effective samples", "fit warnings", "top features"])
    for path in explanation_paths:
        exp = Explanation.load(path)
        label = exp.predicted_label
        top = "; ".join(name for name, _ in exp.top_features(label, k=3))
        writer.writerow([exp.song_id, exp.label_name(label), f"{exp.prediction[label]:.3f}",
                         f"{exp.fits[label].score:.3f}", exp.heldout_text(label),
                         f"{exp.kernel['effective_samples']:.0f}",
                         " ".join(dict.fromkeys(w.code for w in exp.fit_warnings)), top])
    with atomic_path(out, ".csv") as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
