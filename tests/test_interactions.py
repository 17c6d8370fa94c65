"""Pairwise interactions (musiclime.core.interactions) with the real shapiq: planted pairwise
games whose interactions are known by construction, the record/replay split over musiclime's
cache, and the explainer end to end on a white-box classifier with a planted stem x lyric AND."""

from __future__ import annotations

import numpy as np
import pytest

from musiclime.core.interactions import (
    ESTIMATORS,
    CachedGame,
    InteractionParams,
    MissingRowError,
    estimate_interactions,
    record_interaction_rows,
)
from musiclime.core.masks import MaskLayout
from musiclime.errors import ConfigError

N_PLAYERS = 50
N_PAIRS = 10


def planted_game(seed: int, n_players: int = N_PLAYERS, n_pairs: int = N_PAIRS):
    """``(v, pairs)``: ``v(z) = b + z . a + sum_{(i,j)} g_ij z_i z_j`` with ``n_pairs`` planted
    pairs. The main effects (N(0, 0.3)) are as large as the pairs' gains (0.15..0.6 in size,
    either sign), so the pairs are not simply the largest numbers of the game."""
    rng = np.random.default_rng(seed)
    main = rng.normal(0.0, 0.3, n_players)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < n_pairs:
        i, j = sorted(int(x) for x in rng.choice(n_players, 2, replace=False))
        pairs.add((i, j))
    gains = rng.choice([-1.0, 1.0], n_pairs) * rng.uniform(0.15, 0.6, n_pairs)
    ordered = sorted(pairs)

    def value(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        v = 0.1 + z @ main
        for (i, j), g in zip(ordered, gains, strict=True):
            v = v + g * z[:, i] * z[:, j]
        return v

    return value, dict(zip(ordered, gains, strict=True))


def as_probs(value):
    """A predict_rows callable: column 0 is the game, column 1 its complement."""
    def predict(rows):
        v = value(rows)
        return np.stack([v, 1.0 - v], axis=1)
    return predict


def precision(params: InteractionParams, seed: int) -> tuple[float, int]:
    """Top-10 precision of the planted pairs, and the distinct rows evaluated."""
    value, planted = planted_game(seed)
    layout = MaskLayout(N_PLAYERS, 0, "both")
    start = np.ones((1, N_PLAYERS), np.uint8)
    rows = record_interaction_rows([params], start, as_probs(value)(start), as_probs(value))
    result = estimate_interactions(params, layout, start, as_probs(value)(start), [0], rows)
    found = {tuple(p.features) for p in result.pairs[0]}
    return len(found & set(planted)) / N_PAIRS, result.rows_used


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_estimator_finds_the_planted_pairs_within_2000_rows(seed):
    params = InteractionParams("regression_fsii", budget=2000, top_k=10, seed=seed)
    p, rows = precision(params, 100 + seed)
    assert rows <= 2000
    assert p >= 0.9


def test_the_planted_values_come_back():
    value, planted = planted_game(7)
    params = InteractionParams("regression_fsii", budget=2000, top_k=10, seed=0)
    layout = MaskLayout(N_PLAYERS, 0, "both")
    start = np.ones((1, N_PLAYERS), np.uint8)
    rows = record_interaction_rows([params], start, as_probs(value)(start), as_probs(value))
    result = estimate_interactions(params, layout, start, as_probs(value)(start), [0], rows)
    got = {tuple(p.features): p.value for p in result.pairs[0]}
    assert got == pytest.approx(planted, abs=1e-3)  # a weighted fit, exact up to its weights


# --- record / replay ---------------------------------------------------------------------------
@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_coalitions_do_not_depend_on_the_values(estimator):
    """Two different games, one seed: the estimator asks for the same rows."""
    params = InteractionParams(estimator, budget=300, top_k=5, seed=3)
    start = np.ones((1, 12), np.uint8)
    asked = []
    for seed in (1, 2):
        value, _ = planted_game(seed, n_players=12, n_pairs=3)
        rows = record_interaction_rows([params], start, as_probs(value)(start),
                                       as_probs(value))
        asked.append({r.tobytes() for r in rows.masks})
    assert asked[0] == asked[1] and len(asked[0]) > 100


def test_replay_serves_every_row_from_the_cache_bit_for_bit():
    value, _ = planted_game(4, n_players=16, n_pairs=4)
    predict = as_probs(value)
    layout = MaskLayout(10, 6, "both")
    rng = np.random.default_rng(0)
    masks = (rng.random((200, 16)) < 0.5).astype(np.uint8)
    masks[0] = 1
    probs = predict(masks)
    params = [InteractionParams("regression_fsii", 400, 5, 0),
              InteractionParams("kernel_shapiq", 300, 5, 0)]
    calls = []
    rows = record_interaction_rows(params, masks, probs,
                                   lambda r: calls.append(len(r)) or predict(r))
    # the union, each row once, never one of the explanation's rows
    assert len({r.tobytes() for r in rows.masks}) == rows.masks.shape[0] == sum(calls)
    assert not {r.tobytes() for r in rows.masks} & {r.tobytes() for r in masks}
    for p in params:
        live = CachedGame([(masks, probs)], label=0, predict_rows=predict)
        from musiclime.core.interactions import _run

        expected = _run(p, 16, live)
        got = estimate_interactions(p, layout, masks, probs, [0], rows)
        assert got.rows_used == len(live.used) and got.rows_reused > 0
        assert got.rows_predicted + got.rows_reused == len(live.used)
        ranked = sorted(((key, float(expected.values[i]))
                         for key, i in expected.interaction_lookup.items() if len(key) == 2),
                        key=lambda kv: (-abs(kv[1]), kv[0]))[:5]
        assert [(tuple(q.features), q.value) for q in got.pairs[0]] == ranked  # bit for bit


def test_a_missing_row_in_replay_raises():
    value, _ = planted_game(5, n_players=12, n_pairs=3)
    start = np.ones((1, 12), np.uint8)
    params = InteractionParams("regression_fsii", 300, 5, 0)
    rows = record_interaction_rows([params], start, as_probs(value)(start), as_probs(value))
    layout = MaskLayout(12, 0, "both")
    with pytest.raises(MissingRowError):
        estimate_interactions(params, layout, start, as_probs(value)(start), [0],
                              type(rows)(rows.masks[1:], rows.probs[1:]))
    with pytest.raises(MissingRowError):  # another seed draws other rows
        estimate_interactions(InteractionParams("regression_fsii", 300, 5, 1), layout, start,
                              as_probs(value)(start), [0], rows)


def test_none_records_nothing():
    start = np.ones((1, 8), np.uint8)
    rows = record_interaction_rows([InteractionParams()], start, np.ones((1, 2)),
                                   lambda r: pytest.fail("predicted"))
    assert rows.masks.shape == (0, 8)


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"estimator": "shap"}, "explainer.interactions="),
    ({"estimator": "regression_fsii", "budget": 1}, "explainer.interaction_budget="),
    ({"estimator": "regression_fsii", "top_k": 0}, "explainer.interaction_top_k="),
])
def test_bad_params_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        InteractionParams(**kwargs)
