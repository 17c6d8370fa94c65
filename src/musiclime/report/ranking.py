"""Which setting is right: a sweep's configurations ranked against ground truth, and whether the
ranking holds on songs it was not made on (``musiclime results``, issue #23).

On a corpus whose evidence is known in time (the hard corpus, :mod:`musiclime_demo.hard`), each
configuration's mean **localisation AUC** (:mod:`musiclime.metrics.localisation`) says how well
its explanations point at the planted spans. A ranking is worth reading only if it is a property
of the settings, not of the songs, so the songs are split into two disjoint halves (the first
and the second half of the song ids, in order; the hard corpus alternates its pair kinds, so
both halves hold both kinds) and the configurations are ranked on each half: Kendall's tau-b
between the two halves' mean AUCs (1 = the same order, 0 = unrelated) is the check. The spread
(best - worst mean AUC) says whether the settings matter at all.

Everything is read from the sweep's MLflow runs: the configuration means are the runs' metrics,
the halves come from each run's ``per_song_metrics.csv`` artifact (:mod:`musiclime.tracking.log`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics.registry import label as metric_label
from .markdown import md_table as _md

log = logging.getLogger(__name__)

#: the ranked metric (a per-song key of the registry)
METRIC = "localisation_auc"
#: per-song keys carried into the ranking table beside the ranked metric, and their columns
COLUMNS = {
    "localisation_auc": "loc. AUC",
    "localisation_pointing": "pointing",
    "deletion_ratio": "deletion ratio",
    "heldout_r2": "R^2 held-out",
    "stability_jaccard_top5": "Jaccard top-5",
    "decoy_in_top5": "decoy in top-5",
    "pair_in_top5": "pair in top-5",
}
#: the settings a configuration is named by (those that vary in the sweep are shown)
AXES = ("separator", "modality", "segments", "sampler", "estimator", "target", "kernel_width",
        "num_samples")
#: the explainer's defaults (``ExplainerConfig``): the row the decoy criterion reads
DEFAULTS = {"segments": "10", "sampler": "bernoulli", "estimator": "lime_ridge",
            "target": "probability", "kernel_width": 0.25, "num_samples": 1000,
            "modality": "both"}


def varying_axes(df: pd.DataFrame) -> list[str]:
    """The :data:`AXES` that take more than one value in the sweep ``df``."""
    return [a for a in AXES if a in df and df[a].nunique() > 1]


def per_song_metrics(uri: str, run_ids: list[str]) -> pd.DataFrame:
    """One row per (run, song): each run's ``per_song_metrics.csv`` artifact, with ``run_id``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, rid in enumerate(run_ids):
            try:
                path = client.download_artifacts(rid, "per_song_metrics.csv", f"{tmp}/{i}")
            except Exception as exc:  # an older run without the artifact: no halves for it
                log.warning("run %s has no per_song_metrics.csv (%s)", rid, exc)
                continue
            frame = pd.read_csv(path)
            frame.insert(0, "run_id", rid)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def halves(song_ids) -> tuple[list[str], list[str]]:
    """Two disjoint halves of the songs: the first and the second half of the sorted ids (the
    first gets the odd one out)."""
    ids = sorted(set(map(str, song_ids)))
    cut = (len(ids) + 1) // 2
    return ids[:cut], ids[cut:]


def kendall_tau(a, b) -> float:
    """Kendall's tau-b of two score vectors (NaN with fewer than 3 pairs or no variation)."""
    from scipy.stats import kendalltau

    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(kendalltau(a[ok], b[ok]).statistic)


def is_default(row: pd.Series) -> bool:
    """Whether a configuration has the explainer's default settings (any separator)."""
    for axis, value in DEFAULTS.items():
        if axis not in row or pd.isna(row[axis]):
            continue
        if isinstance(value, (int, float)):
            if not np.isclose(float(row[axis]), float(value)):
                return False
        elif str(row[axis]) != value:
            return False
    return True


