"""The stage files: each is written by its type's ``save`` and read by its ``load``, so every
writer and reader agree. Besides these: the segment stage's :meth:`Song.save
<musiclime.core.song.Song.save>` (and the :class:`~musiclime.core.features.FeatureTable`
JSON), the masks (a plain ``.npy``: :func:`~musiclime.io.fileio.write_npy`, ``np.load``) and
:meth:`Predictions.save <musiclime.core.inference.Predictions.save>`.

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

from ..io.fileio import read_json, write_json, write_npz

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

    def save(self, path: PathLike) -> None:
        write_npz(path, mix=self.mix, sample_rate=np.int64(self.sample_rate),
                  lyrics=np.array(self.lyrics), seconds=np.float64(self.seconds),
                  warnings=np.array(json.dumps(self.warnings)))

    @classmethod
    def load(cls, path: PathLike) -> Decoded:
        with np.load(path) as z:
            return cls(mix=z["mix"], sample_rate=int(z["sample_rate"]), lyrics=str(z["lyrics"]),
                       seconds=float(z["seconds"]), warnings=list(json.loads(str(z["warnings"]))))


@dataclass
class Stems:
    """Separated stems at the separator's rate."""

    stems: dict[str, np.ndarray]
    sample_rate: int
    seconds: float = 0.0  # separation wall time

    def save(self, path: PathLike) -> None:
        names = list(self.stems)
        write_npz(path, stems=np.stack([self.stems[n] for n in names]).astype(np.float32),
                  stem_names=np.array(names), sample_rate=np.int64(self.sample_rate),
                  seconds=np.float64(self.seconds))

    @classmethod
    def load(cls, path: PathLike) -> Stems:
        with np.load(path) as z:
            return cls(stems={str(n): z["stems"][i] for i, n in enumerate(z["stem_names"])},
                       sample_rate=int(z["sample_rate"]), seconds=float(z["seconds"]))


@dataclass
class JobRecord:
    """What a fit or evaluate job wrote (its Snakemake output): one file per member."""

    song: str
    files: dict[str, str] = field(default_factory=dict)  # member key -> file (results-relative)

    def save(self, path: PathLike) -> None:
        write_json(path, {"song": self.song, "files": self.files})

    @classmethod
    def load(cls, path: PathLike) -> JobRecord:
        d = read_json(path)
        return cls(song=d["song"], files=dict(d["files"]))
