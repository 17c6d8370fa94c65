"""Attribution estimators against exact answers: LIME equals fit_ridge, Kernel SHAP on all masks
recovers the closed-form Shapley values, efficiency is exact, Leverage SHAP converges, and the
white-box games' closed forms match enumeration."""

from __future__ import annotations

import numpy as np
import pytest

from musiclime.core import samplers
from musiclime.core.estimators import (
    ESTIMATORS,
    KernelSHAP,
    LeverageSHAP,
    LimeRidge,
    estimate,
    get_estimator,
    kernel_shap,
    leverage_shap,
    lime_ridge,
    shapley_kernel,
    shapley_regression,
    shapley_row_weights,
)
from musiclime.core.surrogate import ExponentialKernel, fit_ridge
from musiclime.models.groundtruth import (
    FAMILIES,
    GroundTruthGame,
    ThresholdGroup,
    all_masks,
    exact_shapley,
    feature_names,
    make_game,
)

SHAPLEY_ESTIMATORS = [kernel_shap, leverage_shap, KernelSHAP(weighting="stratified")]


def additive(f=8):
    return GroundTruthGame(coef=np.array([0.3, -0.2, 0.15, 0.05, 0.0, -0.07, 0.11, 0.02])[:f],
                           bias=0.25)


# --- LIME --------------------------------------------------------------------------------------
def test_lime_ridge_equals_fit_lime():
    game = make_game("saturating_or", 0, 40, 5)
    masks = samplers.bernoulli(45, 300, 0)
    y = game(masks)
    probs = np.stack([y, 1 - y], axis=1)
    fits, _ = fit_ridge(masks, probs, [0, 1])
    for label in (0, 1):
        a = lime_ridge(masks, probs[:, label])
        np.testing.assert_array_equal(a.weights, fits[label].weights)
        assert a.base_value == fits[label].intercept and a.score == fits[label].score
        assert a.estimator == "lime_ridge"
    kernel = ExponentialKernel(25, 100)
    custom = LimeRidge(kernel=kernel, ridge_alpha=0.5)(masks, y)
    ref, _ = fit_ridge(masks, probs, [0], kernel, ridge_alpha=0.5)
    np.testing.assert_array_equal(custom.weights, ref[0].weights)
    both = estimate(lime_ridge, masks, probs, [0, 1])
    np.testing.assert_array_equal(both[1].weights, fits[1].weights)


# --- Kernel SHAP on all masks --------------------------------------------------------------------
@pytest.mark.parametrize("estimator", SHAPLEY_ESTIMATORS, ids=lambda e: e.name + "-"
                         + getattr(e, "weighting", "stratified"))
def test_all_masks_recover_additive_coefficients_exactly(estimator):
    game = additive()
    masks = all_masks(8)
    rng = np.random.default_rng(0)
    masks = masks[rng.permutation(len(masks))]  # row order does not matter
    y = game(masks)
    a = estimator(masks, y)
    np.testing.assert_allclose(a.weights, game.coef, atol=1e-10, rtol=0)
    assert abs(a.weights.sum() - (game(np.ones((1, 8)))[0] - game.bias)) < 1e-12  # efficiency
    assert a.base_value == pytest.approx(0.25, abs=1e-15)
    assert a.score == pytest.approx(1.0, abs=1e-12)
    assert a.info["empty_value_known"]


@pytest.mark.parametrize("estimator", SHAPLEY_ESTIMATORS, ids=lambda e: e.name + "-"
                         + getattr(e, "weighting", "stratified"))
def test_all_masks_split_an_and_equally(estimator):
    # an AND of a stem-segment (column 2) and a lyric line (column 7), worth 0.6, plus a linear
    # part: each member gets 0.3 on top of its coefficient
    coef = np.array([0.0, 0.1, 0.05, 0.0, -0.04, 0.0, 0.0, 0.02])
    game = GroundTruthGame(coef=coef, bias=0.1, groups=[ThresholdGroup((2, 7), 2, 0.6)])
    expected = coef.copy()
    expected[[2, 7]] += 0.3
    np.testing.assert_allclose(game.shapley(), expected, atol=1e-15)
    masks = all_masks(8)
    a = estimator(masks, game(masks))
    np.testing.assert_allclose(a.weights, expected, atol=1e-10, rtol=0)
    assert abs(a.weights.sum() + a.base_value - game(np.ones((1, 8)))[0]) < 1e-12


def test_all_masks_give_exact_shapley_for_every_family():
    for family in FAMILIES:
        game = make_game(family, 0, 8, 4)
        masks = all_masks(game.n_features)
        phi = leverage_shap(masks, game(masks)).weights
        np.testing.assert_allclose(phi, game.shapley(), atol=1e-10, rtol=0)


