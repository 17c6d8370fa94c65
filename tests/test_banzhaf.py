"""explainer.estimator=banzhaf: the Banzhaf values by unweighted least squares over uniform masks.

Exact on all 2^F masks (against enumeration, on a game whose Banzhaf and Shapley values
differ), exact on one foldover pair of Plackett-Burman blocks for order-2 games (where the two
values coincide), where LIME's kernel and Bernoulli masks are not; refused with a size-based
sampler; ``explainer.ridge_alpha`` applies; and through ``MusicLIME.explain`` on the white-box
song."""

from __future__ import annotations

from dataclasses import replace
from itertools import product

import numpy as np
import pytest
from test_explainer import _explain

from musiclime.core import samplers
from musiclime.core.estimators import ESTIMATORS, banzhaf, lime_ridge
from musiclime.core.explainer import ExplainerConfig
from musiclime.core.fitting import surrogate_fits
from musiclime.core.hadamard import smallest_order
from musiclime.core.uncertainty import explanation_uncertainty
from musiclime.errors import ConfigError
from musiclime.models.groundtruth import all_masks, make_game

EXACT = replace(banzhaf, ridge_alpha=1e-12)  # no shrinkage: the least-squares coefficients


def banzhaf_by_enumeration(game, n: int) -> np.ndarray:
    """``beta_j = mean over the 2^(F-1) masks of the others of f(j on) - f(j off)``."""
    rest = np.array(list(product([0, 1], repeat=n - 1)), dtype=np.uint8)
    out = np.zeros(n)
    for j in range(n):
        on = np.insert(rest, j, 1, axis=1)
        off = np.insert(rest, j, 0, axis=1)
        out[j] = np.mean(game(on) - game(off))
    return out


def test_banzhaf_is_registered_and_is_limes_ridge_with_equal_weights():
    assert ESTIMATORS["banzhaf"] is banzhaf
    masks = samplers.bernoulli(12, 200, 0)
    d = np.linspace(0.0, 1.0, 7)
    np.testing.assert_array_equal(banzhaf.kernel(d), np.ones(7))
    assert banzhaf.kernel.formula == "w = 1"
    y = make_game("saturating_or", 0, 8, 4)(masks)
    assert not np.allclose(banzhaf(masks, y).weights, lime_ridge(masks, y).weights)


@pytest.mark.parametrize("family", ["saturating_or", "many_small", "interaction"])
def test_all_masks_give_the_banzhaf_values(family):
    game = make_game(family, 1, 8, 3)
    n = game.n_features
    masks = all_masks(n)
    beta = banzhaf_by_enumeration(game, n)
    w = EXACT(masks, game(masks)).weights
    np.testing.assert_allclose(w, beta, atol=1e-9, rtol=0)
    phi = game.shapley()
    if family == "interaction":  # order 2: the Banzhaf and Shapley values coincide
        np.testing.assert_allclose(beta, phi, atol=1e-12, rtol=0)
    else:  # higher orders: they differ, and the estimator finds Banzhaf's
        assert np.abs(beta - phi).max() > 1e-3


def test_one_foldover_pair_is_exact_for_order_two_games():
    """45 features: a Plackett-Burman block has 48 rows; the pair [H; -H] (96 rows) is of
    strength 3, so the unweighted fit gives the exact values of any order-2 game. LIME's
    kernel weighs z and 1 - z differently, and 96 Bernoulli rows are far from orthogonal."""
    game = make_game("interaction", 3, 40, 5)
    n = game.n_features
    pair = 2 * smallest_order(n)
    assert pair == 96
    masks = samplers.plackett_burman_foldover(n, 1 + pair, 0)[1:]  # the pair, without row 0
    phi = game.shapley()
    np.testing.assert_allclose(EXACT(masks, game(masks)).weights, phi, atol=1e-10, rtol=0)
    # alpha = 1 shrinks every weight by the same factor, N / (N + 4 alpha), so ranks hold
    np.testing.assert_allclose(banzhaf(masks, game(masks)).weights, phi * pair / (pair + 4),
                               atol=1e-10, rtol=0)
    err_lime = np.abs(lime_ridge(masks, game(masks)).weights - phi).max()
    bern = samplers.bernoulli(n, 1 + pair, 0)[1:]
    err_bern = np.abs(EXACT(bern, game(bern)).weights - phi).max()
    assert err_lime > 1e-2 and err_bern > 1e-2, (err_lime, err_bern)


