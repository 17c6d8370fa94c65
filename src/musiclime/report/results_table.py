"""Tables of a sweep, made from its MLflow runs (never by hand): ``musiclime results``.

Each child run of a ``musiclime run -m`` / ``sweep=`` invocation is one configuration; its
params hold the resolved config and its metrics the per-song means. The tables group the runs by
the swept explainer settings and report what a researcher asks of them: is the planted evidence
recovered, is the kernel flat, how much does the surrogate agree, how stable are the top
features, and what does a worse separator cost.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..io.fileio import atomic_path
from ..metrics.registry import label as metric_label
from .calls_figures import first_stable
from .markdown import md_table as _md

PARAMS = {
    "explainer.kernel_width": "kernel_width",
    "explainer.distance_scale": "distance_scale",
    "explainer.num_samples": "num_samples",
    "explainer.modality": "modality",
    "explainer.target": "target",
    "explainer.estimator": "estimator",
    "explainer.sampler": "sampler",
    "explainer.temporal_segments": "segments",
    "separator.name": "separator",
    "model.name": "model",
    "n_songs": "songs",
}
#: registry metrics on the page, in column order; a child run logs each per-song key's mean
#: under the key itself
PAGE_METRICS = (
    "evidence_precision_at_5_combined", "evidence_precision_at_5_audio",
    "evidence_precision_at_5_lyrics", "evidence_normalized_precision_at_5_combined",
    "evidence_normalized_precision_at_5_audio", "evidence_normalized_precision_at_5_lyrics",
    "evidence_auroc_combined", "localisation_auc", "localisation_pointing", "decoy_in_top5",
    "pair_in_top5", "deletion_ratio", "insertion_ratio", "surrogate_r2", "heldout_r2",
    "kernel_weight_min", "kernel_weight_max", "kernel_effective_samples",
    "stability_jaccard_top5", "stability_uk_top5", "stability_spearman",
)
#: MLflow metric -> column label: the registry's labels, then run-level numbers
METRICS = {
    **{key: metric_label(key) for key in PAGE_METRICS},
    "classifier_accuracy": "accuracy",
    "time_separate_s": "separate s",
}
#: run metrics kept under their own name (the sanity cascade's per-depth keys, whose number
#: depends on the classifier, for :func:`musiclime.metrics.sanity.plot_sanity_cascade`)
RAW_METRIC_PREFIXES = ("sanity_",)
#: explainer axes that a sweep may vary besides kernel width and num_samples; the tables key
#: their rows by those that take more than one value
EXTRA_AXES = ("segments", "target", "estimator", "sampler")


def swept_axes(df: pd.DataFrame) -> list[str]:
    """The :data:`EXTRA_AXES` that take more than one value in ``df``."""
    return [c for c in EXTRA_AXES if c in df and df[c].nunique() > 1]



def collect_runs(uri: str, experiment: str = "musiclime",
                 parent_run_id: str | None = None) -> tuple[pd.DataFrame, str]:
    """One row per configuration (child run) of one invocation (default: the newest), and the
    invocation's parent run id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        known = [e.name for e in client.search_experiments()]
        raise InputError(f"no MLflow experiment {experiment!r} at {uri} (it has "
                         f"{', '.join(map(repr, known)) or 'none'}); pass --experiment NAME")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"],
                              max_results=5000)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    if parent_run_id is None and children:
        parent_run_id = children[0].data.tags["mlflow.parentRunId"]
    parents = list(dict.fromkeys(r.data.tags["mlflow.parentRunId"] for r in children))
    if parent_run_id is not None and parent_run_id not in parents:
        newest = ", ".join(parents[:3]) + (" ..." if len(parents) > 3 else "")
        raise InputError(f"--parent {parent_run_id}: no run of experiment {experiment!r} at "
                         f"{uri} has that parent; " + (f"its sweeps' parent runs, newest first: "
                                                       f"{newest}" if parents else
                                                       "it has no sweep (child) runs yet"))
    rows = []
    for r in children:
        if r.data.tags["mlflow.parentRunId"] != parent_run_id or r.info.status != "FINISHED":
            continue
        row = {"run_id": r.info.run_id}
        for key, name in PARAMS.items():
            if key in r.data.params:
                row[name] = r.data.params[key]
        for key, name in METRICS.items():
            if key in r.data.metrics:
                row[name] = r.data.metrics[key]
        for key, value in r.data.metrics.items():
            if key.startswith(RAW_METRIC_PREFIXES) and not key.endswith("_std"):
                row[key] = value
        rows.append(row)
    if not rows:
        raise InputError(f"no finished child runs under parent {parent_run_id} at {uri}: "
                         "finish the sweep (rerun the same `musiclime run`), or pass --parent")
    df = pd.DataFrame(rows)
    for col in ("kernel_width", "distance_scale"):
        if col in df:
            df[col] = df[col].astype(float)
    if "num_samples" in df:
        # num_samples=auto points have no fixed count: NaN here (their calls are the
        # auto_calls metric), so the by-num_samples tables leave them out
        df["num_samples"] = pd.to_numeric(df["num_samples"], errors="coerce").astype("Int64")
    return df, parent_run_id


