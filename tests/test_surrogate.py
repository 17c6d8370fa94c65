"""The LIME fit: cosine distances, the exponential kernel, weight recovery, injected kernels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from musiclime.core.masks import sample_masks
from musiclime.core.surrogate import (
    CosineDistance,
    ExponentialKernel,
    cosine_distance,
    cosine_distances,
    exponential_kernel,
    fit_ridge,
    kernel_stats,
)


def test_exponential_kernel_formula():
    d = np.linspace(0, 1, 11)
    for width in (0.1, 0.25, 1.0, 25.0):
        np.testing.assert_allclose(exponential_kernel(d, width),
                                   np.sqrt(np.exp(-(d ** 2) / width ** 2)), rtol=1e-12)
    # distance scale multiplies d (lime's text explainer: 100 with width 25)
    np.testing.assert_allclose(exponential_kernel(d, 25, distance_scale=100),
                               np.sqrt(np.exp(-((100 * d) ** 2) / 25 ** 2)), rtol=1e-12)
    assert exponential_kernel(np.array([0.0]), 0.25)[0] == 1.0


def test_kernel_and_distance_objects_state_their_formula():
    d = np.linspace(0, 1, 11)
    kernel = ExponentialKernel(25, distance_scale=100)
    np.testing.assert_array_equal(kernel(d), exponential_kernel(d, 25, 100))
    assert kernel.formula == "w = sqrt(exp(-(100.0 * d)^2 / 25.0^2))"
    assert ExponentialKernel().formula == "w = sqrt(exp(-(1.0 * d)^2 / 0.25^2))"
    m = np.array([[1, 1, 1, 1], [1, 0, 0, 0]])
    np.testing.assert_array_equal(cosine_distance(m), cosine_distances(m))
    assert isinstance(cosine_distance, CosineDistance) and cosine_distance.name == "cosine"
    with pytest.raises(ValueError, match="kernel_width"):
        ExponentialKernel(0)
    with pytest.raises(ValueError, match="distance_scale"):
        ExponentialKernel(0.25, -1)


def test_cosine_distance_to_all_ones():
    m = np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    d = cosine_distances(m)
    np.testing.assert_allclose(d[:3], [0.0, 0.5, 1 - np.sqrt(0.5)], atol=1e-12)
    assert d[3] == pytest.approx(1.0)


def test_reference_width_is_flat_default_is_not():
    masks = sample_masks(44, 500, seed=0)
    d = cosine_distances(masks)
    flat = kernel_stats(d, ExponentialKernel(25.0, 1.0))
    # d <= ~0.52 here, so w >= sqrt(exp(-0.52**2 / 625)) ~ 0.99978; any d in [0, 1] gives >= 0.9992
    assert flat.weight_min >= 0.9997 and flat.weight_max == 1.0
    assert flat.weight_max - flat.weight_min < 3e-4
    local = kernel_stats(d, ExponentialKernel(0.25, 1.0))
    assert local.weight_min < 0.5
    assert 0.3 < local.weight_mean < 0.7
    assert local.effective_samples < flat.effective_samples
    assert flat.effective_samples == pytest.approx(500, rel=1e-3)


def _linear_problem(n_features=30, n=500, seed=0):
    rng = np.random.default_rng(seed)
    masks = sample_masks(n_features, n, seed=seed)
    w = np.zeros(n_features)
    w[[2, 7, 19]] = [0.3, -0.2, 0.15]
    w[rng.choice([i for i in range(n_features) if i not in (2, 7, 19)], 5, replace=False)] = \
        rng.uniform(-0.05, 0.05, 5)
    p0 = 0.4 + masks @ w - w.sum() / 2
    probs = np.stack([p0, 1 - p0], axis=1)
    return masks, probs, w, 0.4 - w.sum() / 2


def test_fit_recovers_linear_weights_exactly_without_regularisation():
    masks, probs, w, b = _linear_problem()
    fits, stats = fit_ridge(masks, probs, [0, 1], kernel_width=0.25, ridge_alpha=1e-8)
    f0 = fits[0]
    assert f0.weights.shape == (30,)  # every feature, not lime's top-k
    np.testing.assert_allclose(f0.weights, w, atol=1e-6)
    assert f0.intercept == pytest.approx(b, abs=1e-6)
    assert f0.score == pytest.approx(1.0, abs=1e-9)
    assert f0.local_pred == pytest.approx(b + w.sum(), abs=1e-6)  # row 0: all features on
    np.testing.assert_allclose(fits[1].weights, -w, atol=1e-6)
    assert stats.weight_min < stats.weight_max


def test_fit_with_default_ridge_still_ranks_true_features():
    masks, probs, w, _ = _linear_problem(seed=3)
    fits, _ = fit_ridge(masks, probs, [0])
    got = fits[0].weights
    np.testing.assert_allclose(got, w, atol=0.02)
    assert list(np.argsort(-np.abs(got))[:3]) == [2, 7, 19]
    assert fits[0].score > 0.99


def test_fit_validates_arguments():
    masks, probs, _, _ = _linear_problem(n=50)
    with pytest.raises(ValueError, match="kernel_width"):
        fit_ridge(masks, probs, [0], kernel_width=0)
    with pytest.raises(ValueError, match="label 5"):
        fit_ridge(masks, probs, [5])
    with pytest.raises(ValueError, match="prediction rows"):
        fit_ridge(masks, probs[:10], [0])
    with pytest.raises(ValueError, match="feature_selection"):
        fit_ridge(masks, probs, [0], feature_selection="magic")


def test_default_kernel_is_the_exponential_kernel_of_the_config():
    masks, probs, _, _ = _linear_problem(seed=5)
    default, stats = fit_ridge(masks, probs, [0, 1])
    shorthand, short_stats = fit_ridge(masks, probs, [0, 1], kernel_width=0.25,
                                      distance_scale=1.0)
    injected, inj_stats = fit_ridge(masks, probs, [0, 1], ExponentialKernel(0.25, 1.0),
                                   cosine_distance)
    for fits in (shorthand, injected):
        for label in (0, 1):
            np.testing.assert_array_equal(fits[label].weights, default[label].weights)
            assert fits[label].intercept == default[label].intercept
            assert fits[label].score == default[label].score
    assert stats == short_stats == inj_stats
    assert (stats.width, stats.distance_scale, stats.distance) == (0.25, 1.0, "cosine")
    assert stats.formula == ("w = sqrt(exp(-(1.0 * d)^2 / 0.25^2)), "
                             "d = 1 - cos(mask, all-ones mask)")
    w = exponential_kernel(cosine_distances(masks), 0.25)
    assert stats.weight_min == w.min() and stats.weight_max == w.max()


def test_custom_kernel_is_used_a_constant_kernel_is_unweighted_ridge():
    masks, probs, _, _ = _linear_problem(seed=4)
    probs = probs + 0.05 * np.random.default_rng(0).standard_normal(probs.shape)  # not exact

    def constant(d):
        return np.ones_like(d)

    fits, stats = fit_ridge(masks, probs, [0], kernel=constant, ridge_alpha=1.0)
    default, _ = fit_ridge(masks, probs, [0], ridge_alpha=1.0)
    ridge = Ridge(alpha=1.0).fit(masks.astype(np.float64), probs[:, 0])
    np.testing.assert_allclose(fits[0].weights, ridge.coef_, rtol=1e-10, atol=1e-12)
    assert fits[0].intercept == pytest.approx(ridge.intercept_, abs=1e-10)
    assert np.max(np.abs(fits[0].weights - default[0].weights)) > 1e-3
    assert stats.weight_min == stats.weight_max == 1.0
    assert stats.effective_samples == pytest.approx(masks.shape[0])
    assert stats.width is None and stats.formula.startswith("constant, d = ")
    with pytest.raises(ValueError, match="not both"):
        fit_ridge(masks, probs, [0], kernel=constant, kernel_width=0.5)


def test_custom_distance_is_used():
    masks, probs, _, _ = _linear_problem(n=200)

    class Hamming:
        name = "hamming"
        formula = "share of features off"

        def __call__(self, m):
            return 1.0 - np.asarray(m, dtype=np.float64).mean(axis=1)

    _, stats = fit_ridge(masks, probs, [0], distance=Hamming())
    assert stats.distance == "hamming"
    assert stats.formula.endswith("d = share of features off")
    off = 1.0 - masks.mean(axis=1)
    assert stats.distance_max == pytest.approx(off.max())
