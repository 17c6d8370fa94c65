"""Optional mixed precision: the classifier runs under autocast, composition stays float32."""

from __future__ import annotations

import numpy as np
import torch

from musiclime.core.composition import WaveformComposer
from musiclime.core.explainer import ExplainerConfig, factorize, make_masks
from musiclime.core.inference import predict_masks
from musiclime.models import DemoClassifier


def _song():
    sr = 22050
    t = np.arange(3 * sr) / sr
    rng = np.random.default_rng(0)
    stems = {"vocals": 0.1 * np.sin(2 * np.pi * 330 * t), "drums": 0.05 * rng.standard_normal(t.size),
             "bass": 0.2 * np.sin(2 * np.pi * 110 * t), "other": 0.1 * np.sin(2 * np.pi * 3000 * t)}
    stems = {k: v.astype(np.float32) for k, v in stems.items()}
    mix = sum(stems.values()).astype(np.float32)
    lyrics = "as an ai i generate this melody\nwalking down the road\nthe night is long"
    return factorize(mix, stems, sr, lyrics, ExplainerConfig(num_samples=64))


class DtypeRecorder:
    """Wraps the demo classifier and records whether autocast is on when it is called."""

    def __init__(self, clf):
        self.clf = clf
        self.class_names, self.sample_rate, self.device = clf.class_names, clf.sample_rate, clf.device
        self.autocast_seen = []

    def predict_proba(self, lyrics, audio):
        self.autocast_seen.append(torch.is_autocast_enabled(audio.device.type)
                                  if hasattr(torch, "is_autocast_enabled") else None)
        return self.clf.predict_proba(lyrics, audio)


def test_mixed_precision_changes_numerics_not_meaning():
    song = _song()
    masks, layout = make_masks(song.feature_table, ExplainerConfig(num_samples=64))
    clf = DtypeRecorder(DemoClassifier.load(device="cpu"))
    composer = WaveformComposer(song.audio)
    full = predict_masks(clf, composer, song.lyrics, masks, layout, progress=False)
    assert clf.autocast_seen and not any(clf.autocast_seen)
    half = predict_masks(clf, composer, song.lyrics, masks, layout, progress=False,
                         mixed_precision=True)
    assert any(clf.autocast_seen)
    assert np.allclose(half.probs.sum(axis=1), 1.0, atol=1e-3)
    assert np.abs(half.probs - full.probs).max() < 0.1
    assert np.mean(half.probs.argmax(1) == full.probs.argmax(1)) > 0.9
