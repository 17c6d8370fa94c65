"""Lyrics factorization: the interpretable text units LIME switches on and off.

Two unit kinds:

- ``line`` (the reference explainer's ``LineIndexedString``): one unit per non-empty line,
  skipping lines that are wholly ``[...]`` (section headers such as ``[Chorus]``) or wholly
  ``(...)`` (ad-libs). Removing units drops those lines; kept lines are joined with newlines.
- ``word`` (the MusicLIME paper, after lime's ``IndexedString(bow=True)``): one unit per
  distinct lower-cased word (``\\w+`` tokens); removing a unit removes every occurrence of it
  and keeps the rest of the text, punctuation and line breaks included.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

_METADATA_LINE = re.compile(r"^\s*(\[[^\]]*\]|\([^)]*\))\s*$")
_WORD = re.compile(r"\w+", re.UNICODE)

LYRICS_UNITS = ("line", "word")

log = logging.getLogger(__name__)


def normalize_newlines(text: str) -> str:
    """``text`` with ``\r\n`` and lone ``\r`` line ends as ``\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def is_metadata_line(line: str) -> bool:
    """True for lines that are wholly ``[...]`` or ``(...)``."""
    return bool(_METADATA_LINE.match(line))


class LyricsUnits:
    """Base class: ``len(units)`` units, each with a text, and text reconstruction."""

    kind: str = ""

    def __init__(self, text: str):
        # one newline: Windows (\r\n) and old Mac (\r) line ends would leave a \r in every
        # unit's name (explanation.json, top features, songs.csv)
        self.text = normalize_newlines(text) if text is not None else ""

    def __len__(self) -> int:
        return len(self.units)

    @property
    def units(self) -> list[str]:
        raise NotImplementedError

    def unit(self, index: int) -> str:
        return self.units[index]

    def compose(self, active: Sequence[bool] | np.ndarray) -> str:
        """Text with only the units whose ``active`` entry is true."""
        active = np.asarray(active, dtype=bool)
        if active.shape != (len(self),):
            raise ValueError(f"mask has {active.shape} entries; {len(self)} lyric units exist")
        return self._compose(active)

    def remove(self, indices: Iterable[int]) -> str:
        """Text with the units at ``indices`` removed."""
        active = np.ones(len(self), dtype=bool)
        idx = np.asarray(list(indices), dtype=int)
        if idx.size:
            active[idx] = False
        return self._compose(active)

    def full_text(self) -> str:
        return self._compose(np.ones(len(self), dtype=bool))

    def _compose(self, active: np.ndarray) -> str:
        raise NotImplementedError


class LineUnits(LyricsUnits):
    """One unit per sung line (the reference explainer's behaviour)."""

    kind = "line"

    def __init__(self, text: str):
        super().__init__(text)
        self._lines: list[str] = [
            line for line in self.text.split("\n")
            if line.strip() and not is_metadata_line(line)
        ]

    @property
    def units(self) -> list[str]:
        return self._lines

    def _compose(self, active: np.ndarray) -> str:
        return "\n".join(line for line, on in zip(self._lines, active, strict=True) if on)


@dataclass
class _Token:
    text: str
    vocab_index: int | None  # None for separators (spaces, punctuation, newlines)


class WordUnits(LyricsUnits):
    """One unit per distinct lower-cased word, in order of first occurrence (bag of words)."""

    kind = "word"

    def __init__(self, text: str):
        super().__init__(text)
        self._vocab: list[str] = []
        index: dict[str, int] = {}
        self._tokens: list[_Token] = []
        pos = 0
        for match in _WORD.finditer(self.text):
            if match.start() > pos:
                self._tokens.append(_Token(self.text[pos:match.start()], None))
            word = match.group(0)
            key = word.lower()
            if key not in index:
                index[key] = len(self._vocab)
                self._vocab.append(key)
            self._tokens.append(_Token(word, index[key]))
            pos = match.end()
        if pos < len(self.text):
            self._tokens.append(_Token(self.text[pos:], None))

    @property
    def units(self) -> list[str]:
        return self._vocab

    def _compose(self, active: np.ndarray) -> str:
        return "".join(
            tok.text for tok in self._tokens if tok.vocab_index is None or active[tok.vocab_index]
        )


#: Legacy encodings tried when detection finds nothing better: Windows Western (the commonest
#: legacy encoding of lyrics files), then latin-1.
FALLBACK_ENCODINGS = ("cp1252", "latin-1")
#: Control characters a text file may hold (tab, newlines, form feed); any other means the
#: bytes were decoded with the wrong encoding, or are not text at all.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


def read_lyrics(path: str | os.PathLike) -> str:
    """The text of a lyrics file.

    UTF-8 (a byte-order mark is dropped) is read as is, but for its line ends: Windows
    (``\\r\\n``) and old Mac (``\\r``) ones become ``\\n``. Anything else is decoded with the
    encoding that :mod:`charset_normalizer` finds most plausible (where several are equally
    plausible, as for short Western texts, cp1252 is preferred), else cp1252, else latin-1;
    the first that decodes without errors and without control characters wins, and a warning
    names the file and the encoding. Raises :class:`~musiclime.errors.InputError` naming the
    file when it is missing or when no encoding gives clean text (e.g. a binary file).
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"lyrics path {path} is a folder, not a text file; give the lyrics "
                         "file itself (--lyrics FILE, the manifest's lyrics_path)")
    if not path.is_file():
        raise InputError(f"lyrics file not found: {path}")
    data = path.read_bytes()
    try:
        return normalize_newlines(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        utf8_error = exc
    for encoding in _candidate_encodings(data):
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        if encoding.replace("-", "_").lower().startswith("utf_"):
            text = text.removeprefix("\ufeff")
        if not _CONTROL.search(text):
            log.warning("lyrics file %s is not UTF-8; read it as %s. Save it as UTF-8 (e.g. "
                        "`iconv -f %s -t utf-8`) if that is not its encoding", path, encoding,
                        encoding)
            return normalize_newlines(text)
    raise InputError(
        f"lyrics file {path} is neither UTF-8 ({utf8_error.reason} at byte "
        f"{utf8_error.start}) nor text in a detectable encoding (it holds control bytes: is it "
        "a text file?); save it as UTF-8 text")


def _candidate_encodings(data: bytes) -> list[str]:
    """Encodings to try for non-UTF-8 ``data``, most plausible first."""
    found: list[str] = []
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # an optional helper (it comes with requests)
        from_bytes = None
    if from_bytes is not None:
        matches = list(from_bytes(data))
        if matches:
            least = min(m.chaos for m in matches)
            tied = [m.encoding for m in matches if m.chaos <= least + 1e-9]
            rest = [m.encoding for m in matches if m.chaos > least + 1e-9]
            tied.sort(key=lambda e: e != "cp1252")  # stable: detection order otherwise
            found = tied + rest
    return list(dict.fromkeys([*found, *FALLBACK_ENCODINGS]))


def make_lyrics_units(text: str, unit: str = "line") -> LyricsUnits:
    """Factorize ``text`` into ``unit`` units (``line`` or ``word``)."""
    if unit == "line":
        return LineUnits(text)
    if unit == "word":
        return WordUnits(text)
    raise ValueError(f"lyrics unit must be one of {LYRICS_UNITS}, got {unit!r}")
