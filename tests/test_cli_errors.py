"""What a new user runs into, on the real command line: each case is one line on stderr that
names the file or value at fault and says what to do, exit status 2, and no traceback.

Read-only places are real (a read-only bind mount, ``chattr +i``; ``chmod`` without root), the
MLflow store is a real SQLite store made by MLflow, and the commands run through
:func:`musiclime.cli.main` as the ``musiclime`` program runs them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_workflow import base_overrides, make_corpus

from musiclime.cli import main


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"), n_songs=1, seconds=1.0)


def one_error_line(capsys, argv: list[str]) -> str:
    """Run the command; return its one stderr line (asserting exit 2 and no traceback)."""
    rc = main(argv)
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.startswith("musiclime: error:")]
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in out + err, err
    assert len(lines) == 1, err
    return lines[0]


# --- where results go ---------------------------------------------------------------------------
def test_a_read_only_results_root_is_one_line(manifest, tmp_path, make_read_only, capsys):
    ro = make_read_only(tmp_path / "ro")
    line = one_error_line(capsys, ["run", *base_overrides(manifest, ro / "results")])
    assert line.startswith(f"musiclime: error: results_root: cannot write {ro / 'results'}"), line
    assert not (ro / "results").exists()


def test_an_immutable_results_root_is_one_line(manifest, tmp_path, make_read_only, capsys):
    root = tmp_path / "results"
    root.mkdir()
    make_read_only(root, "immutable")
    line = one_error_line(capsys, ["run", *base_overrides(manifest, root)])
    assert f"results_root: cannot write {root}" in line, line
    assert "choose a writable folder or fix its permissions" in line, line


def test_a_results_root_under_a_file_is_one_line(manifest, tmp_path, capsys):
    (tmp_path / "afile").write_text("not a folder\n")
    for root in (tmp_path / "afile", tmp_path / "afile" / "results"):
        line = one_error_line(capsys, ["run", *base_overrides(manifest, root)])
        assert line == (f"musiclime: error: results_root: cannot use {root} as a folder: a part "
                        "of that path is a file, not a folder; choose another path"), line
    assert (tmp_path / "afile").read_text() == "not a folder\n"


def test_explain_to_a_read_only_out_fails_before_any_work(manifest, tmp_path, make_read_only,
                                                          capsys):
    ro = make_read_only(tmp_path / "ro")
    corpus = manifest.parent
    line = one_error_line(capsys, [
        "explain", str(corpus / "song0.flac"), "--lyrics", str(corpus / "song0.txt"),
        "--stems", str(corpus / "song0.stems"), "--out", str(ro / "out"), "--quiet",
        "model=whitebox", "separator=oracle", "explainer.num_samples=20"])
    assert line.startswith(f"musiclime: error: --out: cannot write {ro / 'out'}"), line
