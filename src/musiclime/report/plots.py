"""Figures of one explanation: a stem x segment heatmap and a lyric-unit bar chart.

Every plot function returns a :class:`matplotlib.figure.Figure` and writes a PNG only when it
is given a ``path``. Titles carry what a reader needs to judge the figure: the predicted
probability ``p`` of the explained label, the surrogate's weighted R² (in-sample, and held-out
beside it), the kernel width and the number of perturbed samples ``n`` (:func:`fit_caption`). ``vmax`` fixes the colour scale (the
heatmap's ±vmax, the bar chart's x range), so figures of a sweep can be compared by eye; by
default each figure is scaled to its own largest |weight|.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..core.explanation import Explanation
from ..io.fileio import atomic_path
from .fonts import FigureText

# Figures are built with matplotlib's object API, not pyplot: no global state, so workflow jobs
# that run in threads of one Snakemake process can plot at the same time.


#: the modality game's colours (the page's bar, the global figure): audio alone, lyrics alone,
#: the two together (:mod:`musiclime.core.modality`)
MODALITY_COLOURS = {"audio": "#1b7837", "lyrics": "#762a83", "interaction": "#e08214"}


def new_figure(**kwargs) -> Figure:
    """A Figure with its own Agg canvas (so it can measure text and save without pyplot)."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG atomically to exactly ``path``."""
    path = Path(path)
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


# --- captions and time labels -----------------------------------------------------------------
def explained_label(exp: Explanation, label: int | None = None) -> int:
    """``label``, else the predicted label when it was explained, else the first explained."""
    if label is not None:
        return int(label)
    return exp.predicted_label if exp.predicted_label in exp.fits else exp.labels[0]


def fit_caption(exp: Explanation, label: int | None = None) -> str:
    """``p=0.97  R²=0.91 (held-out 0.88)  kernel width=0.25  n=1000`` for the explained
    ``label`` (the held-out R² where the explanation has its fit's diagnostics, which every
    explanation since :mod:`musiclime.core.fit_quality` has)."""
    label = explained_label(exp, label)
    p = exp.prediction[label] if 0 <= label < len(exp.prediction) else float("nan")
    fit = exp.fits.get(label)
    r2 = f"{fit.score:.2f}" if fit is not None else "n/a"
    quality = getattr(exp, "fit_quality", None)
    if fit is not None and quality is not None:
        held = quality.labels[label].heldout_r2 if label in quality.labels else None
        r2 += f" (held-out {'n/a' if held is None else f'{held:.2f}'})"
    width = exp.kernel.get("width")
    width = "n/a" if width is None else f"{width:g}"
    return f"p={p:.2f}  R²={r2}  kernel width={width}  n={exp.num_samples}"


def format_time(seconds: float, precise: bool = False) -> str:
    """``m:ss`` (``m:ss.s`` when ``precise``)."""
    minutes, sec = divmod(float(seconds), 60.0)
    if precise:
        sec = round(sec, 1)
        if sec >= 60.0:
            minutes, sec = minutes + 1, 0.0
        return f"{int(minutes)}:{sec:04.1f}"
    sec = int(round(sec))
    if sec == 60:
        minutes, sec = minutes + 1, 0
    return f"{int(minutes)}:{sec:02d}"


def segment_spans(exp: Explanation) -> list[tuple[float, float] | None]:
    """``(start, end)`` seconds of every segment, from the feature table (None if unknown)."""
    spans: list[tuple[float, float] | None] = [None] * exp.features.n_segments
    for f in exp.features.features:
        if f.kind == "audio" and f.segment is not None and spans[f.segment] is None \
                and f.start is not None and f.end is not None:
            spans[f.segment] = (float(f.start), float(f.end))
    return spans


def segment_labels(exp: Explanation) -> list[str]:
    """``T3`` over ``0:58–1:17`` per segment; tenths of a second when segments are short."""
    spans = segment_spans(exp)
    known = [s for s in spans if s is not None]
    precise = bool(known) and min(e - s for s, e in known) < 5.0
    return [f"T{t}" if s is None else
            f"T{t}\n{format_time(s[0], precise)}–{format_time(s[1], precise)}"
            for t, s in enumerate(spans)]


