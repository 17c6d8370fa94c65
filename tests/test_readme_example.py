"""The documented bring-your-own-classifier example runs as written (read from
docs/classifiers.md, which the README links to)."""

from __future__ import annotations

import csv
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from test_workflow import make_corpus, with_snakemake_log

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOC = REPO / "docs" / "classifiers.md"


def readme_examples() -> dict[str, str]:
    """``<!-- byo-example: NAME -->`` followed by a fenced block: NAME -> the block's text."""
    text = DOC.read_text()
    found = re.findall(r"<!-- byo-example: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    return dict(found)


def test_readme_has_the_example():
    assert "docs/classifiers.md" in README.read_text()  # the README points to the example
    ex = readme_examples()
    assert set(ex) == {"my_project/my_classifier.py", "my_project/model/loudness.yaml",
                       "command"}
    assert len(ex["my_project/my_classifier.py"].splitlines()) <= 25


@pytest.mark.slow
def test_readme_bring_your_own_classifier_example_runs(tmp_path):
    ex = readme_examples()
    for name in ("my_project/my_classifier.py", "my_project/model/loudness.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(ex[name])
    manifest = make_corpus(tmp_path / "corpus", n_songs=2)
    # the example's inputs: song.wav + song.txt, and a manifest my_songs.csv
    audio, rate = sf.read(manifest.parent / "song0.flac")
    sf.write(tmp_path / "song.wav", audio, rate)
    shutil.copy(manifest.parent / "song0.txt", tmp_path / "song.txt")
    rows = list(csv.DictReader(open(manifest)))
    for row in rows:
        for key in ("audio_path", "lyrics_path", "stems_dir"):
            row[key] = str(manifest.parent / row[key])
    with open(tmp_path / "my_songs.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    quick = ["explainer.num_samples=40", "metrics.enabled=false", "separator=oracle",
             "tracking.enabled=false", "dataset.split=null"]
    commands = [shlex.split(line) for line in ex["command"].strip().splitlines()]
    assert [c[:4] for c in commands] == [["musiclime", "--config-dir", "my_project", "explain"],
                                         ["musiclime", "--config-dir", "my_project", "run"]]
    explain, run = commands
    rc = subprocess.run([sys.executable, "-m", "musiclime.cli", *explain[1:], "--stems",
                         str(manifest.parent / "song0.stems"), "--out", "explained", *quick],
                        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rc.returncode == 0, rc.stdout + rc.stderr
    assert "predicted loud" in rc.stdout or "predicted quiet" in rc.stdout
    assert (tmp_path / "explained" / "explanation.json").is_file()

    proc = subprocess.run([sys.executable, "-m", "musiclime.cli", *run[1:], *quick,
                           "results_root=results"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    out = with_snakemake_log(proc.stdout + proc.stderr)
    assert proc.returncode == 0, out
    assert len(list((tmp_path / "results").glob("fit/**/explanation.json"))) == 2
    # the classifier's declared version is its code identity in the prediction cache key
    assert "model~loudness-" in "".join(str(p) for p in (tmp_path / "results").glob("predict/**"))
