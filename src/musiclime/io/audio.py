"""Audio decoding, resampling and writing.

Every array that leaves this module is mono float32 at a sample rate the caller named, so the
stages after it never have to guess the rate (one deployment of the reference explainer fed
22.05 kHz audio to Open-Unmix as if it were 44.1 kHz).
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioDecodeError, SampleRateError
from .fileio import atomic_path

log = logging.getLogger(__name__)

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


def load_audio(path: str | os.PathLike, sample_rate: int | None = None,
               warnings: list[str] | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` to mono float32, resampled to ``sample_rate`` when given.

    Reads wav/flac/ogg/mp3 (libsndfile >= 1.1), mono or multichannel, at any rate. Channels are
    averaged block by block (:data:`DECODE_BLOCK_FRAMES`), so a stereo file costs one mono
    array, not a stereo one plus its mean. Returns ``(audio, rate)``; ``rate`` equals
    ``sample_rate`` when one was asked for. Raises :class:`AudioDecodeError` naming the file
    when it is missing, unreadable, empty or holds NaN or infinite samples.

    What the decoded audio cannot show is checked on the way (:func:`file_warnings`): channels
    that cancel in the mean (one is phase-inverted; the mean is still what is returned: it is
    what a mono model hears, and the warning says how to fix the file), clipping or samples far
    beyond full scale, and a file shorter than its header says (truncated). Each is one line naming the file; they are appended to ``warnings`` when a
    list is given (the caller records them), else logged.
    """
    path = Path(path)
    problem = audio_path_problem(path)
    if problem:
        raise AudioDecodeError(problem)
    try:
        mono, rate, stats = _decode_mono(path)
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
    found = file_warnings(path, stats)
    if warnings is None:
        for text in found:
            log.warning("%s", text)
    else:
        warnings.extend(found)
    if sample_rate is not None and int(sample_rate) != rate:
        mono = resample(mono, rate, int(sample_rate))
        rate = int(sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate)


#: the channel mean this far (dB) below the channels' own level means they cancel: one of them
#: is phase-inverted (uncorrelated channels average 3 dB down, identical ones 0 dB)
CANCEL_DB = 20.0
#: a sample this close to 1.0 (or beyond) sits at full scale: 16-bit's largest is 1 - 2**-15
CLIP_LEVEL = 1.0 - 2.0 ** -14
#: the share of samples at full scale from which audio counts as clipped
CLIP_FRACTION = 1e-3
#: a peak this far above full scale (+6 dBFS) is worth a warning whatever its share
PEAK_LIMIT = 2.0


@dataclass
class DecodeStats:
    """What :func:`_decode_mono` saw of the file's own channels (before the mean)."""

    channels: int
    rate: int
    frames_announced: int  # libsndfile's frame count (the header's, or its own estimate)
    frames_read: int
    energy: np.ndarray  # per channel: sum of squares (float64)
    mix_energy: float  # sum of squares of the channel mean
    peak: float  # largest |sample| of any channel
    at_full_scale: int  # samples (of all channels) with |x| >= CLIP_LEVEL


def file_warnings(path: Path, stats: DecodeStats) -> list[str]:
    """One line per problem the decoded mono audio hides."""
    found = []
    if stats.channels > 1 and stats.frames_read:
        level = float(np.mean(stats.energy))
        if level > 0 and stats.mix_energy < level * 10 ** (-CANCEL_DB / 10):
            drop = (f"{10 * np.log10(level / stats.mix_energy):.0f} dB" if stats.mix_energy > 0
                    else "infinitely far")
            fix = "remix 1 -2" if stats.channels == 2 else "remix 1"
            found.append(
                f"audio file {path}: its {stats.channels} channels cancel when averaged to "
                f"mono (the mean is {drop} below the channels: one is phase-inverted), so "
                "the mono mix musiclime explains is close to silence; kept as the mean (what a "
                f"mono model hears): fix the file (e.g. `sox IN OUT {fix}`, or `remix 1` for "
                "one channel) and explain that instead")
    samples = stats.channels * stats.frames_read
    share = stats.at_full_scale / samples if samples else 0.0
    if share >= CLIP_FRACTION or stats.peak > PEAK_LIMIT:
        over = stats.peak > 1.0 + 1e-6
        found.append(
            f"audio file {path}: {share:.2%} of its samples are at or beyond full scale (peak "
            f"{stats.peak:.2f}, {20 * np.log10(stats.peak):+.1f} dBFS): the audio is clipped"
            + (" or was never normalised" if over else "")
            + "; it is explained as decoded: use an unclipped (or normalised) export if there is "
              "one")
    short = truncation(path, stats)
    if short:
        announced, present = short
        found.append(
            f"audio file {path} is truncated: its header announces {announced:.2f} s, the file "
            f"holds {present:.2f} s ({present / announced:.0%}); only what is there is "
            "explained: copy or export the file again if it should be longer")
    return found


