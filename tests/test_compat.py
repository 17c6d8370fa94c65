"""The drop-in replacement for the reference explainer: names, signatures, behaviour, JSON."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch
from conftest import KEYWORD, KEYWORD_LINE, LYRICS, TONE_REFERENCE_ENERGY, make_stems

from musiclime.compat import (
    LineIndexedString,
    MusicLIMEExplainer,
    MusicLIMEExplanation,
    OpenUnmixFactorization,
)
from musiclime.models.whitebox import ToneKeywordClassifier

SR = 22050


def _params(func):
    return {name: p.default for name, p in inspect.signature(func).parameters.items()
            if p.kind is not inspect.Parameter.KEYWORD_ONLY}


def test_signatures_match_the_reference():
    empty = inspect.Parameter.empty
    assert _params(MusicLIMEExplainer.__init__) == {
        "self": empty, "kernel_width": 25, "random_state": None}
    assert _params(MusicLIMEExplainer.explain_instance) == {
        "self": empty, "audio": empty, "lyrics": empty, "predict_fn": empty,
        "num_samples": 1000, "labels": (1,), "temporal_segments": 10, "modality": "both"}
    assert _params(MusicLIMEExplainer.explain_instance_with_factorization) == {
        "self": empty, "audio_factorization": empty, "text_factorization": empty,
        "predict_fn": empty, "num_samples": 1000, "labels": (1,), "modality": "both"}
    assert _params(MusicLIMEExplanation.__init__) == {
        "self": empty, "audio_factorization": empty, "text_factorization": empty,
        "data": empty, "predictions": empty}
    assert _params(MusicLIMEExplanation.get_explanation) == {
        "self": empty, "label": empty, "num_features": 10}
    assert _params(MusicLIMEExplanation.save_to_json) == {
        "self": empty, "filepath": empty, "song_info": None, "num_features": 10}
    assert _params(OpenUnmixFactorization.__init__) == {
        "self": empty, "audio": empty, "temporal_segmentation_params": 10}
    # the order of the positional parameters is the reference's too
    assert list(inspect.signature(MusicLIMEExplainer.explain_instance).parameters)[:8] == [
        "self", "audio", "lyrics", "predict_fn", "num_samples", "labels",
        "temporal_segments", "modality"]


def test_line_indexed_string_behaves_like_the_reference():
    text = "[Intro]\nfirst line\n\n(ad-lib)\nsecond (yeah) line\nthird line\n"
    s = LineIndexedString(text)
    assert s.num_words() == 3
    assert [s.word(i) for i in range(3)] == ["first line", "second (yeah) line", "third line"]
    assert s.inverse_removing([]) == "first line\nsecond (yeah) line\nthird line"
    assert s.inverse_removing([1]) == "first line\nthird line"
    assert s.inverse_removing(np.array([0, 2])) == "second (yeah) line"
    assert s.inverse_removing([0, 1, 2]) == ""


def _factorization(seconds=4.0, segments=10, tone_segment=6):
    n = int(seconds * SR)
    base = n // segments
    stems = make_stems(n, SR, tone_window=(tone_segment * base, (tone_segment + 1) * base))
    mix = np.sum(list(stems.values()), axis=0).astype(np.float32)
    fac = OpenUnmixFactorization(mix, segments, stems=stems, sample_rate=SR)
    window = (tone_segment * seconds / segments, (tone_segment + 1) * seconds / segments)
    return fac, mix, window


def _seed_predict_fn(window, calls):
    clf = ToneKeywordClassifier(sample_rate=SR, start=window[0], end=window[1], keyword=KEYWORD,
                                reference_energy=TONE_REFERENCE_ENERGY)

    def predict_fn(texts, audios):  # the reference's wrapper: [[P(AI), P(Human)], ...]
        calls.append(len(texts))
        assert isinstance(audios, list) and isinstance(audios[0], np.ndarray)
        return clf.predict_proba(texts, torch.from_numpy(np.stack(audios)))

    return predict_fn


def test_open_unmix_factorization_interface():
    fac, mix, _ = _factorization()
    assert fac.get_number_components() == 40
    assert fac.get_ordered_component_names()[:5] == [
        "vocals_T0", "drums_T0", "bass_T0", "other_T0", "vocals_T1"]
    assert np.array_equal(fac.compose_model_input(np.arange(40)), mix)
    only = fac.compose_model_input([27])  # other_T6
    inner = fac.factorization
    s, e = inner.bounds[6]
    np.testing.assert_allclose(only[s:e], inner.stems[3, s:e] + inner.residual[s:e], atol=1e-6)
    half = fac.resampled(SR // 2)
    assert half.sample_rate == SR // 2 and half.get_number_components() == 40


def test_compat_end_to_end_and_json_keys(tmp_path, monkeypatch):
    fac, _, window = _factorization()
    text = LineIndexedString(LYRICS)
    calls: list[int] = []
    explainer = MusicLIMEExplainer(random_state=42)
    exp = explainer.explain_instance_with_factorization(
        fac, text, _seed_predict_fn(window, calls), num_samples=300)
    assert sum(calls) == 300  # no duplicates with 44 features; each mask predicted once

    assert isinstance(exp, MusicLIMEExplanation)
    assert list(exp.local_exp) == [1]  # the reference default labels=(1,)
    assert exp.data.shape == (300, 44) and np.all(exp.data[0] == 1)
    assert exp.predictions.shape == (300, 2)
    feats = exp.get_explanation(1, num_features=2)
    assert {f["feature"] for f in feats} == {"other_T6", KEYWORD_LINE}
    assert {f["type"] for f in feats} == {"audio", "lyrics"}
    assert all(f["weight"] < 0 for f in feats)  # evidence for AI is evidence against Human
    assert exp.get_explanation(0) == []  # label not explained
    # local_exp: the reference's (column index, weight) pairs, largest |weight| first
    idx, w = exp.local_exp[1][0]
    assert isinstance(idx, int) and abs(w) == max(abs(x) for _, x in exp.local_exp[1])
    assert exp.local_pred[1].shape == (1,)

    monkeypatch.chdir(tmp_path)
    out = exp.save_to_json("song.json", song_info={"title": "t"}, num_features=5)
    assert out == tmp_path.joinpath("results", "song.json").relative_to(tmp_path)
    d = json.loads((tmp_path / "results" / "song.json").read_text())
    assert {"metadata", "explanations"} <= set(d)
    meta = d["metadata"]
    assert {"timestamp", "song_info", "model_info", "explanation_params"} <= set(meta)
    assert meta["song_info"] == {"title": "t"}
    assert meta["model_info"]["total_audio_components"] == 40
    assert meta["model_info"]["total_text_lines"] == 4
    assert meta["model_info"]["total_features"] == 44
    assert meta["explanation_params"]["num_samples"] == 300
    assert meta["explanation_params"]["num_features_shown"] == 5
    assert list(d["explanations"]) == ["label_1"]
    lab = d["explanations"]["label_1"]
    assert lab["prediction_label"] == "Human-Composed"
    for key in ("intercept", "score", "local_prediction"):
        assert isinstance(lab[key], float)
    assert len(lab["top_features"]) == 5
    assert [f["rank"] for f in lab["top_features"]] == [1, 2, 3, 4, 5]
    for f in lab["top_features"]:
        assert {"rank", "type", "feature", "weight"} <= set(f)
        assert f["type"] in ("audio", "lyrics")
    assert {f["feature"] for f in lab["top_features"][:2]} == {"other_T6", KEYWORD_LINE}


def test_compat_seeds_labels_and_modalities():
    fac, _, window = _factorization()
    text = LineIndexedString(LYRICS)
    calls: list[int] = []
    fn = _seed_predict_fn(window, calls)
    a = MusicLIMEExplainer(random_state=3).explain_instance_with_factorization(
        fac, text, fn, num_samples=120, labels=(0, 1))
    b = MusicLIMEExplainer(random_state=3).explain_instance_with_factorization(
        fac, text, fn, num_samples=120, labels=(0, 1))
    c = MusicLIMEExplainer(random_state=4).explain_instance_with_factorization(
        fac, text, fn, num_samples=120, labels=(0, 1))
    assert sorted(a.local_exp) == [0, 1]
    assert a.local_exp == b.local_exp
    assert a.local_exp != c.local_exp
    assert a.get_explanation(0, 1)[0]["weight"] > 0

    calls.clear()
    audio = MusicLIMEExplainer(random_state=0, batch_size=32).explain_instance_with_factorization(
        fac, text, fn, num_samples=100, modality="audio")
    assert max(calls) <= 32
    assert audio.data.shape == (100, 40)
    assert audio.get_explanation(1, 1)[0]["feature"] == "other_T6"
    lyr = MusicLIMEExplainer(random_state=0).explain_instance_with_factorization(
        fac, text, fn, num_samples=100, modality="lyrical")
    assert lyr.get_explanation(1, 1)[0]["feature"] == KEYWORD_LINE
    with pytest.raises(ValueError, match="modality"):
        MusicLIMEExplainer().explain_instance_with_factorization(fac, text, fn, modality="x")
    with pytest.raises(ValueError, match="modality"):
        MusicLIMEExplainer().explain_instance(np.zeros(10), "", fn, modality="video")
