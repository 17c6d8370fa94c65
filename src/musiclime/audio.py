"""Audio decoding, resampling and writing.

Every array that leaves this module is mono float32 at a sample rate the caller named, so the
stages after it never have to guess the rate (one deployment of the reference explainer fed
22.05 kHz audio to Open-Unmix as if it were 44.1 kHz).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioDecodeError, SampleRateError
from .fileio import atomic_path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample with libsoxr (high quality). Works on (samples,) or (channels, samples)."""
    orig_sr, target_sr = int(orig_sr), int(target_sr)
    if orig_sr <= 0 or target_sr <= 0:
        raise SampleRateError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    audio = np.asarray(audio, dtype=np.float32)
    if orig_sr == target_sr:
        return audio
    if audio.ndim == 1:
        return soxr.resample(audio, orig_sr, target_sr, quality="HQ").astype(np.float32)
    # soxr wants (samples, channels)
    out = soxr.resample(audio.T, orig_sr, target_sr, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` to mono float32, resampled to ``sample_rate`` when given.

    Reads wav/flac/ogg/mp3 (libsndfile >= 1.1), mono or multichannel, at any rate. Channels are
    averaged. Returns ``(audio, rate)``; ``rate`` equals ``sample_rate`` when one was asked for.
    Raises :class:`AudioDecodeError` naming the file when it is missing, unreadable or empty.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"audio file not found: {path}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several types; all mean "cannot decode"
        raise AudioDecodeError(
            f"cannot decode audio file {path}: {exc}. Supported formats: wav, flac, ogg, mp3; "
            "convert the file (e.g. with ffmpeg or sox) to one of them."
        ) from exc
    if data.shape[0] == 0:
        raise AudioDecodeError(f"audio file {path} holds no samples; remove it from the dataset")
    mono = data.mean(axis=1, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise AudioDecodeError(f"audio file {path} contains NaN or infinite samples")
    if sample_rate is not None and int(sample_rate) != rate:
        mono = resample(mono, rate, int(sample_rate))
        rate = int(sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int,
              subtype: str = "FLOAT") -> Path:
    """Write ``audio`` ((samples,) or (channels, samples)) as a WAV, float32 by default.

    Written through :func:`musiclime.fileio.atomic_path` (temp file + rename, parent folders
    created), so a killed job leaves no half file.
    """
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    with atomic_path(path, ".wav") as tmp:
        sf.write(tmp, audio.T if audio.ndim == 2 else audio, int(sample_rate),
                 subtype=subtype, format="WAV")
    return path
