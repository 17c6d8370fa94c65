"""A song from its files to its factorization: decode, separate, cut into stems x segments and
lyric units (a :class:`Song`), and what looks wrong with the audio before anything is predicted.

The same path serves ``musiclime explain`` (:func:`load_song`) and the workflow's stages
(:func:`separate`, :func:`factorize`, one file each).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from ..io.audio import load_audio
from ..io.fileio import write_json, write_npz
from .factorization import AudioFactorization
from .features import FeatureTable
from .lyrics import LyricsUnits, make_lyrics_units, read_lyrics
from .params import ExplainerConfig, SegmentParams, stage

log = logging.getLogger(__name__)

#: Below this RMS (of full scale, i.e. -80 dBFS) a mix counts as silent.
SILENCE_RMS = 1e-4

@dataclass
class Song:
    """A factorized song: the audio factorization and the lyric units.

    ``warnings`` lists what looked suspicious in the input (:func:`audio_warnings`); the
    explanation of the song records them.
    """

    song_id: str
    audio: AudioFactorization
    lyrics: LyricsUnits
    info: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def feature_table(self) -> FeatureTable:
        return FeatureTable.build(self.audio, self.lyrics)

    def save(self, npz_path, table_path, separate_seconds: float) -> None:
        """The factorization (npz, lossless and atomic: the segment stage's file) and its
        feature table (json); ``warnings`` are the decoded file's (warnings about the audio
        itself are recomputed from it)."""
        fac = self.audio
        write_npz(npz_path, mix=fac.mix, stems=fac.stems, stem_names=np.array(fac.stem_names),
                  sample_rate=np.int64(fac.sample_rate),
                  bounds=np.array(fac.bounds, dtype=np.int64),
                  residual=np.array(fac.residual_mode), lyrics=np.array(self.lyrics.text),
                  lyrics_unit=np.array(self.lyrics.kind),
                  separate_seconds=np.float64(separate_seconds),
                  warnings=np.array(json.dumps(list(self.warnings))))
        write_json(table_path, self.feature_table.to_dict())

    @classmethod
    def load(cls, path, song_id: str, info: dict | None = None) -> tuple[Song, float]:
        """``(song, separate_seconds)`` from what :meth:`save` wrote."""
        with np.load(path) as z:
            fac = AudioFactorization(mix=z["mix"], stems=z["stems"],
                                     stem_names=tuple(str(n) for n in z["stem_names"]),
                                     sample_rate=int(z["sample_rate"]),
                                     bounds=[tuple(b) for b in z["bounds"]],
                                     residual_mode=str(z["residual"]))
            lyrics = make_lyrics_units(str(z["lyrics"]), str(z["lyrics_unit"]))
            seconds = float(z["separate_seconds"])
            warnings = list(json.loads(str(z["warnings"])))
        return cls(song_id, fac, lyrics, info=dict(info or {}), warnings=warnings), seconds


def factorize(mix: np.ndarray, stems: dict[str, np.ndarray], sample_rate: int, lyrics: str,
              params: SegmentParams | ExplainerConfig, song_id: str = "song", info: dict | None = None,
              stems_rate: int | None = None) -> Song:
    """Cut stems into stem x segment components and lyrics into units: a :class:`Song`.

    ``mix`` is at ``sample_rate`` (the working rate: the classifier's). ``stems`` are at
    ``stems_rate`` (the separator's rate; default ``sample_rate``) and are resampled to the
    working rate here, trimmed or padded to the mix's length. ``params``: the segmentation
    (an :class:`ExplainerConfig` stands for its ``segment``).

    Raises :class:`ConfigError` when ``explainer.segment_boundaries`` reach past the end of
    the audio and :class:`InputError` when the audio is too short for
    ``explainer.temporal_segments``. Suspicious input (silence) is logged and listed in the
    song's ``warnings``.
    """
    config = stage(params, SegmentParams, "segment")
    info = dict(info or {})
    where = f"song {song_id}" + (f" ({info['audio_path']})" if info.get("audio_path") else "")
    duration = len(mix) / int(sample_rate)
    if config.segment_boundaries:
        last = float(config.segment_boundaries[-1])
        if last > duration + 1e-6:
            raise ConfigError(
                f"explainer.segment_boundaries={[float(x) for x in config.segment_boundaries]}: "
                f"{last:g} s lies past the end of {where}, which lasts {duration:.3f} s; give "
                "boundaries within the audio, or null to cut explainer.temporal_segments equal "
                "segments")
    elif len(mix) < config.temporal_segments:
        raise InputError(
            f"{where} holds {len(mix)} samples ({duration:.4f} s at {int(sample_rate)} Hz), too "
            f"few for explainer.temporal_segments={config.temporal_segments}; use a longer "
            "recording or fewer segments")
    fac = AudioFactorization.from_stems(mix, stems, sample_rate,
                                        segments=config.temporal_segments,
                                        boundaries=config.segment_boundaries,
                                        residual=config.residual, stems_rate=stems_rate)
    warnings = audio_warnings(fac, where)
    for text in warnings:
        log.warning("%s", text)
    return Song(song_id=song_id, audio=fac, lyrics=make_lyrics_units(lyrics, config.lyrics_unit),
                info=info, warnings=warnings)


def rms_dbfs(audio: np.ndarray, block: int = 2 ** 20) -> float:
    """RMS of ``audio`` in dB relative to full scale (1.0); ``-inf`` for digital silence.
    Summed in float64 block by block (no float64 copy of a long song)."""
    total = 0.0
    for lo in range(0, audio.shape[0], block):
        b = audio[lo:lo + block].astype(np.float64)
        total += float(np.dot(b, b))
    rms = np.sqrt(total / max(1, audio.shape[0]))
    return float(20 * np.log10(rms)) if rms > 0 else float("-inf")


def audio_warnings(fac: AudioFactorization, where: str) -> list[str]:
    """What looks wrong with a song's audio before anything is predicted: silence (an RMS
    below :data:`SILENCE_RMS` of full scale). ``where`` names the song (and its file)."""
    level = rms_dbfs(fac.mix)
    limit = 20 * np.log10(SILENCE_RMS)
    if level < limit:
        return [f"{where}: the audio is silent (RMS {level:.1f} dBFS, below {limit:.0f} dBFS); "
                "every stem and segment is silence, so audio weights explain nothing: check "
                "the file"]
    return []


def separation_rate(separator, working_rate: int) -> int:
    """The rate a separator wants its input at: its model's rate, or (oracle stems, which are
    read from disk at any rate) the working rate."""
    rate = getattr(separator, "sample_rate", None)
    return int(rate) if rate else int(working_rate)


def separate(separator, mix: np.ndarray, sample_rate: int,
             stems_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Stems of ``mix`` (at ``sample_rate``, which should be :func:`separation_rate`).

    ``stems_dir`` (the song's ground-truth stems) is handed only to separators that read stems
    from disk (``uses_stems_dir``, the oracle); model-based separators ignore it.
    """
    if getattr(separator, "uses_stems_dir", False):
        if not stems_dir:
            raise InputError("separator=oracle needs the song's ground-truth stems folder: give "
                             "it in the manifest's stems_dir column (or --stems for explain)")
        return separator.separate(mix, sample_rate, stems_dir=stems_dir)
    return separator.separate(mix, sample_rate)


