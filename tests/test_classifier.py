"""Classifier output validation and the seed-style callable adapter (batch by batch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musiclime.core.classifier import CallableClassifier, as_classifier, validate_probabilities
from musiclime.core.composition import WaveformComposer
from musiclime.core.explainer import ExplainerConfig, MusicLIME, factorize
from musiclime.core.factorization import AudioFactorization
from musiclime.core.inference import predict_masks
from musiclime.core.lyrics import LineUnits
from musiclime.core.masks import MaskLayout, sample_masks
from musiclime.errors import ClassifierOutputError, SampleRateError
from musiclime.models.whitebox import ToneKeywordClassifier

SR = 8000
LYRICS = "first line\nsecond line\nthird line\nfourth line"


def _fac(n=SR, segments=10):
    rng = np.random.default_rng(0)
    stems = {s: (0.1 * rng.standard_normal(n)).astype(np.float32)
             for s in ("vocals", "drums", "bass", "other")}
    mix = np.sum(list(stems.values()), axis=0).astype(np.float32)
    return AudioFactorization.from_stems(mix, stems, SR, segments=segments)


def test_valid_probabilities_pass():
    p = validate_probabilities([[0.2, 0.8], [1.0, 0.0]], 2, 2)
    assert p.dtype == np.float64
    np.testing.assert_array_equal(p, [[0.2, 0.8], [1.0, 0.0]])
    p = validate_probabilities(torch.tensor([[0.5, 0.5]]), 1)
    assert p.shape == (1, 2)


@pytest.mark.parametrize("probs,batch,n_classes,match", [
    (np.array([0.2, 0.8]), 1, None, "shape"),  # 1-D
    (np.full((3, 2), 0.5), 2, None, "batch of 2"),  # wrong batch
    (np.full((2, 3), 1 / 3), 2, 2, "columns"),  # wrong class count
    (np.array([[np.nan, 0.5], [0.5, 0.5]]), 2, None, "NaN"),
    (np.array([[0.5, np.inf], [0.5, 0.5]]), 2, None, "NaN or infinite"),
    (np.array([[2.3, -1.1], [0.5, 0.5]]), 2, None, "logits"),
    (np.array([[0.3, 0.3], [0.5, 0.5]]), 2, None, "sums to"),
    ("not numbers", 1, None, "not numbers"),
])
def test_invalid_probabilities_raise(probs, batch, n_classes, match):
    with pytest.raises(ClassifierOutputError, match=match):
        validate_probabilities(probs, batch, n_classes)


class Recorder:
    """A seed-style predict_fn(texts, audios) that records what it is given."""

    def __init__(self, keyword="second"):
        self.calls: list[tuple[list[str], list[np.ndarray]]] = []
        self.keyword = keyword

    def __call__(self, texts, audios):
        self.calls.append((texts, audios))
        p = np.array([0.2 + 0.6 * (self.keyword in t) for t in texts])
        return np.stack([p, 1 - p], axis=1).tolist()


def test_callable_classifier_adapter():
    rec = Recorder()
    clf = CallableClassifier(rec, sample_rate=SR)
    with pytest.raises(AttributeError):
        _ = clf.class_names  # learnt from the first prediction
    audio = torch.zeros((3, 100))
    probs = clf.predict_proba(["a", "second", "c"], audio)
    np.testing.assert_allclose(probs[:, 0], [0.2, 0.8, 0.2])
    assert clf.class_names == ["class_0", "class_1"]
    texts, audios = rec.calls[0]
    assert texts == ["a", "second", "c"]
    assert isinstance(audios, list) and len(audios) == 3
    assert all(isinstance(a, np.ndarray) and a.shape == (100,) for a in audios)
    with pytest.raises(TypeError):
        CallableClassifier("not callable", SR)


def test_as_classifier():
    wb = ToneKeywordClassifier(sample_rate=SR)
    assert as_classifier(wb) is wb
    assert isinstance(as_classifier(Recorder(), sample_rate=SR), CallableClassifier)
    with pytest.raises(ValueError, match="sample_rate"):
        as_classifier(Recorder())
    with pytest.raises(TypeError):
        as_classifier(42)


def test_predict_fn_is_called_batch_by_batch():
    fac = _fac()
    lyrics = LineUnits(LYRICS)
    layout = MaskLayout(fac.n_components, len(lyrics), "both")
    masks = sample_masks(layout.n_columns, 200, seed=0)
    rec = Recorder()
    preds = predict_masks(CallableClassifier(rec, SR), WaveformComposer(fac), lyrics, masks,
                          layout, batch_size=50, progress=False)
    sizes = [len(texts) for texts, _ in rec.calls]
    assert sizes == [50, 50, 50, 50]
    assert all(len(audios) == len(texts) for texts, audios in rec.calls)
    assert all(a.shape == (fac.n_samples,) for _, audios in rec.calls for a in audios)
    assert preds.probs.shape == (200, 2)
    # the recorded inputs are the composed ones, in mask order
    first_texts, first_audios = rec.calls[0]
    assert first_texts[0] == lyrics.full_text()
    assert np.array_equal(first_audios[0], fac.mix)
    np.testing.assert_allclose(first_audios[7], fac.compose(masks[7, :40]), atol=2e-6)
    assert first_texts[7] == lyrics.compose(masks[7, 40:])
    expected = np.array([0.2 + 0.6 * bool(m[41]) for m in masks])
    np.testing.assert_allclose(preds.probs[:, 0], expected)


def test_musiclime_with_plain_predict_fn_streams_batches():
    fac = _fac()
    rec = Recorder()
    cfg = ExplainerConfig(num_samples=200, batch_size=50, seed=1)
    stems = {n: fac.stems[i] for i, n in enumerate(fac.stem_names)}
    song = factorize(fac.mix, stems, SR, LYRICS, cfg)
    exp = MusicLIME(rec, cfg, sample_rate=SR, class_names=["ai", "human"],
                    progress=False).explain(song)
    sizes = [len(texts) for texts, _ in rec.calls]
    # the masks in batches, then the modality game's rows in one (musiclime.core.modality)
    assert sizes.pop() == exp.modality_game.predicted_rows == 3
    assert len(sizes) == 4 and max(sizes) <= 50 and sum(sizes) == 200
    assert exp.top_features(k=1)[0][0] == "second line"


def test_sample_rate_mismatch_is_refused():
    fac = _fac()
    lyrics = LineUnits(LYRICS)
    layout = MaskLayout(fac.n_components, len(lyrics), "both")
    masks = sample_masks(layout.n_columns, 10, 0)
    with pytest.raises(SampleRateError, match="22050"):
        predict_masks(ToneKeywordClassifier(sample_rate=22050), WaveformComposer(fac), lyrics,
                      masks, layout, progress=False)


def test_bad_classifier_output_is_reported_during_inference():
    fac = _fac()
    lyrics = LineUnits(LYRICS)
    layout = MaskLayout(fac.n_components, len(lyrics), "both")
    masks = sample_masks(layout.n_columns, 10, 0)

    def logits(texts, audios):
        return np.tile([3.0, -1.0], (len(texts), 1))

    with pytest.raises(ClassifierOutputError, match="logits"):
        predict_masks(CallableClassifier(logits, SR), WaveformComposer(fac), lyrics, masks,
                      layout, progress=False)
