"""The results page's computed answers, on sweep tables whose answers are known."""

from __future__ import annotations

import itertools
import math

import pandas as pd

from musiclime.metrics.registry import label, metric_for_key
from musiclime.report.results_table import (
    METRICS,
    default_rows,
    flatness,
    markdown_report,
    samples_for_stability,
    separator_cost,
)


def sweep_table() -> pd.DataFrame:
    """A 2 x 2 x 2 x 3 grid with metrics that depend on the axes in known ways."""
    rows = []
    for sep, mod, kw, n in itertools.product(("demo", "oracle"), ("both", "audio"), (0.25, 25.0),
                                             (250, 1000, 4000)):
        jaccard = {250: 0.5, 1000: 0.85, 4000: 0.95}[n] - (0.1 if kw == 0.25 else 0.0)
        rows.append({
            "separator": sep, "modality": mod, "kernel_width": kw, "num_samples": n,
            "songs": "4",
            "evidence P@5": 1.0 if sep == "oracle" else 0.8,
            "audio P@5": 0.9 if sep == "oracle" else 0.5,
            "kernel w min": 0.9999 if kw == 25.0 else 0.15,
            "kernel w max": 1.0,
            "effective samples": n * (1.0 if kw == 25.0 else 0.9),
            "R^2 held-out": 0.8,
            "Jaccard top-5": jaccard,
            "U_5": 5 + 10 * (1 - jaccard),
        })
    return pd.DataFrame(rows)


def test_flatness_marks_the_wide_kernel_flat():
    flat = flatness(sweep_table()).set_index("kernel_width")
    assert flat.loc[25.0, "flat"] == "yes" and flat.loc[0.25, "flat"] == "no"
    assert flat.loc[25.0, "kernel w min (lowest run)"] == 0.9999
    assert math.isclose(flat.loc[0.25, "effective samples / num_samples"], 0.9)


def test_samples_for_stability_is_the_first_n_that_stays_above_the_threshold():
    df = sweep_table()
    stab = samples_for_stability(df).set_index(["separator", "modality", "kernel_width"])
    col = "num_samples for Jaccard top-5 >= 0.8"
    assert stab.loc[("demo", "both", 25.0), col] == "1000"  # 0.5, 0.85, 0.95
    assert stab.loc[("demo", "both", 0.25), col] == "4000"  # 0.4, 0.75, 0.85
    # a curve that dips again below the threshold needs the later n
    dip = df.copy()
    dip.loc[(dip.kernel_width == 25.0) & (dip.num_samples == 4000), "Jaccard top-5"] = 0.7
    stab = samples_for_stability(dip).set_index(["separator", "modality", "kernel_width"])
    assert stab.loc[("oracle", "audio", 25.0), col] == "> 4000"


def test_separator_cost_is_the_difference_to_the_oracle():
    cost = separator_cost(sweep_table())
    row = cost[(cost.modality == "both") & (cost.metric == "audio P@5")].iloc[0]
    assert row["oracle"] == 0.9 and row["demo"] == 0.5
    assert math.isclose(row["demo - oracle"], -0.4)
    assert separator_cost(sweep_table().query("separator == 'demo'")) is None


def test_page_has_every_answer_and_the_main_table_at_1000_samples():
    df = sweep_table()
    assert set(default_rows(df)["num_samples"]) == {1000}
    page = markdown_report(df, "abc123", command="musiclime run sweep=paper", note="Scope.")
    assert "abc123" in page and "`musiclime run sweep=paper`" in page and "Scope." in page
    for title in ("## Main table (num_samples = 1000)", "Which settings recover",
                  "Kernel flatness", "How many samples make explanations stable",
                  "What separator quality costs", "## Every configuration"):
        assert title in page, title
    main = page.split("## Main table")[1].split("##")[0]
    assert main.count("\n| ") == 1 + 8  # header + 2 separators x 2 modalities x 2 widths
    # pivot columns name the swept num_samples
    assert "num_samples=250" in page and "num_samples=4000" in page


def test_metric_columns_are_the_registry_labels():
    for logged, column in METRICS.items():
        key = logged
        if metric_for_key(key) is not None:
            assert column == label(key), logged
    assert METRICS["evidence_precision_at_5_combined"] == "evidence P@5"
    assert METRICS["evidence_normalized_precision_at_5_audio"] == "audio nP@5"
    assert METRICS["surrogate_r2"] == "R^2 in-sample"
    # every column the page's sections read is one of its columns
    for column in ("evidence P@5", "audio P@5", "lyrics P@5", "evidence nP@5", "audio nP@5",
                   "evidence AUROC", "deletion / random", "insertion / random", "R^2 in-sample",
                   "R^2 held-out", "kernel w min", "kernel w max", "effective samples",
                   "Jaccard top-5", "U_5", "separate s"):
        assert column in METRICS.values(), column
