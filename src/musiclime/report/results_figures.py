"""Figures of the results page, drawn from MLflow runs (never by hand): ``musiclime results``.

Two sources, both MLflow stores:

- **the calls benchmark** (``bench/calls.py --mlflow URI``: experiment ``musiclime-calls``, one
  run per method and call count, tag ``musiclime.bench=calls``; :func:`collect_calls` keeps the
  newest run of each): *stability vs calls* (the median over songs of the mean pairwise top-5
  Jaccard over mask seeds, per method; stable = at or above 0.8 from that count on) and *error
  vs calls* (the normalised L2 distance of a method's weights to the exact Shapley values of the
  white-box games, per game family; lower is better);
- **a sweep's child runs** (:func:`musiclime.results_table.collect_runs`, e.g. the sweep of
  ``config/sweep/calls.yaml``): *kernel width* (held-out R² and effective samples / num_samples
  by kernel width; the kernel is ``w = sqrt(exp(-(distance_scale * d)^2 / kernel_width^2))``
  with ``d`` the mask's cosine distance to the all-ones mask) and the *sanity cascade* (Adebayo
  et al. 2018, :func:`musiclime.metrics.sanity.plot_sanity_cascade`, one curve per
  configuration).

Every ``plot_*`` function returns a Figure and writes a PNG only when given a ``path``; every
``*_caption`` function returns the one line that says what the figure shows, computed from the
same rows. :func:`write_figures` draws those with data into :func:`figures_dir` and returns the
page's markdown; a figure without data becomes a one-line note naming the runs that draw it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .plots import _finish, new_figure
from .results_table import first_stable

CALLS_EXPERIMENT = "musiclime-calls"  # bench/calls.py's experiment
BASELINE = "bernoulli+lime_ridge"  # today's default: bench/calls.py's baseline
STABLE_JACCARD = 0.8  # the calls benchmark's definition of a stable top-5
#: bench/stability.py's white-box game families, in its order
WHITEBOX_FAMILIES = ("additive", "interaction", "saturating_or", "many_small")
#: sweep axes that get their own line in the kernel-width figure (the others are averaged)
LINE_AXES = ("modality", "target", "estimator", "sampler")

_WB_L2 = re.compile(r"wb_(.+)_l2")
_SANITY_DEPTH = re.compile(r"sanity_spearman_depth(\d+)")
_CALLS_PARAMS = ("method", "sampler", "estimator", "target", "calls", "songs", "seeds")


# --- the calls benchmark's runs ---------------------------------------------------------------
def collect_calls(uri: str, experiment: str = CALLS_EXPERIMENT) -> pd.DataFrame:
    """One row per (method, calls) of the calls benchmark's finished runs at ``uri``: the
    newest run of each (a rerun of the benchmark replaces the numbers it logs again). Columns:
    the run's params (``calls`` as int), its metrics, ``run_id`` and ``start_time`` (ms). Empty
    when the store has no such experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return pd.DataFrame()
    runs = client.search_runs([exp.experiment_id],
                              filter_string="tags.`musiclime.bench` = 'calls'",
                              order_by=["attributes.start_time DESC"], max_results=5000)
    rows = []
    for r in runs:
        if r.info.status != "FINISHED" or not {"method", "calls"} <= set(r.data.params):
            continue
        row = {"run_id": r.info.run_id, "start_time": r.info.start_time}
        row.update({k: r.data.params[k] for k in _CALLS_PARAMS if k in r.data.params})
        row.update(r.data.metrics)
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    df["calls"] = df["calls"].astype(int)
    df = df.sort_values("start_time", ascending=False, kind="stable")
    df = df.drop_duplicates(["method", "calls"], keep="first")
    return df.sort_values(["method", "calls"]).reset_index(drop=True)


def method_order(methods) -> list[str]:
    """The baseline first, then the others by name."""
    return sorted(set(methods), key=lambda m: (m != BASELINE, m))


