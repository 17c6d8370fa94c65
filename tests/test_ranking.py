"""The results page's ranking of settings (issue #23): spread, Kendall tau between two disjoint
halves of the songs, decoy rate at the defaults and pair recovery by estimator, read from a real
MLflow store whose runs carry known per-song metrics."""

from __future__ import annotations

import csv
import io
import itertools
import math

import numpy as np
import pytest
from scipy.stats import kendalltau

from musiclime.report.ranking import halves, kendall_tau, rank, ranking_section
from musiclime.report.results_table import collect_runs

SONGS = [f"hard_{i:04d}" for i in range(8)]


def _auc(kw: float, seg: int, song: int, flip: bool) -> float:
    """A known truth: finer segments and a mid kernel width localise better; the song adds an
    offset that does not change the order (or, with ``flip``, reverses it on the second half)."""
    base = 0.55 + 0.1 * {5: 0, 10: 1, 20: 2}[seg] + {0.1: 0.0, 0.25: 0.08, 1.0: 0.04}[kw]
    if flip and song >= 4:
        base = 1.4 - base
    return base + 0.01 * (song % 3)


def make_sweep(uri: str, flip: bool = False) -> list[dict]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("musiclime")
    parent = client.create_run(exp).info.run_id
    configs = []
    for kw, seg, est in itertools.product((0.1, 0.25, 1.0), (5, 10, 20),
                                          ("lime_ridge", "leverage_shap")):
        rid = client.create_run(exp, tags={"mlflow.parentRunId": parent}).info.run_id
        params = {"explainer.kernel_width": str(kw), "explainer.temporal_segments": str(seg),
                  "explainer.estimator": est, "explainer.num_samples": "1000",
                  "explainer.modality": "both", "separator.name": "oracle",
                  "n_songs": str(len(SONGS))}
        from mlflow.entities import Metric, Param

        client.log_batch(rid, params=[Param(k, v) for k, v in params.items()])
        rows = []
        for i, sid in enumerate(SONGS):
            rows.append({"song_id": sid, "localisation_auc": _auc(kw, seg, i, flip),
                         "decoy_in_top5": float(kw == 0.1 and i % 2 == 0),
                         "pair_in_top5": 1.0 if est == "leverage_shap" else 0.5,
                         "deletion_ratio": 0.4})
        client.log_batch(rid, metrics=[
            Metric(key, float(np.mean([r[key] for r in rows])), 0, 0)
            for key in ("localisation_auc", "decoy_in_top5", "pair_in_top5", "deletion_ratio")])
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        client.log_text(rid, buf.getvalue(), "per_song_metrics.csv")
        client.set_terminated(rid)
        configs.append({"kw": kw, "seg": seg, "est": est, "rows": rows})
    return configs


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One store with the sweep whose order holds on both halves (shared: building it is the
    slow part)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('ranking') / 'mlflow.db'}"
    return uri, make_sweep(uri)


def test_halves_are_disjoint_and_cover_the_songs():
    a, b = halves(["s3", "s1", "s2", "s0", "s4"])
    assert a == ["s0", "s1", "s2"] and b == ["s3", "s4"]
    assert not set(a) & set(b)


def test_kendall_tau_matches_scipy_and_refuses_constants():
    x, y = [0.1, 0.5, 0.3, 0.9], [0.2, 0.4, 0.5, 0.8]
    assert math.isclose(kendall_tau(x, y), kendalltau(x, y).statistic)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


def test_ranking_reads_the_sweep_and_finds_the_known_order(sweep):
    store, configs = sweep
    from musiclime.report.ranking import per_song_metrics

    df, _ = collect_runs(store)
    table, summary = rank(df, per_song_metrics(store, list(df["run_id"])))
    assert len(table) == len(configs) == 18
    # the best is 20 segments at kernel width 0.25, the worst 5 segments at 0.1
    best, worst = table.iloc[0], table.iloc[-1]
    assert (best["segments"], float(best["kernel_width"])) == ("20", 0.25)
    assert (worst["segments"], float(worst["kernel_width"])) == ("5", 0.1)
    assert math.isclose(summary["spread"], 0.2 + 0.08, abs_tol=1e-9)
    # the halves' orders agree: tau-b is 1 up to the estimator ties
    assert summary["kendall_tau"] > 0.95
    assert summary["half_a"] == SONGS[:4] and summary["half_b"] == SONGS[4:]
    # the per-half means are the means over the half's songs, counted here by hand
    row = table[(table["segments"] == "10") & (table["kernel_width"].astype(float) == 1.0)
                & (table["estimator"] == "lime_ridge")].iloc[0]
    assert math.isclose(row["loc. AUC A"], np.mean([_auc(1.0, 10, i, False) for i in range(4)]))
    assert math.isclose(row["loc. AUC B"], np.mean([_auc(1.0, 10, i, False)
                                                    for i in range(4, 8)]))


def test_a_ranking_that_reverses_on_the_other_half_is_caught(store):
    make_sweep(store, flip=True)
    from musiclime.report.ranking import per_song_metrics

    df, _ = collect_runs(store)
    _, summary = rank(df, per_song_metrics(store, list(df["run_id"])))
    assert summary["kendall_tau"] < -0.9


def test_the_section_reports_decoys_at_the_defaults_and_pairs_by_estimator(sweep, tmp_path):
    store, _ = sweep
    df, _ = collect_runs(store)
    text = ranking_section(store, df, tmp_path / "page_figures" / "ranking_halves.png")
    assert "**0.280**" in text  # the spread
    # the default row (0.25, 10 segments, lime_ridge) has no decoy; kw 0.1 rows have 50 %
    assert "a decoy is in the top-5 in 0% of the songs" in text
    lines = [line for line in text.splitlines() if line.startswith("| leverage_shap")
             or line.startswith("| lime_ridge")]
    assert lines[0].startswith("| leverage_shap | 1 |") and lines[1].startswith(
        "| lime_ridge | 0.5 |")
    assert (tmp_path / "page_figures" / "ranking_halves.png").stat().st_size > 1000


def test_no_section_without_localisation(store):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    exp = client.create_experiment("musiclime")
    parent = client.create_run(exp).info.run_id
    rid = client.create_run(exp, tags={"mlflow.parentRunId": parent}).info.run_id
    client.log_param(rid, "explainer.kernel_width", "0.25")
    client.log_metric(rid, "deletion_ratio", 0.5)
    client.set_terminated(rid)
    df, _ = collect_runs(store)
    assert ranking_section(store, df) is None
