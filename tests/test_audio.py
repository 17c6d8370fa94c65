"""Audio decoding: every supported container, any rate, mono or stereo -> mono float32."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from musiclime.errors import AudioDecodeError, SampleRateError
from musiclime.io.audio import (
    DECODE_BLOCK_FRAMES,
    WRITE_BLOCK_FRAMES,
    encode_audio,
    load_audio,
    resample,
    write_wav,
)

FORMATS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"),
           "mp3": ("MP3", None)}


def _sine(freq: float, seconds: float, sr: int, channels: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    if channels == 1:
        return x
    return np.stack([x, 0.5 * x], axis=1)  # right channel at half amplitude


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


@pytest.mark.parametrize("ext", list(FORMATS))
@pytest.mark.parametrize("file_sr,channels,target_sr", [
    (44100, 2, 22050),
    (22050, 1, 22050),
    (48000, 1, 16000),
    (8000, 2, 22050),  # upsampling
])
def test_decode_formats_rates_channels(tmp_path, ext, file_sr, channels, target_sr):
    seconds, freq = 1.5, 440.0
    fmt, subtype = FORMATS[ext]
    path = tmp_path / f"tone.{ext}"
    sf.write(path, _sine(freq, seconds, file_sr, channels), file_sr, format=fmt, subtype=subtype)

    audio, rate = load_audio(path, target_sr)

    assert rate == target_sr
    assert audio.dtype == np.float32 and audio.ndim == 1
    expected = seconds * target_sr
    # lossy codecs may pad a frame; everything else is within a few resampling samples
    tol = 0.05 * expected if ext in ("mp3", "ogg") else 4
    assert abs(len(audio) - expected) <= tol, (len(audio), expected)
    assert np.all(np.isfinite(audio))
    assert abs(_peak_hz(audio, target_sr) - freq) <= 2.0


def test_stereo_is_averaged_not_left_channel(tmp_path):
    sr = 22050
    t = np.arange(sr) / sr
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, 0.5 * left], axis=1).astype(np.float32)
    sf.write(tmp_path / "a.wav", stereo, sr, subtype="FLOAT")
    audio, rate = load_audio(tmp_path / "a.wav", sr)
    assert rate == sr
    np.testing.assert_allclose(audio, 0.75 * left, atol=1e-6)

    # opposite-phase channels cancel: proof that the channels are averaged
    sf.write(tmp_path / "b.wav", np.stack([left, -left], axis=1).astype(np.float32), sr,
             subtype="FLOAT")
    audio, _ = load_audio(tmp_path / "b.wav", sr)
    assert np.max(np.abs(audio)) < 1e-6


def test_no_rate_keeps_the_file_rate_and_samples(tmp_path):
    x = _sine(300.0, 0.5, 8000, 1)
    sf.write(tmp_path / "a.wav", x, 8000, subtype="FLOAT")
    audio, rate = load_audio(tmp_path / "a.wav")
    assert rate == 8000
    np.testing.assert_array_equal(audio, x)


def test_unreadable_file_names_path(tmp_path):
    bad = tmp_path / "garbage.wav"
    bad.write_bytes(b"this is not audio at all" * 100)
    with pytest.raises(AudioDecodeError, match="garbage.wav") as info:
        load_audio(bad, 22050)
    assert str(bad) in str(info.value)


def test_zero_byte_file_names_path(tmp_path):
    bad = tmp_path / "zero.mp3"
    bad.write_bytes(b"")
    with pytest.raises(AudioDecodeError) as info:
        load_audio(bad, 22050)
    assert str(bad) in str(info.value)


def test_empty_audio_names_path(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 22050)
    assert sf.info(empty).frames == 0
    with pytest.raises(AudioDecodeError) as info:
        load_audio(empty, 22050)
    assert str(empty) in str(info.value)
    assert "no samples" in str(info.value)


def test_missing_file_names_path(tmp_path):
    missing = tmp_path / "nope" / "song.flac"
    with pytest.raises(AudioDecodeError) as info:
        load_audio(missing, 22050)
    assert str(missing) in str(info.value)


def test_resample_rejects_bad_rates_and_keeps_same_rate():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    assert resample(x, 8000, 8000) is not None
    np.testing.assert_array_equal(resample(x, 8000, 8000), x)
    with pytest.raises(SampleRateError):
        resample(x, 0, 8000)
    # multichannel (channels, samples) keeps its layout
    y = resample(np.stack([x, x]), 8000, 16000)
    assert y.shape == (2, 2000)


def test_write_wav_round_trip_and_no_temp_left(tmp_path):
    x = np.linspace(-0.5, 0.5, 4000, dtype=np.float32)
    path = write_wav(tmp_path / "sub" / "out.wav", x, 8000)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["out.wav"]
    audio, rate = load_audio(path)
    assert rate == 8000
    np.testing.assert_array_equal(audio, x)


def test_outputs_honour_umask(tmp_path):
    from musiclime.io.fileio import write_json

    old = os.umask(0o022)
    try:
        path = write_wav(tmp_path / "out.wav", np.zeros(16, dtype=np.float32), 8000)
        json_path = write_json(tmp_path / "out.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # group- and world-readable, as open() gives
    assert json_path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_samples_name_the_file(tmp_path, bad):
    x = _sine(220.0, 0.5, 8000, 2)
    x[1000, 1] = bad  # one sample of one channel
    path = tmp_path / "broken.wav"
    sf.write(path, x, 8000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError) as info:
        load_audio(path, 8000)
    msg = str(info.value)
    assert str(path) in msg and "NaN or infinite" in msg and "\n" not in msg


def test_multichannel_decode_in_blocks_equals_the_whole_file_mean(tmp_path):
    # longer than two decode blocks, three channels, a partial last block
    n = 2 * DECODE_BLOCK_FRAMES + 123
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal((n, 3))).astype(np.float32)
    path = tmp_path / "three.wav"
    sf.write(path, x, 8000, subtype="FLOAT")
    audio, rate = load_audio(path)
    whole, _ = sf.read(path, dtype="float32", always_2d=True)
    assert rate == 8000 and audio.shape == (n,) and audio.dtype == np.float32
    np.testing.assert_array_equal(audio, whole.mean(axis=1, dtype=np.float32))


@pytest.mark.parametrize("fmt,subtype", [("WAV", "FLOAT"), ("FLAC", "PCM_24")])
def test_encode_audio_in_blocks_is_lossless_across_block_edges(tmp_path, fmt, subtype):
    # stereo, three blocks and a partial fourth: every block edge must join exactly
    n = 3 * 1000 + 17
    rng = np.random.default_rng(1)
    x = np.round(np.clip(0.3 * rng.standard_normal((n, 2)), -0.99, 0.99) * 2 ** 23) / 2 ** 23
    path = tmp_path / f"x.{fmt.lower()}"
    encode_audio(path, x.astype(np.float32), 8000, fmt, subtype, block_frames=1000)
    back, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == 8000 and back.shape == (n, 2)
    np.testing.assert_array_equal(back, x.astype(np.float32))
    buf = io.BytesIO()  # a file object too (the explanation page's data URIs)
    encode_audio(buf, x[:, 0], 8000, fmt, subtype)
    buf.seek(0)
    np.testing.assert_array_equal(sf.read(buf, dtype="float32")[0], x[:, 0].astype(np.float32))


def test_encode_audio_writes_a_generator_of_blocks_as_one_signal(tmp_path):
    x = np.arange(2500, dtype=np.float32).reshape(1250, 2) / 4096
    path = tmp_path / "gen.wav"
    encode_audio(path, (x[lo:lo + 300] for lo in range(0, 1250, 300)), 8000, "WAV", "FLOAT",
                 block_frames=128)
    np.testing.assert_array_equal(sf.read(path, dtype="float32")[0], x)


def test_encode_audio_rejects_a_bad_shape():
    with pytest.raises(ValueError, match="frames, channels"):
        encode_audio(io.BytesIO(), np.zeros((2, 3, 4)), 8000, "WAV")
    with pytest.raises(ValueError, match="2 channel"):
        encode_audio(io.BytesIO(), [np.zeros((4, 2)), np.zeros(4)], 8000, "WAV")


@pytest.mark.skipif("VORBIS" not in sf.available_subtypes("OGG"), reason="no Vorbis encoder")
def test_long_ogg_vorbis_encodes_without_crashing():
    """libsndfile 1.2.2 segfaults on one Vorbis write of 120 s of noise at 22,050 Hz (the
    encoder puts the whole buffer on the stack); encode_audio writes blocks. In a child
    process, so a crash fails this test instead of killing the test run."""
    seconds, rate = 240, 22050
    code = textwrap.dedent(f"""
        import io, numpy as np, soundfile as sf
        from musiclime.io.audio import encode_audio
        y = (0.3 * np.random.default_rng(0).standard_normal({seconds} * {rate})).astype("f4")
        buf = io.BytesIO()
        encode_audio(buf, y, {rate}, "OGG", "VORBIS")
        buf.seek(0)
        print(sf.info(buf).frames, len(buf.getvalue()))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    frames, size = map(int, proc.stdout.split())
    assert frames == seconds * rate
    assert WRITE_BLOCK_FRAMES <= 2 ** 16 and size > 100_000  # noise costs bits: not empty