def load_song(audio_path: str | os.PathLike, lyrics_path: str | os.PathLike | None, separator,
              sample_rate: int, config: SegmentParams | ExplainerConfig | None = None,
              song_id: str | None = None, stems_dir: str | os.PathLike | None = None) -> Song:
    """Decode, separate and factorize one song for a classifier working at ``sample_rate``.

    The sample-rate path (the same in ``musiclime explain`` and in every workflow stage):

    1. decode the file at the separator's rate (:func:`separation_rate`) and separate it there,
       so the separator sees audio at the rate its model was trained at;
    2. decode the file again at the working rate (the classifier's; once only when the two
       rates are equal): the mix the classifier hears is resampled once, from the file;
    3. resample the stems to the working rate (:func:`factorize`); the residual (mix minus the
       sum of the stems) absorbs what resampling changes, so the all-ones mask is still the mix.
    """
    config = stage(config or SegmentParams(), SegmentParams, "segment")
    rate = int(sample_rate)
    sep_rate = separation_rate(separator, rate)
    file_warnings: list[str] = []  # what the file hides (clipping, cancelling channels, ...)
    sep_mix, _ = load_audio(audio_path, sep_rate, warnings=file_warnings)
    for text in file_warnings:
        log.warning("%s", text)
    stems = separate(separator, sep_mix, sep_rate, stems_dir)
    if sep_rate == rate:
        mix = sep_mix
    else:
        del sep_mix  # a long song's separator-rate mix is not needed any more
        mix = load_audio(audio_path, rate, warnings=[])[0]  # the same file, the same warnings
    text = read_lyrics(lyrics_path) if lyrics_path else ""
    song = factorize(mix, stems, rate, text, config, song_id=song_id or Path(audio_path).stem,
                     info={"audio_path": str(audio_path),
                           "lyrics_path": str(lyrics_path) if lyrics_path else None},
                     stems_rate=sep_rate)
    song.warnings[:0] = file_warnings
    return song
