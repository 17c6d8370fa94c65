"""Uncertainty of every weight (musiclime.core.uncertainty) against exact answers.

The white-box games of :mod:`musiclime.models.groundtruth` know what an explanation estimates:
the exact Shapley values for the Shapley estimators over a size-based sampler, and the exact
infinite-sample LIME coefficient (:func:`lime_coefficients`) for LIME's ridge. Over many games
and seeds the nominal 90% intervals must cover that truth 85-95% of the time; intervals shrunk
or widened by a factor of two, or compared with the wrong truth, must not.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from musiclime.core.coalition_sizes import binomial_sizes
from musiclime.core.explainer import draw_masks, fit_explanation
from musiclime.core.explanation import Explanation
from musiclime.core.features import Feature, FeatureTable
from musiclime.core.fitting import surrogate_fits
from musiclime.core.masks import MaskLayout
from musiclime.core.params import ExplainerConfig
from musiclime.core.surrogate import ExponentialKernel, cosine_distance
from musiclime.core.uncertainty import explanation_uncertainty
from musiclime.models.groundtruth import (
    STEMS,
    GroundTruthGame,
    all_masks,
    lime_coefficients,
    make_game,
)

NUM_SAMPLES = 1000
GAMES = 6
SEEDS = 6
#: (sampler, estimator) -> the families with sampling noise (the others are exact)
METHODS = {("bernoulli", "lime_ridge"): ("interaction", "saturating_or", "many_small"),
           ("paired", "lime_ridge"): ("interaction", "saturating_or", "many_small"),
           ("leverage", "leverage_shap"): ("saturating_or", "many_small")}


def truth(game, fit):
    """What the estimator converges to: LIME's population coefficient, or Shapley's values."""
    if fit.estimator == "lime_ridge":
        sizes = fit.draw.make_sampler().size_distribution(game.n_features)
        return lime_coefficients(game, fit.make_kernel(), cosine_distance, sizes)[1]
    return game.shapley()


def runs(sampler: str, estimator: str, family: str, num_samples: int = NUM_SAMPLES):
    """``(weights, uncertainty, truth)`` over ``GAMES`` games x ``SEEDS`` seeds."""
    out = []
    for g in range(GAMES):
        game = make_game(family, 1000 + g, n_lyrics=(4, 5, 6)[g % 3])
        fit = ExplainerConfig(num_samples=num_samples, sampler=sampler,
                              estimator=estimator).fit
        exact = truth(game, fit)
        for seed in range(SEEDS):
            f = replace(fit, draw=replace(fit.draw, seed=seed))
            masks = draw_masks(f.draw, game.n_features)
            probs = game(masks)[:, None]
            fits, _, chosen = surrogate_fits(f, masks, probs, [0])
            u = explanation_uncertainty(f, masks, probs, [0], fits, chosen)[0]
            out.append((fits[0].weights, u, exact))
    return out


def coverage(results, scale: float = 1.0, wrong_truth=None) -> float:
    """Share of intervals (every feature, game and seed) holding the truth; ``scale``
    multiplies each interval's half-width around its centre."""
    hits = []
    for i, (_, u, exact) in enumerate(results):
        centre, half = (u.lower + u.upper) / 2, (u.upper - u.lower) / 2 * scale
        target = exact if wrong_truth is None else wrong_truth[i]
        hits.append((centre - half - 1e-12 <= target) & (target <= centre + half + 1e-12))
    return float(np.mean(np.concatenate(hits)))


@pytest.fixture(scope="module")
def results():
    return {(s, e, fam): runs(s, e, fam) for (s, e), fams in METHODS.items() for fam in fams}


@pytest.mark.parametrize("key", [(s, e, f) for (s, e), fams in METHODS.items() for f in fams],
                         ids=lambda k: "+".join(k[:2]) + "-" + k[2])
def test_nominal_90_intervals_cover_the_exact_answer_85_to_95_percent(results, key):
    rate = coverage(results[key])
    print(f"{'+'.join(key[:2])} {key[2]}: coverage {rate:.3f}")
    assert 0.85 <= rate <= 0.95, f"{key}: coverage {rate:.3f}"


