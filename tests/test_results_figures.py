"""The results page's figures, from a real MLflow store whose runs have known answers.

One SQLite store holds both sources: the calls benchmark's runs (experiment ``musiclime-calls``,
logged as ``bench/calls.py --mlflow`` logs them) and a sweep's child runs (experiment
``musiclime``: kernel width x target, the cascade in the probability runs only).

Known answers: the baseline is stable (median Jaccard >= 0.8 from there on) at 1024 calls,
paired+kernel_shap at 256 (its stale duplicate run at 256 would make it 512), paired+lime_ridge
at 2048 (it dips below 0.8 at 1024); the white-box error is c * sqrt(64 / calls) with c = 2.4,
0.8, 1.6 (0.3, 0.1, 0.2 at 4096); held-out R^2 peaks at width 1 for probability and 0.25 for
logit, 1 on average; the final sanity rho is 0.10 .. 0.14 over the five probability runs.
"""

from __future__ import annotations

import math
import time

import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from musiclime.cli import main
from musiclime.report.results_figures import (
    BASELINE,
    calls_to_stable,
    collect_calls,
    drawn_methods,
    error_caption,
    kernel_width_caption,
    plot_error_vs_calls,
    plot_kernel_width,
    plot_sanity,
    plot_stability_vs_calls,
    sanity_caption,
    sanity_records,
    stability_caption,
    write_figures,
)
from musiclime.report.results_table import FIGURES_HEADING, collect_runs, write_report

CALLS = (64, 128, 256, 512, 1024, 2048, 4096)
JACCARD = {
    BASELINE: (0.4, 0.5, 0.6, 0.7, 0.85, 0.9, 0.95),  # stable from 1024
    "bernoulli+lime_ridge@logit": (0.45, 0.55, 0.65, 0.75, 0.86, 0.9, 0.95),  # 1024
    "paired+kernel_shap": (0.6, 0.7, 0.82, 0.85, 0.9, 0.95, 0.97),  # 256
    "paired+kernel_shap@logit": (0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97),  # 256
    "paired+lime_ridge": (0.5, 0.6, 0.7, 0.81, 0.79, 0.8, 0.9),  # dips at 1024: 2048
}
ERROR_SCALE = {BASELINE: 2.4, "paired+kernel_shap": 0.8, "paired+lime_ridge": 1.6}
WIDTHS = (0.05, 0.1, 0.25, 1.0, 5.0)
R2 = {"probability": (0.3, 0.5, 0.7, 0.9, 0.8), "logit": (0.4, 0.6, 0.85, 0.8, 0.75)}
SHARE = (0.1, 0.2, 0.6, 0.95, 1.0)
NUM_SAMPLES = 500


def _log(client, exp_id, start_ms, params, metrics, tags):
    run = client.create_run(exp_id, start_time=start_ms, tags=tags)
    rid = run.info.run_id
    client.log_batch(rid, params=[Param(k, str(v)) for k, v in params.items()],
                     metrics=[Metric(k, float(v), start_ms, 0) for k, v in metrics.items()])
    client.set_terminated(rid, "FINISHED", end_time=start_ms + 1000)
    return rid


def _log_calls(client, now_ms):
    exp_id = client.create_experiment("musiclime-calls")
    tags = {"musiclime.bench": "calls"}
    # a stale run of an earlier benchmark, logged last but started a day earlier
    stale = ("paired+kernel_shap", 256, 0.1)
    for m, curve in JACCARD.items():
        base = m.split("@")[0]
        sampler, estimator = base.split("+")
        for n, j in zip(CALLS, curve, strict=True):
            metrics = {"jaccard_top5": j, "stable_songs": 0.5, "evidence_np5": 1.0}
            scale = ERROR_SCALE.get(base)
            if scale is not None:
                for fam in ("additive", "interaction"):
                    metrics[f"wb_{fam}_l2"] = scale * math.sqrt(64 / n) * (
                        1.0 if fam == "additive" else 2.0)
                    metrics[f"wb_{fam}_spearman"] = 0.9
            _log(client, exp_id, now_ms, {
                "method": m, "sampler": sampler, "estimator": estimator,
                "target": "logit" if "@logit" in m else "probability", "calls": n,
                "songs": 4, "seeds": 5}, metrics, tags)
    m, n, j = stale
    _log(client, exp_id, now_ms - 86_400_000, {"method": m, "calls": n}, {"jaccard_top5": j},
         tags)


