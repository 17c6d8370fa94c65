"""Suspicious input is flagged, bad input is refused, with real files end to end.

Warnings (silence, tiny segments, no lyric units, an unsure classifier, predictions that no
perturbation changes) are logged and recorded in the explanation, and survive its JSON; errors
are one line that names the key or file and says what to do.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf
from conftest import KEYWORD, TONE_HZ, TONE_REFERENCE_ENERGY, write_song

from musiclime.core.explainer import ExplainerConfig, MusicLIME, load_song
from musiclime.core.explanation import Explanation
from musiclime.errors import ConfigError, InputError
from musiclime.models.separation import OpenUnmixSeparator, OracleSeparator
from musiclime.models.whitebox import ToneKeywordClassifier

SR = 22050


def _classifier(song, **kw) -> ToneKeywordClassifier:
    start, end = song.tone_window if song.tone_segment is not None else (0.0, 1.0)
    return ToneKeywordClassifier(sample_rate=SR, tone_hz=TONE_HZ, start=start, end=end,
                                 keyword=KEYWORD, reference_energy=TONE_REFERENCE_ENERGY, **kw)


def _explain(audio, lyrics, clf, separator, stems_dir=None, **config):
    cfg = ExplainerConfig(num_samples=64, **config)
    song = load_song(audio, lyrics, separator, SR, cfg, stems_dir=stems_dir)
    return MusicLIME(clf, cfg, progress=False).explain(song)


def _only_line(messages: list[str], needle: str) -> str:
    found = [m for m in messages if needle in m]
    assert len(found) == 1, messages
    assert "\n" not in found[0]
    return found[0]


@pytest.fixture(scope="module")
def demo_separator():
    return OpenUnmixSeparator("demo", device="cpu")


def test_a_clean_song_has_no_warnings(song):
    exp = _explain(song.audio_path, song.lyrics_path, _classifier(song), OracleSeparator(),
                   stems_dir=song.stems_dir)
    assert exp.warnings == []
    assert exp.to_dict()["metadata"]["warnings"] == []


def test_silent_song_without_lyrics_is_not_a_clean_explanation(tmp_path, song, demo_separator,
                                                              caplog, torch_single_thread):
    audio, lyrics = tmp_path / "silence.wav", tmp_path / "empty.txt"
    sf.write(audio, np.zeros(2 * SR, dtype=np.float32), SR, subtype="FLOAT")
    lyrics.write_text("[Intro]\n(instrumental)\n\n", encoding="utf-8")  # no lyric units
    with caplog.at_level(logging.WARNING, logger="musiclime.core.explainer"):
        exp = _explain(audio, lyrics, _classifier(song), demo_separator)
    # what the fit alone would report: a perfect surrogate of a constant
    fit = exp.fits[exp.predicted_label]
    assert fit.score == pytest.approx(1.0) and np.all(fit.weights == 0)
    silent = _only_line(exp.warnings, "the audio is silent")
    assert "RMS -inf dBFS" in silent and str(audio) in silent and "-80 dBFS" in silent
    no_lyrics = _only_line(exp.warnings, "no lyric units")
    assert str(lyrics) in no_lyrics and "modality=audio" in no_lyrics
    constant = _only_line(exp.warnings, "no perturbation changed")
    assert "64 samples" in constant and "R^2 means nothing" in constant
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert all(any(w == m for m in logged) for w in exp.warnings)
    # recorded where tools look, and kept by the JSON round trip
    path = exp.save_json(tmp_path / "exp.json")
    assert json.loads(path.read_text())["metadata"]["warnings"] == exp.warnings
    assert Explanation.load(path).warnings == exp.warnings


def test_quiet_song_reports_its_level(tmp_path, song, demo_separator, torch_single_thread):
    audio = tmp_path / "quiet.wav"
    t = np.arange(2 * SR) / SR
    sf.write(audio, (1e-5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR,
             subtype="FLOAT")  # RMS 1e-5 / sqrt(2): -103.0 dBFS
    exp = _explain(audio, song.lyrics_path, _classifier(song), demo_separator)
    assert "RMS -103.0 dBFS" in _only_line(exp.warnings, "the audio is silent")


def test_tiny_segments_are_flagged(tmp_path):
    tiny = write_song(tmp_path / "tiny", seconds=0.1, tone_segment=None, tone_stem=None)
    exp = _explain(tiny.audio_path, tiny.lyrics_path, _classifier(tiny), OracleSeparator(),
                   stems_dir=tiny.stems_dir)
    short = _only_line(exp.warnings, "segments are as short as")
    assert "10 ms" in short and "10 segments" in short and "temporal_segments" in short
    exp = _explain(tiny.audio_path, tiny.lyrics_path, _classifier(tiny), OracleSeparator(),
                   stems_dir=tiny.stems_dir, temporal_segments=1)
    assert "100 ms" in _only_line(exp.warnings, "segments are as short as")


def test_an_unsure_classifier_is_flagged(song):
    # logit = 0.4 (tone) + 0.4 (keyword) - 0.6: P(ai) = sigmoid(0.2) = 0.550
    clf = _classifier(song, audio_gain=0.4, lyrics_gain=0.4, bias=0.6)
    exp = _explain(song.audio_path, song.lyrics_path, clf, OracleSeparator(),
                   stems_dir=song.stems_dir)
    unsure = _only_line(exp.warnings, "not sure")
    assert "P(ai) = 0.550 < 0.6" in unsure
    assert len(exp.warnings) == 1  # its output does change with the perturbations


def test_segment_boundaries_past_the_end_name_key_value_duration_and_song(song):
    with pytest.raises(ConfigError) as info:
        _explain(song.audio_path, song.lyrics_path, _classifier(song), OracleSeparator(),
                 stems_dir=song.stems_dir, segment_boundaries=[0, 5, 12])
    msg = str(info.value)
    assert "explainer.segment_boundaries=[0.0, 5.0, 12.0]" in msg
    assert "8.000 s" in msg and str(song.audio_path) in msg and "\n" not in msg


@pytest.mark.parametrize("bad", [[3, 1], [0], [-1, 2], "0,5", [0, "x"]])
def test_malformed_segment_boundaries_are_a_config_error(bad):
    with pytest.raises(ConfigError, match=r"explainer\.segment_boundaries="):
        ExplainerConfig(segment_boundaries=bad)


def test_lyrical_modality_without_lyrics_says_what_to_do(tmp_path, song):
    lyrics = tmp_path / "blank.txt"
    lyrics.write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        _explain(song.audio_path, lyrics, _classifier(song), OracleSeparator(),
                 stems_dir=song.stems_dir, modality="lyrical")
    msg = str(info.value)
    assert str(lyrics) in msg and "modality=lyrical" in msg and "modality=audio" in msg
    assert "\n" not in msg


def test_audio_too_short_for_the_segments_names_the_file(tmp_path):
    tiny = write_song(tmp_path / "five", seconds=5 / SR, tone_segment=None, tone_stem=None)
    with pytest.raises(InputError) as info:
        _explain(tiny.audio_path, tiny.lyrics_path, _classifier(tiny), OracleSeparator(),
                 stems_dir=tiny.stems_dir)
    msg = str(info.value)
    assert str(tiny.audio_path) in msg and "explainer.temporal_segments=10" in msg
    assert "5 samples" in msg


def test_an_excel_manifest_with_a_byte_order_mark_reads_like_any_other(tmp_path):
    from musiclime.io.dataset import load_dataset

    rows = "song_id,audio_path,lyrics_path\r\nsong0,a.wav,a.txt\r\n"
    plain, excel = tmp_path / "plain.csv", tmp_path / "excel.csv"
    plain.write_text(rows, encoding="utf-8", newline="")
    excel.write_text(rows, encoding="utf-8-sig", newline="")  # Excel's "CSV UTF-8"
    assert excel.read_bytes().startswith(b"\xef\xbb\xbf")
    assert load_dataset(excel) == load_dataset(plain)
    assert load_dataset(excel)[0].song_id == "song0"


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_windows_and_old_mac_line_ends_leave_no_carriage_return_in_feature_names(
        tmp_path, song, newline):
    from conftest import LYRIC_LINES, LYRICS

    from musiclime.core.lyrics import read_lyrics

    crlf = tmp_path / "lyrics.txt"
    crlf.write_bytes(LYRICS.replace("\n", newline).encode("utf-8"))
    assert read_lyrics(crlf) == LYRICS
    exp = _explain(song.audio_path, crlf, _classifier(song), OracleSeparator(),
                   stems_dir=song.stems_dir)
    names = [f.name for f in exp.features if f.kind == "lyrics"]
    assert names == LYRIC_LINES
    assert not any("\r" in name for name, _ in exp.top_features(k=len(exp.features)))
    assert "\\r" not in exp.save_json(tmp_path / "exp.json").read_text()  # JSON escapes it


# --- what a decoded file hides: cancelling channels, clipping, truncation -----------------------
def _tone(seconds: float = 2.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    noise = 0.02 * np.random.default_rng(0).standard_normal(t.size)
    return (amp * np.sin(2 * np.pi * 440 * t) + noise).astype(np.float32)


def _truncated(path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("make,needle,details", [
    (lambda p: sf.write(p, np.stack([_tone(), -_tone()], 1), SR, subtype="PCM_16"),
     "channels cancel when averaged to mono",
     ["dB below the channels: one is phase-inverted", "kept as the mean", "sox IN OUT remix 1 -2"]),
    (lambda p: sf.write(p, np.clip(4 * _tone(), -1, 1), SR, subtype="PCM_16"),
     "of its samples are at or beyond full scale", ["the audio is clipped", "peak 1.00"]),
    (lambda p: sf.write(p, 8 * _tone(), SR, subtype="FLOAT"),
     "of its samples are at or beyond full scale",
     ["peak 3.01, +9.6 dBFS", "clipped or was never normalised"]),
    (lambda p: (sf.write(p, np.stack([_tone(), _tone()], 1), SR, subtype="PCM_16"),
                _truncated(p, 0.4)),
     "is truncated: its header announces 2.00 s, the file holds 0.80 s (40%)",
     ["only what is there is explained"]),
])
def test_what_a_file_hides_is_one_warning_naming_it(tmp_path, make, needle, details):
    from musiclime.io.audio import load_audio

    path = tmp_path / "song.wav"
    make(path)
    found: list[str] = []
    audio, _ = load_audio(path, SR, warnings=found)
    line = _only_line(found, needle)
    assert line.startswith(f"audio file {path}"), line
    for text in details:
        assert text in line, line
    assert len(found) == 1, found
    assert audio.size > 0


def test_a_clean_stereo_file_and_a_quiet_master_raise_no_file_warning(tmp_path):
    from musiclime.io.audio import load_audio

    path = tmp_path / "ok.wav"
    left, right = _tone(), _tone(amp=0.2)
    right = np.roll(right, 37)  # wide stereo, not cancelling
    sf.write(path, np.stack([left, right], 1), SR, subtype="PCM_24")
    found: list[str] = []
    load_audio(path, SR, warnings=found)
    assert found == []


def test_file_warnings_reach_the_explanation_through_both_doors(tmp_path, song, monkeypatch):
    """`musiclime explain` (load_song) and the workflow's stage files record them alike."""
    from dataclasses import replace

    from musiclime.core.song import Song
    from musiclime.io.dataset import SongRecord
    from musiclime.workflow import stages
    from musiclime.workflow.files import JobRecord
    from musiclime.workflow.specs import (
        DecodeSpec,
        FitMember,
        FitSpec,
        MasksSpec,
        PredictSpec,
        SegmentSpec,
        SeparateSpec,
    )

    clipped = tmp_path / "clipped.wav"
    sf.write(clipped, np.clip(4 * song.mix, -1, 1), SR, subtype="PCM_16")
    exp = _explain(clipped, song.lyrics_path, _classifier(song), OracleSeparator(),
                   stems_dir=song.stems_dir)
    line = _only_line(exp.warnings, "at or beyond full scale")

    monkeypatch.chdir(tmp_path)  # stage outputs are relative to the results root
    src = SongRecord("clipped", str(clipped), str(song.lyrics_path), str(song.stems_dir))
    stages.decode_audio(DecodeSpec("d", SR), src, "decoded.npz")
    oracle = {"name": "oracle", "_target_": "musiclime.models.separation.OracleSeparator"}
    stages.separate_stems(SeparateSpec("d", "k", oracle, "oracle", SR), src, "decoded.npz",
                          "stems.npz")
    config = ExplainerConfig(num_samples=64)
    stages.segment_features(SegmentSpec("d", "k", "k", SR, SR, config.segment), src,
                            "decoded.npz", "stems.npz", "seg.npz", "table.json")
    target, _ = Song.load("seg.npz", "clipped")
    assert target.warnings == [line]
    stages.generate_masks(MasksSpec("d", "k", replace(config.masks, exhaustive=False)), src, "table.json",
                          "masks.npy")
    model = {"name": "whitebox", "_target_": "musiclime.models.whitebox.ToneKeywordClassifier",
             "sample_rate": SR, "tone_hz": 880.0, "start": song.tone_window[0],
             "end": song.tone_window[1], "keyword": "robot",
             "reference_energy": 0.0225}
    stages.run_predict(PredictSpec("d", "k", "k", model, "wb", "both", replace(config.predict, batch_size=64)), src,
                       "seg.npz", "masks.npy", "preds.npz")
    stages.run_fit(FitSpec("d", "k", "k", "k", config.segment, config.predict,
                           [FitMember("fitkey", config.fit)]), src,
                   "seg.npz", "table.json", "masks.npy", "preds.npz", "fit.json")
    recorded = Explanation.load(JobRecord.load("fit.json").files["fitkey"])
    assert recorded.warnings[0] == line