def test_paired_sampling_is_exact_for_order_two_games():
    # Shapley regression on complement pairs has no error for interactions of order <= 2 once
    # the design has full rank (Covert & Lee 2021): 128 of 2^45 masks suffice
    game = make_game("interaction", 3, 40, 5)
    for sampler in (samplers.paired, samplers.leverage, samplers.kernel):
        masks = sampler(45, 128, 0)
        phi = leverage_shap(masks, game(masks)).weights
        np.testing.assert_allclose(phi, game.shapley(), atol=1e-10, rtol=0)
    masks = samplers.stratified(45, 128, 0)  # unpaired: not exact
    assert np.abs(leverage_shap(masks, game(masks)).weights - game.shapley()).max() > 1e-3


# --- efficiency and f(none) ----------------------------------------------------------------------
@pytest.mark.parametrize("sampler", sorted(samplers.SAMPLERS))
def test_efficiency_exact_on_samples(sampler):
    game = make_game("many_small", 1, 40, 5)
    masks = samplers.SAMPLERS[sampler](45, 200, 2)
    y = game(masks)
    for estimator in SHAPLEY_ESTIMATORS:
        a = estimator(masks, y)
        assert abs(a.base_value + a.weights.sum() - y[0]) < 1e-12
        if (masks.sum(axis=1) == 0).any():
            assert a.base_value == game.base_value and a.info["empty_value_known"]


def test_without_the_empty_mask_the_base_value_is_estimated():
    game = additive()
    masks = all_masks(8)
    keep = masks.sum(axis=1) > 0
    a = kernel_shap(masks[keep], game(masks[keep]))
    assert not a.info["empty_value_known"]
    # an additive game is fitted exactly either way
    np.testing.assert_allclose(a.weights, game.coef, atol=1e-10, rtol=0)
    assert a.base_value == pytest.approx(game.bias, abs=1e-10)
    # F = 45 Bernoulli masks never hold the empty coalition: phi_0 + sum(phi) = f(all) still
    g = make_game("saturating_or", 0, 40, 5)
    m = samplers.bernoulli(45, 300, 0)
    b = kernel_shap(m, g(m))
    assert not b.info["empty_value_known"]
    assert abs(b.base_value + b.weights.sum() - g(m[:1])[0]) < 1e-12
    # ... or f(none) is handed in
    c = KernelSHAP(empty_value=g.base_value)(m, g(m))
    assert c.base_value == g.base_value
    assert abs(c.weights.sum() - (g(m[:1])[0] - g.base_value)) < 1e-12


def test_constraint_rows_and_errors():
    masks = all_masks(4)
    w = shapley_row_weights(masks, "kernel")
    sizes = masks.sum(axis=1)
    assert (w[(sizes == 0) | (sizes == 4)] == 0).all()
    pi = shapley_kernel(4, np.array([1, 2, 3]))
    np.testing.assert_allclose(pi, [3 / (4 * 1 * 3), 3 / (6 * 2 * 2), 3 / (4 * 3 * 1)])
    np.testing.assert_allclose(w[sizes == 2], pi[1] / pi.max())
    # complete size classes: post-stratified weights are the kernel itself
    np.testing.assert_allclose(shapley_row_weights(masks, "stratified"), w)
    # kernel-distributed sizes: pi / q is the same for every row
    imp = shapley_row_weights(masks, "importance", samplers.kernel.size_distribution(4))
    np.testing.assert_allclose(imp[(sizes > 0) & (sizes < 4)], 1.0)
    with pytest.raises(ValueError, match="all-ones"):
        shapley_regression(masks[:-1], np.zeros(15), np.ones(15))
    with pytest.raises(ValueError, match="one label"):
        kernel_shap(masks, np.zeros((16, 2)))
    with pytest.raises(ValueError):
        KernelSHAP(weighting="importance")
    with pytest.raises(ValueError, match="unknown estimator"):
        get_estimator("nope")
    assert set(ESTIMATORS) == {"lime_ridge", "kernel_shap", "leverage_shap", "banzhaf"}
    assert isinstance(get_estimator("leverage_shap"), LeverageSHAP)


# --- convergence ---------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["saturating_or", "many_small"])
def test_leverage_shap_converges_to_the_exact_values(family):
    # F = 12 (8 stem-segments, 4 lines); measured normalised L2 errors over seeds 0-2:
    # 1024 rows <= 0.030, 2048 <= 0.019, 4000 <= 0.0026; all 4096 masks: exact
    game = make_game(family, 0, 8, 4)
    phi = game.shapley()
    counts = (64, 256, 1024, 2048, 4000, 4096)
    errs = []
    for seed in range(3):
        masks = samplers.leverage(12, 4096, seed)
        y = game(masks)
        errs.append([np.linalg.norm(leverage_shap(masks[:n], y[:n]).weights - phi)
                     / np.linalg.norm(phi) for n in counts])
    errs = np.array(errs)
    assert (np.diff(errs.mean(axis=0)) < 0).all()
    assert errs[:, 2].max() < 0.05 and errs[:, 3].max() < 0.03 and errs[:, 4].max() < 0.005
    assert errs[:, 5].max() < 1e-12


