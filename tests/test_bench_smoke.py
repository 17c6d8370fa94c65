"""Smoke test of the benchmark's library-level parts (bench/run.py, bench/reference.py) on tiny
inputs: the reference stand-in agrees with musiclime on the same masks, the sweep replay shares
one prediction, and the predict_masks flags change speed, not results."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("musiclime_bench_run", BENCH / "run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def demo(bench):
    return bench.load_demo(allow_untrained=True)


def test_reference_matches_musiclime_on_same_masks(bench):
    clip = bench.synthetic_clip(2.0, 8000)
    clf = bench.EnergyClassifier(8000)
    ml = bench.explain_once("musiclime", clf, clip, 80)
    ref = bench.explain_once("reference", clf, clip, 80)
    assert ml["n_features"] == ref["n_features"] == 40 + 12
    assert np.allclose(ml["prediction"], ref["prediction"], atol=1e-6)
    agree = bench.compare_weights(ml, ref)["1"]
    assert agree["pearson"] > 0.9999 and agree["top5_overlap"] == 5
    assert agree["max_abs_diff"] < 1e-4 * max(1.0, agree["max_abs_weight"])
    assert ref["waveform_list_mb"] == pytest.approx(80 * 16000 * 4 / 2**20)
    ov = bench.overhead_of(ml)
    assert ov["ratio"] >= 1.0 and np.isfinite(ov["ratio"])


def test_sweep_replay_shares_one_prediction(bench, demo):
    songs = bench.synthetic_songs(2, 1.0, demo.sample_rate)
    res = bench.sweep_library(songs, demo, [0.1, 0.25, 1.0], [20, 40, 80], log=lambda m: None)
    assert res["prefix_max_abs_prob_diff"] < 1e-5
    assert 1.0 <= res["ratio"] < res["naive_ratio"]
    assert len(res["per_song"]) == 2


def test_reuse_flags_change_speed_not_results(bench, demo):
    from musiclime import ExplainerConfig, factorize

    rate = demo.sample_rate
    c = bench.synthetic_clip(1.0, rate, n_lines=8)
    song = factorize(c["mix"], c["stems"], rate, c["lyrics"], ExplainerConfig(), song_id="s")
    c4 = bench.synthetic_clip(1.0, rate, seed=1, n_lines=4)
    small = factorize(c4["mix"], c4["stems"], rate, c4["lyrics"], ExplainerConfig(),
                      song_id="small")
    res = bench.reuse_speedups(demo, song, 24, small, 40)
    for r in res.values():
        assert r["max_abs_prob_diff"] < 1e-5, r
        assert r["on_s"] > 0 and r["off_s"] > 0
    assert res["dedup_lyrical"]["unique_rows"] <= 16 < res["dedup_lyrical"]["rows"]
    results = {"settings": {"seconds": 1.0}, "reuse": res,
               "overhead": {"classifier": "demo", "num_samples": 24, "ratio": 1.05,
                            "compose_s": 0.1, "lyrics_compose_s": 0.0, "other_s": 0.0}}
    text = bench.table(results)
    assert "reuse_constant_modality (lyrical" in text and "MET" in text


@pytest.fixture(scope="module")
def calls():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("musiclime_bench_calls", BENCH / "calls.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_calls_bench_last_line_and_ratio(calls):
    """bench/calls.py's report on made-up weights whose stability is known: the baseline's
    seeds agree from 256 calls on, another method's from 64; its last line is the issue's."""
    settings = calls.Settings(songs=2, calls=[64, 128, 256], error_calls=[64],
                              methods=[calls.BASELINE, "paired+lime_ridge@auto"])
    f = 12
    stable = np.tile(np.arange(f, 0, -1, dtype=float), (5, 3, 1))  # every seed: same ranking
    shaky = stable.copy()
    rng = np.random.default_rng(0)
    shaky[:, :2] = rng.standard_normal((5, 2, f))  # 64 and 128 calls: random rankings
    demo = {"weights": {calls.BASELINE: {"a": shaky, "b": shaky},
                        "paired+lime_ridge@auto": {"a": stable, "b": stable}},
            "evidence": {calls.BASELINE: {"a": [1.0, 1.0, 0.9]},
                         "paired+lime_ridge@auto": {"a": [0.9, 1.0, 1.0]}},
            "labels": {"a": "ai", "b": "human"}, "predict_s": 0.0}
    summary = calls.summarise(settings, demo)
    assert summary[calls.BASELINE]["median"] == 256
    assert summary["paired+lime_ridge@auto"]["median"] == 64
    white = {m: {"errors": {"64": {"additive": {"spearman": 1.0, "top5_recall": 1.0,
                                                "l2": 0.1 if m != calls.BASELINE else 0.0}}},
                 "median": 64.0, "by_family": {"additive": 64.0}} for m in settings.methods}
    lines = calls.report(settings, summary, white, demo)
    assert lines[-1] == ("samples-to-stability: bernoulli 256 calls, best "
                         "paired+lime_ridge@auto 64 calls, ratio 0.25")
    # before it: where the best method is worse than the default, in evidence and white-box
    assert lines[-5:-1] == [
        "best (paired+lime_ridge@auto) against the default (bernoulli+lime_ridge):",
        "  evidence nP@5 at equal calls: lower at 64 (-0.10)",
        "  evidence nP@5 at each one's stable count: 0.90 at 64 calls against 0.90 at 256",
        "  white-box error: worse in additive l2 at 64 calls: 0.10 vs 0.00"]


@pytest.fixture(scope="module")
def deletion_bound():
    spec = importlib.util.spec_from_file_location("musiclime_bench_deletion_bound",
                                                  BENCH / "deletion_bound.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_deletion_bound_orderings(deletion_bound):
    """bench/deletion_bound.py on a logistic game of the mask: the explanation's numbers are the
    metric's, the evidence-first ordering beats a noisy ranking, and the greedy ordering (exact
    here: the game is monotone and additive inside the sigmoid) is the best of the three."""
    from musiclime.metrics.deletion import deletion_curve

    f = 14
    w = np.zeros(f)
    w[[3, 9]] = 4.0  # the planted evidence
    w[[0, 1, 2]] = [0.5, -0.3, 0.2]
    truth = w > 1

    def predict(masks):
        p = 1 / (1 + np.exp(-(masks @ w - 3.0)))
        return np.stack([1 - p, p], axis=1)

    noisy = w + np.random.default_rng(0).normal(0, 2.0, f)
    out = deletion_bound.deletion_bounds(noisy, predict, 1, truth)
    ref = deletion_curve(noisy, predict, 1)
    assert out["expl_auc"] == pytest.approx(ref.auc) and out["expl_ratio"] == pytest.approx(
        ref.ratio)
    assert out["p_on"] == pytest.approx(predict(np.ones((1, f)))[0, 1])
    assert out["p_off"] == pytest.approx(predict(np.zeros((1, f)))[0, 1])
    assert out["p_no_evidence"] == pytest.approx(predict((~truth)[None].astype(float))[0, 1])
    assert sorted(out["greedy_order"][:2]) == [3, 9]
    assert out["greedy_ratio"] <= out["truth_ratio"] + 1e-12
    assert out["greedy_ratio"] <= out["expl_ratio"] + 1e-12
    assert out["greedy_floor_ratio"] == pytest.approx(
        (out["greedy_auc"] - out["p_off"]) / (out["random_auc"] - out["p_off"]))
    summary = deletion_bound.summarise([{**out, "song_id": "a", "true_label": "ai",
                                         "explained": "ai"}])
    assert summary["ai"]["greedy_ratio"] == pytest.approx(out["greedy_ratio"])
    assert len(deletion_bound.report([{**out, "song_id": "a", "true_label": "ai",
                                       "explained": "ai"}], summary)) == 7


def test_calls_bench_count_grid_and_shapiq_counts(calls):
    """The default grid has the halfway counts; a shapiq method runs only up to
    shapiq_max_calls, is read on those counts (">256" when never stable), and its distinct
    rows per count are reported."""
    assert calls.Settings().calls == [64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
                                      3072, 4096]
    assert max(calls.Settings.quick().calls) == 512
    m = "shapiq+kernel_shap"
    settings = calls.Settings(songs=1, calls=[64, 128, 256, 512], error_calls=[64],
                              methods=[calls.BASELINE, m], shapiq_max_calls=256)
    assert settings.method_calls(m) == [64, 128, 256]
    assert settings.method_calls(calls.BASELINE) == [64, 128, 256, 512]
    f = 12
    stable = np.tile(np.arange(f, 0, -1, dtype=float), (5, 4, 1))
    shaky = stable.copy()
    shaky[:, :1] = np.random.default_rng(0).standard_normal((5, 1, f))  # only 64 shaky
    shaky[:, 3] = np.nan  # 512: not run
    demo = {"weights": {calls.BASELINE: {"a": stable}, m: {"a": shaky}},
            "evidence": {calls.BASELINE: {}, m: {}}, "labels": {"a": "human"},
            "predict_s": 0.0, "rows": {m: {"a": [[64, 128, 250, 0]] * 5}}}
    summary = calls.summarise(settings, demo)
    assert summary[m]["median"] == 128 and summary[m]["calls"] == [64, 128, 256]
    assert np.isnan(summary[m]["median_jaccard"][3]) and summary[m]["rows"][2] == 250
    white = {k: {"errors": {"64": {"additive": {"spearman": 1.0, "top5_recall": 1.0,
                                                "l2": 0.0}}},
                 "median": 64.0, "by_family": {"additive": 64.0 if k != m else float("nan")}}
             for k in settings.methods}
    lines = calls.report(settings, summary, white, demo)
    assert any(line.startswith(m) and line.split()[1:] == ["64", "128", "250", "-"]
               for line in lines)
    assert lines[-1] == ("samples-to-stability: bernoulli 64 calls, best shapiq+kernel_shap "
                         "128 calls, ratio 2.00")


def test_shapiq_values_on_a_white_box_game(calls):
    """shapiq's paired KernelSHAP is exact on an additive game from a budget that holds the
    border sizes; the calls are the distinct rows it evaluated."""
    import stability as wb

    from musiclime.models.groundtruth import make_game

    game = make_game("additive", seed=1000, n_audio=8, n_lyrics=4)
    for name in wb.SHAPIQ:
        w, rows = wb.shapiq_values(name, game, game.n_features, 40, seed=0)
        assert 2 <= rows <= 40
        assert np.allclose(w, game.shapley(), atol=1e-6), name
