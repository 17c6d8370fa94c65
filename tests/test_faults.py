"""Runs that survive: kill -9 of a real `musiclime run`, concurrent invocations, bad songs.

Real processes throughout: `musiclime run` in its own process group, killed with SIGKILL;
a real SQLite MLflow store read back through MLflow's client.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_workflow import (
    base_overrides,
    executed_rules,
    make_corpus,
    run_capture,
    with_snakemake_log,
)
from test_workflow import explanation_weights as weights

pytestmark = pytest.mark.slow


def start_run(overrides: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "musiclime.cli", "run", "--cores", "2",
                             *overrides], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def store_runs(results: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    exp = client.get_experiment_by_name("musiclime")
    return client.search_runs([exp.experiment_id])


def test_kill_9_at_any_moment_then_a_plain_rerun_completes(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", n_songs=3)
    settings = ("metrics.enabled=false", "explainer.num_samples=60",
                "explainer.kernel_width=0.25,1")
    reference = tmp_path / "reference"
    rc, out = run_capture(base_overrides(manifest, reference, *settings), multirun=True)
    assert rc == 0, out

    results = tmp_path / "results"
    overrides = ["-m", *base_overrides(manifest, results, *settings)]
    # kill the whole process group: while planning / creating the store, then in Snakemake,
    # each time before the previous invocation could finish
    for delay in (3.0, 9.0, 16.0):
        proc = start_run(overrides)
        time.sleep(delay)
        kill_group(proc)
    rc, out = run_capture(overrides[1:], multirun=True)
    assert rc == 0, out  # no --unlock, no manual step

    assert weights(results) == weights(reference)  # bit for bit
    assert len(weights(results)) == 6
    runs = store_runs(results)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.tags["musiclime.point_id"] for r in children) == sorted(
        {r.data.tags["musiclime.point_id"] for r in children})  # one child run per point
    assert len(children) == 2


def test_a_second_concurrent_run_gets_a_clear_message(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", n_songs=1)
    results = tmp_path / "results"
    overrides = base_overrides(manifest, results, "tracking.enabled=false",
                               "metrics.enabled=false")
    first = start_run(overrides)
    try:
        lock = results / ".musiclime.lock"
        deadline = time.time() + 120
        while not (lock.is_file() and lock.read_text().startswith("PID")):
            assert first.poll() is None, "the first run ended before taking its lock"
            assert time.time() < deadline
            time.sleep(0.2)
        rc, out = run_capture(overrides)
        assert rc == 2, out
        assert "another musiclime run is using" in out and f"PID {first.pid}" in out, out
        assert len(out.strip().splitlines()) == 1, out  # one line, no traceback
    finally:
        kill_group(first)


def test_bad_songs_fail_alone_and_the_rest_is_explained_aggregated_and_tracked(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", n_songs=2)
    root = manifest.parent
    (root / "corrupt.flac").write_bytes(b"this is not audio")
    (root / "latin1.txt").write_bytes("caf\xe9 na\xefve robot\nthe night is long\n"
                                      .encode("latin-1"))
    rows = list(csv.DictReader(open(manifest)))
    good = rows[0]
    rows += [{**good, "song_id": "corrupt", "audio_path": "corrupt.flac"},
             {**good, "song_id": "nolyrics", "lyrics_path": "missing.txt"},
             {**good, "song_id": "latin1", "lyrics_path": "latin1.txt"},
             {**good, "song_id": "../../x"}]
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(good))
        writer.writeheader()
        writer.writerows(rows)
    results = tmp_path / "results"
    rc, out = run_capture(base_overrides(manifest, results, "metrics.enabled=false"))
    assert rc != 0, out
    explained = {p.parent.name for p in results.glob("fit/**/explanation.json")}
    assert {"song0", "song1"} <= explained
    assert not {"corrupt", "nolyrics", "../../x"} & explained
    assert not (tmp_path / "x").exists()  # the `..` id wrote nothing outside the results

    # each bad song is named with a one-line reason that names its file
    tail = out[out.index("song(s) failed:"):]
    lines = {line.split(":")[0].strip(): line for line in tail.splitlines()[1:]
             if line.startswith("  ")}
    assert "corrupt.flac" in lines["corrupt"] and "cannot decode" in lines["corrupt"]
    assert "missing.txt" in lines["nolyrics"]
    assert "../../x" in lines
    log_file = lines["corrupt"].rpartition("(log: ")[2].rstrip(")")
    assert "cannot decode" in Path(log_file).read_text()  # the traceback is in the log

    [summary] = results.glob("aggregate/**/summary.json")
    assert json.loads(summary.read_text())  # global tables from the songs that succeeded
    runs = store_runs(results)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 1
    failed = set(children[0].data.tags["musiclime.failed_songs"].split(", "))
    assert {"corrupt", "nolyrics", "../../x"} <= failed
    assert not [r for r in runs if r.info.status == "RUNNING"]


def test_explain_refuses_a_song_id_that_is_a_path(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", n_songs=1)
    audio = manifest.parent / "song0.flac"
    proc = subprocess.run([sys.executable, "-m", "musiclime.cli", "explain", str(audio),
                           "--song-id", "../../x", f"results_root={tmp_path / 'r'}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "song id '../../x' cannot be used" in proc.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "r").exists()


def test_explain_failure_is_one_line_on_the_console_and_a_traceback_in_the_log(tmp_path):
    missing = tmp_path / "nope.wav"
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "musiclime.cli", "explain", str(missing),
                           "--out", str(out), "model=whitebox"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    console = (proc.stdout + proc.stderr).strip().splitlines()
    assert "Traceback" not in proc.stdout + proc.stderr, console
    assert console[-1] == (f"musiclime: error: audio file not found: {missing} "
                           f"(traceback in {out / 'explain.log'})"), console
    log = (out / "explain.log").read_text()
    assert "Traceback" in log and "AudioDecodeError" in log


def test_a_copied_results_folder_is_relocated_and_reruns_nothing(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", n_songs=1)
    first = tmp_path / "first"
    rc, out = run_capture(base_overrides(manifest, first, "metrics.enabled=false"))
    assert rc == 0, out
    moved = tmp_path / "moved"
    subprocess.run(["cp", "-a", str(first), str(moved)], check=True)
    proc = subprocess.run([sys.executable, "-m", "musiclime.cli", "relocate", str(moved)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "1 experiment(s)" in proc.stdout, proc.stdout + proc.stderr

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{moved / 'mlflow.db'}")
    exp = client.get_experiment_by_name("musiclime")
    assert exp.artifact_location == (moved / "mlartifacts").as_uri()
    runs = client.search_runs([exp.experiment_id])
    assert runs and all(r.info.artifact_uri.startswith((moved / "mlartifacts").as_uri())
                        for r in runs)
    child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert {a.path for a in client.list_artifacts(child.info.run_id)} >= {"config", "songs"}

    shutil.rmtree(first)  # nothing may still depend on the original
    rc, out = run_capture(base_overrides(manifest, moved, "metrics.enabled=false"))
    assert rc == 0, out
    assert set(executed_rules(out)) <= {"all"}, executed_rules(out)  # nothing recomputed
    assert len([r for r in client.search_runs([exp.experiment_id])
                if "mlflow.parentRunId" in r.data.tags]) == 1
    assert not first.exists()


CRASHING_CLASSIFIER = '''
import ctypes
import os
import signal

import numpy as np


class CrashingClassifier:
    """Dies as its song's lyrics say: 'segfault', 'allocate' (MemoryError) or 'sigkill'."""

    class_names = ["a", "b"]
    sample_rate = 22050
    version = "1"

    def predict_proba(self, lyrics, audio):
        text = " ".join(lyrics)
        if "segfault" in text:
            ctypes.string_at(0)  # a read of address 0 in native code: a real SIGSEGV
        if "allocate" in text:
            np.ones(2 ** 62, dtype=np.uint8)  # MemoryError
        if "sigkill" in text:
            os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer sends
        p = np.full(audio.shape[0], 0.6)
        return np.stack([p, 1 - p], axis=1)
