"""The metric registry covers every key the evaluate stage writes, with a direction and a label."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import KEYWORD, KEYWORD_LINE, TONE_HZ, TONE_REFERENCE_ENERGY

from musiclime.core.explainer import ExplainerConfig, MusicLIME, load_song
from musiclime.metrics import MetricSettings, evaluate_explanation
from musiclime.metrics.registry import (
    DIRECTIONS,
    all_metrics,
    direction,
    label,
    markdown_table,
    match_key,
    metric,
    metric_for_key,
    parse_evidence_key,
)
from musiclime.models.separation import OracleSeparator
from musiclime.models.whitebox import ToneKeywordClassifier

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def evaluated(song):
    """A small real evaluation with evidence, stability and interactions on, so every key family
    appears."""
    config = ExplainerConfig(num_samples=100, seed=0, interactions="regression_fsii",
                             interaction_budget=1200)
    s = load_song(song.audio_path, song.lyrics_path, OracleSeparator(), song.sample_rate, config,
                  stems_dir=song.stems_dir)
    start, end = song.tone_window
    clf = ToneKeywordClassifier(sample_rate=song.sample_rate, tone_hz=TONE_HZ, start=start,
                                end=end, keyword=KEYWORD, reference_energy=TONE_REFERENCE_ENERGY)
    exp = MusicLIME(clf, config, progress=False).explain(s)
    evidence = {"label": "ai", "audio": [{"stem": song.tone_stem, "start": start, "end": end,
                                          "pair": "p0"}],
                "lyrics": [{"unit_index": 1, "text": KEYWORD_LINE, "pair": "p0"}],
                "decoys": [{"stem": "drums", "start": 0.0, "end": 0.8}], "pairs": [{"pair": "p0"}]}
    settings = MetricSettings(precision_k=2, stability_seeds=2, heldout_masks=20,
                              random_orderings=2, curve_points=5, sufficiency_ks=(1, 3))
    return exp, evaluate_explanation(exp, s, clf, config, evidence=evidence, settings=settings)


def _families(key: str) -> list[str]:
    return [m.name for m in all_metrics() if m.match(key) is not None]


def test_every_evaluate_key_is_registered_with_a_direction(evaluated):
    _, out = evaluated
    # every family of the evaluate stage is in this output
    assert any(k.startswith("evidence_") for k in out) and "stability_runs" in out
    for key in out:
        assert len(_families(key)) == 1, (key, _families(key))  # exactly one family
        info = metric_for_key(key)
        assert info.stage == "evaluate", key
        assert direction(key) in DIRECTIONS
        assert label(key), key
    evaluate_families = {m.name for m in all_metrics() if m.stage == "evaluate"}
    assert {metric_for_key(k).name for k in out} == evaluate_families


def test_keys_the_workflow_and_tracker_add_are_registered(evaluated):
    exp, _ = evaluated
    # the workflow's evaluate stage evaluates a sweep's explanations together (evaluate_together)
    source = (REPO / "src" / "musiclime" / "metrics" / "evaluate.py").read_text()
    together = source[source.index("def evaluate_together("):]
    added = set(re.findall(r'metrics\["(\w+)"\]\s*=', together))
    assert added, "evaluate_together no longer adds keys this way: update this test"
    for key in added:
        assert metric_for_key(key) is not None, key
    from musiclime.tracking.log import song_metrics

    for key in song_metrics(exp):
        if key.startswith(("kernel_", "surrogate_", "modality_")):
            assert metric_for_key(key).stage == "fit", key
    assert {"modality_share_audio", "modality_interaction"} <= set(song_metrics(exp))


def test_directions_and_labels_of_known_metrics():
    assert direction("deletion_auc") == "lower"
    assert direction("insertion_auc") == "higher"
    assert direction("heldout_r2") == "higher"
    assert direction("stability_uk_top5") == "lower"
    assert direction("stability_jaccard_top3") == "higher"
    assert direction("deletion_ratio") == "lower" and direction("insertion_ratio") == "higher"
    assert direction("evidence_normalized_precision_at_5_lyrics") == "higher"
    assert direction("complexity_entropy_normalized") == "lower"
    assert direction("metrics_classifier_rows") == "none"
    assert direction("deletion_random_auc_std") == "none"
    assert label("evidence_precision_at_5_combined") == "evidence P@5"
    assert label("evidence_precision_at_5_audio") == "audio P@5"
    assert label("evidence_normalized_precision_at_3_lyrics") == "lyrics nP@3"
    assert label("stability_uk_top5") == "U_5" and label("kernel_weight_min") == "kernel w min"
    assert metric_for_key("bogus") is None and match_key("deletion_auc_mean") is None
    with pytest.raises(KeyError, match="bogus"):
        direction("bogus")
    with pytest.raises(KeyError, match="nope"):
        metric("nope")


def test_parse_evidence_key_and_build_the_normalized_key():
    expected = {"evidence_precision_at_5_audio": (5, "audio"),
                "evidence_precision_at_12_combined": (12, "combined"),
                "evidence_normalized_precision_at_5_audio": None,
                "evidence_precision_at_x_audio": None, "evidence_precision_at_5_video": None,
                "evidence_auroc_audio": None}
    for key, parsed in expected.items():
        assert parse_evidence_key(key) == parsed, key
    k, kind = parse_evidence_key("evidence_precision_at_5_lyrics")
    assert metric("evidence_normalized_precision").key(k=k, kind=kind) == \
        "evidence_normalized_precision_at_5_lyrics"


def test_docs_metrics_md_is_the_registry_table():
    doc = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert doc == markdown_table(), \
        "docs/metrics.md is stale: python -m musiclime.metrics.registry > docs/metrics.md"
    for m in all_metrics():
        assert f"`{m.name}`" in doc
        for key in m.keys:
            assert f"`{key}`" in doc
