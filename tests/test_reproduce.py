"""Every MLflow run records what it ran on (lock, environment, dataset digests), and
`musiclime reproduce RUN_ID` reruns it and compares, bit for bit."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from test_workflow import base_overrides, make_corpus, run_capture

from musiclime.reproduce import config_pins
from musiclime.tracking.provenance import (
    dataset_differences,
    dataset_digest,
    environment_differences,
    song_table,
)


def test_dataset_differences_name_the_song_whose_file_changed(tmp_path):
    from musiclime.io.dataset import SongRecord

    manifest = make_corpus(tmp_path / "c", n_songs=2, seconds=1.0)
    root = manifest.parent
    sources = [SongRecord(song_id=f"song{i}", audio=str(root / f"song{i}.flac"),
                          lyrics=str(root / f"song{i}.txt")) for i in (1, 0)]
    rows = song_table(sources)
    assert [r["song_id"] for r in rows] == ["song0", "song1"]
    assert rows[0]["sample_rate"] == 22050 and rows[0]["channels"] == 1
    assert rows[0]["duration_s"] == pytest.approx(1.0)
    digest = dataset_digest(rows)
    assert dataset_differences(rows) == []
    audio, sr = sf.read(root / "song1.flac")
    sf.write(root / "song1.flac", audio * 0.5, sr)
    lines = dataset_differences(rows)
    assert len(lines) == 1 and lines[0].startswith("song song1: its audio file")
    assert dataset_digest(song_table(sources)) != digest
    (root / "song0.txt").unlink()
    assert any("song0: its lyrics file" in line and "gone" in line
               for line in dataset_differences(rows))


def test_environment_differences_one_line_each():
    old = {"lock_hash": "a", "python": "3.11.7", "torch": "2.11.0", "cuda": None,
           "cudnn": None, "device": "cpu (x)", "packages": {"numpy": "2.4.6", "gone": "1"}}
    new = {**old, "device": "cuda:0 (NVIDIA H200)", "packages": {"numpy": "2.5.5"}}
    assert environment_differences(old, old) == []
    assert environment_differences(old, new) == [
        "device: recorded cpu (x), now cuda:0 (NVIDIA H200)",
        "package gone: recorded 1, now not installed",
        "package numpy: recorded 2.4.6, now 2.5.5"]


def test_config_pins_bring_a_changed_default_back_to_the_recorded_value():
    recorded = {"explainer": {"kernel_width": 0.25, "labels": None, "seg": [1, 2]},
                "tracking": {"uri": "x"}, "dataset": {"manifest": "/a b/m.csv"}}
    now = {"explainer": {"kernel_width": 0.5, "labels": None, "seg": [1, 2], "new_key": 3},
           "tracking": {"uri": "y"}, "dataset": {"manifest": "/a b/m.csv"}}
    pins, lines = config_pins(recorded, now)
    assert pins == ["explainer.kernel_width=0.25"]
    assert lines == ["config explainer.new_key: not recorded (now 3)"]


def reproduce_cli(*args: str) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "musiclime.cli", "reproduce", *args],
                          capture_output=True, text=True, timeout=900)
    return proc.returncode, proc.stderr + proc.stdout  # the verdict is stdout's last line


@pytest.mark.slow
def test_a_run_records_its_environment_and_dataset_and_reproduces_bit_for_bit(tmp_path):
    from mlflow.tracking import MlflowClient

    manifest = make_corpus(tmp_path / "corpus", n_songs=2, seconds=2.0)
    results = tmp_path / "results"
    rc, out = run_capture(base_overrides(manifest, results, "metrics.enabled=false",
                                         "explainer.num_samples=60"))
    assert rc == 0, out
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    exp = client.get_experiment_by_name("musiclime")
    runs = client.search_runs([exp.experiment_id])
    (child,) = [r for r in runs if "musiclime.point_id" in r.data.tags]
    (parent,) = [r for r in runs if "musiclime.point_id" not in r.data.tags]
    tags = child.data.tags
    import hashlib

    from musiclime.config import repo_root

    lock_hash = hashlib.sha256((repo_root() / "uv.lock").read_bytes()).hexdigest()
    assert tags["musiclime.lock_hash"] == lock_hash == parent.data.tags["musiclime.lock_hash"]
    assert tags["musiclime.env.device"].startswith("cpu (")
    assert "environment/uv.lock" in {a.path for a in client.list_artifacts(
        parent.info.run_id, "environment")}
    env_files = {a.path for a in client.list_artifacts(child.info.run_id, "environment")}
    assert env_files == {"environment/environment.json", "environment/requirements.txt"}
    # the dataset, through MLflow's dataset tracking (the runs table's Dataset column)
    (inp,) = child.inputs.dataset_inputs
    songs = json.loads(open(client.download_artifacts(
        child.info.run_id, "dataset/songs.json", str(tmp_path))).read())
    assert [s["song_id"] for s in songs] == ["song0", "song1"]
    assert inp.dataset.digest == dataset_digest(songs) == tags["musiclime.dataset_fingerprint"]
    assert inp.dataset.source_type == "local" and "manifest.csv" in inp.dataset.source
    assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "explained"

    # the same machine and lock: every weight the same, to the bit
    rc, out = reproduce_cli(child.info.run_id, "--from", str(results),
                            "--results-root", str(tmp_path / "again"))
    assert rc == 0, out
    assert "environment: the same" in out and "dataset: the same (2 song(s)" in out
    assert out.count("max |dw| 0, top-5 same") == 2, out
    assert "Traceback" not in out

    # a song whose audio changed: named, and not reproduced
    audio, sr = sf.read(manifest.parent / "song1.flac")
    sf.write(manifest.parent / "song1.flac", np.roll(audio, sr // 2), sr)
    rc, out = reproduce_cli(parent.info.run_id, "--from", str(results),
                            "--results-root", str(tmp_path / "changed"))
    assert rc == 1, out
    assert "dataset song song1: its audio file" in out and "changed" in out
    assert "song1: DIFFERS" in out and "song0: same" in out
    assert out.rstrip().splitlines()[-1].startswith("NOT reproduced")

    # a run id the store does not have, and a store that does not exist: one line each
    rc, out = reproduce_cli("0123456789abcdef", "--from", str(results))
    assert rc == 2 and "no run 0123456789abcdef" in out and "Traceback" not in out
    rc, out = reproduce_cli(child.info.run_id, "--from", str(tmp_path / "nowhere"))
    assert rc == 2 and "no MLflow store at" in out
    assert not (tmp_path / "nowhere").exists()