'''
# song i dies by DEATHS[i] (that one failing song fails alone is
# test_bad_songs_fail_alone_...'s business)
DEATHS = ("segfault", "sigkill", "allocate")


@pytest.fixture(scope="module")
def crashing(tmp_path_factory):
    """A --config-dir with model=crashy, and songs whose lyrics tell it how to die."""
    root = tmp_path_factory.mktemp("crashing")
    (root / "config" / "model").mkdir(parents=True)
    (root / "config" / "crashy_classifier.py").write_text(CRASHING_CLASSIFIER)
    (root / "config" / "model" / "crashy.yaml").write_text(
        "name: crashy\n_target_: crashy_classifier.CrashingClassifier\n")
    manifest = make_corpus(root / "corpus", n_songs=len(DEATHS))
    for i, word in enumerate(DEATHS):
        (root / "corpus" / f"song{i}.txt").write_text(f"[Verse]\nthe {word} line\nthe end\n")
    return root / "config", manifest


def test_jobs_killed_by_a_signal_are_one_line_each(crashing, tmp_path):
    config, manifest = crashing
    rows = list(csv.DictReader(open(manifest)))[:2]  # segfault, sigkill: a job per stage costs
    with open(manifest.parent / "signals.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "musiclime.cli", "--config-dir", str(config),
                           "run", "--cores", "2", "model=crashy", f"results_root={results}",
                           f"dataset.manifest={manifest.parent / 'signals.csv'}",
                           "dataset.split=null", "separator=oracle", "explainer.num_samples=20",
                           "tracking.enabled=false", "metrics.enabled=false"],
                          capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    tail = out[out.index("2 song(s) failed:"):].splitlines()[1:3]
    lines = {line.split(":")[0].strip(): line for line in tail}
    assert set(lines) == {"song0", "song1"}, tail
    crash = lines["song0"]
    assert crash.startswith("  song0: predict: killed by SIGSEGV in ctypes/__init__.py:"), crash
    assert "called from crashy_classifier.py:" in crash and "(predict_proba)" in crash, crash
    assert lines["song1"].startswith("  song1: predict: killed by SIGKILL (by the kernel's "
                                     "out-of-memory killer, or by hand"), lines["song1"]
    for song, line in lines.items():
        log_file = Path(line.rpartition("(log: ")[2].rstrip(")"))
        assert log_file.is_file() and f"/{song}.log" in str(log_file), line
    crash_log = Path(crash.rpartition("(log: ")[2].rstrip(")")).read_text()
    assert "Fatal Python error: Segmentation fault" in crash_log  # the stack is in the log
    assert "predict_proba" in crash_log
    assert not list(results.glob("fit/**/explanation.json"))


def test_explain_killed_by_a_signal_names_it_in_one_line(crashing, tmp_path):
    config, manifest = crashing
    corpus = manifest.parent

    def explain(song: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "musiclime.cli", "--config-dir", str(config), "explain",
             str(corpus / f"song{song}.flac"), "--lyrics", str(corpus / f"song{song}.txt"),
             "--stems", str(corpus / f"song{song}.stems"), "--out", str(tmp_path / str(song)),
             "--quiet", "model=crashy", "separator=oracle", "explainer.num_samples=20"],
            capture_output=True, text=True, timeout=600)

    proc = explain(0)
    assert proc.returncode == 128 + signal.SIGSEGV, proc.stderr  # as a shell reports it
    last = proc.stderr.strip().splitlines()[-1]
    log_file = tmp_path / "0" / "explain.log"
    assert last.startswith(f"musiclime: error: explaining {corpus / 'song0.flac'}: killed by "
                           "SIGSEGV in ctypes/__init__.py:"), last
    assert "called from crashy_classifier.py:" in last, last
    assert last.endswith(f"(predict_proba) (log: {log_file})"), last
    assert "Fatal Python error: Segmentation fault" in log_file.read_text()
    assert not (tmp_path / "0" / "explanation.json").exists()

    proc = explain(2)  # MemoryError: a one-line error, the traceback in the log
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"musiclime: error: explaining {corpus / 'song2.flac'}: out of memory (MemoryError: "
        "Unable to allocate 4.00 EiB for an array with shape (4611686018427387904,) and data "
        f"type uint8) (traceback in {tmp_path / '2' / 'explain.log'})")
    assert "MemoryError" in (tmp_path / "2" / "explain.log").read_text()


def _interrupt_when(proc: subprocess.Popen, ready, timeout: float = 600) -> tuple[str, str]:
    """Send Ctrl-C (SIGINT to the process group, as a terminal does) once ``ready()``; return
    the command's (stdout, stderr)."""
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    return proc.communicate(timeout=300)


def test_ctrl_c_is_one_line_and_exit_130_in_run_and_explain(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", n_songs=1)
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "musiclime.cli", "run", "--cores", "1",
                             *base_overrides(manifest, results, "tracking.enabled=false",
                                             "metrics.enabled=false")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)

    def snakemake_started_a_job() -> bool:
        return any("rule " in p.read_text() for p in results.glob("logs/snakemake/*.log"))

    out, err = _interrupt_when(proc, snakemake_started_a_job)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err, err
    assert err.strip().splitlines()[-1] == \
        "musiclime: interrupted; rerun the same command to resume", err
    lock = (results / ".musiclime.lock").read_text()
    driver = int(lock.split("snakemake PID: ")[1].split()[0])
    assert not Path(f"/proc/{driver}").exists()  # no Snakemake left working in the root

    corpus = manifest.parent
    out_dir = tmp_path / "explain"
    proc = subprocess.Popen([sys.executable, "-m", "musiclime.cli", "explain",
                             str(corpus / "song0.flac"), "--lyrics", str(corpus / "song0.txt"),
                             "--stems", str(corpus / "song0.stems"), "--out", str(out_dir),
                             "model=whitebox", "separator=oracle",
                             "explainer.num_samples=100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    log = out_dir / "explain.log"
    out, err = _interrupt_when(proc, lambda: log.is_file() and "masks" in log.read_text())
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err, err
    assert err.strip().splitlines()[-1] == \
        "musiclime: interrupted; rerun the same command to resume", err
    assert "interrupted (Ctrl-C)" in log.read_text()
    assert not (out_dir / "explanation.json").exists()


def test_an_equivalent_command_is_the_same_run_and_an_unchanged_rerun_says_nothing_to_do(
        tmp_path):
    import shlex

    from musiclime.config import hydra_value

    manifest = make_corpus(tmp_path / "corpus", n_songs=1)
    with open(manifest, "a", newline="") as fh:  # a song whose files are missing: set aside
        csv.writer(fh).writerow(["gone", "test", "ai", "gone.flac", "gone.txt", "gone.stems"])
    # a results root a shell and Hydra both need quoting for
    results = tmp_path / "my results (1)"
    first = base_overrides(manifest, results, "metrics.enabled=false")
    first[0] = f"results_root={hydra_value(str(results))}"

    def run(overrides):
        proc = subprocess.run([sys.executable, "-m", "musiclime.cli", "run", "--cores", "2",
                               *overrides], capture_output=True, text=True, cwd=tmp_path,
                              timeout=900)
        return proc.stdout + proc.stderr, with_snakemake_log(proc.stdout + proc.stderr)

    console, out = run(first)
    assert "Traceback" not in out, out
    # the header counts what the table counts: songs ok + failed per configuration
    assert "musiclime: 1 configuration(s) x 2 song(s) = 2 song explanation(s), 1 song(s) set " \
           "aside (listed at the end)" in console, console
    # the printed MLflow command survives the shell: its paths are quoted
    ui = shlex.split(console.split("MLflow: ")[1].split("  (parent run")[0])
    assert ui[ui.index("--backend-store-uri") + 1] == f"sqlite:///{results / 'mlflow.db'}"
    assert ui[ui.index("--default-artifact-root") + 1] == str(results / "mlartifacts")
    [child] = [r for r in store_runs(results) if "mlflow.parentRunId" in r.data.tags]

    # the same configuration spelt another way: a relative manifest, overrides reversed
    again = [o for o in first if not o.startswith("dataset.manifest=")][::-1]
    again.append(f"dataset.manifest={manifest.relative_to(tmp_path)}")
    console, out = run(again)
    assert set(executed_rules(out)) <= {"all"}, executed_rules(out)  # no freeze/track rerun
    assert "nothing to do: every output of 1 configuration(s) is up to date" in console, console
    runs = store_runs(results)
    assert [r.info.run_id for r in runs if "mlflow.parentRunId" in r.data.tags] == \
        [child.info.run_id]  # not replaced
    assert all(r.info.lifecycle_stage == "active" for r in runs)


def test_a_full_disk_is_named_once_and_a_rerun_after_freeing_space_completes(tmp_path,
                                                                             small_tmpfs):
    manifest = make_corpus(tmp_path / "corpus", n_songs=1, seconds=2.0)
    disk = small_tmpfs(320)  # room for a decoded song, not for its stems
    results = disk / "results"
    overrides = base_overrides(manifest, results, "tracking.enabled=false",
                               "metrics.enabled=false")
    proc = subprocess.run([sys.executable, "-m", "musiclime.cli", "run", "--cores", "1",
                           *overrides], capture_output=True, text=True, timeout=900)
    console = proc.stdout + proc.stderr
    assert proc.returncode == 2, console
    assert "Traceback" not in console and "song(s) failed" not in console, console
    [line] = [ln for ln in console.splitlines() if "disk full" in ln]
    assert line.startswith(f"musiclime: error: disk full writing {results}/"), line
    assert f"the disk of {results} filled up" in line and "rerun the same command" in line
    kept = {p: p.stat().st_mtime_ns for p in results.glob("decode/**/*.npz")}
    assert kept, list(results.rglob("*"))  # something was finished before the disk filled

    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    rc, out = run_capture(overrides)
    assert rc == 0, out
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished work was not redone
    assert len(weights(results)) == 1