def drawn_methods(calls: pd.DataFrame) -> tuple[list[str], list[str]]:
    """``(methods, hidden)``: a ``<method>@logit`` variant gets its base method's white-box
    numbers by construction (the game is the classifier's logit, which the variant recovers
    exactly), so it is hidden when the base method is present."""
    methods = set(calls["method"])
    hidden = sorted(m for m in methods if "@" in m and m.split("@")[0] in methods)
    return method_order(methods - set(hidden)), hidden


def whitebox_families(calls: pd.DataFrame) -> list[str]:
    """The families with a ``wb_<family>_l2`` column holding a number, in the benchmark's
    order."""
    found = [m.group(1) for c in calls.columns if (m := _WB_L2.fullmatch(str(c)))
             and calls[c].notna().any()]
    return sorted(found, key=lambda f: (WHITEBOX_FAMILIES.index(f)
                                        if f in WHITEBOX_FAMILIES else len(WHITEBOX_FAMILIES), f))


def _curve(calls: pd.DataFrame, method: str, column: str) -> pd.Series:
    sub = calls[calls["method"] == method].dropna(subset=[column])
    return sub.set_index("calls")[column].sort_index()


#: tab10 colour of the benchmark's sampler+estimator pairs (others: a hash of the name)
_COLOURS = {"bernoulli+lime_ridge": 0, "paired+lime_ridge": 1, "orthogonal_foldover+lime_ridge": 2,
            "bernoulli+kernel_shap": 3, "paired+kernel_shap": 4, "paired+leverage_shap": 5,
            "orthogonal+lime_ridge": 6, "kernel+kernel_shap": 7, "leverage+leverage_shap": 8,
            "stratified+leverage_shap": 9}
#: line style of a method's target (``sampler+estimator@target``; no ``@``: the probability)
_TARGET_LINES = {"": "-", "logit": "--", "auto": ":"}


def _style(method: str) -> dict:
    """The baseline bold black; the others one colour per ``sampler+estimator`` (in a fixed
    order, so a method keeps its colour across figures) and one line style per target."""
    if method == BASELINE:
        return {"color": "k", "lw": 2.6, "zorder": 3, "label": f"{method} (baseline)"}
    base, _, target = method.partition("@")
    import zlib

    from matplotlib import colormaps

    known = _COLOURS.get(base)
    colour = colormaps["tab10"](known if known is not None else zlib.crc32(base.encode()) % 10)
    return {"lw": 1.3, "label": method, "color": colour, "ls": _TARGET_LINES.get(target, "-.")}


