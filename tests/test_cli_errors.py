"""What a new user runs into, on the real command line: each case is one line on stderr that
names the file or value at fault and says what to do, exit status 2, and no traceback.

Read-only places are real (a read-only bind mount, ``chattr +i``; ``chmod`` without root), the
MLflow store is a real SQLite store made by MLflow, and the commands run through
:func:`musiclime.cli.main` as the ``musiclime`` program runs them.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from test_workflow import base_overrides, make_corpus

from musiclime.cli import main


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"), n_songs=1, seconds=1.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A results folder with an embedded MLflow store as `musiclime run` leaves it: an
    experiment whose artifacts live in <root>/mlartifacts, a parent and a child run."""
    from mlflow.tracking import MlflowClient

    from musiclime.tracking.store import ensure_experiment, tracking_uri

    root = tmp_path_factory.mktemp("stored") / "results"
    uri = tracking_uri(None, root)
    exp_id = ensure_experiment(uri, "musiclime", root)
    client = MlflowClient(uri)
    parent = client.create_run(exp_id).info.run_id
    child = client.create_run(exp_id, tags={"mlflow.parentRunId": parent}).info.run_id
    note = root / "note.txt"
    note.write_text("an artifact\n")
    client.log_artifact(child, str(note))
    for run in (child, parent):
        client.set_terminated(run)
    return root


def copy_of(store: Path, dest: Path) -> Path:
    shutil.copytree(store, dest, symlinks=True)
    return dest


def artifact_location(root: Path) -> str:
    con = sqlite3.connect(root / "mlflow.db")
    try:
        return con.execute("SELECT artifact_location FROM experiments WHERE name = 'musiclime'"
                           ).fetchone()[0]
    finally:
        con.close()


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


def test_every_writer_names_a_full_disk(small_tmpfs):
    import numpy as np

    from musiclime.errors import DiskFullError
    from musiclime.io.audio import write_wav
    from musiclime.io.fileio import write_npz

    disk = small_tmpfs(64)
    big = np.zeros(200_000, dtype=np.float32)
    # libsndfile reports only LibsndfileError(2, ''); numpy an OSError without a file name
    for write, path in ((lambda p: write_wav(p, big, 22050), disk / "a.wav"),
                        (lambda p: write_npz(p, x=big), disk / "b.npz")):
        with pytest.raises(DiskFullError) as info:
            write(path)
        assert str(info.value).startswith(f"disk full writing {path}: free space"), info.value
        assert not path.exists() and not list(disk.glob(".*"))  # no half file left


# --- relocate ----------------------------------------------------------------------------------
def test_relocate_refuses_a_symlinked_store_and_leaves_the_other_root_alone(store, tmp_path,
                                                                           capsys):
    other = copy_of(store, tmp_path / "other")
    assert main(["relocate", str(other)]) == 0
    before = (other / "mlflow.db").read_bytes()
    root = tmp_path / "linked"
    (root / "mlartifacts").mkdir(parents=True)
    (root / "mlflow.db").symlink_to(other / "mlflow.db")
    capsys.readouterr()
    line = one_error_line(capsys, ["relocate", str(root)])
    assert f"{root / 'mlflow.db'} is a symbolic link to {other / 'mlflow.db'}" in line, line
    assert "cp --remove-destination" in line
    assert (other / "mlflow.db").read_bytes() == before
    assert artifact_location(other) == (other / "mlartifacts").as_uri()


def test_relocate_needs_the_whole_results_folder(store, tmp_path, capsys):
    root = tmp_path / "only_db"
    root.mkdir()
    shutil.copy2(store / "mlflow.db", root / "mlflow.db")
    line = one_error_line(capsys, ["relocate", str(root)])
    assert f"{root} has mlflow.db but no mlartifacts/ folder" in line and "cp -a" in line, line
    assert artifact_location(root) == artifact_location(store)  # untouched