# --- the games -----------------------------------------------------------------------------------
def test_closed_form_shapley_matches_enumeration():
    game = GroundTruthGame(coef=np.linspace(-0.1, 0.2, 10), bias=0.3,
                           groups=[ThresholdGroup((0, 9), 2, 0.3),
                                   ThresholdGroup((1, 2, 3), 1, 0.5),
                                   ThresholdGroup((4, 6, 7, 8), 2, -0.2)])
    np.testing.assert_allclose(exact_shapley(game, 10), game.shapley(), atol=1e-14)
    for family in FAMILIES:
        for seed in range(2):
            g = make_game(family, seed, 12, 3)
            np.testing.assert_allclose(exact_shapley(g, 15), g.shapley(), atol=1e-13)


def test_families_have_a_separated_top5_and_names():
    for family in FAMILIES:
        g = make_game(family, 0)
        assert g.n_features == 45 and g.family == family
        assert g.separation() >= 0.15
        assert g.names[:5] == ["vocals_T0", "drums_T0", "bass_T0", "other_T0", "vocals_T1"]
        assert g.names[-1] == "line_4"
    assert feature_names(8, 2)[-3:] == ["other_T1", "line_0", "line_1"]
    with pytest.raises(ValueError, match="unknown family"):
        make_game("nope", 0)


def test_game_classifier_reads_the_mask_back_from_a_composed_song():
    from musiclime import ExplainerConfig, factorize
    from musiclime.core.explainer import predict_song
    from musiclime.core.masks import MaskLayout

    rate = 4000
    rng = np.random.default_rng(0)
    stems = {s: (0.1 * rng.standard_normal(2 * rate)).astype(np.float32)
             for s in ("vocals", "drums", "bass", "other")}
    mix = np.sum(list(stems.values()), axis=0).astype(np.float32)
    lyrics = "first line\nsecond line\n[Chorus]\nthird line\nfourth line"
    cfg = ExplainerConfig(temporal_segments=2, num_samples=64)
    song = factorize(mix, stems, rate, lyrics, cfg, song_id="synthetic")
    from musiclime.models.groundtruth import GameClassifier

    game = make_game("saturating_or", 0, 8, 4)
    clf = GameClassifier(song, game)
    layout = MaskLayout(8, 4, "both")
    masks = samplers.leverage(12, 64, 0)
    probs = predict_song(clf, song, masks, layout, cfg, progress=False).probs
    np.testing.assert_allclose(probs[:, 0], np.clip(game(masks), 0, 1), atol=1e-12)


# --- orthogonal-array samplers ------------------------------------------------------------------
def _lime_error(sampler, family: str, calls: int, seeds: int = 10) -> float:
    """Mean normalised L2 error of lime_ridge against the exact Shapley values over 4 games of
    ``family`` (45 features) and ``seeds`` draws."""
    errs = []
    for g in range(4):
        game = make_game(family, 1000 + g, 40, 5)
        phi = game.shapley()
        for seed in range(seeds):
            masks = sampler(45, calls, seed)
            w = lime_ridge(masks, game(masks)).weights
            errs.append(np.linalg.norm(w - phi) / np.linalg.norm(phi))
    return float(np.mean(errs))


def test_an_orthogonal_block_recovers_an_additive_model_with_its_first_64_calls():
    # OLS on one whole block (64 rows for 45 features) of an additive game is exact: the
    # balanced, orthogonal design has full rank; 64 Bernoulli rows leave it ill-conditioned
    # (measured: ~0.1 normalised L2 for lime_ridge, whose ridge and kernel also shrink)
    game = make_game("additive", 3, 40, 5)
    masks = samplers.orthogonal(45, 65, 0)
    x = np.c_[np.ones(65), masks]
    coef = np.linalg.lstsq(x, game(masks), rcond=None)[0]
    np.testing.assert_allclose(coef[1:], game.coef, atol=1e-10, rtol=0)
    assert np.linalg.cond(x[1:, 1:] * 2.0 - 1) == pytest.approx(1.0)
    bern = samplers.bernoulli(45, 65, 0)
    assert np.linalg.cond(bern[1:] * 2.0 - 1) > 5


@pytest.mark.parametrize("family", ["additive", "interaction", "saturating_or", "many_small"])
def test_orthogonal_samplers_give_lime_a_lower_error_than_bernoulli(family):
    """The same estimand as Bernoulli masks (every row uniform), less error: at 64 calls the
    orthogonal block, at 256 the foldover as well (the even-order terms cancel)."""
    e = {(s.name, n): _lime_error(s, family, n)
         for s in (samplers.bernoulli, samplers.orthogonal, samplers.orthogonal_foldover)
         for n in (64, 256)}
    print(f"\n{family}: " + ", ".join(f"{k[0]}@{k[1]} {v:.3f}" for k, v in e.items()))
    assert e["orthogonal", 64] < 0.9 * e["bernoulli", 64]  # measured: 0.41 .. 0.85 of it
    assert e["orthogonal_foldover", 64] == e["orthogonal", 64]  # the same first block
    assert e["orthogonal_foldover", 256] < e["bernoulli", 256]
