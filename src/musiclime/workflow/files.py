"""The stage files: one save/load pair per file type, so every writer and reader agree.

All writes are atomic (:mod:`musiclime.io.fileio`): a killed job never leaves a file that looks
complete. Arrays stay float32 and are stored losslessly, so a stage that reads a file sees
exactly what the stage before it computed (the workflow's explanations equal
``musiclime explain``'s).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from ..core.factorization import AudioFactorization
from ..core.features import FeatureTable
from ..core.lyrics import make_lyrics_units
from ..io.fileio import read_json, write_json, write_npy, write_npz

PathLike = str | os.PathLike


@dataclass
class Decoded:
    """A decoded song: mono float32 at ``sample_rate``, its lyrics text, and what the audio
    file hid (:func:`musiclime.io.audio.file_warnings`)."""

    mix: np.ndarray
    sample_rate: int
    lyrics: str
    seconds: float = 0.0  # decoding wall time
    warnings: list[str] = field(default_factory=list)


def save_decoded(path: PathLike, d: Decoded) -> None:
    write_npz(path, mix=d.mix, sample_rate=np.int64(d.sample_rate), lyrics=np.array(d.lyrics),
              seconds=np.float64(d.seconds), warnings=np.array(json.dumps(d.warnings)))


def load_decoded(path: PathLike) -> Decoded:
    with np.load(path) as z:
        return Decoded(mix=z["mix"], sample_rate=int(z["sample_rate"]), lyrics=str(z["lyrics"]),
                       seconds=float(z["seconds"]), warnings=_warnings(z))


def _warnings(z) -> list[str]:
    """The ``warnings`` a stage npz recorded."""
    return list(json.loads(str(z["warnings"])))


@dataclass
class Stems:
    """Separated stems at the separator's rate."""

    stems: dict[str, np.ndarray]
    sample_rate: int
    seconds: float = 0.0  # separation wall time


def save_stems(path: PathLike, s: Stems) -> None:
    names = list(s.stems)
    write_npz(path, stems=np.stack([s.stems[n] for n in names]).astype(np.float32),
              stem_names=np.array(names), sample_rate=np.int64(s.sample_rate),
              seconds=np.float64(s.seconds))


def load_stems(path: PathLike) -> Stems:
    with np.load(path) as z:
        return Stems(stems={str(n): z["stems"][i] for i, n in enumerate(z["stem_names"])},
                     sample_rate=int(z["sample_rate"]), seconds=float(z["seconds"]))


def save_factorized(npz_path: PathLike, table_path: PathLike, song, separate_seconds: float,
                    file_warnings: list[str] | None = None) -> None:
    """A factorized :class:`~musiclime.core.explainer.Song` (npz) and its feature table (json);
    ``file_warnings``: the decoded file's (:class:`Decoded`), which the song's explanations
    record (warnings about the factorized audio itself are recomputed from it)."""
    fac = song.audio
    write_npz(npz_path, mix=fac.mix, stems=fac.stems, stem_names=np.array(fac.stem_names),
              sample_rate=np.int64(fac.sample_rate),
              bounds=np.array(fac.bounds, dtype=np.int64), residual=np.array(fac.residual_mode),
              lyrics=np.array(song.lyrics.text), lyrics_unit=np.array(song.lyrics.kind),
              separate_seconds=np.float64(separate_seconds),
              warnings=np.array(json.dumps(list(file_warnings or []))))
    write_json(table_path, song.feature_table.to_dict())


def load_factorized(path: PathLike, song_id: str, info: dict | None = None):
    """``(Song, separate_seconds)`` from a :func:`save_factorized` npz; the song's
    ``warnings`` are the decoded file's."""
    from ..core.explainer import Song

    with np.load(path) as z:
        fac = AudioFactorization(mix=z["mix"], stems=z["stems"],
                                 stem_names=tuple(str(n) for n in z["stem_names"]),
                                 sample_rate=int(z["sample_rate"]),
                                 bounds=[tuple(b) for b in z["bounds"]],
                                 residual_mode=str(z["residual"]))
        lyrics = make_lyrics_units(str(z["lyrics"]), str(z["lyrics_unit"]))
        seconds = float(z["separate_seconds"])
        warnings = _warnings(z)
    return Song(song_id, fac, lyrics, info=dict(info or {}), warnings=warnings), seconds


def load_feature_table(path: PathLike) -> FeatureTable:
    return FeatureTable.from_dict(read_json(path))


def save_masks(path: PathLike, masks: np.ndarray) -> None:
    write_npy(path, masks)


def load_masks(path: PathLike) -> np.ndarray:
    return np.load(path)


def save_predictions(path: PathLike, preds, auto: dict | None = None) -> None:
    """:class:`~musiclime.core.inference.Predictions` of every mask row predicted; ``auto``: the
    ``num_samples=auto`` record of a prediction run that stopped early (:mod:`musiclime.core.adaptive`).
    """
    extra = {} if auto is None else {"auto": np.array(json.dumps(auto))}
    write_npz(path, probs=preds.probs, class_names=np.array(preds.class_names),
              timings=np.array(json.dumps(preds.timings)), device=np.array(preds.device),
              batch_size=np.int64(preds.batch_size), unique_rows=np.int64(preds.unique_rows),
              **extra)


def load_predictions(path: PathLike, with_auto: bool = False):
    """The :class:`~musiclime.core.inference.Predictions`; with ``with_auto`` also the auto record
    (``None`` for a fixed num_samples)."""
    from ..core.inference import Predictions

    with np.load(path) as z:
        preds = Predictions(probs=z["probs"], class_names=[str(c) for c in z["class_names"]],
                            batch_size=int(z["batch_size"]), device=str(z["device"]),
                            timings=json.loads(str(z["timings"])),
                            unique_rows=int(z["unique_rows"]))
        auto = json.loads(str(z["auto"])) if "auto" in z.files else None
    return (preds, auto) if with_auto else preds


@dataclass
class JobRecord:
    """What a fit or evaluate job wrote (its Snakemake output): one file per member."""

    song: str
    files: dict[str, str] = field(default_factory=dict)  # member key -> file (results-relative)


def save_record(path: PathLike, record: JobRecord) -> None:
    write_json(path, {"song": record.song, "files": record.files})


def load_record(path: PathLike) -> JobRecord:
    d = read_json(path)
    return JobRecord(song=d["song"], files=dict(d["files"]))