def _calls_axis(ax, counts) -> None:
    ax.set_xscale("log", base=2)
    counts = sorted({int(c) for c in counts})
    ax.set_xticks(counts, [str(c) for c in counts], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel("classifier calls per song", fontsize=8)


def has_stability(calls: pd.DataFrame) -> bool:
    return "jaccard_top5" in calls and calls["jaccard_top5"].notna().any()


def plot_stability_vs_calls(calls: pd.DataFrame, path: str | os.PathLike | None = None,
                            threshold: float = STABLE_JACCARD) -> Figure:
    """Median top-5 Jaccard across mask seeds against classifier calls (log2), one line per
    method, the baseline bold black, a dashed line at ``threshold`` ("stable")."""
    fig = new_figure(figsize=(8.6, 4.0))
    ax = fig.subplots()
    for m in method_order(calls["method"]):
        curve = _curve(calls, m, "jaccard_top5")
        if len(curve):
            ax.plot(curve.index, curve.values, marker="o", ms=3, gid="calls-curve", **_style(m))
    ax.axhline(threshold, color="0.35", ls="--", lw=0.9, label=f"stable ({threshold:g})")
    _calls_axis(ax, calls.dropna(subset=["jaccard_top5"])["calls"])
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.02)
    ax.set_ylabel("top-5 Jaccard across seeds (median over songs)", fontsize=8)
    ax.set_title("Stability vs classifier calls (higher is better)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _finish(fig, path)


def calls_to_stable(calls: pd.DataFrame, threshold: float = STABLE_JACCARD
                    ) -> dict[str, float | None]:
    """Per method: the first call count from which the median top-5 Jaccard stays at or above
    ``threshold`` (None: not within the counts measured)."""
    return {m: first_stable(_curve(calls, m, "jaccard_top5"), threshold)
            for m in method_order(calls["method"])}


def stability_caption(calls: pd.DataFrame, threshold: float = STABLE_JACCARD) -> str:
    """Which call count the baseline and the best other method need to be stable."""
    needed = calls_to_stable(calls, threshold)
    most = int(calls.dropna(subset=["jaccard_top5"])["calls"].max())

    def text(n):
        return f"{int(n)} calls" if n is not None else f"more than {most} calls"

    def mean_jaccard(m):
        return float(_curve(calls, m, "jaccard_top5").mean())

    parts = []
    if BASELINE in needed:
        parts.append(f"the baseline {BASELINE} needs {text(needed[BASELINE])}")
    others = [m for m in needed if m != BASELINE]
    if others:
        best = min(others, key=lambda m: (math.inf if needed[m] is None else needed[m],
                                          -mean_jaccard(m)))
        line = f"the best other method, {best}, needs {text(needed[best])}"
        n1, n2 = needed.get(BASELINE), needed[best]
        if n1 is not None and n2 is not None:
            line += f" ({n2 / n1:.2g} x the baseline's)"
        parts.append(line)
    return (f"To reach a median top-5 Jaccard of {threshold:g} across seeds and stay there, "
            + "; ".join(parts) + ".")


def has_errors(calls: pd.DataFrame) -> bool:
    return "method" in calls and bool(whitebox_families(calls))


def plot_error_vs_calls(calls: pd.DataFrame, path: str | os.PathLike | None = None) -> Figure:
    """Normalised L2 error of the weights against the exact Shapley values (log scale, lower is
    better) against classifier calls (log2): one panel per white-box family, one line per
    method (``@logit`` variants drawn as their base method, see :func:`drawn_methods`)."""
    families = whitebox_families(calls)
    methods, _ = drawn_methods(calls)
    fig = new_figure(figsize=(3.0 * len(families) + 0.6, 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(families), sharey=True))
    for ax, fam in zip(axes, families, strict=True):
        col = f"wb_{fam}_l2"
        for m in methods:
            curve = _curve(calls, m, col)
            if len(curve):
                ax.plot(curve.index, curve.values, marker="o", ms=3, gid="error-curve",
                        **_style(m))
        ax.set_yscale("log", nonpositive="mask")
        _calls_axis(ax, calls.dropna(subset=[col])["calls"])
        ax.set_title(fam.replace("_", " "), fontsize=9)
    axes[0].set_ylabel("normalised L2 error vs exact Shapley\n(lower is better)", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)),
               fontsize=7)
    fig.suptitle("White-box games: error vs classifier calls", fontsize=9)
    return _finish(fig, path)


def error_caption(calls: pd.DataFrame) -> str:
    """Per family at its largest call count: the method with the lowest error, and the
    baseline's."""
    methods, hidden = drawn_methods(calls)
    parts = []
    for fam in whitebox_families(calls):
        col = f"wb_{fam}_l2"
        rows = calls[calls["method"].isin(methods)].dropna(subset=[col])
        at = rows[rows["calls"] == rows["calls"].max()].set_index("method")[col]
        best = at.idxmin()
        part = f"{fam.replace('_', ' ')} {best} {at[best]:.2g} at {int(rows['calls'].max())}"
        if best != BASELINE and BASELINE in at:
            part += f" (baseline {at[BASELINE]:.2g})"
        parts.append(part)
    line = "Lowest normalised L2 error against the exact Shapley values: " + "; ".join(parts)
    if hidden:
        line += (f"; the @logit variants ({', '.join(hidden)}) have their base method's "
                 "white-box numbers by construction and are not drawn")
    return line + "."


