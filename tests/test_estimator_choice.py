"""explainer.estimator: the surrogate is a fit-stage choice (LIME ridge or Shapley values),
exact on a white-box model, and a sweep over it predicts once."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import KEYWORD_LINE, LYRIC_LINES
from test_explainer import _explain
from test_pipeline import musiclime
from test_workflow import base_overrides, executed_rules, make_corpus

from musiclime.errors import ConfigError
from musiclime.explainer import ExplainerConfig


def test_an_unknown_estimator_is_a_one_line_error():
    with pytest.raises(ConfigError, match="explainer.estimator='shap'.*kernel_shap"):
        ExplainerConfig(estimator="shap")


@pytest.mark.parametrize("name", ["kernel_shap", "leverage_shap"])
def test_shapley_estimators_are_exact_on_the_whitebox_lyrics(song, name):
    """modality=lyrical: 4 lyric lines, all 2^4 masks enumerated. The white-box P(ai) depends
    on the keyword line alone, so its exact Shapley value is f(all) - f(none) and the other
    lines' are 0; efficiency: intercept + sum(weights) = the original's prediction."""
    exp, _ = _explain(song, modality="lyrical", estimator=name, num_samples=64, labels=[0])
    fit = exp.fits[0]
    weights = dict(zip(LYRIC_LINES, fit.weights, strict=True))
    p_all = exp.prediction[0]
    assert fit.intercept + fit.weights.sum() == pytest.approx(p_all, abs=1e-9)
    assert fit.local_pred == pytest.approx(p_all, abs=1e-9)
    assert weights[KEYWORD_LINE] == pytest.approx(p_all - fit.intercept, abs=1e-9)
    assert weights[KEYWORD_LINE] > 0.1
    for line in LYRIC_LINES:
        if line != KEYWORD_LINE:
            assert abs(weights[line]) < 1e-9, (line, weights[line])
    assert exp.params["estimator"] == name
    lime, _ = _explain(song, modality="lyrical", num_samples=64, labels=[0])
    assert not np.allclose(lime.fits[0].weights, fit.weights)  # a different estimator


@pytest.mark.slow
def test_a_sweep_over_estimators_predicts_once(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", n_songs=1)
    results = tmp_path / "results"
    rc, out = musiclime("run", "-m", *base_overrides(
        manifest, results, "tracking.enabled=false", "metrics.enabled=false",
        "explainer.num_samples=60", "explainer.estimator=lime_ridge,kernel_shap"))
    assert rc == 0, out
    rules = executed_rules(out)
    assert rules.count("predict_masks") == 1, rules
    files = sorted(results.glob("fit/**/song0/explanation.json"))
    assert len(files) == 2, files
    by_est = {json.loads(f.read_text())["metadata"]["explanation_params"]["estimator"]:
              json.loads(f.read_text()) for f in files}
    assert set(by_est) == {"lime_ridge", "kernel_shap"}
    shap = next(iter(by_est["kernel_shap"]["explanations"].values()))
    lime = next(iter(by_est["lime_ridge"]["explanations"].values()))
    w_shap = np.array([w["weight"] for w in shap["weights"]])
    w_lime = np.array([w["weight"] for w in lime["weights"]])
    assert not np.allclose(w_shap, w_lime)
    # efficiency: the Shapley values and the base value add up to the original's prediction
    assert shap["intercept"] + w_shap.sum() == pytest.approx(shap["local_prediction"], abs=1e-9)
    p = by_est["kernel_shap"]["metadata"]["prediction"]["probabilities"][shap["label"]]
    assert shap["local_prediction"] == pytest.approx(p, abs=1e-9)