def test_lyrics_no_font_can_draw_are_one_warning_not_one_per_glyph(tmp_path, song, caplog):
    import warnings

    from musiclime.report.fonts import MISSING
    from musiclime.report.plots import plot_audio_heatmap, plot_lyrics_bars

    lyrics = tmp_path / "cjk.txt"
    lyrics.write_text("夜の歌が聞こえる\n🎵 la la la 🎶\nthe robot sings tonight for $5\n"
                      "café crème\n", encoding="utf-8")
    exp = _explain(song.audio_path, lyrics, _classifier(song), OracleSeparator(),
                   stems_dir=song.stems_dir)
    with warnings.catch_warnings(record=True) as seen, \
            caplog.at_level(logging.WARNING, logger="musiclime.report.fonts"):
        warnings.simplefilter("always")
        fig = plot_lyrics_bars(exp, tmp_path / "lyrics.png")
        plot_audio_heatmap(exp, tmp_path / "heatmap.png")
    assert not [w for w in seen if "missing from font" in str(w.message)], \
        [str(w.message) for w in seen]
    lines = [r.getMessage() for r in caplog.records if r.name == "musiclime.report.fonts"]
    assert len(lines) == 1, lines  # the heatmap's text is all drawable: no line for it
    assert lines[0].startswith(f"{tmp_path / 'lyrics.png'}: no installed font has ")
    assert "夜" in lines[0] and "🎵" in lines[0] and "fonts-noto-cjk" in lines[0]
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert r"the robot sings tonight for \$5" in labels  # a price, not mathtext
    assert "café crème" in labels  # what the font has is drawn as it is
    assert any(MISSING in label for label in labels)
    # the explanation itself keeps the text
    assert "夜の歌が聞こえる" in [f.name for f in exp.features]