@pytest.mark.parametrize("damage,expected", [
    ("garbage", "is not a readable MLflow store (file is not a database)"),
    ("truncate", "is not a readable MLflow store"),
])
def test_relocate_of_a_corrupt_store_is_one_line(store, tmp_path, capsys, damage, expected):
    root = copy_of(store, tmp_path / "copy")
    db = root / "mlflow.db"
    if damage == "garbage":
        db.write_bytes(os.urandom(8192))
    else:
        with open(db, "r+b") as fh:
            fh.truncate(db.stat().st_size // 3)
    line = one_error_line(capsys, ["relocate", str(root)])
    assert f"{db} {expected}" in line and "copy it again" in line, line


def test_relocate_of_a_read_only_store_is_one_line(store, tmp_path, make_read_only, capsys):
    root = copy_of(store, tmp_path / "copy")
    db = root / "mlflow.db"
    if os.geteuid() == 0:
        if os.system(f"chattr +i '{db}' 2>/dev/null") != 0:
            pytest.skip("chattr +i is not supported here")
    else:
        db.chmod(0o444)
    try:
        line = one_error_line(capsys, ["relocate", str(root)])
    finally:
        os.system(f"chattr -i '{db}' 2>/dev/null")
        db.chmod(0o644)
    assert f"cannot rewrite {db}: the store is read-only" in line and "chmod u+w" in line, line
    # and a read-only results folder says so before opening the store
    ro = make_read_only(copy_of(store, tmp_path / "ro_copy"))
    line = one_error_line(capsys, ["relocate", str(ro)])
    assert f"relocate: cannot write {ro}" in line and "must be writable" in line, line


def test_relocate_waits_for_no_one_but_refuses_while_a_run_holds_the_root(store, tmp_path,
                                                                         capsys):
    from musiclime.workflow.recovery import invocation_lock

    root = copy_of(store, tmp_path / "copy")
    with invocation_lock(root):
        line = one_error_line(capsys, ["relocate", str(root)])
    assert f"another musiclime run is using {root}" in line, line
    assert artifact_location(root) == artifact_location(store)  # not rewritten meanwhile
    assert main(["relocate", str(root)]) == 0
    assert artifact_location(root) == (root / "mlartifacts").as_uri()


# --- results -----------------------------------------------------------------------------------
def test_results_of_a_mistyped_root_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "resluts"
    line = one_error_line(capsys, ["results", "--results-root", str(missing),
                                   "--out", str(tmp_path / "r.md")])
    assert f"--results-root {missing}: no such folder" in line, line
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_error_line(capsys, ["results", "--results-root", str(empty),
                                   "--out", str(tmp_path / "r.md")])
    assert f"--results-root {empty}: no mlflow.db in it" in line, line
    assert list(empty.iterdir()) == []


def test_results_with_a_bogus_parent_names_the_real_ones(store, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name("musiclime")
    parent = next(r.info.run_id for r in client.search_runs([exp.experiment_id])
                  if "mlflow.parentRunId" not in r.data.tags)
    line = one_error_line(capsys, ["results", "--results-root", str(store), "--parent", "bogus",
                                   "--out", str(tmp_path / "r.md")])
    assert "--parent bogus: no run of experiment 'musiclime'" in line, line
    assert parent in line


# --- inputs that look right but are not ------------------------------------------------------------
def _explain_argv(corpus: Path, out: Path, audio: Path | None = None, *overrides: str):
    return ["explain", str(audio or corpus / "song0.flac"), "--lyrics", str(corpus / "song0.txt"),
            "--stems", str(corpus / "song0.stems"), "--out", str(out), "--quiet",
            "model=whitebox", "separator=oracle", "explainer.num_samples=20", *overrides]


def test_a_folder_named_like_an_audio_file_is_called_a_folder(manifest, tmp_path, capsys):
    folder = tmp_path / "x.wav"
    folder.mkdir()
    line = one_error_line(capsys, _explain_argv(manifest.parent, tmp_path / "o", folder))
    assert f"audio path {folder} is a folder, not an audio file" in line, line
    assert "not found" not in line


def test_a_separator_folder_without_its_files_names_the_key_and_the_files(manifest, tmp_path,
                                                                         capsys):
    folder = tmp_path / "my_umx"
    folder.mkdir()
    argv = _explain_argv(manifest.parent, tmp_path / "o")
    argv[argv.index("separator=oracle")] = f"separator.model={folder}"
    line = one_error_line(capsys, argv)
    assert f"separator.model={folder}: the Open-Unmix model directory {folder} lacks " \
           "separator.json" in line, line
    assert "Errno" not in line


@pytest.mark.parametrize("content,expected", [
    (b"", "is empty (0 bytes): it needs a header line (song_id, audio_path"),
    (b"song_id;audio_path\r\nsong0;song0.flac\r\n",
     "its columns are separated by ';': save it comma-separated"),
    ("song_id,audio_path\nchanson,caf\xe9.flac\n".encode("cp1252"),
     "is not UTF-8 (byte 0xe9 on line 2); save it as UTF-8"),
])
def test_a_manifest_that_cannot_be_read_says_why(manifest, tmp_path, capsys, content, expected):
    bad = tmp_path / "songs.csv"
    bad.write_bytes(content)
    argv = ["run", *base_overrides(manifest, tmp_path / "results")]
    argv[argv.index(f"dataset.manifest={manifest}")] = f"dataset.manifest={bad}"
    line = one_error_line(capsys, argv)
    assert f"manifest {bad} " in line and expected in line, line
    assert "None" not in line