def rank(df: pd.DataFrame, songs: pd.DataFrame, metric: str = METRIC) -> tuple[pd.DataFrame,
                                                                                 dict]:
    """The ranking table (one row per configuration, best first: the swept settings, the mean of
    every :data:`COLUMNS` metric over all songs, and ``metric`` on each half) and its summary
    (spread, Kendall tau between the halves, the halves' songs)."""
    axes = varying_axes(df)
    first, second = halves(songs["song_id"]) if len(songs) else ([], [])
    rows = []
    for _, run in df.iterrows():
        mine = songs[songs["run_id"] == run["run_id"]] if len(songs) else songs
        row = {a: run[a] for a in axes}
        for key, name in COLUMNS.items():
            row[name] = (float(pd.to_numeric(mine[key], errors="coerce").mean())
                         if key in mine else float("nan"))
        for tag, part in (("A", first), ("B", second)):
            sub = mine[mine["song_id"].astype(str).isin(part)] if len(mine) else mine
            row[f"{COLUMNS[metric]} {tag}"] = (
                float(pd.to_numeric(sub[metric], errors="coerce").mean())
                if metric in sub and len(sub) else float("nan"))
        row["default"] = "yes" if is_default(run) else ""
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(COLUMNS[metric], ascending=False,
                                           ignore_index=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    col = COLUMNS[metric]
    summary = {
        "configurations": len(table),
        "songs": len(first) + len(second),
        "half_a": first, "half_b": second,
        "best": float(table[col].max()), "worst": float(table[col].min()),
        "spread": float(table[col].max() - table[col].min()),
        "spread_a": float(np.ptp(table[f"{col} A"])),
        "spread_b": float(np.ptp(table[f"{col} B"])),
        "kendall_tau": kendall_tau(table[f"{col} A"], table[f"{col} B"]),
    }
    return table, summary


def by_setting(table: pd.DataFrame, axes: list[str], value: str) -> pd.DataFrame:
    """Mean of ``value`` over the configurations holding each value of each axis (the setting's
    marginal effect), one row per (axis, value)."""
    rows = []
    for axis in axes:
        for v, group in table.groupby(axis, sort=True):
            rows.append({"setting": axis, "value": v, value: float(group[value].mean()),
                         "configurations": len(group)})
    return pd.DataFrame(rows)


def write_figure(table: pd.DataFrame, path: Path, metric: str = METRIC) -> Path:
    """Each configuration's mean ``metric`` on one half of the songs against the other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    col = COLUMNS[metric]
    fig, ax = plt.subplots(figsize=(5, 4.6))
    ax.scatter(table[f"{col} A"], table[f"{col} B"], s=14, alpha=0.7)
    lo = float(np.nanmin(table[[f"{col} A", f"{col} B"]].to_numpy()))
    hi = float(np.nanmax(table[[f"{col} A", f"{col} B"]].to_numpy()))
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8, ls="--")
    ax.set_xlabel(f"{col}, songs of half A")
    ax.set_ylabel(f"{col}, songs of half B")
    ax.set_title("Each configuration on two disjoint halves of the songs", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def ranking_section(uri: str, df: pd.DataFrame, figure: Path | None = None,
                    metric: str = METRIC) -> str | None:
    """The page's ranking section (markdown), or None when the sweep has no ``metric`` (no song
    with time-annotated evidence). ``figure``: also draw :func:`write_figure` there (a path
    relative to the page's folder is linked as it is given)."""
    col, page = COLUMNS[metric], metric_label(metric)  # the page's column of the metric
    if page not in df or df[page].isna().all():
        return None
    songs = per_song_metrics(uri, list(df["run_id"]))
    table, s = rank(df, songs, metric)
    axes = varying_axes(df)
    tau = s["kendall_tau"]
    out = ["## Which settings are right: the ranking by localisation AUC", "",
           f"{s['configurations']} configurations ranked by their mean {col} over "
           f"{s['songs']} songs (ROC AUC of the explanation's importance over every stem x "
           "100 ms frame against the annotated evidence spans; 0.5 = chance).",
           "",
           f"- **Spread**: best {s['best']:.3f}, worst {s['worst']:.3f}: "
           f"**{s['spread']:.3f}** (half A {s['spread_a']:.3f}, half B {s['spread_b']:.3f}).",
           f"- **Same order on disjoint songs**: Kendall's tau-b between the configurations' "
           f"mean {col} on half A ({len(s['half_a'])} songs: {', '.join(s['half_a'])}) and "
           f"half B ({len(s['half_b'])} songs: {', '.join(s['half_b'])}) is "
           f"**{tau:.3f}**." if np.isfinite(tau) else
           "- **Same order on disjoint songs**: not measurable (fewer than 3 configurations, "
           "or no per-song metrics).",
           ""]
    default = table[table["default"] == "yes"]
    if len(default) and COLUMNS["decoy_in_top5"] in default:
        rates = ", ".join(f"{r:.0%}" for r in default[COLUMNS["decoy_in_top5"]])
        out += [f"- **Decoys** at the default settings (kernel width 0.25, 1000 samples, 10 "
                f"segments, lime_ridge): a decoy is in the top-5 in {rates} of the songs "
                "(one number per separator); every configuration's rate is in the table.", ""]
    if "estimator" in table and COLUMNS["pair_in_top5"] in table:
        pairs = table.groupby("estimator")[COLUMNS["pair_in_top5"]].agg(["mean", "min", "max"])
        out += ["### Interacting evidence: both halves of a pair in the top-5, by estimator",
                "", "The share of annotated pairs (two stems, or a stem and a lyric line, "
                "that count only together) with both members in the top-5, over the "
                "configurations of each estimator.", "",
                _md(pairs.reset_index().rename(columns={"mean": "mean over configurations",
                                                        "min": "lowest", "max": "highest"})),
                ""]
    if axes:
        marg = by_setting(table, axes, col)
        out += [f"### Each setting's effect: mean {col} over the configurations with it", "",
                _md(marg), ""]
    if figure is not None:
        write_figure(table, figure, metric)
        out += [f"![{col} on two halves of the songs]({figure.parent.name}/{figure.name})", ""]
    show = table[["rank", *axes, *[c for c in table.columns
                                   if c not in ("rank", *axes)]]]
    out += ["### Every configuration, best first", "", _md(show), ""]
    return "\n".join(out)
