"""Decoys and interacting pairs (musiclime.metrics.cues), on a real explanation of a white-box
classifier that hears only a tone in one stem during one segment and reads only a keyword."""

from __future__ import annotations

import math

import pytest
from conftest import KEYWORD_LINE, explain_whitebox

from musiclime.metrics import MetricSettings, evaluate_explanation
from musiclime.metrics.cues import cue_metrics, top_k


@pytest.fixture(scope="module")
def explained(song):
    return explain_whitebox(song, num_samples=300, seed=0)


def test_the_top_two_are_the_tone_and_the_keyword_line(explained, song):
    exp, _, _ = explained
    names = {exp.features[i].name for i in top_k(exp, {"label": "ai"}, 2)}
    assert names == {song.tone_feature, KEYWORD_LINE}


def test_a_decoy_on_the_tone_is_caught_and_one_elsewhere_is_not(explained, song):
    exp, _, _ = explained
    start, end = song.tone_window
    on_tone = {"label": "ai", "decoys": [{"stem": song.tone_stem, "start": start, "end": end}]}
    assert cue_metrics(exp, on_tone, k=2)["decoy_in_top2"] == 1.0
    elsewhere = {"label": "ai", "decoys": [{"stem": "drums", "start": 6.4, "end": 7.2},
                                           {"unit_index": 0}]}  # a line the classifier ignores
    found = cue_metrics(exp, elsewhere, k=2)
    assert found["decoy_in_top2"] == 0.0 and math.isnan(found["pair_in_top2"])


def test_a_pair_counts_only_with_both_halves_in_the_top_k(explained, song):
    exp, _, _ = explained
    start, end = song.tone_window
    tone = {"stem": song.tone_stem, "start": start, "end": end, "pair": "p0"}
    both = {"label": "ai", "audio": [tone], "lyrics": [{"unit_index": 1, "pair": "p0"}],
            "pairs": [{"pair": "p0"}]}
    assert cue_metrics(exp, both, k=2)["pair_in_top2"] == 1.0
    half = {"label": "ai", "audio": [tone], "lyrics": [{"unit_index": 2, "pair": "p0"}],
            "pairs": [{"pair": "p0"}]}
    assert cue_metrics(exp, half, k=2)["pair_in_top2"] == 0.0
    two = {**both, "lyrics": [{"unit_index": 1, "pair": "p0"}, {"unit_index": 2, "pair": "p1"}],
           "audio": [tone, {**tone, "pair": "p1"}], "pairs": [{"pair": "p0"}, {"pair": "p1"}]}
    assert cue_metrics(exp, two, k=2)["pair_in_top2"] == 0.5
    assert cue_metrics(exp, {"label": "ai"}, k=2) == {}  # no decoys, no pairs: no keys


def test_the_evaluate_stage_reports_them(explained, song):
    exp, s, clf = explained
    start, end = song.tone_window
    evidence = {"label": "ai", "audio": [{"stem": song.tone_stem, "start": start, "end": end,
                                          "pair": "p0"}],
                "lyrics": [{"unit_index": 1, "pair": "p0"}], "pairs": [{"pair": "p0"}],
                "decoys": [{"stem": "drums", "start": 6.4, "end": 7.2}]}
    settings = MetricSettings(precision_k=2, heldout_masks=10, random_orderings=2,
                              curve_points=3, sufficiency_ks=(1,))
    out = evaluate_explanation(exp, s, clf, evidence=evidence, settings=settings)
    assert out["pair_in_top2"] == 1.0 and out["decoy_in_top2"] == 0.0
