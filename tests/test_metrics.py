"""Explanation-quality metrics on hand-built cases whose answer is known.

Synthetic cases use a probability function of the masks (no audio); the end-to-end case uses
the white-box classifier on conftest's ``song`` (tone in ``other_T3``, keyword on line 1).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from conftest import KEYWORD, KEYWORD_LINE, TONE_HZ, TONE_REFERENCE_ENERGY

from musiclime.core.explainer import ExplainerConfig, MusicLIME, factorize, load_song
from musiclime.core.factorization import AudioFactorization
from musiclime.core.features import FeatureTable
from musiclime.core.lyrics import make_lyrics_units
from musiclime.core.surrogate import fit_ridge
from musiclime.metrics import (
    MaskPredictor,
    MetricSettings,
    audio_evidence,
    auroc,
    complexity,
    deletion_insertion,
    evaluate_explanation,
    evidence_features,
    evidence_recovery,
    evidence_scores,
    heldout_fidelity,
    lyrics_evidence,
    normalized_precision,
    precision_at_k,
    segment_is_evidence,
    sufficiency,
    weight_entropy,
    weight_stability,
)
from musiclime.models.separation import OracleSeparator
from musiclime.models.whitebox import ToneKeywordClassifier

# --- a synthetic, exactly linear two-class probability function ---------------------------------
F = 12
A = np.array([0.3, 0.2, 0.1, 0.08, 0.05, 0.04, 0.03, 0.0, 0.0, 0.0, 0.0, 0.0])  # sum 0.8
B = 0.1


def linear_predict(masks):
    p = B + np.asarray(masks, dtype=np.float64) @ A
    return np.stack([p, 1 - p], axis=1)


# --- deletion / insertion -----------------------------------------------------------------------
def test_perfect_ranking_beats_random_and_reversed_loses():
    good = deletion_insertion(A, linear_predict, label=0, random_orderings=10, seed=0)
    bad = deletion_insertion(-A, linear_predict, label=0, random_orderings=10, seed=0)
    d, i = good["deletion"], good["insertion"]
    assert d.auc < d.random_auc_mean and d.ratio < 1
    assert i.auc > i.random_auc_mean and i.ratio > 1
    assert bad["deletion"].ratio > 1 and bad["insertion"].ratio < 1
    # curve ends: all-on = B + sum A, all-off = B
    assert d.probs[0] == pytest.approx(0.9) and d.probs[-1] == pytest.approx(B)
    assert i.probs[0] == pytest.approx(B) and i.probs[-1] == pytest.approx(0.9)
    assert list(d.ks) == list(range(F + 1)) and d.x[-1] == 1.0
    # the exact AUC of the perfect deletion curve (trapezoid over x = k / F)
    cum = B + A.sum() - np.concatenate([[0], np.cumsum(A)])
    expected = float(np.sum((cum[1:] + cum[:-1]) / 2) / F)
    assert d.auc == pytest.approx(expected)
    # the random baseline is the same random orderings for the bad ranking
    np.testing.assert_array_equal(d.random_aucs, bad["deletion"].random_aucs)
    assert d.random_auc_std > 0


def test_curves_same_seed_same_result_and_one_batched_call():
    calls = []

    def predict(masks):
        calls.append(masks.shape[0])
        return linear_predict(masks)

    a = deletion_insertion(A, predict, 0, points=5, random_orderings=4, seed=3)
    b = deletion_insertion(A, predict, 0, points=5, random_orderings=4, seed=3)
    c = deletion_insertion(A, predict, 0, points=5, random_orderings=4, seed=4)
    assert calls == [2 * 5 * 5] * 3
    assert a["deletion"].as_dict() == b["deletion"].as_dict()
    assert a["deletion"].random_auc_mean != c["deletion"].random_auc_mean
    assert list(a["deletion"].ks) == [0, 3, 6, 9, 12]


# --- sufficiency --------------------------------------------------------------------------------
def test_sufficiency_top_k_beats_random_k_subsets():
    res = sufficiency(A, linear_predict, label=0, ks=(1, 3, 50), random_subsets=20, seed=0)
    assert res[1].prob == pytest.approx(0.4) and res[1].survives == 0.0  # 0.4 < 0.6
    assert res[3].prob == pytest.approx(0.7) and res[3].survives == 1.0
    assert res[3].random_prob < res[3].prob and res[3].random_survives < 1.0
    assert res[50].k_used == F and res[50].prob == pytest.approx(0.9)
    # a tie with the other class does not count as surviving
    tie = sufficiency(np.array([0.0, 1.0]), lambda m: np.full((len(m), 2), 0.5), 0, ks=(1,))
    assert tie[1].prob == 0.5 and tie[1].survives == 0.0
    bad = sufficiency(-A, linear_predict, label=0, ks=(3,), random_subsets=20, seed=0)
    assert bad[3].prob == pytest.approx(B) and bad[3].prob < bad[3].random_prob


# --- stability ----------------------------------------------------------------------------------
def test_identical_runs_are_perfectly_stable():
    w = np.random.default_rng(0).standard_normal(20)
    res = weight_stability([w, w.copy(), w.copy()], ks=(3, 5))
    assert res.uk == {3: 3.0, 5: 5.0}
    assert res.jaccard == {3: 1.0, 5: 1.0}
    assert res.spearman == pytest.approx(1.0)


def test_disjoint_top_k_sets_give_uk_s_times_k_and_jaccard_zero():
    k, runs = 5, 3
    vecs = []
    for r in range(runs):
        w = np.zeros(20)
        w[r * k:(r + 1) * k] = np.arange(k, 0, -1) + 10.0
        vecs.append(w)
    res = weight_stability(vecs, ks=(k,))
    assert res.uk[k] == runs * k
    assert res.jaccard[k] == 0.0
    assert res.spearman < 0.5


# --- complexity ---------------------------------------------------------------------------------
def test_complexity_one_weight_is_zero_uniform_is_log_f():
    w = np.zeros(10)
    w[3] = -0.7
    assert weight_entropy(w) == (0.0, 0.0)
    h, hn = weight_entropy(np.full(10, 0.2) * np.array([1, -1] * 5))
    assert h == pytest.approx(math.log(10)) and hn == pytest.approx(1.0)
    assert math.isnan(complexity(np.zeros(4))["entropy"])
    assert weight_entropy([1.0, 1.0, 0.0, 0.0])[0] == pytest.approx(math.log(2))


# --- evidence mapping ---------------------------------------------------------------------------
def tiny_table(lyrics: str = "a b\nc d\ne f\ng h\n", unit: str = "line") -> FeatureTable:
    """10 s at 100 Hz, 4 stems, 10 segments of exactly 1 s."""
    sr, n = 100, 1000
    stems = {s: np.zeros(n, dtype=np.float32) for s in ("vocals", "drums", "bass", "other")}
    fac = AudioFactorization.from_stems(np.zeros(n, dtype=np.float32), stems, sr, segments=10)
    return FeatureTable.build(fac, make_lyrics_units(lyrics, unit))


def names(table, indices):
    return {table[i].name for i in indices}


def test_evidence_spans_map_to_expected_features_with_boundaries():
    table = tiny_table()
    spans = [
        {"stem": "drums", "start": 1.0, "end": 1.5},    # exactly half of T1 (inclusive)
        {"stem": "bass", "start": 4.51, "end": 6.0},    # T4 gets 0.49 of itself: no; T5 whole
        {"stem": "bass", "start": 6.5, "end": 8.0},     # exactly half of T6; all of T7
        {"stem": "other", "start": 8.2, "end": 8.4},    # short span wholly inside T8
        {"stem": "other", "start": 8.9, "end": 9.3},    # 1/4 of it in T8, 3/4 in T9: T9 only
        {"stem": "vocals", "start": 0.2, "end": 1.3},   # T0 (0.8); T1 gets 0.3 (27% of span)
        {"stem": "vocals", "start": 1.75, "end": 3.0},  # T1 gets 0.25 (20%); T2 whole
    ]
    got = names(table, audio_evidence(table, spans))
    assert got == {"drums_T1", "bass_T5", "bass_T6", "bass_T7", "other_T8", "other_T9",
                   "vocals_T0", "vocals_T1", "vocals_T2"}
    # vocals_T1 only through the union of the two spans (0.3 + 0.25 >= half of T1)
    assert "vocals_T1" not in names(table, audio_evidence(table, spans[-1:]))
    assert "vocals_T1" not in names(table, audio_evidence(table, spans[-2:-1]))
    # a split 50/50 marks both segments; just below the threshold on both sides marks neither
    assert names(table, audio_evidence(table, [{"stem": "drums", "start": 2.6,
                                                "end": 3.4}])) == {"drums_T2", "drums_T3"}
    assert segment_is_evidence(4.0, 5.0, [(4.51, 6.0)]) is False
    assert segment_is_evidence(4.0, 5.0, [(4.5, 6.0)]) is True
    assert segment_is_evidence(4.0, 5.0, [(3.0, 4.49)]) is False  # only touches 0.49 s... of T3
    assert segment_is_evidence(4.0, 5.0, [(5.0, 6.0)]) is False  # touching the end is no overlap
    assert segment_is_evidence(4.0, 5.0, [(4.2, 4.2)]) is True  # a point inside
    # a stricter rule
    assert names(table, audio_evidence(table, spans[:1], min_overlap=0.75)) == {"drums_T1"}
    assert audio_evidence(table, [{"stem": "drums", "start": 1.0, "end": 2.5}],
                          min_overlap=0.75) == {table.features[4 * 1 + 1].index}


def test_lyrics_evidence_lines_and_words():
    lines = "the robot sings\n[Chorus]\nthe night is long\n(ooh)\nrobot dance tonight\nlast line\n"
    table = tiny_table(lines)
    assert [f.name for f in table.features[40:]] == [
        "the robot sings", "the night is long", "robot dance tonight", "last line"]
    ev = {"lyrics": [{"unit_index": 0, "text": "the robot sings"},
                     {"unit_index": 3, "text": "last line"}]}
    assert names(table, lyrics_evidence(table, ev)) == {"the robot sings", "last line"}
    words = tiny_table(lines, unit="word")
    got = names(words, lyrics_evidence(words, ev, lines))
    assert got == {"sings", "last", "line"}  # "the" and "robot" occur in other lines
    # from the evidence's own line_spans when the lyrics are not given
    ev_spans = dict(ev, line_spans=[{"unit_index": i, "text": t} for i, t in enumerate(
        ["the robot sings", "the night is long", "robot dance tonight", "last line"])])
    assert names(words, lyrics_evidence(words, ev_spans)) == {"sings", "last", "line"}
    both = evidence_features(table, {**ev, "audio": [{"stem": "bass", "start": 0, "end": 1}]})
    assert names(table, both) == {"bass_T0", "the robot sings", "last line"}


def test_precision_and_auroc():
    truth = np.array([1, 0, 1, 0, 0, 0], dtype=bool)
    perfect = np.array([0.9, 0.1, 0.8, 0.0, -0.2, 0.05])
    assert precision_at_k(perfect, truth, 2) == 1.0
    assert precision_at_k(perfect, truth, 4) == 0.5  # the most possible with 2 positives
    assert auroc(perfect, truth) == 1.0
    assert auroc(-perfect, truth) == 0.0
    assert auroc(np.zeros(6), truth) == 0.5
    assert precision_at_k(-perfect, truth, 2) == 0.0
    assert math.isnan(auroc(perfect, np.zeros(6, dtype=bool)))
    kinds = ["audio"] * 4 + ["lyrics"] * 2
    res = evidence_recovery(perfect, truth, kinds, k=2)
    assert res["precision_at_2_audio"] == 1.0 and res["auroc_audio"] == 1.0
    assert math.isnan(res["precision_at_2_lyrics"]) and math.isnan(res["auroc_lyrics"])
    assert res["precision_at_2_combined"] == 1.0 and res["positives_combined"] == 2.0


def test_normalized_precision_is_one_for_a_perfect_ranking_with_few_positives():
    truth = np.array([1, 0, 1, 0, 0, 0], dtype=bool)
    perfect = np.array([0.9, 0.1, 0.8, 0.0, -0.2, 0.05])
    kinds = ["audio"] * 6
    res = evidence_recovery(perfect, truth, kinds, k=4)
    assert res["precision_at_4_audio"] == 0.5  # capped by 2 positives
    assert res["normalized_precision_at_4_audio"] == 1.0
    res = evidence_recovery(-perfect, truth, kinds, k=4)
    assert res["normalized_precision_at_4_audio"] == 0.0
    one_hit = np.array([0.9, 0.8, 0.0, 0.1, -0.2, 0.05])  # one of the two in the top 4
    assert evidence_recovery(one_hit, truth, kinds, k=4)["normalized_precision_at_4_audio"] == 0.5
    # k is clipped to the features a modality has: 2 of 3 lyric lines are evidence, k = 5
    lyr = evidence_recovery(np.array([3.0, 2.0, 1.0]), np.array([1, 1, 0], dtype=bool),
                            ["lyrics"] * 3, k=5)
    assert lyr["precision_at_5_lyrics"] == pytest.approx(2 / 3)
    assert lyr["normalized_precision_at_5_lyrics"] == 1.0
    assert math.isnan(normalized_precision(float("nan"), 2, 5))
    assert math.isnan(normalized_precision(0.0, 0, 5))


# --- fidelity -----------------------------------------------------------------------------------
def test_heldout_r2_is_one_for_a_linear_probability_function():
    exact = heldout_fidelity(A, B, linear_predict, label=0, n_masks=200, seed=0)
    assert exact["heldout_r2"] == pytest.approx(1.0)
    assert exact["heldout_weighted_r2"] == pytest.approx(1.0)
    masks = (np.random.default_rng(0).random((1000, F)) < 0.5).astype(np.uint8)
    masks[0] = 1
    fits, _ = fit_ridge(masks, linear_predict(masks), [0], kernel_width=0.25)
    fit = fits[0]
    res = heldout_fidelity(fit.weights, fit.intercept, linear_predict, 0, n_masks=300, seed=1)
    assert res["heldout_r2"] > 0.98 and res["heldout_weighted_r2"] > 0.98
    # a surrogate that ignores the features explains nothing
    flat = heldout_fidelity(np.zeros(F), 0.5, linear_predict, 0, n_masks=300, seed=1)
    assert flat["heldout_r2"] < 0.1


# --- end to end with the white-box classifier ---------------------------------------------------
def whitebox(song) -> ToneKeywordClassifier:
    start, end = song.tone_window
    return ToneKeywordClassifier(sample_rate=song.sample_rate, tone_hz=TONE_HZ, start=start,
                                 end=end, keyword=KEYWORD, reference_energy=TONE_REFERENCE_ENERGY)


@pytest.fixture(scope="module")
def explained(song):
    config = ExplainerConfig(num_samples=400, seed=0)
    s = load_song(song.audio_path, song.lyrics_path, OracleSeparator(), song.sample_rate, config,
                  stems_dir=song.stems_dir)
    clf = whitebox(song)
    return MusicLIME(clf, config, progress=False).explain(s), s, clf, config


def song_evidence(song) -> dict:
    start, end = song.tone_window
    return {"label": "ai", "audio": [{"stem": song.tone_stem, "start": start, "end": end}],
            "lyrics": [{"unit_index": 1, "text": KEYWORD_LINE}]}


def test_whitebox_end_to_end(song, explained):
    exp, s, clf, config = explained
    ev = song_evidence(song)
    assert names(exp.features, evidence_features(exp.features, ev)) == {"other_T3",
                                                                        KEYWORD_LINE}
    settings = MetricSettings(precision_k=2, stability_seeds=2, heldout_masks=100,
                              random_orderings=5, sufficiency_ks=(1, 2, 5))
    m = evaluate_explanation(exp, s, clf, config, evidence=ev, settings=settings)
    assert all(isinstance(v, float) for v in m.values())
    assert m["evidence_precision_at_2_combined"] == 1.0
    assert m["evidence_auroc_combined"] == 1.0
    assert m["evidence_precision_at_2_audio"] == 0.5  # one audio evidence feature
    assert m["evidence_positives_audio"] == 1.0 and m["evidence_positives_lyrics"] == 1.0
    assert m["evidence_normalized_precision_at_2_audio"] == 1.0  # the one there is, found
    assert m["deletion_ratio"] < 1 and m["insertion_ratio"] > 1
    assert m["deletion_auc"] < m["deletion_random_auc_mean"]
    assert m["sufficiency_top2"] > 0.95 and m["sufficiency_top2_survives"] == 1.0
    assert m["sufficiency_random_top2"] < 0.5
    assert m["insample_r2"] == pytest.approx(exp.fits[0].score)
    assert m["heldout_r2"] > 0.5
    assert m["stability_uk_top3"] >= 3 and m["stability_jaccard_top3"] <= 1
    assert m["stability_uk_top5"] <= 10 and m["stability_spearman"] > 0
    assert m["stability_runs"] == 2.0
    assert 0 < m["complexity_entropy_normalized"] < 1
    # 2 curves x 6 orderings x 20 points + 3 x 6 sufficiency + 100 held-out + 400 rerun, minus
    # rows shared between them
    assert 0 < m["metrics_classifier_rows"] <= 2 * 6 * 20 + 18 + 100 + 400
    # same settings, same numbers (timing aside)
    m2 = evaluate_explanation(exp, s, clf, config, evidence=ev, settings=settings)
    m.pop("metrics_s"), m2.pop("metrics_s")
    assert m == m2


def test_whitebox_lyrical_modality_and_no_evidence(song, explained):
    _, s, clf, _ = explained
    config = ExplainerConfig(num_samples=400, seed=0, modality="lyrical")
    exp = MusicLIME(clf, config, progress=False).explain(s)
    settings = MetricSettings(precision_k=1, stability_seeds=0, heldout_masks=20,
                              random_orderings=3)
    m = evaluate_explanation(exp, s, clf, config, evidence=song_evidence(song),
                             settings=settings)
    assert math.isnan(m["evidence_auroc_audio"]) and m["evidence_positives_audio"] == 0.0
    assert m["evidence_precision_at_1_lyrics"] == 1.0
    assert not any(k.startswith("stability_") for k in m)
    # 4 lines: every mask is among the 16 the explainer enumerated, at most 16 rows predicted
    assert m["metrics_classifier_rows"] <= 16
    m_none = evaluate_explanation(exp, s, clf, config, settings=settings)
    assert not any(k.startswith("evidence_") for k in m_none)


def test_evidence_of_the_other_label_scores_with_mirrored_weights(explained):
    exp, *_ = explained
    w = exp.fits[0].weights
    human = dataclasses.replace(exp, fits={1: dataclasses.replace(exp.fits[0], label=1,
                                                                  weights=-w)},
                                prediction=[0.2, 0.8])
    assert human.predicted_label == 1
    np.testing.assert_array_equal(evidence_scores(human, "ai"), w)
    np.testing.assert_array_equal(evidence_scores(human, "human"), -w)
    np.testing.assert_array_equal(evidence_scores(exp, None), w)


def test_mask_predictor_caches_rows(song, explained):
    exp, s, clf, _ = explained
    pred = MaskPredictor(s, clf, "both")
    masks = np.ones((3, 44), dtype=np.uint8)
    masks[1, 15] = 0  # other_T3 off
    p = pred(masks)
    assert pred.rows_predicted == 2
    np.testing.assert_allclose(p[0], exp.prediction)
    assert p[1, 0] < p[0, 0]
    pred(masks[::-1])
    assert pred.rows_predicted == 2
    with pytest.raises(ValueError):
        pred(np.ones((1, 40), dtype=np.uint8))


def test_song_with_other_factorization_is_refused(song, explained):
    exp, s, clf, config = explained
    other = factorize(s.audio.mix, dict(zip(s.audio.stem_names, s.audio.stems, strict=True)),
                      s.audio.sample_rate, s.lyrics.text,
                      ExplainerConfig(temporal_segments=5))
    with pytest.raises(ValueError, match="factorize"):
        evaluate_explanation(exp, other, clf, config, settings=MetricSettings(stability_seeds=0))
