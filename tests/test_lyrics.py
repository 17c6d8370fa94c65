"""Lyrics factorization: line units (the reference) and word units (the paper)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from musiclime.core.lyrics import (
    LineUnits,
    WordUnits,
    is_metadata_line,
    make_lyrics_units,
    read_lyrics,
)
from musiclime.errors import InputError

TEXT = """[Verse 1]
Hello darkness my old friend

  (ooh yeah)
I've come to talk [with you] again
   [Chorus: all]
(and) sing along
Hello hello
"""


def test_line_units_skip_empty_and_metadata_lines():
    units = LineUnits(TEXT)
    assert units.units == [
        "Hello darkness my old friend",
        "I've come to talk [with you] again",
        "(and) sing along",
        "Hello hello",
    ]
    assert len(units) == 4
    assert units.unit(1) == "I've come to talk [with you] again"


@pytest.mark.parametrize("line,meta", [
    ("[Chorus]", True), ("  [Verse 2: Someone]  ", True), ("(ad-lib)", True), ("( )", True),
    ("(and) sing along", False), ("talk [with you] again", False), ("[a] and [b]", False),
    ("plain", False),
])
def test_is_metadata_line(line, meta):
    assert is_metadata_line(line) is meta


def test_line_remove_and_compose_reconstruct():
    units = LineUnits(TEXT)
    assert units.full_text() == "\n".join(units.units)
    assert units.remove([]) == units.full_text()
    assert units.remove([0, 2]) == "I've come to talk [with you] again\nHello hello"
    assert units.compose([True, False, False, True]) == units.remove([1, 2])
    assert units.compose(np.zeros(4, dtype=np.uint8)) == ""
    with pytest.raises(ValueError):
        units.compose([True, False])


def test_word_units_bag_of_words():
    units = WordUnits("Hello world, hello\nWORLD again!")
    assert units.units == ["hello", "world", "again"]
    assert units.full_text() == "Hello world, hello\nWORLD again!"
    # removing a unit removes every occurrence (any case) and keeps the rest verbatim
    assert units.remove([0]) == " world, \nWORLD again!"
    assert units.remove([1]) == "Hello , hello\n again!"
    assert units.compose([False, False, True]) == " , \n again!"
    assert units.compose([True, True, True]) == "Hello world, hello\nWORLD again!"


def test_make_lyrics_units_dispatch():
    assert isinstance(make_lyrics_units(TEXT, "line"), LineUnits)
    assert isinstance(make_lyrics_units(TEXT, "word"), WordUnits)
    with pytest.raises(ValueError, match="bogus"):
        make_lyrics_units(TEXT, "bogus")


def test_empty_lyrics_have_no_units():
    assert len(LineUnits("")) == 0
    assert len(LineUnits("[Intro]\n\n(instrumental)\n")) == 0
    assert len(WordUnits("")) == 0


# --- reading lyrics files -----------------------------------------------------------------------
def test_utf8_with_bom_is_read_without_a_warning(tmp_path, caplog):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffcafé naïve\n".encode())
    with caplog.at_level(logging.WARNING, logger="musiclime.core.lyrics"):
        assert read_lyrics(path) == "café naïve\n"
    assert not caplog.records


def test_latin1_lyrics_are_decoded_with_a_warning_naming_file_and_encoding(tmp_path, caplog):
    text = "café naïve\nla vie en rose, déjà vu\n"
    path = tmp_path / "latin1.txt"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")  # the file really is not UTF-8
    with caplog.at_level(logging.WARNING, logger="musiclime.core.lyrics"):
        assert read_lyrics(path) == text
    (record,) = caplog.records
    msg = record.getMessage()
    assert str(path) in msg and "cp1252" in msg and "not UTF-8" in msg


def test_cyrillic_cp1251_lyrics_are_detected(tmp_path):
    text = "Привет, как дела?\nЯ пою песню о любви\n"
    path = tmp_path / "ru.txt"
    path.write_bytes(text.encode("cp1251"))
    assert read_lyrics(path) == text


def test_binary_file_as_lyrics_names_the_file(tmp_path):
    path = tmp_path / "song.mp3.txt"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError) as info:
        read_lyrics(path)
    msg = str(info.value)
    assert str(path) in msg and "UTF-8" in msg and "\n" not in msg


def test_missing_lyrics_file_names_the_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_lyrics(tmp_path / "nope.txt")