def test_a_size_based_sampler_is_refused_in_one_line():
    for sampler in ("kernel", "leverage", "stratified"):
        with pytest.raises(ConfigError, match=f"estimator='banzhaf'.*uniform masks.*'{sampler}'"):
            ExplainerConfig(estimator="banzhaf", sampler=sampler)
    for sampler in ("bernoulli", "paired", "orthogonal_foldover", "plackett_burman_foldover"):
        ExplainerConfig(estimator="banzhaf", sampler=sampler)


def test_ridge_alpha_applies_and_the_kernel_is_recorded():
    game = make_game("many_small", 2, 40, 5)
    n = game.n_features
    cfg = ExplainerConfig(estimator="banzhaf", sampler="plackett_burman_foldover",
                          num_samples=97, ridge_alpha=5.0)
    masks = samplers.plackett_burman_foldover(n, 97, 0)
    p = game(masks)
    probs = np.stack([p, 1 - p], axis=1)
    fits, stats, chosen = surrogate_fits(cfg.fit, masks, probs, [0])
    np.testing.assert_array_equal(fits[0].weights,
                                  replace(banzhaf, ridge_alpha=5.0)(masks, p).weights)
    assert not np.allclose(fits[0].weights, banzhaf(masks, p).weights)
    assert stats.formula.startswith("w = 1") and stats.weight_min == stats.weight_max == 1.0
    assert chosen is None
    unc = explanation_uncertainty(cfg.fit, masks, probs, [0], fits)[0]
    assert np.isfinite(unc.se).all() and (unc.se > 0).all()
    assert "lime" in unc.method


def test_standard_errors_match_the_spread_over_seeds():
    """The sandwich standard error of the Banzhaf weights against their spread over 40 mask
    seeds (Bernoulli rows: independent, as the sandwich assumes) on a saturating game."""
    game = make_game("saturating_or", 4, 40, 5)
    n = game.n_features
    cfg = ExplainerConfig(estimator="banzhaf", num_samples=400)
    weights, ses = [], []
    for seed in range(40):
        masks = samplers.bernoulli(n, 400, seed)
        p = game(masks)
        probs = np.stack([p, 1 - p], axis=1)
        fits, _, _ = surrogate_fits(cfg.fit, masks, probs, [0])
        weights.append(fits[0].weights)
        ses.append(explanation_uncertainty(cfg.fit, masks, probs, [0], fits)[0].se)
    ratio = np.median(np.mean(ses, axis=0) / np.std(weights, axis=0, ddof=1))
    assert 0.75 < ratio < 1.33, ratio


def test_explain_gives_the_banzhaf_value_of_the_keyword_line(song):
    """modality=lyrical on the white-box song: 4 lines, all 16 masks. P(ai) depends on the
    keyword line alone, so its Banzhaf value is P(with it) - P(without it), the others 0."""
    from conftest import KEYWORD_LINE, LYRIC_LINES

    exp, _ = _explain(song, modality="lyrical", estimator="banzhaf", num_samples=64,
                      labels=[0], ridge_alpha=1e-9)
    fit = exp.fits[0]
    weights = dict(zip(LYRIC_LINES, fit.weights, strict=True))
    assert weights[KEYWORD_LINE] > 0.1
    assert fit.intercept + weights[KEYWORD_LINE] == pytest.approx(exp.prediction[0], abs=1e-6)
    for line in LYRIC_LINES:
        if line != KEYWORD_LINE:
            assert abs(weights[line]) < 1e-6, (line, weights[line])
    assert exp.params["estimator"] == "banzhaf"
    assert exp.kernel["formula"].startswith("w = 1")
