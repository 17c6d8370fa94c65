"""Fewer classifier calls: explainer.sampler, explainer.target and num_samples=auto, in the
library and in the workflow (issue "Fewer classifier calls for the same explanation")."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import KEYWORD_LINE, write_song
from test_explainer import _explain
from test_pipeline import all_weights, musiclime
from test_workflow import base_overrides, executed_rules, make_corpus

from musiclime.core.adaptive import bootstrap_stability, check_points, mean_pairwise_jaccard
from musiclime.core.explainer import ExplainerConfig, make_masks
from musiclime.core.masks import sample_masks
from musiclime.core.samplers import SAMPLERS
from musiclime.core.targets import EPS, logit, transform
from musiclime.errors import ConfigError

GAIN = 4.0  # the white-box classifier's audio_gain and lyrics_gain (its logit is additive)


def names(exp):
    return [exp.features[int(c)].name for c in exp.columns]


# --- targets -----------------------------------------------------------------------------------
def test_logit_target_values():
    p = np.array([0.5, 0.9, 0.1, 0.0, 1.0])
    y = logit(p)
    assert y[0] == 0.0
    assert y[1] == pytest.approx(np.log(9.0)) and y[2] == pytest.approx(-np.log(9.0))
    assert np.isfinite(y).all() and y[4] == pytest.approx(np.log((1 - EPS) / EPS))
    assert np.array_equal(transform("probability", p), p)
    with pytest.raises(ValueError, match="unknown target 'odds'"):
        transform("odds", p)


def test_kernel_shap_on_the_logit_recovers_the_logistic_whitebox_gains(song):
    """The white-box P(ai) = sigmoid(4 [tone] + 4 [keyword] - 4): on the logit it is additive
    in two features, so its Shapley values are the gains, 4 and 4, and ~0 elsewhere. On the
    probability they are not (the sigmoid couples the two)."""
    exp, _ = _explain(song, estimator="kernel_shap", target="logit", num_samples=200,
                      labels=[0])
    w = dict(zip(names(exp), exp.fits[0].weights, strict=True))
    assert w[KEYWORD_LINE] == pytest.approx(GAIN, abs=0.02)
    assert w[song.tone_feature] == pytest.approx(GAIN, abs=0.02)
    others = [abs(v) for k, v in w.items() if k not in (KEYWORD_LINE, song.tone_feature)]
    assert max(others) < 0.02
    # efficiency on the logit scale: base value + sum = the original's log-odds
    assert exp.fits[0].local_pred == pytest.approx(logit(np.array(exp.prediction[0])), abs=1e-9)
    assert exp.params["target"] == "logit"
    prob, _ = _explain(song, estimator="kernel_shap", num_samples=200, labels=[0])
    wp = dict(zip(names(prob), prob.fits[0].weights, strict=True))
    assert 0.3 < wp[KEYWORD_LINE] < 0.6  # probability-scale Shapley values, not the gains


def test_unknown_sampler_target_or_num_samples_is_a_one_line_error():
    with pytest.raises(ConfigError, match="explainer.sampler='sobol'.*paired"):
        ExplainerConfig(sampler="sobol")
    with pytest.raises(ConfigError, match="explainer.target='odds'.*logit"):
        ExplainerConfig(target="odds")
    with pytest.raises(ConfigError, match="explainer.num_samples='many'.*auto"):
        ExplainerConfig(num_samples="many")
    with pytest.raises(ConfigError, match="explainer.auto_target=1.5"):
        ExplainerConfig(num_samples="auto", auto_target=1.5)
    ExplainerConfig(auto_target=1.5)  # ignored unless num_samples=auto


# --- samplers ----------------------------------------------------------------------------------
def test_bernoulli_sampler_is_todays_masks_and_others_keep_the_prefix(song):
    exp, s = _explain(song, num_samples=40)
    table = s.feature_table
    masks, layout = make_masks(table, ExplainerConfig(num_samples=300))
    assert np.array_equal(masks, sample_masks(layout.n_columns, 300, 0))
    for name in SAMPLERS:
        big, _ = make_masks(table, ExplainerConfig(sampler=name, seed=3, num_samples=300))
        small, _ = make_masks(table, ExplainerConfig(sampler=name, seed=3, num_samples=101))
        assert np.array_equal(big[:101], small), name
        assert big[0].all(), name


def test_paired_masks_explain_with_pairs(song):
    exp, _ = _explain(song, sampler="paired", num_samples=64)
    assert exp.params["sampler"] == "paired"
    assert exp.num_samples == 64


# --- num_samples=auto --------------------------------------------------------------------------
def test_bootstrap_stability_of_a_clear_and_of_a_noisy_signal():
    rng = np.random.default_rng(0)
    masks = (rng.random((200, 20)) < 0.5).astype(np.uint8)
    coef = np.zeros(20)
    coef[:5] = [5, 4, 3, 2, 1.5]

    def fit(m, v):
        x = np.c_[np.ones(len(m)), m]
        return np.linalg.lstsq(x, v, rcond=None)[0][1:]

    clear = masks @ coef
    assert bootstrap_stability(masks, clear, fit, top_k=5, resamples=8,
                               rng=np.random.default_rng(1)) == 1.0
    noisy = rng.standard_normal(200)  # no signal: top-5 sets of resamples disagree
    j = bootstrap_stability(masks, noisy, fit, top_k=5, resamples=8,
                            rng=np.random.default_rng(1))
    assert j < 0.6
    assert mean_pairwise_jaccard([frozenset({1, 2}), frozenset({2, 3})]) == pytest.approx(1 / 3)
    assert check_points(128, 1000) == [128, 256, 384, 512, 640, 768, 896, 1000]
    assert check_points(16, 100) == [32, 48, 64, 80, 96, 100]


def test_auto_stops_early_on_a_clear_explanation_and_records_it(song):
    """Two features carry the white-box's whole output, so its top-2 is stable at once (its
    top-5 is not: three of five would be picked among exact zeros)."""
    kw = dict(num_samples="auto", auto_block=64, auto_budget=1024, auto_top_k=2)
    exp, _ = _explain(song, **kw)
    auto = exp.params["auto"]
    assert auto["reached"] and auto["stability"] == 1.0
    assert auto["calls"] == exp.num_samples == 64
    assert auto["trace"] == [[64, 1.0]]
    top2 = set(np.array(names(exp))[np.argsort(-exp.fits[0].weights)[:2]])
    assert top2 == {KEYWORD_LINE, song.tone_feature}
    again, _ = _explain(song, **kw)
    assert np.array_equal(again.fits[0].weights, exp.fits[0].weights)
    # the same rows as a fixed num_samples of that count (the prefix property)
    fixed, _ = _explain(song, num_samples=64)
    assert np.array_equal(fixed.fits[0].weights, exp.fits[0].weights)
    assert "auto" not in fixed.params and "auto_budget" not in fixed.params


def test_auto_warns_when_the_budget_runs_out(song):
    exp, _ = _explain(song, num_samples="auto", auto_block=32, auto_budget=96, auto_top_k=20,
                      auto_target=1.0)
    auto = exp.params["auto"]
    assert auto["calls"] == 96 and [n for n, _ in auto["trace"]] == [32, 64, 96]
    assert auto["stability"] < 1.0 and not auto["reached"]
    assert any("num_samples=auto used its whole budget of 96" in w for w in exp.warnings)


# --- the workflow ------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_sweep_of_samplers_targets_and_estimators_predicts_once_per_sampler(tmp_path):
    """Estimator and target are fit-stage choices, the sampler a masks-stage one: 8 points,
    2 prediction runs; the sampler's and target's path parts appear only off their defaults."""
    manifest = make_corpus(tmp_path / "corpus", n_songs=1)
    results = tmp_path / "results"
    rc, out = musiclime("run", "-m", *base_overrides(
        manifest, results, "tracking.enabled=false", "metrics.enabled=false",
        "explainer.num_samples=60", "explainer.sampler=bernoulli,paired",
        "explainer.target=probability,logit", "explainer.estimator=lime_ridge,kernel_shap"))
    assert rc == 0, out
    rules = executed_rules(out)
    assert rules.count("predict_masks") == 2, rules  # one per sampler, shared by 4 points each
    assert rules.count("generate_masks") == 2, rules
    masks = sorted(p.relative_to(results).as_posix() for p in results.glob("masks/**/*.npy"))
    assert sum("smp~paired" in m for m in masks) == 1 and sum("smp~" in m for m in masks) == 1
    files = sorted(results.glob("fit/**/song0/explanation.json"))
    assert len(files) == 8, files
    records = {}
    for f in files:
        d = json.loads(f.read_text())
        params = d["metadata"]["explanation_params"]
        records[params["sampler"], params["target"], params["estimator"]] = d
        assert ("tgt~logit" in f.as_posix()) == (params["target"] == "logit")
        assert ("est~kernel_shap" in f.as_posix()) == (params["estimator"] == "kernel_shap")
    assert set(records) == {(s, t, e) for s in ("bernoulli", "paired")
                            for t in ("probability", "logit")
                            for e in ("lime_ridge", "kernel_shap")}

    def fit_of(key):
        d = records[key]
        fit = next(iter(d["explanations"].values()))
        return fit, np.array([w["weight"] for w in fit["weights"]]), d

    for sampler in ("bernoulli", "paired"):
        shap, w_shap, d = fit_of((sampler, "probability", "kernel_shap"))
        _, w_lime, _ = fit_of((sampler, "probability", "lime_ridge"))
        assert not np.allclose(w_shap, w_lime)
        # efficiency: the Shapley values and the base value add up to the original's prediction
        p = d["metadata"]["prediction"]["probabilities"][shap["label"]]
        assert shap["intercept"] + w_shap.sum() == pytest.approx(p, abs=1e-9)
        assert shap["local_prediction"] == pytest.approx(p, abs=1e-9)
        shap_logit, w_logit, _ = fit_of((sampler, "logit", "kernel_shap"))
        assert shap_logit["local_prediction"] == pytest.approx(logit(np.array(p)), abs=1e-9)


@pytest.mark.slow
def test_auto_gives_the_same_explanation_from_explain_and_run(tmp_path):
    """num_samples=auto with the demo classifier on a 4 s song: both doors stop at the same
    count with the same weights, and MLflow records the calls and the stability."""
    song = write_song(tmp_path / "song", seconds=4.0, sr=22050, tone_segment=6)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "song0.flac").write_bytes(song.flac_path.read_bytes())
    (corpus / "song0.txt").write_text(song.lyrics_path.read_text())
    (corpus / "manifest.csv").write_text("song_id,audio_path,lyrics_path\n"
                                         "song0,song0.flac,song0.txt\n")
    settings = ["explainer.num_samples=auto", "explainer.auto_block=32",
                "explainer.auto_budget=256", "explainer.target=logit", "metrics.enabled=false"]
    rc, out = musiclime("explain", str(corpus / "song0.flac"), "--lyrics",
                        str(corpus / "song0.txt"), "--out", str(tmp_path / "explain"), "--quiet",
                        *settings)
    assert rc == 0, out
    results = tmp_path / "results"
    rc, out = musiclime("run", f"results_root={results}",
                        f"dataset.manifest={corpus / 'manifest.csv'}", "dataset.split=null",
                        *settings)
    assert rc == 0, out
    [run_json] = results.glob("fit/**/song0/explanation.json")
    assert "auto~" in run_json.as_posix() and "n~auto" in run_json.as_posix()
    a, b = all_weights(tmp_path / "explain" / "explanation.json"), all_weights(run_json)
    assert a.keys() == b.keys()
    for label in a:
        assert np.array_equal(a[label], b[label]), label
    pa, pb = (json.loads(p.read_text())["metadata"]["explanation_params"]["auto"]
              for p in (tmp_path / "explain" / "explanation.json", run_json))
    assert pa == pb and 32 <= pa["calls"] <= 256
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    [exp] = [e for e in client.search_experiments() if e.name == "musiclime"]
    runs = [r for r in client.search_runs([exp.experiment_id])
            if "musiclime.point_id" in r.data.tags]
    assert len(runs) == 1, [r.data.tags for r in runs]
    m = runs[0].data.metrics
    assert m["auto_calls"] == pa["calls"]
    assert m["auto_stability"] == pytest.approx(pa["stability"])
    assert m["auto_reached"] == float(pa["reached"])
