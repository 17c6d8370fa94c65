"""Audio decoding, resampling and writing.

Every array that leaves this module is mono float32 at a sample rate the caller named, so the
stages after it never have to guess the rate (one deployment of the reference explainer fed
22.05 kHz audio to Open-Unmix as if it were 44.1 kHz).
"""

from __future__ import annotations

import itertools
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
        return soxr.resample(audio, orig_sr, target_sr, quality="HQ").astype(np.float32,
                                                                             copy=False)
    # soxr wants (samples, channels)
    out = soxr.resample(audio.T, orig_sr, target_sr, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


#: Frames decoded per read when a multichannel file is averaged to mono (4 MiB of stereo
#: float32): the full multichannel array is never held.
DECODE_BLOCK_FRAMES = 2 ** 19


def audio_path_problem(path: str | os.PathLike | None) -> str | None:
    """Why ``path`` cannot be an audio file to decode (None when it can)."""
    if path is None:
        return "no audio file given"
    path = Path(path)
    if path.is_dir():
        return (f"audio path {path} is a folder, not an audio file; give the audio file itself "
                f"(wav, flac, ogg, mp3)")
    if not path.is_file():
        return f"audio file not found: {path}"
    return None


def load_audio(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` to mono float32, resampled to ``sample_rate`` when given.

    Reads wav/flac/ogg/mp3 (libsndfile >= 1.1), mono or multichannel, at any rate. Channels are
    averaged block by block (:data:`DECODE_BLOCK_FRAMES`), so a stereo file costs one mono
    array, not a stereo one plus its mean. Returns ``(audio, rate)``; ``rate`` equals
    ``sample_rate`` when one was asked for. Raises :class:`AudioDecodeError` naming the file
    when it is missing, unreadable, empty or holds NaN or infinite samples.
    """
    path = Path(path)
    problem = audio_path_problem(path)
    if problem:
        raise AudioDecodeError(problem)
    try:
        mono, rate = _decode_mono(path)
    except Exception as exc:  # libsndfile raises several types; all mean "cannot decode"
        raise AudioDecodeError(
            f"cannot decode audio file {path}: {exc}. Supported formats: wav, flac, ogg, mp3; "
            "convert the file (e.g. with ffmpeg or sox) to one of them."
        ) from exc
    if mono.shape[0] == 0:
        raise AudioDecodeError(f"audio file {path} holds no samples; remove it from the dataset")
    if not np.isfinite(mono).all():
        raise AudioDecodeError(f"audio file {path} contains NaN or infinite samples; repair or "
                               "re-export it, or remove it from the dataset")
    if sample_rate is not None and int(sample_rate) != rate:
        mono = resample(mono, rate, int(sample_rate))
        rate = int(sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate)


def _decode_mono(path: Path) -> tuple[np.ndarray, int]:
    """``(mono float32, rate)``: the channel mean, computed per block of frames (each row's
    mean is the same float32 reduction as on the whole array, so the result does not depend on
    the block size)."""
    with sf.SoundFile(str(path)) as f:
        rate, channels = int(f.samplerate), int(f.channels)
        if channels == 1:
            return f.read(dtype="float32"), rate
        mono = np.empty(max(int(f.frames), 0), dtype=np.float32)
        buf = np.empty((DECODE_BLOCK_FRAMES, channels), dtype=np.float32)
        pos = 0
        while True:
            block = f.read(DECODE_BLOCK_FRAMES, dtype="float32", always_2d=True, out=buf)
            got = block.shape[0]
            if got == 0:
                break
            if pos + got > mono.shape[0]:  # a header that undercounts its frames
                grown = np.empty(max(2 * mono.shape[0], pos + got), dtype=np.float32)
                grown[:pos] = mono[:pos]
                mono = grown
            np.mean(block, axis=1, dtype=np.float32, out=mono[pos:pos + got])
            pos += got
            if got < DECODE_BLOCK_FRAMES:
                break
    return mono[:pos], rate


#: Frames per libsndfile write call. libvorbis's encoder puts a buffer of every frame handed
#: to it in one call on the stack (``alloca`` in ``_preextrapolate_helper``), so one call with
#: a few million frames overflows an 8 MiB stack and the process dies with SIGSEGV (libsndfile
#: 1.2.2: 60 s of mono noise at 22,050 Hz encodes, 120 s crashes; so does 50 s at 44.1 kHz;
#: libsndfile issue #1095, python-soundfile #233 and #426). 32768 frames is 128 KiB per channel.
WRITE_BLOCK_FRAMES = 2 ** 15


def encode_audio(file, audio, sample_rate: int, format: str, subtype: str | None = None,
                 block_frames: int = WRITE_BLOCK_FRAMES) -> None:
    """Encode ``audio`` into ``file`` (a path or a writable binary file object) as
    ``format``/``subtype`` (libsndfile's names, e.g. ``"OGG"``/``"VORBIS"``, ``"MP3"``,
    ``"WAV"``/``"PCM_16"``).

    ``audio``: an array, (frames,) or (frames, channels) as soundfile lays it out, or an
    iterable of such arrays (blocks of one long signal, so a generator can write a song it
    never holds whole). Every audio file or clip musiclime writes goes through here: frames are
    handed to libsndfile :data:`WRITE_BLOCK_FRAMES` at a time, which keeps native encoders
    (Ogg Vorbis) from crashing on long songs and bounds their working memory; only one block is
    converted (to C order, to the file's sample type) at a time.
    """
    if block_frames < 1:
        raise ValueError(f"block_frames must be positive, got {block_frames}")
    blocks = iter([audio] if isinstance(audio, np.ndarray) else audio)
    first = np.asarray(next(blocks, np.zeros(0, dtype=np.float32)))
    if first.ndim not in (1, 2):
        raise ValueError(f"audio must be (frames,) or (frames, channels), got {first.shape}")
    channels = 1 if first.ndim == 1 else int(first.shape[1])
    with sf.SoundFile(file, "w", int(sample_rate), channels, subtype=subtype,
                      format=format) as out:
        for block in itertools.chain([first], blocks):
            block = np.asarray(block)
            if block.shape[1:] != first.shape[1:]:
                raise ValueError(f"every block must have {channels} channel(s) like the first, "
                                 f"got shape {block.shape}")
            for lo in range(0, block.shape[0], block_frames):
                out.write(block[lo:lo + block_frames])


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int,
              subtype: str = "FLOAT") -> Path:
    """Write ``audio`` ((samples,) or (channels, samples)) as a WAV, float32 by default.

    Written through :func:`musiclime.fileio.atomic_path` (temp file + rename, parent folders
    created), so a killed job leaves no half file; encoded by :func:`encode_audio`.
    """
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    with atomic_path(path, ".wav") as tmp:
        encode_audio(tmp, audio.T if audio.ndim == 2 else audio, sample_rate, "WAV", subtype)
    return path
