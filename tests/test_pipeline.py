"""One pipeline: `musiclime explain` and `musiclime run` give the same explanation, and the
workflow's cache keys cannot go stale (real `musiclime run` / `musiclime run -n` processes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_song
from test_workflow import base_overrides, executed_rules, make_corpus, with_snakemake_log

from musiclime.io import layout

pytestmark = pytest.mark.slow


def musiclime(*args: str, cwd: Path | None = None, env: dict | None = None
              ) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "musiclime.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=900)
    return proc.returncode, with_snakemake_log(proc.stdout + proc.stderr)


def all_weights(path: Path) -> dict[str, np.ndarray]:
    d = json.loads(path.read_text())
    return {label: np.array([w["weight"] for w in e["weights"]])
            for label, e in d["explanations"].items()}


def test_explain_and_run_give_the_same_explanation(tmp_path):
    """A 44.1 kHz song, the shipped Open-Unmix separator (44.1 kHz) and the demo classifier
    (22.05 kHz): both doors decode at the separator's rate, separate there, and resample the
    stems to the classifier's rate, so their weights agree (here: bit for bit)."""
    song = write_song(tmp_path / "song", seconds=4.0, sr=44100)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(song.flac_path, corpus / "song0.flac")
    shutil.copy(song.lyrics_path, corpus / "song0.txt")
    (corpus / "manifest.csv").write_text("song_id,audio_path,lyrics_path\n"
                                         "song0,song0.flac,song0.txt\n")
    settings = ["explainer.num_samples=64", "tracking.enabled=false", "metrics.enabled=false"]
    rc, out = musiclime("explain", str(corpus / "song0.flac"), "--lyrics",
                        str(corpus / "song0.txt"), "--out", str(tmp_path / "explain"), "--quiet",
                        *settings)
    assert rc == 0, out
    rc, out = musiclime("run", f"results_root={tmp_path / 'results'}",
                        f"dataset.manifest={corpus / 'manifest.csv'}", "dataset.split=null",
                        *settings)
    assert rc == 0, out
    [run_json] = (tmp_path / "results").glob("fit/**/song0/explanation.json")
    a, b = all_weights(tmp_path / "explain" / "explanation.json"), all_weights(run_json)
    assert a.keys() == b.keys()
    for label in a:
        largest = np.abs(a[label]).max()
        assert largest > 0
        assert np.abs(a[label] - b[label]).max() <= 1e-6 * largest, label
    da, db = (json.loads(p.read_text())["metadata"]["prediction"]
              for p in (tmp_path / "explain" / "explanation.json", run_json))
    assert da == db
    # the fit's diagnostics too: the held-out R^2's folds are seeded, so both doors agree
    qa, qb = (json.loads(p.read_text())["metadata"]
              for p in (tmp_path / "explain" / "explanation.json", run_json))
    assert qa["fit_quality"] == qb["fit_quality"]
    assert qa["fit_warnings"] == qb["fit_warnings"]
    assert [w["code"] for w in qa["fit_warnings"]] == ["few_effective_samples"]  # 64 for 44
    # the modality game: predicted by the predict stage beside the masks, recorded by the fit
    assert qa["modality_game"] == qb["modality_game"]
    ea, eb = (json.loads(p.read_text())["explanations"]
              for p in (tmp_path / "explain" / "explanation.json", run_json))
    assert [e["modality"] for e in ea.values()] == [e["modality"] for e in eb.values()]


CLASSIFIER = '''
from musiclime.models.whitebox import ToneKeywordClassifier


class Classifier(ToneKeywordClassifier):
    """A bring-your-own classifier with a weights file."""

    def __init__(self, weights=None, **kwargs):
        super().__init__(**kwargs)
        self.weights = weights
'''