def test_the_coverage_test_can_fail(results):
    """Intervals half as wide, or twice as wide, leave the 85-95% band; so do right
    intervals held against the wrong truth (LIME's against the Shapley values)."""
    for key, res in results.items():
        assert coverage(res, scale=0.5) < 0.85, key
        assert coverage(res, scale=2.0) > 0.95, key
    lime = results[("bernoulli", "lime_ridge", "saturating_or")]
    shapley = [make_game("saturating_or", 1000 + g, n_lyrics=(4, 5, 6)[g % 3]).shapley()
               for g in range(GAMES) for _ in range(SEEDS)]
    assert coverage(lime, wrong_truth=shapley) < 0.85


def test_exact_explanations_have_exact_intervals():
    """An additive game is its own linear surrogate: the Shapley estimates are exact (standard
    error 0), LIME's unpenalised fit too, so its intervals span the weight and the truth and
    no more (the ridge's shrinkage); a complete enumeration of the masks has standard error 0."""
    for sampler, estimator in METHODS:
        for weights, u, exact in runs(sampler, estimator, "additive")[:4]:
            assert np.all((u.lower - 1e-12 <= exact) & (exact <= u.upper + 1e-12))
            assert np.all((u.lower <= weights) & (weights <= u.upper))
            np.testing.assert_allclose(u.upper - u.lower, np.abs(weights - exact), atol=1e-9)
            if estimator != "lime_ridge":
                assert np.all(u.se < 1e-9)
    game = make_game("interaction", 3, n_audio=8, n_lyrics=4)
    fit = ExplainerConfig(num_samples=4096, labels=[0]).fit
    masks = draw_masks(fit.draw, game.n_features)
    assert masks.shape[0] == 2 ** game.n_features
    probs = game(masks)[:, None]
    fits, _, chosen = surrogate_fits(fit, masks, probs, [0])
    u = explanation_uncertainty(fit, masks, probs, [0], fits, chosen)[0]
    assert np.all(u.se == 0)


def test_lime_coefficients_are_exact():
    """The closed form of the infinite-sample LIME fit equals the weighted least squares over
    all 2^F masks, each weighted by its probability and its kernel weight."""
    from math import comb

    kernel = ExponentialKernel(0.25)
    for family in ("additive", "interaction", "saturating_or", "many_small"):
        game = make_game(family, 7, n_audio=8, n_lyrics=4)
        m = game.n_features
        z = all_masks(m)[::-1].astype(np.float64)  # all ones first: the distances' reference
        sizes = z.sum(axis=1).astype(int)
        q = binomial_sizes(m)
        w = q[sizes] / np.array([comb(m, k) for k in sizes]) * kernel(cosine_distance(z))
        x = np.column_stack([np.ones(len(z)), z])
        theta = np.linalg.solve((x * w[:, None]).T @ x, (x * w[:, None]).T @ game(z))
        b, beta = lime_coefficients(game, kernel, cosine_distance, q)
        np.testing.assert_allclose(beta, theta[1:], atol=1e-12)
        assert abs(b - theta[0]) < 1e-12


def test_topk_stability_matches_seed_to_seed_frequency():
    """The probability that a top-5 feature stays in the top-5 is close to how often it is
    in the top-5 of an explanation from another seed."""
    fit = ExplainerConfig(num_samples=256).fit
    predicted, observed = [], []
    for g in range(3):
        game = make_game("many_small", 1000 + g, n_lyrics=5)
        tops, probs_in_top = [], []
        for seed in range(10):
            f = replace(fit, draw=replace(fit.draw, seed=seed))
            masks = draw_masks(f.draw, game.n_features)
            probs = game(masks)[:, None]
            fits, _, chosen = surrogate_fits(f, masks, probs, [0])
            u = explanation_uncertainty(f, masks, probs, [0], fits, chosen)[0]
            assert list(u.topk) == np.argsort(-fits[0].weights, kind="stable")[:5].tolist()
            tops.append(set(u.topk))
            probs_in_top.append(u.topk)
        for s, topk in enumerate(probs_in_top):
            for j, p in topk.items():
                assert 0.0 <= p <= 1.0
                predicted.append(p)
                observed.append(np.mean([j in t for i, t in enumerate(tops) if i != s]))
    assert abs(np.mean(predicted) - np.mean(observed)) < 0.1, (np.mean(predicted),
                                                                np.mean(observed))


