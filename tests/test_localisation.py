"""Localisation against time annotations (musiclime.metrics.localisation), on a real explanation
of a white-box classifier that listens only to a tone in one stem during one segment."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import explain_whitebox

from musiclime.metrics.localisation import audio_grid, evidence_grid, localisation, pointing


@pytest.fixture(scope="module")
def explained(song):
    return explain_whitebox(song, num_samples=200, seed=0, modality="audio")[0]


def span(stem, start, end):
    return {"label": "ai", "audio": [{"stem": stem, "start": start, "end": end}]}


def test_the_planted_tone_is_localised_and_a_wrong_annotation_is_not(explained, song):
    start, end = song.tone_window
    right = localisation(explained, span(song.tone_stem, start, end))
    assert right["localisation_auc"] > 0.95 and right["localisation_auc_time"] > 0.9
    assert right["localisation_pointing"] == 1.0
    # the same length, a stem the classifier never hears, at a time it ignores
    wrong = localisation(explained, span("drums", 6.0, 6.0 + end - start))
    assert wrong["localisation_auc"] < 0.7 and wrong["localisation_pointing"] == 0.0
    assert right["localisation_auc"] - wrong["localisation_auc"] > 0.3


def test_auc_counts_frames_by_hand(explained, song):
    """Only the tone's feature scores 1: with evidence on half its segment the other half ties
    with it, and the AUC is 1 - 0.5 * ties / negatives, counted by hand."""
    start, end = song.tone_window
    names = [explained.features[c].name for c in explained.columns]
    scores = np.array([1.0 if n == song.tone_feature else 0.0 for n in names])
    stems, centres, relevance = audio_grid(explained, scores, 0.1)
    assert relevance.shape == (4, math.ceil(song.seconds / 0.1))
    assert not np.isnan(relevance).any()
    half = span(song.tone_stem, start, (start + end) / 2)
    truth = evidence_grid(half, stems, centres, 0.1)
    pos, neg = int(truth.sum()), int((~truth).sum())
    assert pos == 4  # 0.4 s of 100 ms frames
    ties = int(((relevance == 1.0) & ~truth).sum())
    assert ties == 4
    from musiclime.metrics.localisation import _auc

    assert _auc(relevance, truth) == pytest.approx(1 - 0.5 * ties / neg)


def test_off_grid_evidence_scores_lower_than_evidence_on_the_grid(explained, song):
    start, end = song.tone_window
    on_grid = localisation(explained, span(song.tone_stem, start, end))
    short = localisation(explained, span(song.tone_stem, start + 0.3, start + 0.4))
    assert short["localisation_auc_time"] < on_grid["localisation_auc_time"]
    assert short["localisation_pointing"] == 1.0  # the top segment still holds it


def test_a_point_annotation_marks_one_frame_and_no_audio_evidence_is_nan(explained, song):
    start, _ = song.tone_window
    stems, centres, _ = audio_grid(explained, np.zeros(len(explained.columns)), 0.1)
    point = evidence_grid(span(song.tone_stem, start + 0.05, start + 0.05), stems, centres, 0.1)
    assert point.sum() == 1
    none = localisation(explained, {"label": "ai", "audio": []})
    assert all(math.isnan(v) for v in none.values())
    assert math.isnan(pointing(explained, np.zeros(len(explained.columns)), {"audio": []}))
    with pytest.raises(ValueError, match="resolution"):
        localisation(explained, span(song.tone_stem, 0, 1), resolution=0)
