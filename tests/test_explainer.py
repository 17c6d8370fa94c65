"""White-box end to end: a classifier with a known answer, real files, real lime.

The song (conftest ``song``): 8 s at 22050 Hz, four stems on disk, a pure 880 Hz tone only in
``other`` during segment 3 (2.4-3.2 s), and the keyword "robot" on exactly one lyric line.
``ToneKeywordClassifier`` looks only at the tone in that window and at the keyword, so exactly
two features matter: ``other_T3`` and the keyword line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import (
    KEYWORD,
    KEYWORD_LINE,
    LYRIC_LINES,
    LYRICS_NO_KEYWORD,
    TONE_HZ,
    TONE_REFERENCE_ENERGY,
    write_song,
)

from musiclime.core.composition import WaveformComposer
from musiclime.core.explainer import ExplainerConfig, MusicLIME, load_song
from musiclime.core.explanation import Explanation
from musiclime.models.separation import OracleSeparator
from musiclime.models.whitebox import ToneKeywordClassifier
from musiclime.report.explanation_files import write_explanation_files
from musiclime.report.listen import listenable_audio, save_listenable, top_audio_components

NUM_SAMPLES = 400


def whitebox(song) -> ToneKeywordClassifier:
    start, end = song.tone_window
    return ToneKeywordClassifier(sample_rate=song.sample_rate, tone_hz=TONE_HZ, start=start,
                                 end=end, keyword=KEYWORD,
                                 reference_energy=TONE_REFERENCE_ENERGY)


class RecordingClassifier:
    """Delegates to a classifier and keeps a copy of every input it receives."""

    def __init__(self, inner):
        self.inner = inner
        self.class_names = inner.class_names
        self.sample_rate = inner.sample_rate
        self.device = inner.device
        self.lyrics: list[str] = []
        self.audio: list[torch.Tensor] = []

    def predict_proba(self, lyrics, audio):
        self.lyrics.extend(lyrics)
        self.audio.append(audio.detach().clone())  # the composer reuses its buffer
        return self.inner.predict_proba(lyrics, audio)


def _load(song, **cfg):
    config = ExplainerConfig(**cfg)
    return load_song(song.audio_path, song.lyrics_path, OracleSeparator(), song.sample_rate,
                     config, stems_dir=song.stems_dir), config


def _explain(song, classifier=None, **cfg):
    cfg.setdefault("num_samples", NUM_SAMPLES)
    s, config = _load(song, **cfg)
    clf = classifier or whitebox(song)
    return MusicLIME(clf, config, progress=False).explain(s), s


@pytest.fixture(scope="module")
def both(song):
    return _explain(song, seed=0)


def test_song_is_loaded_from_disk_as_built(song, both):
    _, s = both
    assert s.audio.stem_names == ("vocals", "drums", "bass", "other")
    assert s.audio.sample_rate == 22050 and s.audio.n_samples == 8 * 22050
    np.testing.assert_array_equal(s.audio.mix, song.mix)
    np.testing.assert_array_equal(s.audio.stems[3], song.stems["other"])
    assert s.lyrics.units == LYRIC_LINES
    assert s.audio.component_names()[3 * 4 + 3] == "other_T3" == song.tone_feature


def test_both_ranks_the_two_evidence_features_first(song, both):
    exp, _ = both
    assert exp.class_names == ["ai", "human"]
    assert exp.predicted_label == 0  # tone + keyword => "ai"
    assert exp.labels == [0]
    top = exp.top_features(k=2)
    assert {name for name, _ in top} == {"other_T3", KEYWORD_LINE}
    assert all(w > 0.2 for _, w in top)
    # every other feature is nearly irrelevant
    rest = [abs(w) for _, w in exp.top_features(k=100)[2:]]
    assert len(rest) == exp.features.n_audio + exp.features.n_lyrics - 2 == 42
    assert max(rest) < 0.25 * min(w for _, w in top)
    assert exp.fits[0].score > 0.8
    # the kernel is the local default, not the flat reference one
    assert exp.kernel["width"] == 0.25 and exp.kernel["weight_min"] < 0.5


def test_audio_mode_keeps_full_lyrics(song):
    rec = RecordingClassifier(whitebox(song))
    exp, s = _explain(song, rec, modality="audio", seed=0)
    full = s.lyrics.full_text()
    # the masks' rows, then the modality game's (musiclime.core.modality), which switches the
    # lyrics off too
    n = len(rec.lyrics) - exp.modality_game.predicted_rows
    assert n > 0
    assert all(text == full for text in rec.lyrics[:n])
    assert exp.columns == list(range(40))
    assert exp.top_features(k=1)[0][0] == "other_T3"
    # the audio does vary
    audio = torch.cat(rec.audio)
    assert not torch.equal(audio[1], audio[0])


def test_lyrical_mode_keeps_original_audio(song):
    rec = RecordingClassifier(whitebox(song))
    exp, s = _explain(song, rec, modality="lyrical", seed=0)
    mix = torch.from_numpy(s.audio.mix)
    audio = torch.cat(rec.audio)
    # 4 lines: every mask enumerated once, then the modality game's two rows with the audio off
    # (its rows with the audio on are among the masks)
    assert exp.modality_game.predicted_rows == 2
    audio = audio[: 2 ** 4]
    assert audio.shape[0] == 2 ** 4
    assert all(torch.equal(row, mix) for row in audio)
    assert len(set(rec.lyrics)) == 16
    assert exp.columns == [40, 41, 42, 43]
    assert exp.top_features(k=1)[0][0] == KEYWORD_LINE
    assert exp.params["exhaustive_enumeration"] is True


def test_all_ones_row_is_the_mix_and_row0_prediction_is_unperturbed(song, both):
    exp, s = both
    comp = WaveformComposer(s.audio)
    ones = np.ones((1, s.audio.n_components), dtype=np.uint8)
    assert np.array_equal(comp.compose(ones)[0].numpy(), song.mix)
    clf = whitebox(song)
    direct = clf.predict_proba([s.lyrics.full_text()], torch.from_numpy(song.mix)[None])[0]
    np.testing.assert_allclose(exp.prediction, direct, rtol=0, atol=1e-12)
    assert exp.prediction[0] > 0.95

    # and what the classifier sees for row 0 is the mix, bit for bit, with the full lyrics
    rec = RecordingClassifier(clf)
    _explain(song, rec, seed=0, num_samples=20)
    assert torch.equal(rec.audio[0][0], torch.from_numpy(song.mix))
    assert rec.lyrics[0] == s.lyrics.full_text()


def _stable_dict(path):
    d = json.loads(path.read_text())
    d["metadata"].pop("timestamp")
    d["metadata"].pop("timings")
    return d


def test_same_seed_same_json_different_seed_different_weights(song, both, tmp_path):
    exp_a, _ = both
    exp_b, _ = _explain(song, seed=0)
    exp_c, _ = _explain(song, seed=1)
    pa = exp_a.save_json(tmp_path / "a.json")
    pb = exp_b.save_json(tmp_path / "b.json")
    pc = exp_c.save_json(tmp_path / "c.json")
    da, db, dc = _stable_dict(pa), _stable_dict(pb), _stable_dict(pc)
    assert json.dumps(da, sort_keys=True).encode() == json.dumps(db, sort_keys=True).encode()
    assert da != dc
    assert not np.array_equal(exp_a.fits[0].weights, exp_c.fits[0].weights)
    # the evidence is found with either seed
    assert {n for n, _ in exp_c.top_features(k=2)} == {"other_T3", KEYWORD_LINE}


def test_predicted_label_by_default_and_labels_on_request(song, both, tmp_path):
    exp, _ = both
    assert exp.labels == [exp.predicted_label] == [0]

    # a "human" song (no tone, no keyword): the default explains label 1, not a fixed label
    human = write_song(tmp_path / "human", seconds=4.0, tone_stem=None, tone_segment=None,
                       lyrics=LYRICS_NO_KEYWORD)
    start, end = song.tone_window
    clf = ToneKeywordClassifier(sample_rate=22050, start=start, end=end, keyword=KEYWORD,
                                reference_energy=TONE_REFERENCE_ENERGY)
    hexp, _ = _explain(human, clf, seed=0, num_samples=100)
    assert hexp.predicted_label == 1 and hexp.labels == [1]

    exp2, _ = _explain(song, seed=0, labels=[0, 1])
    assert exp2.labels == [0, 1]
    # P(human) = 1 - P(ai): the surrogates are mirror images
    np.testing.assert_allclose(exp2.fits[1].weights, -exp2.fits[0].weights, atol=1e-9)
    np.testing.assert_allclose(exp2.fits[0].weights, exp.fits[0].weights, atol=1e-12)
    d = exp2.to_dict()
    assert set(d["explanations"]) == {"label_0", "label_1"}
    assert d["explanations"]["label_1"]["prediction_label"] == "human"
    exp3, _ = _explain(song, seed=0, labels=["human"], num_samples=50)
    assert exp3.labels == [1]


def test_json_round_trip(both, tmp_path):
    exp, _ = both
    path = exp.save_json(tmp_path / "exp.json", num_features=5)
    loaded = Explanation.load(path)
    assert loaded.to_dict(5) == exp.to_dict(5)
    assert loaded.song_id == exp.song_id and loaded.columns == exp.columns
    np.testing.assert_array_equal(loaded.fits[0].weights, exp.fits[0].weights)
    assert loaded.ranked(0) == exp.ranked(0)
    d = json.loads(path.read_text())
    assert len(d["explanations"]["label_0"]["top_features"]) == 5
    assert len(d["explanations"]["label_0"]["weights"]) == 44
    assert d["metadata"]["model_info"]["total_features"] == 44


def test_files_heatmap_lyrics_and_listenable_wav(song, both, tmp_path):
    exp, s = both
    files = write_explanation_files(exp, s, tmp_path / "out", listen_top_k=3)
    for png in (files.heatmap, files.lyrics):
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    assert Explanation.load(files.json).to_dict() == exp.to_dict()

    grid = exp.audio_weight_grid()
    assert grid.shape == (4, 10)
    assert np.unravel_index(np.nanargmax(grid), grid.shape) == (3, 3)  # other, T3

    # top-1 positive audio component is other_T3; its WAV is that stem-segment and nothing else
    top = top_audio_components(exp, k=1)
    assert [exp.features[i].name for i in top] == ["other_T3"]
    one = save_listenable(exp, s.audio, tmp_path / "top1.wav", k=1)
    y, rate = sf.read(one, dtype="float32")
    assert rate == 22050 and len(y) == s.audio.n_samples
    a, b = s.audio.bounds[3]
    np.testing.assert_array_equal(y[a:b], song.stems["other"][a:b])
    assert not y[:a].any() and not y[b:].any()

    # the default (top-3) WAV contains the tone in its window
    y, _ = sf.read(files.listen, dtype="float32")
    seg = y[a:b]
    freqs = np.fft.rfftfreq(len(seg), 1 / rate)
    assert abs(freqs[np.argmax(np.abs(np.fft.rfft(seg)))] - TONE_HZ) < 5
    np.testing.assert_allclose(listenable_audio(exp, s.audio, 3), y, atol=1e-7)