def _pivot(df: pd.DataFrame, index: list[str], value: str,
           columns: list[str] | None = None) -> pd.DataFrame | None:
    """Mean of ``value`` by ``index`` rows and ``columns`` (default: separator / modality)."""
    if value not in df or not all(i in df for i in index) or df[value].isna().all():
        return None
    if columns is None:
        columns = [c for c in ("separator", "modality") if c in df and c not in index]
    columns = [c for c in columns if c in df and c not in index]
    table = df.pivot_table(index=index, columns=columns or None, values=value, aggfunc="mean",
                           dropna=False)
    if isinstance(table, pd.Series):
        table = table.to_frame(value)
    if not columns:
        table.columns = [value]
    else:
        table.columns = [" / ".join(f"{n}={v}" if n == "num_samples" else str(v)
                                    for n, v in zip(columns, c if isinstance(c, tuple) else (c,),
                                                    strict=True))
                         for c in table.columns]
    return table.reset_index()


def default_rows(df: pd.DataFrame, num_samples: int | None = None) -> pd.DataFrame:
    """The rows at one num_samples (default: 1000 if swept, else the most common value)."""
    if "num_samples" not in df:
        return df
    counts = df["num_samples"].value_counts()
    if num_samples is None:
        num_samples = 1000 if 1000 in counts.index else int(counts.idxmax())
    return df[df["num_samples"] == num_samples]


def flatness(df: pd.DataFrame, flat_at: float = 0.99) -> pd.DataFrame | None:
    """Per kernel width: the smallest and largest kernel weight over every run, the effective
    sample share, and whether the kernel is flat (every weight >= ``flat_at``: an unweighted
    fit)."""
    need = ("kernel_width", "kernel w min")
    if not all(c in df for c in need):
        return None
    g = df.groupby("kernel_width")
    out = pd.DataFrame({"kernel w min (lowest run)": g["kernel w min"].min()})
    if "kernel w max" in df:
        out["kernel w max"] = g["kernel w max"].max()
    if "effective samples" in df and "num_samples" in df:
        share = df["effective samples"] / df["num_samples"]
        out["effective samples / num_samples"] = share.groupby(df["kernel_width"]).mean()
    for col in ("R^2 in-sample", "R^2 held-out", "evidence P@5", "Jaccard top-5"):
        if col in df:
            out[col] = g[col].mean()
    out["flat"] = ["yes" if v >= flat_at else "no" for v in out["kernel w min (lowest run)"]]
    return out.reset_index()


def samples_for_stability(df: pd.DataFrame, column: str = "Jaccard top-5",
                          threshold: float = 0.8) -> pd.DataFrame | None:
    """Per (separator, modality, kernel width): the smallest num_samples whose mean
    ``column`` reaches ``threshold`` (and stays there for every larger num_samples), or
    ``"> max"`` when none does."""
    if column not in df or "num_samples" not in df:
        return None
    keys = [c for c in ("separator", "modality", *swept_axes(df), "kernel_width") if c in df]
    rows = []
    for group, sub in df.groupby(keys):
        curve = sub.groupby("num_samples")[column].mean().sort_index()
        if curve.isna().all():
            continue
        n = first_stable(curve, threshold)
        needed = f"> {int(curve.index.max())}" if n is None else str(int(n))
        group = group if isinstance(group, tuple) else (group,)
        rows.append({**dict(zip(keys, group, strict=True)),
                     f"num_samples for {column} >= {threshold:g}": needed,
                     f"{column} at {int(curve.index.min())}": float(curve.iloc[0]),
                     f"{column} at {int(curve.index.max())}": float(curve.iloc[-1])})
    return pd.DataFrame(rows) if rows else None


def separator_cost(df: pd.DataFrame, metrics: tuple[str, ...] = (
        "evidence P@5", "audio P@5", "lyrics P@5", "evidence nP@5", "audio nP@5",
        "evidence AUROC", "deletion / random",
        "insertion / random", "R^2 held-out", "Jaccard top-5", "separate s"),
) -> pd.DataFrame | None:
    """Per modality: each metric's mean under every separator (over kernel widths and
    num_samples), and the difference to the best-quality one (``oracle`` when present)."""
    if "separator" not in df or df["separator"].nunique() < 2:
        return None
    seps = sorted(df["separator"].unique(), key=lambda s: (s != "oracle", s))
    ref = seps[0]
    keys = [c for c in ("modality",) if c in df]
    rows = []
    for group, sub in (df.groupby(keys) if keys else [((), df)]):
        group = group if isinstance(group, tuple) else (group,)
        for m in metrics:
            if m not in sub or sub[m].isna().all():
                continue
            means = sub.groupby("separator")[m].mean()
            row = {**dict(zip(keys, group, strict=True)), "metric": m}
            for sep in seps:
                row[sep] = float(means.get(sep, float("nan")))
            for sep in seps[1:]:
                row[f"{sep} - {ref}"] = row[sep] - row[ref]
            rows.append(row)
    return pd.DataFrame(rows) if rows else None


