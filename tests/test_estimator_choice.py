"""explainer.estimator: the surrogate is a fit-stage choice (LIME ridge or Shapley values),
exact on a white-box model, and a sweep over it predicts once."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import KEYWORD_LINE, LYRIC_LINES
from test_explainer import _explain

from musiclime.core.explainer import ExplainerConfig
from musiclime.errors import ConfigError


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


# a sweep over estimators (with samplers and targets) predicting once per sampler:
# tests/test_fewer_calls.py::test_a_sweep_of_samplers_targets_and_estimators_predicts_once_per_sampler
