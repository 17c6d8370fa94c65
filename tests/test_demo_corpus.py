"""The demo corpus generator: determinism, exact mixes, evidence, lyrics, splits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musiclime_demo import corpus as dc

DUR = 6.0


def _units(text: str) -> list[str]:
    # musiclime's line rule, restated independently of the generator
    out = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line:
            continue
        if line[0] == "[" and line[-1] == "]" or line[0] == "(" and line[-1] == ")":
            continue
        out.append(line)
    return out


def _hf_energy(x: np.ndarray, sr: int, lo: float = 6000.0, frame: int = 2048) -> np.ndarray:
    """High-band energy per frame (no overlap)."""
    n = len(x) // frame
    spec = np.abs(np.fft.rfft(x[: n * frame].reshape(n, frame) * np.hanning(frame), axis=1)) ** 2
    freqs = np.fft.rfftfreq(frame, 1 / sr)
    return spec[:, freqs >= lo].sum(axis=1)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    return dc.generate_corpus(out, n_train=2, n_val=2, n_test=2, seed=3, duration=DUR)


def test_render_is_deterministic():
    a = dc.render_song(5, seed=1, duration=DUR)
    b = dc.render_song(5, seed=1, duration=DUR)
    for s in dc.STEMS:
        assert np.array_equal(a.stems[s], b.stems[s])
    assert np.array_equal(a.mix, b.mix)
    assert a.lyrics == b.lyrics and a.evidence == b.evidence
    c = dc.render_song(5, seed=2, duration=DUR)
    assert not np.array_equal(a.mix[: len(c.mix)], c.mix)
    assert a.lyrics != c.lyrics


def test_subset_generation_is_identical(tiny_corpus, tmp_path):
    # only the test split, generated alone, gives byte-identical files
    m = dc.generate_corpus(
        tmp_path, n_train=2, n_val=2, n_test=2, seed=3, duration=DUR, splits=("test",)
    )
    rows = dc.read_corpus_manifest(m)
    assert {r["split"] for r in rows} == {"test"} and len(rows) == 2
    for r in rows:
        for key in ("audio_path", "lyrics_path", "evidence_path"):
            assert (tmp_path / r[key]).read_bytes() == (tiny_corpus.parent / r[key]).read_bytes()
        for s in dc.STEMS:
            rel = Path(r["stems_dir"]) / f"{s}.wav"
            assert (tmp_path / rel).read_bytes() == (tiny_corpus.parent / rel).read_bytes()


def test_manifest_splits_labels(tiny_corpus):
    with open(tiny_corpus, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == dc.MANIFEST_COLUMNS
        rows = list(reader)
    assert len(rows) == 6
    for split in dc.SPLITS:
        labels = sorted(r["label"] for r in rows if r["split"] == split)
        assert labels == ["ai", "human"]
    for r in rows:
        assert int(r["sample_rate"]) == dc.SAMPLE_RATE
        assert float(r["duration"]) == pytest.approx(DUR)
        assert r["song_id"].startswith("demo_")
        for key in ("audio_path", "lyrics_path", "evidence_path", "stems_dir"):
            assert (tiny_corpus.parent / r[key]).exists()


def test_mix_is_exact_sum_of_stems_after_reading(tiny_corpus):
    for r in dc.read_corpus_manifest(tiny_corpus):
        mix, sr = sf.read(tiny_corpus.parent / r["audio_path"], dtype="float32")
        assert sr == dc.SAMPLE_RATE and mix.ndim == 1 and len(mix) == int(DUR * sr)
        stems = [
            sf.read(tiny_corpus.parent / r["stems_dir"] / f"{s}.wav", dtype="float32")[0]
            for s in dc.STEMS
        ]
        total = stems[0] + stems[1] + stems[2] + stems[3]
        assert np.array_equal(mix, total)
        assert 0.85 <= np.abs(mix).max() <= 0.95
        assert all(np.abs(s).max() > 0 for s in stems)


def test_float_subtype_keeps_exact_sum(tmp_path):
    song = dc.render_song(1, seed=0, duration=4.0)
    row = dc.write_song(song, tmp_path, subtype="FLOAT")
    info = sf.info(tmp_path / row["audio_path"])
    assert info.subtype == "FLOAT"
    mix = sf.read(tmp_path / row["audio_path"], dtype="float32")[0]
    stems = [
        sf.read(tmp_path / row["stems_dir"] / f"{s}.wav", dtype="float32")[0] for s in dc.STEMS
    ]
    assert np.array_equal(mix, stems[0] + stems[1] + stems[2] + stems[3])
    assert np.array_equal(mix, song.mix)


def test_audio_evidence_is_in_the_artifact_stem():
    ai = dc.render_song(1, seed=0, duration=10.0)
    human = dc.render_song(1, seed=0, duration=10.0, label="human")
    assert ai.label == "ai" and human.label == "human"
    assert human.evidence["audio"] == [] and human.evidence["lyrics"] == []
    spans = ai.evidence["audio"]
    assert 2 <= len(spans) <= 3
    sr, frame = ai.sample_rate, 2048
    inside = np.zeros(len(ai.mix) // frame, bool)
    centers = (np.arange(len(inside)) + 0.5) * frame / sr
    for e in spans:
        assert e["stem"] == dc.ARTIFACT_STEM and e["end"] - e["start"] >= 1.5
        inside |= (centers > e["start"] + 0.05) & (centers < e["end"] - 0.05)
    hf_ai = _hf_energy(ai.stems[dc.ARTIFACT_STEM], sr)
    hf_h = _hf_energy(human.stems[dc.ARTIFACT_STEM], sr)
    # the artifact is loud and bright inside its spans, absent outside and in the human twin
    assert np.median(hf_ai[inside]) > 100 * np.median(hf_ai[~inside]) + 1e-9
    assert np.median(hf_ai[inside]) > 100 * np.median(hf_h[inside]) + 1e-9
    # all other stems are the same music (up to the joint gain)
    for s in dc.STEMS:
        if s != dc.ARTIFACT_STEM:
            a, h = ai.stems[s].astype(np.float64), human.stems[s].astype(np.float64)
            g = np.dot(a, h) / np.dot(h, h)
            assert np.abs(a - g * h).max() < 1e-3


def test_lyrics_evidence_points_at_the_right_units(tiny_corpus):
    n_ai = 0
    for r in dc.read_corpus_manifest(tiny_corpus):
        text = (tiny_corpus.parent / r["lyrics_path"]).read_text()
        ev = json.loads((tiny_corpus.parent / r["evidence_path"]).read_text())
        units = _units(text)
        assert any(line.strip().startswith("[") for line in text.splitlines())
        assert any(line.strip().startswith("(") for line in text.splitlines())
        assert ev["song_id"] == r["song_id"] and ev["label"] == r["label"]
        assert [s["text"] for s in ev["line_spans"]] == units
        assert [s["unit_index"] for s in ev["line_spans"]] == list(range(len(units)))
        for s in ev["line_spans"]:
            assert 0 <= s["start"] < s["end"] <= ev["duration"]
        for e in ev["lyrics"]:
            assert units[e["unit_index"]] == e["text"] and e["text"] in dc.AI_PHRASES
        if r["label"] == "ai":
            n_ai += 1
            assert len(ev["lyrics"]) >= 1 and len(ev["audio"]) >= 2
        else:
            assert ev["lyrics"] == [] and ev["audio"] == []
            assert not set(units) & set(dc.AI_PHRASES)
    assert n_ai == 3


def test_full_length_song_has_enough_lines():
    song = dc.render_song(4, seed=0)
    assert song.duration == pytest.approx(20.0)
    ev = song.evidence
    assert len(ev["line_spans"]) >= 4
    ai = dc.render_song(4, seed=0, label="ai")
    assert 2 <= len(ai.evidence["lyrics"]) <= 3
    assert all(e["end"] - e["start"] >= 2.0 for e in ai.evidence["audio"])


def test_stereo_flac_mix_downmixes_exactly_to_the_sum_of_the_stems(tmp_path):
    from musiclime.io.audio import load_audio

    m = dc.generate_corpus(tmp_path, n_train=0, n_val=0, n_test=2, seed=0, duration=DUR,
                           channels=2, audio_format="flac")
    assert json.loads((tmp_path / "corpus.json").read_text())["channels"] == 2
    for r in dc.read_corpus_manifest(m):
        path = tmp_path / r["audio_path"]
        info = sf.info(path)
        assert path.suffix == ".flac" and (info.format, info.subtype) == ("FLAC", "PCM_24")
        assert info.channels == 2 and info.frames == int(DUR * dc.SAMPLE_RATE)
        stereo = sf.read(path, dtype="float32")[0]
        stems = [sf.read(tmp_path / r["stems_dir"] / f"{s}.wav", dtype="float32")[0]
                 for s in dc.STEMS]
        total = stems[0] + stems[1] + stems[2] + stems[3]
        # panned, not two copies; musiclime's downmix (the channel mean) is the exact sum
        assert np.abs(stereo[:, 0] - stereo[:, 1]).max() > 0.01
        assert np.array_equal(stereo.mean(axis=1, dtype=np.float32), total)
        assert np.array_equal(load_audio(path)[0], total)
        assert 0.85 <= np.abs(stereo).max() <= 0.95  # the louder channel peaks at ~0.9
    # the same song as its mono render but for the joint gain
    mono, stereo = dc.render_song(3, seed=0, duration=DUR), dc.render_song(3, seed=0,
                                                                          duration=DUR,
                                                                          channels=2)
    assert mono.lyrics == stereo.lyrics and mono.evidence == stereo.evidence
    assert mono.stereo is None and stereo.info["pans"]["vocals"] == 0.0


@pytest.mark.parametrize("audio_format,subtype", [("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")])
def test_lossy_stereo_mix_formats(tmp_path, audio_format, subtype):
    song = dc.render_song(2, seed=0, duration=DUR, channels=2)
    row = dc.write_song(song, tmp_path, audio_format=audio_format)
    path = tmp_path / row["audio_path"]
    info = sf.info(path)
    assert path.suffix == f".{audio_format}" and info.subtype == subtype
    assert info.channels == 2 and info.samplerate == dc.SAMPLE_RATE
    decoded = sf.read(path, dtype="float32")[0]
    assert abs(len(decoded) - len(song.mix)) <= 0.05 * len(song.mix)
    n = min(len(decoded), len(song.mix))
    # a lossy copy of the same music (not silence, not another song)
    assert np.corrcoef(decoded[:n].mean(axis=1), song.mix[:n])[0, 1] > 0.5
    # a default corpus's settings carry none of the new keys (old corpora keep merging)
    dc.generate_corpus(tmp_path / "mono", n_train=0, n_val=0, n_test=1, duration=DUR)
    assert set(json.loads((tmp_path / "mono" / "corpus.json").read_text())) == {
        "seed", "duration", "n_train", "n_val", "n_test", "subtype"}


def test_bad_channels_or_format_are_refused_before_rendering(tmp_path):
    with pytest.raises(ValueError, match="channels must be 1"):
        dc.render_song(0, channels=3)
    with pytest.raises(ValueError, match="audio_format must be one of"):
        dc.generate_corpus(tmp_path, n_train=0, n_val=0, n_test=1, audio_format="aac")
    assert not (tmp_path / "songs").exists()