def test_weight_se_is_the_seed_to_seed_spread_of_the_weight():
    """``weight_se`` is the standard deviation of the reported weight over seeds, also where the
    classifier is exactly linear and only LIME's ridge shrinkage moves the small weights."""
    coef = np.zeros(45)
    coef[[3, 40]] = 0.47
    for game in (GroundTruthGame(coef=coef, bias=0.03), make_game("many_small", 1000)):
        fit = ExplainerConfig(num_samples=400).fit
        weights, ses = [], []
        for seed in range(16):
            f = replace(fit, draw=replace(fit.draw, seed=seed))
            masks = draw_masks(f.draw, game.n_features)
            probs = game(masks)[:, None]
            fits, _, chosen = surrogate_fits(f, masks, probs, [0])
            weights.append(fits[0].weights)
            ses.append(explanation_uncertainty(f, masks, probs, [0], fits, chosen)[0].se)
        ratio = np.median(np.std(weights, axis=0, ddof=1) / np.mean(ses, axis=0))
        assert 0.75 <= ratio <= 1.25, ratio


# --- the record --------------------------------------------------------------------------------
def _table(game) -> FeatureTable:
    n_audio = game.n_audio
    feats = [Feature(index=i, name=name, kind="audio", stem=name.split("_T")[0],
                     segment=int(name.split("_T")[1]), start=float(i // 4), end=float(i // 4 + 1))
             for i, name in enumerate(game.names[:n_audio])]
    feats += [Feature(index=n_audio + u, name=name, kind="lyrics", unit_index=u)
              for u, name in enumerate(game.names[n_audio:])]
    return FeatureTable(features=feats, n_audio=n_audio, n_lyrics=game.n_features - n_audio,
                        lyrics_unit="line", sample_rate=16000, stems=list(STEMS),
                        n_segments=n_audio // len(STEMS))


def explain(game, **settings) -> Explanation:
    config = ExplainerConfig(labels=[0, 1], **settings)
    table = _table(game)
    layout = MaskLayout(table.n_audio, table.n_lyrics, "both")
    masks = draw_masks(config.masks, layout.n_columns)
    v = game(masks)
    return fit_explanation("game", table, layout, masks, np.stack([v, 1 - v], axis=1),
                           ["target", "rest"], config)


def test_same_seed_same_intervals_and_weights_untouched():
    game = make_game("saturating_or", 1, n_lyrics=5)
    a, b = explain(game, num_samples=500), explain(game, num_samples=500)
    other = explain(game, num_samples=500, seed=1)
    for label in (0, 1):
        ua, ub = a.uncertainty[label], b.uncertainty[label]
        for name in ("se", "lower", "upper"):
            assert np.array_equal(getattr(ua, name), getattr(ub, name))
        assert ua.topk == ub.topk
        assert not np.array_equal(ua.se, other.uncertainty[label].se)
    # the weights are the surrogate's, bit for bit
    config = ExplainerConfig(labels=[0, 1], num_samples=500)
    masks = draw_masks(config.masks, game.n_features)
    v = game(masks)
    fits, _, _ = surrogate_fits(config.fit, masks, np.stack([v, 1 - v], axis=1), [0, 1])
    for label in (0, 1):
        assert np.array_equal(a.fits[label].weights, fits[label].weights)
        u = a.uncertainty[label]
        assert np.all((u.lower <= a.fits[label].weights) & (a.fits[label].weights <= u.upper))
    assert "uncertainty_s" in a.timings


@pytest.mark.parametrize("settings", [{"num_samples": 400},
                                      {"num_samples": 300, "sampler": "leverage",
                                       "estimator": "leverage_shap"},
                                      {"num_samples": 30}],  # fewer rows than features
                         ids=["lime", "leverage_shap", "undetermined"])
def test_json_round_trip(tmp_path, settings):
    game = make_game("many_small", 2, n_lyrics=5)
    exp = explain(game, **settings)
    path = exp.save_json(tmp_path / "e.json")
    data = json.loads(path.read_text())  # strict JSON: no NaN or Infinity
    json.dumps(data, allow_nan=False)
    entry = data["explanations"]["label_0"]
    assert {"weight_se", "interval90"} <= set(entry["weights"][0])
    assert [t["rank"] for t in entry["topk_stability"]] == [1, 2, 3, 4, 5]
    assert entry["uncertainty"]["level"] == 0.9
    back = Explanation.load(path)
    for label, u in exp.uncertainty.items():
        v = back.uncertainty[label]
        for name in ("se", "lower", "upper"):
            np.testing.assert_array_equal(getattr(u, name), getattr(v, name))
        np.testing.assert_array_equal(list(u.topk.values()), list(v.topk.values()))
        assert list(u.topk) == list(v.topk)
    assert back.to_dict() == exp.to_dict()
    if settings["num_samples"] == 30:
        assert np.all(np.isinf(exp.uncertainty[0].se))
        assert entry["weights"][0]["interval90"] == [None, None]


def test_records_without_uncertainty_still_load(tmp_path):
    game = make_game("additive", 3, n_lyrics=4)
    exp = explain(game, num_samples=200)
    data = exp.to_dict()
    for entry in data["explanations"].values():
        for key in ("topk_stability", "uncertainty"):
            entry.pop(key)
        for w in entry["weights"]:
            w.pop("weight_se")
            w.pop("interval90")
    old = Explanation.from_dict(json.loads(json.dumps(data)))
    assert old.uncertainty == {}
    assert old.weight_uncertainty(0) == {} and old.topk_stability(0) == {}
    np.testing.assert_array_equal(old.fits[0].weights, exp.fits[0].weights)
    assert "topk_stability" not in old.to_dict()["explanations"]["label_0"]
    top = exp.topk_stability(0)
    assert len(top) == 5 and all(0 <= p <= 1 for p in top.values())
    assert set(exp.weight_uncertainty(0)) == set(exp.weights(0))


def test_mlflow_song_metrics_carry_the_uncertainty():
    from musiclime.metrics.registry import metric_for_key
    from musiclime.tracking.log import song_metrics

    game = make_game("saturating_or", 4, n_lyrics=5)
    exp = explain(game, num_samples=300)
    m = song_metrics(exp)
    top, intervals = exp.topk_stability(), exp.weight_uncertainty()
    assert m["topk_stability_mean"] == pytest.approx(np.mean(list(top.values())))
    assert m["top5_intervals_crossing_zero"] == sum(
        intervals[f]["interval90"][0] <= 0 <= intervals[f]["interval90"][1] for f in top)
    for key in ("topk_stability_mean", "top5_intervals_crossing_zero", "time_uncertainty_s"):
        assert key in m
    for key in ("topk_stability_mean", "top5_intervals_crossing_zero"):
        assert metric_for_key(key).stage == "fit"
    exp.uncertainty = {}
    assert "topk_stability_mean" not in song_metrics(exp)


def test_standard_errors_do_not_depend_on_the_blas_thread_count():
    """``musiclime explain`` uses every core, a ``musiclime run`` job one BLAS thread; on a
    3-4 minute song (153 features, 300 masks: measured on hard_0016) the sandwich's products
    summed in another order and the standard errors differed in the 15th digit. They are
    computed on one thread, so both give them bit for bit."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(3)
    n_features = 153
    fit = ExplainerConfig(num_samples=300, labels=[0]).fit
    masks = draw_masks(fit.draw, n_features)
    truth = rng.normal(0.0, 0.1, n_features)
    probs = (1.0 / (1.0 + np.exp(-(masks @ truth - truth.sum() / 2))))[:, None]
    fits, _, chosen = surrogate_fits(fit, masks, probs, [0])
    found = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            u = explanation_uncertainty(fit, masks, probs, [0], fits, chosen)[0]
        found.append((u.se.tobytes(), u.lower.tobytes(), u.upper.tobytes()))
    assert found[0] == found[1]
