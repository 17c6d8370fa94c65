"""Datasets: a CSV manifest or a folder of songs, read into :class:`SongRecord` s.

Manifest columns: ``song_id, audio_path, lyrics_path`` and optionally ``label, split,
stems_dir, evidence_path``; relative paths are relative to the manifest's folder. A folder
dataset pairs every audio file with the ``.txt`` of the same stem (and ``<stem>.stems/`` if there).

A :class:`SongRecord` is the one description of a song's inputs from the manifest on: the
workflow's plan stores it as it is (its fields are the plan's JSON keys) and every stage reads it.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ConfigError
from .audio import AUDIO_SUFFIXES, audio_path_problem

REQUIRED = ("song_id", "audio_path")

#: a song id becomes a file and folder name in every stage: letters, digits, ``_ - . + ( )``
#: and spaces, not starting with a dot or a space (so never ``..``), at most 120 characters
_SONG_ID = re.compile(r"^[\w\-+()][\w\-+(). ]{0,119}$")


def song_id_problem(song_id: str) -> str | None:
    """Why ``song_id`` cannot name a song's files (None when it can)."""
    if not _SONG_ID.match(song_id) or song_id.endswith(" "):
        return (f"song id {song_id!r} cannot be used as a file name: use letters, digits, "
                "'_', '-', '+', '(', ')', '.' and spaces, not starting with '.' or a space "
                "(no '/', '~' or ',')")
    return None


@dataclass(frozen=True)
class SongRecord:
    """One song of a dataset: its input files and labels (one manifest row).

    Paths are strings: as the manifest gives them (relative ones joined to the manifest's
    folder) when read, absolute (:meth:`resolved`) in the workflow's plan, whose JSON holds
    these fields under these names.
    """

    song_id: str
    audio: str
    lyrics: str | None = None
    stems_dir: str | None = None
    evidence: str | None = None
    label: str | None = None
    split: str | None = None

    def info(self) -> dict:
        """What an explanation records about its song (the fields that are set)."""
        return {k: v for k, v in (("label", self.label), ("split", self.split),
                                  ("audio", self.audio), ("lyrics", self.lyrics),
                                  ("evidence", self.evidence)) if v}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SongRecord:
        return cls(**d)

    def resolved(self) -> SongRecord:
        """The same song with absolute paths (symlinks resolved)."""
        def absolute(p):
            return str(Path(p).resolve()) if p else None
        return SongRecord(song_id=self.song_id, audio=str(Path(self.audio).resolve()),
                          lyrics=absolute(self.lyrics), stems_dir=absolute(self.stems_dir),
                          evidence=absolute(self.evidence), label=self.label, split=self.split)



def record_problems(record: SongRecord, needs_stems: bool = False) -> list[str]:
    """What is wrong with one song's inputs, one line each (empty: nothing found)."""
    problems = []
    id_problem = song_id_problem(record.song_id)
    if id_problem:
        problems.append(id_problem)
    audio_problem = audio_path_problem(record.audio)
    if audio_problem:
        problems.append(audio_problem if record.audio is not None
                        else f"audio file not found: {record.audio}")
    if record.lyrics is not None and Path(record.lyrics).is_dir():
        problems.append(f"lyrics path {record.lyrics} is a folder, not a text file (fix the "
                        "manifest's lyrics_path)")
    elif record.lyrics is not None and not Path(record.lyrics).is_file():
        problems.append(f"lyrics file not found: {record.lyrics} (fix the manifest's "
                        "lyrics_path, or leave it empty for a song without lyrics)")
    if needs_stems and (record.stems_dir is None or not Path(record.stems_dir).is_dir()):
        problems.append(f"separator=oracle needs ground-truth stems, but the stems folder "
                        f"{record.stems_dir} does not exist (manifest column stems_dir)")
    if record.evidence is not None and not Path(record.evidence).is_file():
        problems.append(f"evidence file not found: {record.evidence}")
    return problems


def _opt_path(root: Path, value: str | None) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    p = Path(value)
    return str(p if p.is_absolute() else root / p)