# --- the sweep's child runs -------------------------------------------------------------------
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
    from ..metrics.sanity import plot_sanity_cascade

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


# --- the page ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PageFigure:
    """One figure of the page: its file name, title, which data it reads (``"calls"`` or
    ``"sweep"``), whether that data can draw it, how to draw and caption it, and the note when
    it cannot."""

    name: str
    title: str
    source: str
    available: Callable[[pd.DataFrame], bool]
    plot: Callable[..., Figure]
    caption: Callable[[pd.DataFrame], str]
    missing: str


_BENCH = ("run `python bench/calls.py --mlflow URI` with the tracking URI this page reads "
          "(`musiclime results --calls-uri`, default its own store)")
_SWEEP = ("`musiclime run sweep=calls dataset.limit=4 results_root=results/calls`, then "
          "`musiclime results --results-root results/calls`")

PAGE_FIGURES = (
    PageFigure("stability_vs_calls", "Stability vs classifier calls", "calls", has_stability,
               plot_stability_vs_calls, stability_caption,
               f"no runs of the calls benchmark (MLflow experiment `{CALLS_EXPERIMENT}`): "
               f"{_BENCH}."),
    PageFigure("error_vs_calls", "Error vs classifier calls on the white-box games", "calls",
               has_errors, plot_error_vs_calls, error_caption,
               "no white-box errors (`wb_<family>_l2`) in the calls benchmark's runs: "
               f"{_BENCH}."),
    PageFigure("kernel_width", "Kernel width: held-out R² and effective samples", "sweep",
               has_kernel_widths, plot_kernel_width, kernel_width_caption,
               "needs child runs at two or more kernel widths with held-out R^2: " + _SWEEP + "."),
    PageFigure("sanity_cascade", "Sanity cascade", "sweep", has_sanity, plot_sanity,
               sanity_caption,
               "needs child runs with `metrics.sanity=true` (a torch classifier): " + _SWEEP
               + "."),
)


def figures_dir(markdown_path: str | os.PathLike) -> Path:
    """Where the page's PNGs go: ``<page stem>_figures/`` beside it
    (``docs/results.md`` -> ``docs/results_figures/``)."""
    markdown_path = Path(markdown_path)
    return markdown_path.parent / f"{markdown_path.stem}_figures"


def write_figures(markdown_path: str | os.PathLike, sweep: pd.DataFrame | None,
                  calls: pd.DataFrame | None, folder: str | os.PathLike | None = None) -> str:
    """Draw every figure of :data:`PAGE_FIGURES` that its data allows as
    ``<folder>/<name>.png`` (default :func:`figures_dir` of ``markdown_path``) and return the
    markdown: per figure a heading, the image by its path relative to the page, and its
    caption; a figure without data gets its note instead (and an earlier PNG of it is
    removed, so the folder holds what the page shows)."""
    markdown_path = Path(markdown_path)
    folder = Path(folder) if folder is not None else figures_dir(markdown_path)
    data = {"calls": calls if calls is not None else pd.DataFrame(),
            "sweep": sweep if sweep is not None else pd.DataFrame()}
    out = ["The stability and error figures are drawn from the calls benchmark's MLflow runs "
           f"(experiment `{CALLS_EXPERIMENT}`, the newest run per method and call count), the "
           "kernel-width and sanity figures from this sweep's child runs.", ""]
    for spec in PAGE_FIGURES:
        df = data[spec.source]
        png = folder / f"{spec.name}.png"
        out += [f"### {spec.title}", ""]
        if df.empty or not spec.available(df):
            png.unlink(missing_ok=True)
            out += [f"*Not drawn:* {spec.missing}", ""]
            continue
        spec.plot(df, path=png)
        rel = Path(os.path.relpath(png, markdown_path.parent)).as_posix()
        out += [f"![{spec.title}]({rel})", "", spec.caption(df), ""]
    return "\n".join(out)