def truncation(path: Path, stats: DecodeStats) -> tuple[float, float] | None:
    """``(announced, present)`` seconds when the file holds less audio than its header says:
    libsndfile reads a truncated WAV's remaining frames without a word (it shrinks its frame
    count to the file), so a WAV's data chunk size is read here; for other formats, fewer
    frames decoded than libsndfile announced."""
    found = _wav_data_shortfall(path)
    if found:
        return found
    if stats.frames_read < stats.frames_announced and stats.rate:
        return stats.frames_announced / stats.rate, stats.frames_read / stats.rate
    return None


def _wav_data_shortfall(path: Path) -> tuple[float, float] | None:
    """A RIFF/WAVE file's data chunk size against the bytes that follow it, in seconds."""
    import struct

    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = os.fstat(fh.fileno()).st_size
            rate = align = None
            pos = 12
            while pos + 8 <= size:
                fh.seek(pos)
                chunk, length = struct.unpack("<4sI", fh.read(8))
                if chunk == b"fmt ":
                    fmt = fh.read(16)
                    if len(fmt) == 16:
                        rate, align = struct.unpack("<I", fmt[4:8])[0], \
                            struct.unpack("<H", fmt[12:14])[0]
                elif chunk == b"data":
                    present = size - (pos + 8)
                    # 0 and 0xFFFFFFFF: a stream that never wrote its size
                    if not rate or not align or length in (0, 0xFFFFFFFF) or present >= length:
                        return None
                    return length / align / rate, (present // align) / rate
                pos += 8 + length + (length & 1)
    except OSError:
        return None
    return None


def _block_stats(block: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Per-channel sum of squares, peak and full-scale count of a (frames, channels) block."""
    wide = block.astype(np.float64)
    mags = np.abs(block)
    return (np.einsum("ij,ij->j", wide, wide), float(mags.max(initial=0.0)),
            int(np.count_nonzero(mags >= CLIP_LEVEL)))


def _decode_mono(path: Path) -> tuple[np.ndarray, int, DecodeStats]:
    """``(mono float32, rate, stats)``: the channel mean, computed per block of frames (each
    row's mean is the same float32 reduction as on the whole array, so the result does not
    depend on the block size), and what the channels themselves held."""
    with sf.SoundFile(str(path)) as f:
        rate, channels = int(f.samplerate), int(f.channels)
        announced = max(int(f.frames), 0)
        mono = np.empty(announced, dtype=np.float32)
        buf = np.empty((DECODE_BLOCK_FRAMES, channels), dtype=np.float32)
        energy = np.zeros(channels, dtype=np.float64)
        mix_energy, peak, full = 0.0, 0.0, 0
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
            out = mono[pos:pos + got]
            if channels == 1:
                out[:] = block[:, 0]
            else:
                np.mean(block, axis=1, dtype=np.float32, out=out)
            e, p, n = _block_stats(block)
            energy += e
            wide = out.astype(np.float64)
            mix_energy += float(np.dot(wide, wide))
            peak, full = max(peak, p), full + n
            pos += got
            if got < DECODE_BLOCK_FRAMES:
                break
    stats = DecodeStats(channels, rate, announced, pos, energy, mix_energy, peak, full)
    return mono[:pos], rate, stats


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

    Written through :func:`musiclime.io.fileio.atomic_path` (temp file + rename, parent folders
    created), so a killed job leaves no half file; encoded by :func:`encode_audio`.
    """
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    with atomic_path(path, ".wav") as tmp:
        encode_audio(tmp, audio.T if audio.ndim == 2 else audio, sample_rate, "WAV", subtype)
    return path