def read_manifest(path: str | os.PathLike, split: str | None = None,
                  limit: int | None = None) -> list[SongRecord]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"dataset manifest {path} does not exist. For the demo corpus run "
                          "`make demo` or `python -m musiclime_demo.corpus --out data/demo`.")
    root = path.parent
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return _read_manifest_rows(path, root, csv.DictReader(fh), split, limit)
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"manifest {path} is not UTF-8 (byte 0x{exc.object[exc.start]:02x} on line {line}); "
            "save it as UTF-8 (Excel: 'CSV UTF-8 (Comma delimited)'; or `iconv -f cp1252 -t "
            "utf-8`)") from exc


def _read_manifest_rows(path: Path, root: Path, reader: csv.DictReader, split: str | None,
                        limit: int | None) -> list[SongRecord]:
    if reader.fieldnames is None:
        raise ConfigError(f"manifest {path} is empty ({path.stat().st_size} bytes): it needs a "
                          f"header line ({', '.join(REQUIRED)}[, lyrics_path, label, split, "
                          "stems_dir, evidence_path]) and one line per song")
    missing = [c for c in REQUIRED if c not in reader.fieldnames]
    if missing:
        found = [name.strip() for name in reader.fieldnames]
        hint = ""
        if any(c in found for c in missing):
            hint = "; remove the spaces around the column names"
        elif len(found) == 1 and any(sep in found[0] for sep in ";\t"):
            sep = "';'" if ";" in found[0] else "tabs"
            hint = f"; its columns are separated by {sep}: save it comma-separated"
        raise ConfigError(f"manifest {path} lacks column(s) {', '.join(missing)}; it has "
                          f"{reader.fieldnames}{hint}")
    entries = []
    seen = set()
    for i, row in enumerate(reader, start=2):
        sid = (row.get("song_id") or "").strip()
        if not sid:
            raise ConfigError(f"manifest {path} line {i}: empty song_id")
        if sid in seen:
            raise ConfigError(f"manifest {path} line {i}: duplicate song_id {sid!r}")
        seen.add(sid)
        if split and row.get("split") and row["split"] != split:
            continue
        entries.append(SongRecord(
            song_id=sid, audio=_opt_path(root, row["audio_path"]),
            lyrics=_opt_path(root, row.get("lyrics_path")),
            stems_dir=_opt_path(root, row.get("stems_dir")),
            evidence=_opt_path(root, row.get("evidence_path")),
            label=row.get("label") or None, split=row.get("split") or None))
    if limit is not None:
        entries = entries[: int(limit)]
    return entries


def read_folder(path: str | os.PathLike, limit: int | None = None) -> list[SongRecord]:
    path = Path(path)
    entries = []
    for audio in sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
        lyrics = audio.with_suffix(".txt")
        stems = audio.with_suffix(".stems")
        entries.append(SongRecord(song_id=audio.stem, audio=str(audio),
                                  lyrics=str(lyrics) if lyrics.is_file() else None,
                                  stems_dir=str(stems) if stems.is_dir() else None))
    return entries[: int(limit)] if limit is not None else entries


def load_dataset(manifest: str | os.PathLike, split: str | None = None,
                 limit: int | None = None) -> list[SongRecord]:
    p = Path(manifest)
    if p.is_dir():
        return read_folder(p, limit)
    return read_manifest(p, split, limit)


def checked_songs(manifest: str | os.PathLike, split: str | None = None,
                  limit: int | None = None, needs_stems: bool = False, what: str = "dataset"
                  ) -> tuple[list[SongRecord], dict[str, str]]:
    """The songs of a dataset whose inputs are in order (absolute paths), and the others with
    the reason, one line each (missing files, an id that cannot name a file): those fail
    alone. No songs at all is a :class:`~musiclime.errors.ConfigError`."""
    entries = load_dataset(manifest, split, limit)
    if not entries:
        raise ConfigError(f"{what}: no songs in {manifest} (split={split})")
    rejected = {r.song_id: "; ".join(p) for r in entries if (p := record_problems(r, needs_stems))}
    return [r.resolved() for r in entries if r.song_id not in rejected], rejected