def test_a_changed_classifier_module_or_weights_file_replans_predict(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", n_songs=1)
    code = tmp_path / "code"
    code.mkdir()
    (code / "my_classifier.py").write_text(CLASSIFIER)
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"v1")
    env = {"PYTHONPATH": str(code)}
    args = ["run", *base_overrides(manifest, tmp_path / "results", "tracking.enabled=false",
                                   "metrics.enabled=false", "explainer.num_samples=40",
                                   "model._target_=my_classifier.Classifier",
                                   f"+model.weights={weights}")]
    rc, out = musiclime(*args, env=env)
    assert rc == 0, out
    rc, out = musiclime(*args, "-n", env=env)
    assert rc == 0 and executed_rules(out) == [], out  # nothing changed: nothing to do

    weights.write_bytes(b"v2")  # retrained at the same path
    rc, out = musiclime(*args, "-n", env=env)
    rules = executed_rules(out)
    assert rc == 0 and "predict_masks" in rules, out
    assert not {"decode_audio", "separate_stems", "segment_features", "generate_masks"} & set(
        rules)

    weights.write_bytes(b"v1")  # back to the first weights: the first results are current
    rc, out = musiclime(*args, "-n", env=env)
    assert rc == 0 and executed_rules(out) == [], out

    (code / "my_classifier.py").write_text(CLASSIFIER + "\n# the forward pass changed\n")
    rc, out = musiclime(*args, "-n", env=env)
    rules = executed_rules(out)
    assert rc == 0 and "predict_masks" in rules and "decode_audio" not in rules, out


def test_two_manifests_under_one_dataset_name_are_kept_apart(tmp_path):
    first = make_corpus(tmp_path / "a", n_songs=2)
    second_dir = tmp_path / "b"
    shutil.copytree(first.parent, second_dir)
    # same song ids, other audio: b's song0 is a's song1
    shutil.copy(first.parent / "song1.flac", second_dir / "song0.flac")
    second = second_dir / "manifest.csv"
    overrides = base_overrides(first, tmp_path / "results", "tracking.enabled=false",
                               "metrics.enabled=false")
    overrides = [o for o in overrides if not o.startswith("dataset.manifest=")]
    rc, out = musiclime("run", "-m", "-n", *overrides, f"dataset.manifest={first},{second}")
    assert rc == 0, out
    rules = executed_rules(out)
    assert rules.count("decode_audio") == 4  # 2 songs x 2 manifests: nothing shared
    assert rules.count("aggregate_global") == 2

    from musiclime.workflow.plan import plan_from_overrides

    plan, _ = plan_from_overrides(overrides + [f"dataset.manifest={first},{second}"],
                                  multirun=True)
    datasets = {p.dataset for p in plan.points.values()}
    assert len(datasets) == 2 and all(d.startswith("data~demo-") for d in datasets)
    assert {plan.song(d, "song0").audio for d in datasets} == {
        str((first.parent / "song0.flac").resolve()), str((second_dir / "song0.flac").resolve())}


def test_every_results_path_decodes_back_to_its_parameters(tmp_path):
    from musiclime.workflow.plan import plan_from_overrides

    manifest = make_corpus(tmp_path / "corpus", n_songs=1)
    plan, _ = plan_from_overrides(base_overrides(manifest, tmp_path / "r",
                                                 "explainer.kernel_width=0.5",
                                                 "explainer.modality=audio"))
    [point] = plan.points.values()
    p = layout.explanation(point.fit, "song0")
    d = layout.describe(p)
    assert d["stage"] == "fit" and d["song"] == "song0"
    assert d["params"]["kw"] == "0.5" and d["params"]["mod"] == "audio"
    assert d["params"]["fit.n"] == "120" and d["params"]["masks.n"] == "120"
    assert d["params"]["sep"] == "oracle" and d["params"]["model"].startswith("whitebox-")
    for name in d["params"]:
        assert name.rpartition(".")[2] in layout.ABBREVIATIONS, name
    rc, out = musiclime("where", str(tmp_path / "r" / p), "--results-root", str(tmp_path / "r"))
    assert rc == 0, out
    assert "stage: fit" in out and "kw = 0.5" in out and "kernel width" in out
    rc, out = musiclime("where", str(tmp_path / "elsewhere" / "x.json"))
    assert rc == 2 and "not inside a musiclime results folder" in out
