"""Figures of the calls benchmark's runs for the results page (:mod:`musiclime.report.
results_figures`): ``bench/calls.py --mlflow URI`` logs, in experiment ``musiclime-calls``,
one run per method and call count (tag ``musiclime.bench=calls``); :func:`collect_calls` keeps
the newest run of each.

- *stability vs calls*: the median over songs of the mean pairwise top-5 Jaccard over mask
  seeds, per method; stable = at or above :data:`STABLE_JACCARD` from that count on;
- *error vs calls*: the normalised L2 distance of a method's weights to the exact Shapley
  values of the white-box games, per game family; lower is better.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .plots import _finish, new_figure

CALLS_EXPERIMENT = "musiclime-calls"  # bench/calls.py's experiment
BASELINE = "bernoulli+lime_ridge"  # today's default: bench/calls.py's baseline
STABLE_JACCARD = 0.8  # the calls benchmark's definition of a stable top-5
#: bench/stability.py's white-box game families, in its order
WHITEBOX_FAMILIES = ("additive", "interaction", "saturating_or", "many_small")

_WB_L2 = re.compile(r"wb_(.+)_l2")
_CALLS_PARAMS = ("method", "sampler", "estimator", "target", "calls", "songs", "seeds")


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


def first_stable(curve: pd.Series, threshold: float) -> float | None:
    """The first index of ``curve`` (sorted by index) from which every value is at or above
    ``threshold``; None when there is none (NaN counts as below)."""
    curve = curve.sort_index()
    ok = curve >= threshold
    for n in curve.index:
        if ok.loc[n:].all():
            return n
    return None


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

