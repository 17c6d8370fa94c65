"""Figures of a sweep's child runs for the results page (:mod:`musiclime.report.
results_figures`), from :func:`musiclime.report.results_table.collect_runs` (e.g. the sweep of
``config/sweep/calls.yaml``):

- *kernel width*: held-out R² and effective samples / num_samples by kernel width; the kernel
  is ``w = sqrt(exp(-(distance_scale * d)^2 / kernel_width^2))`` with ``d`` the mask's cosine
  distance to the all-ones mask;
- *sanity cascade* (Adebayo et al. 2018, :func:`musiclime.report.sanity_figure.
  plot_sanity_cascade`): one curve per configuration.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .plots import _finish, new_figure

#: sweep axes that get their own line in the kernel-width figure (the others are averaged)
LINE_AXES = ("modality", "target", "estimator", "sampler")
_SANITY_DEPTH = re.compile(r"sanity_spearman_depth(\d+)")


def _line_axes(sweep: pd.DataFrame) -> list[str]:
    return [c for c in LINE_AXES if c in sweep and sweep[c].nunique() > 1]


def has_kernel_widths(sweep: pd.DataFrame) -> bool:
    return ("kernel_width" in sweep and "R^2 held-out" in sweep
            and sweep.dropna(subset=["R^2 held-out"])["kernel_width"].nunique() >= 2)


def _sample_share(sweep: pd.DataFrame) -> pd.Series | None:
    if "effective samples" not in sweep or "num_samples" not in sweep:
        return None
    return sweep["effective samples"] / sweep["num_samples"].astype(float)


def plot_kernel_width(sweep: pd.DataFrame, path: str | os.PathLike | None = None) -> Figure:
    """Held-out R² (left) and effective samples / num_samples (right) against kernel width
    (log), the mean over the child runs at each width; one line per value of each swept axis of
    :data:`LINE_AXES` (target, modality, ...), the other axes averaged."""
    sweep = sweep.assign(share=_sample_share(sweep)) if _sample_share(sweep) is not None \
        else sweep
    panels = [("R^2 held-out", "held-out R² (higher is better)")]
    if "share" in sweep:
        panels.append(("share", "effective samples / num_samples"))
    fig = new_figure(figsize=(4.2 * len(panels), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    axes_by = _line_axes(sweep)
    groups = sweep.groupby(axes_by) if axes_by else [((), sweep)]
    widths = sorted(sweep["kernel_width"].unique())
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{a}={v}" for a, v in zip(axes_by, key, strict=True)) or "all runs"
        for ax, (col, _) in zip(axes, panels, strict=True):
            mean = sub.groupby("kernel_width")[col].mean()
            ax.plot(mean.index, mean.values, marker="o", ms=3, label=label, gid="width-curve")
    for ax, (col, ylabel) in zip(axes, panels, strict=True):
        ax.set_xscale("log")
        ax.set_xticks(widths, [f"{w:g}" for w in widths], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel("kernel width (cosine distance)", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        if col == "share":
            ax.set_ylim(0.0, 1.05)
    axes[0].legend(fontsize=7)
    fig.suptitle("Kernel width: surrogate fit and the samples it keeps (mean over runs)",
                 fontsize=9)
    return _finish(fig, path)


def kernel_width_caption(sweep: pd.DataFrame) -> str:
    """The width with the best mean held-out R² and the share of samples it keeps, against
    the narrowest width; per swept axis value, its best width."""
    share = _sample_share(sweep)
    r2 = sweep.groupby("kernel_width")["R^2 held-out"].mean()
    kept = share.groupby(sweep["kernel_width"]).mean() if share is not None else None
    best, narrow = float(r2.idxmax()), float(r2.index.min())

    def keeps(w):
        return f", keeping {kept[w]:.0%} of the samples' weight" if kept is not None else ""

    line = (f"Held-out R² (mean over the runs at each width) is highest at kernel width "
            f"{best:g} ({r2[best]:.2f}{keeps(best)})")
    if narrow != best:
        line += f"; the narrowest, {narrow:g}, gets {r2[narrow]:.2f}{keeps(narrow)}"
    for axis in _line_axes(sweep):
        by = sweep.groupby([axis, "kernel_width"])["R^2 held-out"].mean().unstack()
        line += f"; best width by {axis}: " + ", ".join(
            f"{v} {float(row.idxmax()):g}" for v, row in by.iterrows())
    return line + "."


def sanity_records(sweep: pd.DataFrame) -> list[dict]:
    """The ``sanity_*`` metrics of every child run that carries the cascade (one dict each)."""
    cols = [c for c in sweep.columns if str(c).startswith("sanity_")]
    depth = [c for c in cols if _SANITY_DEPTH.fullmatch(str(c))]
    records = []
    for _, row in sweep.iterrows():
        if depth and row[depth].notna().any():
            records.append({c: float(row[c]) for c in cols if pd.notna(row[c])})
    return records


def has_sanity(sweep: pd.DataFrame) -> bool:
    return bool(sanity_records(sweep))


def plot_sanity(sweep: pd.DataFrame, path: str | os.PathLike | None = None) -> Figure:
    """The sanity cascade of every configuration that ran it (each curve the mean over the
    run's songs) and their mean, by :func:`musiclime.metrics.sanity.plot_sanity_cascade`."""
    from .sanity_figure import plot_sanity_cascade

    records = sanity_records(sweep)
    what = (f"{len(records)} configurations, each" if len(records) > 1
            else "one configuration,")
    fig = plot_sanity_cascade(records, title=f"Sanity cascade (Adebayo et al. 2018): {what} "
                              "the mean over its songs")
    if len(records) > 1:
        # each curve is a configuration's song mean, not one song
        for ax in fig.axes:
            for line in ax.get_lines():
                line.set_label(line.get_label().replace(" songs", " configurations"))
            if ax.get_legend() is not None:
                ax.legend(fontsize=7, loc="upper right")
    return _finish(fig, path)


def _final(record: dict, absolute: bool) -> float:
    key = "sanity_spearman_abs_final" if absolute else "sanity_spearman_final"
    if key in record:
        return record[key]
    pattern = re.compile(r"sanity_spearman_abs_depth(\d+)" if absolute else _SANITY_DEPTH.pattern)
    depths = {int(m.group(1)): v for k, v in record.items() if (m := pattern.fullmatch(k))}
    return depths[max(depths)] if depths else math.nan


def sanity_caption(sweep: pd.DataFrame) -> str:
    """The rank correlation with the original explanation once every layer is re-initialised,
    signed and of |w|, over the configurations."""
    records = sanity_records(sweep)
    signed = np.array([_final(r, False) for r in records])
    absolute = np.array([_final(r, True) for r in records])
    depths = {int(m.group(1)) for r in records for k in r if (m := _SANITY_DEPTH.fullmatch(k))}
    steps = len([d for d in depths if d > 0])
    counts = [r["sanity_layer_count"] for r in records if "sanity_layer_count" in r]
    layers = f"{np.mean(counts):.3g}" if counts else f"{max(depths)}"
    line = (f"With all {layers} layers re-initialised from the output down ({steps} cascade "
            f"steps), the explanation's Spearman correlation with the original is "
            f"{np.nanmean(signed):.2f}")
    if len(records) > 1:
        line += (f" (mean over {len(records)} configurations, range "
                 f"{np.nanmin(signed):.2f} to {np.nanmax(signed):.2f})")
    if np.isfinite(absolute).any():
        line += f", {np.nanmean(absolute):.2f} for |w|"
    return line + "; near 0 passes Adebayo et al.'s sanity check."