def markdown_report(df: pd.DataFrame, parent: str, command: str | None = None,
                    note: str | None = None, figures: str | None = None,
                    ranking: str | None = None) -> str:
    """The page: ``ranking`` (:func:`musiclime.report.ranking.ranking_section`) when given, the
    tables of the sweep ``df`` (:func:`collect_runs`), then ``figures`` (the markdown of
    :func:`musiclime.report.results_figures.write_figures`) when given."""
    axes = swept_axes(df)
    keys = [c for c in ("separator", "modality", *axes, "kernel_width", "num_samples")
            if c in df]
    df = df.sort_values(keys)
    songs = sorted(df["songs"].unique()) if "songs" in df else []
    out = ["# Results", "",
           f"Generated by `musiclime results` from MLflow parent run `{parent}`"
           + (f", produced by `{command}`." if command else ".")
           + (f" {len(df)} configurations on {', '.join(map(str, songs))} songs." if songs
              else ""),
           "Every number is the mean over the run's songs (per-song values are in each run's "
           "`per_song_metrics.csv` artifact); evidence metrics average the songs that have "
           "planted evidence of the explained label (the `ai` songs).", ""]
    if note:
        out += [note, ""]
    if ranking:
        out += [ranking.strip(), ""]
    main = default_rows(df)
    cols = [c for c in ("separator", "modality", *axes, "kernel_width") if c in main]
    cols += [c for c in METRICS.values() if c in main and c != "accuracy"]
    n_main = int(main["num_samples"].iloc[0]) if "num_samples" in main and len(main) else None
    out += [f"## Main table (num_samples = {n_main})" if n_main else "## Main table", "",
            _md(main[cols]), ""]
    sections = [
        ("Which settings recover the planted evidence: precision@5 by num_samples",
         ["separator", "modality", "kernel_width"], "evidence P@5", ["num_samples"]),
        ("Audio evidence precision@5 by num_samples",
         ["separator", "modality", "kernel_width"], "audio P@5", ["num_samples"]),
        ("Normalized evidence precision@5 (hits / min(5, evidence features); 1 = the best "
         "possible) by num_samples",
         ["separator", "modality", "kernel_width"], "evidence nP@5", ["num_samples"]),
        ("Stability of the top-5 features (mean pairwise Jaccard across mask seeds)",
         ["separator", "modality", "kernel_width"], "Jaccard top-5", ["num_samples"]),
        ("Distinct features in the top-5 sets of all seeds (U_5; 5 = identical)",
         ["separator", "modality", "kernel_width"], "U_5", ["num_samples"]),
        ("Held-out surrogate R^2 by num_samples",
         ["separator", "modality", "kernel_width"], "R^2 held-out", ["num_samples"]),
    ]
    for title, index, value, columns in sections:
        index = [*index[:2], *axes, *index[2:]]
        table = _pivot(df, [i for i in index if i in df], value, columns)
        if table is not None:
            out += [f"## {title}", "", _md(table), ""]
    flat = flatness(df)
    if flat is not None:
        out += ["## Kernel flatness: the kernel weights by kernel width (flat = every weight "
                ">= 0.99)", "", _md(flat), ""]
    stab = samples_for_stability(df)
    if stab is not None:
        out += ["## How many samples make explanations stable", "",
                "The smallest num_samples from which the mean top-5 Jaccard across mask seeds "
                "stays at or above 0.8.", "", _md(stab), ""]
    cost = separator_cost(df)
    if cost is not None:
        out += ["## What separator quality costs", "",
                "Each metric's mean over kernel widths and num_samples, per separator.", "",
                _md(cost), ""]
    cols = keys + [c for c in METRICS.values() if c in df]
    out += ["## Every configuration", "", _md(df[cols]), ""]
    if figures:
        out += [FIGURES_HEADING, "", figures.strip(), ""]
    return "\n".join(out)


FIGURES_HEADING = "## Fewer calls: figures"


def write_report(uri: str, out: str | os.PathLike, experiment: str = "musiclime",
                 parent_run_id: str | None = None, command: str | None = None,
                 note: str | None = None, figures: bool = True,
                 calls_uri: str | None = None) -> Path:
    """Write the page to ``out``: the tables of one sweep (its child runs in ``experiment`` at
    ``uri``) and, with ``figures``, the figures of :mod:`musiclime.report.results_figures` as PNGs in
    :func:`~musiclime.report.results_figures.figures_dir` of ``out``; the calls benchmark's runs are
    read from ``calls_uri`` (default: ``uri``)."""
    from .ranking import ranking_section
    from .results_figures import figures_dir

    df, parent = collect_runs(uri, experiment, parent_run_id)
    out = Path(out)
    section = None
    if figures:
        from .results_figures import collect_calls, write_figures

        section = write_figures(out, df, collect_calls(calls_uri or uri))
    ranked = ranking_section(uri, df, figures_dir(out) / "ranking_halves.png" if figures
                             else None)
    with atomic_path(out, ".md") as tmp:
        tmp.write_text(markdown_report(df, parent, command, note, section, ranked) + "\n",
                       encoding="utf-8")
    return out
