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


# --- through the explainer -------------------------------------------------------------------
RATE = 4000
SEGMENTS = 3
N_AUDIO, N_LYRICS = 4 * SEGMENTS, 4  # stems x segments, four lyric lines
BASS_T1 = 1 * 4 + 2  # the audio columns go segment by segment, stems within (vocals, drums, bass, other)
LINE_2 = N_AUDIO + 1


@pytest.fixture(scope="module")
def wb_song():
    from musiclime import ExplainerConfig, factorize

    rng = np.random.default_rng(0)
    stems = {s: (0.1 * rng.standard_normal(SEGMENTS * RATE)).astype(np.float32)
             for s in ("vocals", "drums", "bass", "other")}
    mix = np.sum(list(stems.values()), axis=0).astype(np.float32)
    lyrics = "first line\nsecond line\n[Chorus]\nthird line\nfourth line"
    song = factorize(mix, stems, RATE, lyrics, ExplainerConfig(temporal_segments=SEGMENTS),
                     song_id="wb")
    assert (song.feature_table.n_audio, song.feature_table.n_lyrics) == (N_AUDIO, N_LYRICS)
    return song


def planted_classifier(song):
    """P(target) = 0.2 + main effects + 0.3 [bass_T1 and line 2] + 0.1 [two audio columns]:
    two main effects are larger than the second pair, one of the planted pair's halves has a
    negative main effect; the output stays in [0.05, 0.95] (no clipping)."""
    from musiclime.models.groundtruth import GameClassifier, GroundTruthGame, ThresholdGroup

    coef = np.zeros(N_AUDIO + N_LYRICS)
    coef[[0, 5, LINE_2, BASS_T1]] = [0.15, -0.1, 0.2, -0.05]
    game = GroundTruthGame(coef=coef, bias=0.2, groups=[
        ThresholdGroup((BASS_T1, LINE_2), 2, 0.3), ThresholdGroup((0, 9), 2, 0.1)])
    return GameClassifier(song, game)


def test_the_explainer_puts_the_planted_stem_lyric_pair_first(wb_song, tmp_path):
    from musiclime import ExplainerConfig, MusicLIME
    from musiclime.core.explanation import Explanation

    clf = planted_classifier(wb_song)
    config = ExplainerConfig(temporal_segments=SEGMENTS, num_samples=200, seed=0,
                             interactions="regression_fsii", interaction_budget=600,
                             interaction_top_k=5)
    exp = MusicLIME(clf, config, progress=False).explain(wb_song)
    data = exp.to_dict()
    pairs = data["explanations"]["label_0"]["interactions"]
    names = [f.name for f in wb_song.feature_table.features]
    assert pairs[0]["features"] == [BASS_T1, LINE_2]
    assert pairs[0]["names"] == [names[BASS_T1], names[LINE_2]]
    assert pairs[0]["kind"] == "audio×lyrics" and pairs[0]["value"] == pytest.approx(0.3, abs=1e-3)
    assert pairs[1]["features"] == [0, 9] and pairs[1]["kind"] == "audio×audio"
    game = data["metadata"]["interaction_game"]
    assert game["estimator"] == "regression_fsii" and game["budget"] == 600
    assert game["rows_reused"] > 0 and game["rows_reused"] + game["rows_predicted"] <= 600
    assert data["metadata"]["explanation_params"]["interactions"] == "regression_fsii"
    # the masks' rows, and so the fit, are those of an explanation without interactions
    plain = MusicLIME(clf, ExplainerConfig(temporal_segments=SEGMENTS, num_samples=200, seed=0),
                      progress=False).explain(wb_song).to_dict()
    assert "interaction_game" not in plain["metadata"]
    assert "interactions" not in plain["metadata"]["explanation_params"]
    for label, entry in plain["explanations"].items():
        assert "interactions" not in entry
        assert data["explanations"][label]["weights"] == entry["weights"]
    back = Explanation.load(exp.save_json(tmp_path / "explanation.json"))
    assert back.to_dict() == exp.to_dict()