def _overlapping(texts, renderer, pad: float = 2.0) -> bool:
    boxes = [t.get_window_extent(renderer) for t in texts
             if t.get_visible() and t.get_text()]
    boxes.sort(key=lambda b: b.x0)
    return any(b.x0 < a.x1 + pad for a, b in zip(boxes, boxes[1:], strict=False))


def fit_tick_labels(ax) -> None:
    """Keep the x tick labels from overlapping: horizontal if they fit, else vertical, else
    every k-th label (the smallest k that fits), measured on the figure's renderer."""
    fig = ax.figure
    labels = [tick.label1 for tick in ax.xaxis.get_major_ticks()]
    if not labels:
        return
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    if not _overlapping(labels, renderer):
        return
    for text in labels:
        text.set_rotation(90)
        text.set_horizontalalignment("center")
    fig.canvas.draw()
    if not _overlapping(labels, renderer):
        return
    for step in range(2, len(labels) + 1):
        for i, text in enumerate(labels):
            text.set_visible(i % step == 0)
        fig.canvas.draw()
        if not _overlapping(labels, renderer):
            return


# --- the figures --------------------------------------------------------------------------------
def plot_audio_heatmap(exp: Explanation, path: str | os.PathLike | None = None,
                       label: int | None = None, vmax: float | None = None) -> Figure:
    """Stems (rows) x temporal segments (columns), coloured by LIME weight (diverging, 0 white).

    ``vmax``: the colour scale's ±limit (default: this explanation's largest |audio weight|).
    """
    label = explained_label(exp, label)
    grid = exp.audio_weight_grid(label)
    n_seg = grid.shape[1]
    fig = new_figure(figsize=(min(2.0 + 0.75 * n_seg, 16.0), 1.6 + 0.5 * grid.shape[0]))
    ax = fig.subplots()
    finite = grid[np.isfinite(grid)]
    if vmax is None:
        vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
    vmax = float(vmax) or 1.0
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                   aspect="auto")
    ax.set_yticks(range(len(exp.features.stems)), exp.features.stems)
    ax.set_xticks(range(n_seg), segment_labels(exp), fontsize=7)
    ax.set_xlabel("segment (start–end, m:ss)", fontsize=8)
    text = FigureText()  # song ids and class names in any script
    title = f"{exp.song_id}: audio weights for '{exp.label_name(label)}'"
    if not finite.size:
        title += " (audio not perturbed)"
    ax.set_title(text(f"{title}\n{fit_caption(exp, label)}"), fontsize=9,
                 fontfamily=text.family)
    fig.colorbar(im, ax=ax, label="LIME weight")
    fit_tick_labels(ax)
    text.report(path or f"{exp.song_id}: audio heatmap")
    return _finish(fig, path)


def plot_lyrics_bars(exp: Explanation, path: str | os.PathLike | None = None,
                     label: int | None = None, max_units: int = 20,
                     vmax: float | None = None) -> Figure:
    """Horizontal bars of the lyric units' weights, largest |weight| first.

    ``vmax``: the x range is ±vmax (default: fitted to this explanation's weights).
    """
    label = explained_label(exp, label)
    items = [(exp.features[i].name, w) for i, w in exp.ranked(label)
             if exp.features[i].kind == "lyrics"][:max_units]
    fig = new_figure(figsize=(7, 1.1 + 0.32 * max(1, len(items))))
    ax = fig.subplots()
    text = FigureText()  # lyrics in any script: one warning for what no font can draw
    if items:
        names = [text(n if len(n) <= 48 else n[:45] + "...") for n, _ in items][::-1]
        weights = [w for _, w in items][::-1]
        ax.barh(range(len(items)), weights,
                color=["#b2182b" if w > 0 else "#2166ac" for w in weights])
        ax.set_yticks(range(len(items)), names, fontsize=8, fontfamily=text.family)
        ax.axvline(0, color="k", lw=0.8)
        if vmax is not None and vmax > 0:
            ax.set_xlim(-float(vmax), float(vmax))
    else:
        ax.text(0.5, 0.5, "lyrics not perturbed", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("LIME weight")
    ax.set_title(text(f"{exp.song_id}: lyric {exp.features.lyrics_unit}s for "
                      f"'{exp.label_name(label)}'\n{fit_caption(exp, label)}"), fontsize=9,
                 fontfamily=text.family)
    text.report(path or f"{exp.song_id}: lyrics chart")
    return _finish(fig, path)