def _log_sweep(client, now_ms):
    exp_id = client.create_experiment("musiclime")
    parent = client.create_run(exp_id, start_time=now_ms).info.run_id
    i = 0
    for target, r2 in R2.items():
        for w, r, share in zip(WIDTHS, r2, SHARE, strict=True):
            metrics = {"heldout_r2": r, "kernel_effective_samples": share * NUM_SAMPLES,
                       "surrogate_r2": r + 0.05, "kernel_weight_min": share / 2}
            if target == "probability":
                final = 0.10 + 0.01 * i
                i += 1
                for d, rho in ((0, 1.0), (3, 0.7), (5, 0.5), (8, 0.3), (10, final)):
                    metrics[f"sanity_spearman_depth{d}"] = rho
                    metrics[f"sanity_spearman_abs_depth{d}"] = min(1.0, rho + 0.2)
                metrics.update({"sanity_spearman_final": final,
                                "sanity_spearman_abs_final": final + 0.2,
                                "sanity_spearman_final_std": 0.05,
                                "sanity_layer_count": 10})
            _log(client, exp_id, now_ms, {
                "explainer.kernel_width": w, "explainer.num_samples": NUM_SAMPLES,
                "explainer.target": target, "explainer.modality": "both",
                "separator.name": "demo", "n_songs": 4}, metrics,
                {"mlflow.parentRunId": parent})
    client.set_terminated(parent, "FINISHED")
    return parent


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """``(uri, parent run id)`` of the store with both sources."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    now_ms = int(time.time() * 1000)
    _log_calls(client, now_ms)
    return uri, _log_sweep(client, now_ms)


@pytest.fixture(scope="module")
def calls(store):
    return collect_calls(store[0])


@pytest.fixture(scope="module")
def sweep(store):
    return collect_runs(store[0], "musiclime", store[1])[0]


def test_collect_calls_keeps_the_newest_run_per_method_and_count(calls):
    assert len(calls) == len(JACCARD) * len(CALLS)
    assert not calls.duplicated(["method", "calls"]).any()
    row = calls[(calls.method == "paired+kernel_shap") & (calls.calls == 256)].iloc[0]
    assert row["jaccard_top5"] == 0.82  # not the stale run's 0.1
    assert calls["calls"].dtype.kind == "i"


def test_stability_caption_names_the_calls_to_stable(calls):
    needed = calls_to_stable(calls)
    assert needed[BASELINE] == 1024 and needed["paired+kernel_shap"] == 256
    assert needed["paired+lime_ridge"] == 2048  # 0.81 at 512 does not count: it dips after
    caption = stability_caption(calls)
    assert "baseline bernoulli+lime_ridge needs 1024 calls" in caption
    # paired+kernel_shap and its @logit variant both need 256: the higher mean Jaccard wins
    assert "best other method, paired+kernel_shap, needs 256 calls (0.25 x" in caption
    never = calls.assign(jaccard_top5=calls.jaccard_top5.where(calls.method != BASELINE, 0.5))
    assert "baseline bernoulli+lime_ridge needs more than 4096 calls" in stability_caption(never)


def test_stability_figure_draws_every_method_and_the_baseline_bold(calls):
    ax = plot_stability_vs_calls(calls).axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines() if ln.get_gid() == "calls-curve"}
    assert set(lines) == {f"{BASELINE} (baseline)", *(m for m in JACCARD if m != BASELINE)}
    base = lines[f"{BASELINE} (baseline)"]
    assert base.get_color() == "k" and base.get_linewidth() > max(
        ln.get_linewidth() for name, ln in lines.items() if name != f"{BASELINE} (baseline)")
    assert list(base.get_ydata()) == list(JACCARD[BASELINE])
    assert any(list(ln.get_ydata()) == [0.8, 0.8] for ln in ax.get_lines())  # "stable"
    assert ax.get_xscale() == "log"


def test_error_figure_draws_base_methods_only_and_names_the_lowest_error(calls):
    methods, hidden = drawn_methods(calls)
    assert hidden == ["bernoulli+lime_ridge@logit", "paired+kernel_shap@logit"]
    assert methods == [BASELINE, "paired+kernel_shap", "paired+lime_ridge"]
    fig = plot_error_vs_calls(calls)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["additive", "interaction"]
    for ax in axes:
        labels = {ln.get_label() for ln in ax.get_lines() if ln.get_gid() == "error-curve"}
        assert labels == {f"{BASELINE} (baseline)", "paired+kernel_shap", "paired+lime_ridge"}
        assert ax.get_yscale() == "log"
    caption = error_caption(calls)
    assert "additive paired+kernel_shap 0.1 at 4096 (baseline 0.3)" in caption
    assert "interaction paired+kernel_shap 0.2 at 4096 (baseline 0.6)" in caption
    assert "bernoulli+lime_ridge@logit, paired+kernel_shap@logit" in caption


def test_collect_runs_reads_the_target_and_the_sanity_keys(sweep):
    assert set(sweep["target"]) == {"probability", "logit"}
    assert "sanity_spearman_depth10" in sweep and "sanity_layer_count" in sweep
    assert "sanity_spearman_final_std" not in sweep


def test_kernel_width_figure_and_caption(sweep):
    fig = plot_kernel_width(sweep)
    left, right = fig.axes[:2]
    lines = {ln.get_label(): ln for ln in left.get_lines() if ln.get_gid() == "width-curve"}
    assert set(lines) == {"target=probability", "target=logit"}
    assert list(lines["target=logit"].get_ydata()) == list(R2["logit"])
    shares = [ln.get_ydata() for ln in right.get_lines() if ln.get_gid() == "width-curve"]
    assert [list(s) for s in shares] == [list(SHARE)] * 2
    caption = kernel_width_caption(sweep)
    assert caption.startswith("Held-out R² (mean over the runs at each width) is highest at "
                              "kernel width 1 (0.85, keeping 95% of the samples' weight)")
    assert "the narrowest, 0.05, gets 0.35, keeping 10%" in caption
    assert "best width by target: logit 0.25, probability 1" in caption


def test_sanity_figure_has_one_curve_per_configuration_with_the_cascade(sweep):
    records = sanity_records(sweep)
    assert len(records) == 5  # the logit runs carry no cascade
    ax = plot_sanity(sweep).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["Spearman(w, w₀), mean of 5 configurations",
                      "Spearman(|w|, |w₀|), mean of 5 configurations"]
    caption = sanity_caption(sweep)
    assert caption.startswith("With all 10 layers re-initialised from the output down "
                              "(4 cascade steps)")
    assert "is 0.12 (mean over 5 configurations, range 0.10 to 0.14), 0.32 for |w|" in caption


def test_results_page_embeds_the_four_figures(store, tmp_path):
    uri, parent = store
    out = tmp_path / "docs" / "results.md"
    assert main(["results", "--uri", uri, "--parent", parent, "--out", str(out),
                 "--command-text", "musiclime run sweep=calls"]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.index("## Every configuration") < page.index(FIGURES_HEADING)
    figures = page.split(FIGURES_HEADING)[1]
    for name in ("stability_vs_calls", "error_vs_calls", "kernel_width", "sanity_cascade"):
        png = tmp_path / "docs" / "results_figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert png.stat().st_size > 5000, name
        ref = f"(results_figures/{name}.png)"
        assert ref in figures, name
        caption = figures.split(ref)[1].strip().split("\n")[0]  # the line under the image
        assert len(caption) > 40 and not caption.startswith(("!", "#")), name
    assert "Not drawn" not in figures
    # the swept target keys the tables' rows
    main_table = page.split("## Main table")[1].split("##")[0]
    assert "| target |" in main_table.replace("| kernel_width", "|")


def test_figures_without_data_become_notes_and_their_old_pngs_go(store, sweep, calls,
                                                                tmp_path):
    out = tmp_path / "results.md"
    write_figures(out, sweep, calls)
    folder = tmp_path / "results_figures"
    assert len(list(folder.glob("*.png"))) == 4
    no_sanity = sweep.drop(columns=[c for c in sweep if c.startswith("sanity_")])
    md = write_figures(out, no_sanity, collect_calls(store[0], "no-such-experiment"))
    assert sorted(p.name for p in folder.glob("*.png")) == ["kernel_width.png"]
    assert md.count("*Not drawn:*") == 3
    assert md.count("`python bench/calls.py --mlflow URI`") == 2
    assert "`metrics.sanity=true`" in md and "sweep=calls" in md
    # the wide-kernel half only: one width cannot show a width effect
    md = write_figures(out, sweep[sweep.kernel_width == 5.0], calls)
    assert "### Kernel width" in md and "two or more kernel widths" in md


def test_no_figures_writes_the_tables_only(store, tmp_path):
    out = tmp_path / "results.md"
    write_report(store[0], out, parent_run_id=store[1], figures=False)
    assert FIGURES_HEADING not in out.read_text(encoding="utf-8")
    assert not (tmp_path / "results_figures").exists()