def test_the_predictions_file_carries_the_rows_to_the_fit(wb_song, tmp_path):
    """The workflow's two stages: predict (record) into a file, fit (replay) from it, without
    a classifier."""
    from musiclime import ExplainerConfig
    from musiclime.core.explainer import fit_explanation, make_masks, predict_song
    from musiclime.core.inference import Predictions

    clf = planted_classifier(wb_song)
    config = ExplainerConfig(temporal_segments=SEGMENTS, num_samples=100, seed=0)
    wanted = [InteractionParams("regression_fsii", 600, 5, 0),
              InteractionParams("kernel_shapiq", 400, 5, 0)]
    masks, layout = make_masks(wb_song.feature_table, config)
    preds = predict_song(clf, wb_song, masks, layout, config, progress=False,
                         interactions=wanted)
    preds.save(tmp_path / "predict.npz")
    loaded = Predictions.load(tmp_path / "predict.npz")
    assert np.array_equal(loaded.interactions.masks, preds.interactions.masks)
    assert np.array_equal(loaded.interactions.probs, preds.interactions.probs)
    for params in wanted:
        exp = fit_explanation(wb_song.song_id, wb_song.feature_table, layout, masks,
                              loaded.probs, loaded.class_names, config, interactions=params,
                              interaction_rows=loaded.interactions)
        assert exp.interactions.pairs[0][0].features == (BASS_T1, LINE_2)
    with pytest.raises(MissingRowError):  # a budget the predict stage did not record
        fit_explanation(wb_song.song_id, wb_song.feature_table, layout, masks, loaded.probs,
                        loaded.class_names, config,
                        interactions=InteractionParams("regression_fsii", 700, 5, 0),
                        interaction_rows=loaded.interactions)


def test_the_config_validates_and_keeps_its_dict_without_interactions():
    from musiclime import ExplainerConfig
    from musiclime.core.params import INTERACTION_KEYS

    with pytest.raises(ConfigError, match="explainer.interactions="):
        ExplainerConfig(interactions="shap")
    with pytest.raises(ConfigError, match="explainer.interaction_budget="):
        ExplainerConfig(interactions="svarmiq", interaction_budget=0)
    # the dict (and the num_samples=auto predict key hashed from it) is what it was before
    assert not set(INTERACTION_KEYS) & set(ExplainerConfig().as_dict())
    config = ExplainerConfig(interactions="kernel_shapiq", seed=4)
    assert config.interaction == InteractionParams("kernel_shapiq", 2000, 10, 4)
    assert set(INTERACTION_KEYS) <= set(config.as_dict())


def test_a_budget_below_the_games_unknowns_is_a_warning():
    from musiclime.core.interactions import fit_interactions

    value, _ = planted_game(6, n_players=20, n_pairs=3)
    start = np.ones((1, 20), np.uint8)
    record, timings = {}, {}
    for budget, warned in ((150, True), (400, False)):  # 1 + 20 + 190 = 211 unknowns
        params = InteractionParams("regression_fsii", budget, 5, 0)
        rows = record_interaction_rows([params], start, as_probs(value)(start), as_probs(value))
        result = fit_interactions(params, MaskLayout(20, 0, "both"), start,
                                  as_probs(value)(start), [0], rows, timings, record)
        assert bool(result.warnings) == warned
        assert record["interaction_budget"] == budget and "interactions_s" in timings


def test_num_samples_auto_records_the_rows_once_the_blocks_are_predicted(wb_song):
    from musiclime import ExplainerConfig, MusicLIME

    config = ExplainerConfig(temporal_segments=SEGMENTS, num_samples="auto", auto_block=32,
                             auto_budget=96, auto_target=1.0, seed=0,
                             interactions="regression_fsii", interaction_budget=300)
    exp = MusicLIME(planted_classifier(wb_song), config, progress=False).explain(wb_song)
    assert exp.params["auto"]["calls"] == 96
    assert exp.interactions.pairs[0][0].features == (BASS_T1, LINE_2)
    assert exp.interactions.rows_reused > 0 and not exp.interactions.warnings


def test_the_estimate_does_not_depend_on_the_blas_thread_count():
    """``musiclime explain`` runs with every core, a ``musiclime run`` job with one BLAS thread;
    shapiq's least-squares solve (2,000 rows x 1,276 unknowns here) sums in a thread-dependent
    order, so the estimate pins BLAS to one thread and both give the same pairs bit for bit."""
    from threadpoolctl import threadpool_limits

    value, _ = planted_game(5)
    layout = MaskLayout(N_PLAYERS, 0, "both")
    start = np.ones((1, N_PLAYERS), np.uint8)
    params = InteractionParams("regression_fsii", 2000, 10, 0)
    rows = record_interaction_rows([params], start, as_probs(value)(start), as_probs(value))
    found = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            result = estimate_interactions(params, layout, start, as_probs(value)(start), [0],
                                           rows)
        found.append([(tuple(p.features), p.value) for p in result.pairs[0]])
    assert found[0] == found[1]
