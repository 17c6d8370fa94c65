"""Strategies are objects: a user's sampler and estimator (a module in a --config-dir) run
through the Python API, `musiclime explain` and `musiclime run` (`_target_` nodes), and give
the same explanation through both doors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import KEYWORD, TONE_HZ, TONE_REFERENCE_ENERGY
from test_pipeline import all_weights, musiclime
from test_workflow import base_overrides, make_corpus

from musiclime.errors import ConfigError

USER_MODULE = '''
import numpy as np

from musiclime.core.estimators import Attribution


class StripeSampler:
    """Row 0 keeps everything; row i drops exactly one feature, (i - 1 + offset) mod F."""

    name = "stripe"
    paired = False
    fixed_rows = 1

    def __init__(self, offset=0):
        self.offset = offset

    def __call__(self, n_features, num_samples, seed):
        masks = np.ones((num_samples, n_features), dtype=np.uint8)
        for i in range(1, num_samples):
            masks[i, (i - 1 + self.offset) % n_features] = 0
        return masks


class DropEstimator:
    """phi_j = f(all) - mean f(rows without feature j)."""

    name = "drop"

    def __call__(self, masks, values):
        base = float(values[0])
        phi = np.zeros(masks.shape[1])
        for j in range(masks.shape[1]):
            rows = masks[:, j] == 0
            if rows.any():
                phi[j] = base - float(np.mean(values[rows]))
        return Attribution(weights=phi, base_value=base - float(phi.sum()), score=float("nan"),
                           estimator=self.name)
'''

PRESET = """defaults:
  - schema
  - _self_
sampler:
  _target_: userstrat.StripeSampler
  offset: 1
estimator:
  _target_: userstrat.DropEstimator
"""


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("userconf")
    (root / "userstrat.py").write_text(USER_MODULE)
    (root / "explainer").mkdir()
    (root / "explainer" / "stripe.yaml").write_text(PRESET)
    return root


def stripes(rows: int, columns: int, offset: int) -> np.ndarray:
    """The stripe pattern, written out independently of the user's sampler."""
    expected = np.ones((rows, columns), dtype=np.uint8)
    expected[np.arange(1, rows), (np.arange(rows - 1) + offset) % columns] = 0
    return expected


def drop_weights(masks: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.array([p[0] - p[masks[:, j] == 0].mean() for j in range(masks.shape[1])])


def test_user_objects_run_through_the_python_api(song, user_dir, monkeypatch):
    from musiclime.core.explainer import ExplainerConfig, MusicLIME, load_song, make_masks
    from musiclime.models.separation import OracleSeparator
    from musiclime.models.whitebox import ToneKeywordClassifier

    monkeypatch.syspath_prepend(str(user_dir))
    import userstrat

    clf = ToneKeywordClassifier(sample_rate=song.sample_rate, tone_hz=TONE_HZ,
                                start=song.tone_window[0], end=song.tone_window[1],
                                keyword=KEYWORD, reference_energy=TONE_REFERENCE_ENERGY)
    s = load_song(song.audio_path, song.lyrics_path, OracleSeparator(), clf.sample_rate,
                  stems_dir=song.stems_dir)
    explainer = MusicLIME(clf, ExplainerConfig(num_samples=50, labels=[0]), progress=False,
                          sampler=userstrat.StripeSampler(offset=2),
                          estimator=userstrat.DropEstimator())
    exp = explainer.explain(s)
    masks, layout = make_masks(s.feature_table, explainer.masks)
    assert np.array_equal(masks, stripes(50, layout.n_columns, 2))
    p = explainer.predict(s, masks, layout).probs[:, 0]
    assert np.array_equal(exp.fits[0].weights, drop_weights(masks, p))
    assert exp.params["sampler"] == "userstrat.StripeSampler"
    assert exp.params["estimator"] == "userstrat.DropEstimator"


def test_a_wrong_target_is_a_one_line_error_naming_the_key(user_dir, tmp_path):
    from musiclime.core.explainer import ExplainerConfig

    with pytest.raises(ConfigError, match=r"explainer\.sampler\._target_='userstrat\.Nope'"):
        ExplainerConfig(sampler={"_target_": "userstrat.Nope"})
    rc, out = musiclime("--config-dir", str(user_dir), "explain", str(tmp_path / "x.wav"),
                        "explainer=stripe", "explainer.estimator._target_=nowhere.Estimator")
    assert rc == 2, out
    [line] = [x for x in out.splitlines() if "error" in x]
    assert line.startswith("musiclime: error: explainer.estimator._target_='nowhere.Estimator'")


@pytest.mark.slow
def test_user_strategies_from_a_config_dir_explain_equals_run(user_dir, tmp_path):
    from musiclime.core.inference import Predictions

    manifest = make_corpus(tmp_path / "corpus", n_songs=1)
    corpus = manifest.parent
    overrides = base_overrides(manifest, tmp_path / "results", "explainer=stripe",
                               "explainer.labels=[0]", "tracking.enabled=false",
                               "metrics.enabled=false")
    rc, out = musiclime("--config-dir", str(user_dir), "run", *overrides)
    assert rc == 0, out
    rc, out = musiclime("--config-dir", str(user_dir), "explain", str(corpus / "song0.flac"),
                        "--lyrics", str(corpus / "song0.txt"), "--stems",
                        str(corpus / "song0.stems"), "--out", str(tmp_path / "explain"),
                        "--quiet", *overrides[1:])
    assert rc == 0, out
    [run_json] = (tmp_path / "results").glob("fit/**/song0/explanation.json")
    [masks_file] = (tmp_path / "results").glob("masks/**/song0*")
    [preds_file] = (tmp_path / "results").glob("predict/**/song0*")
    masks = np.load(str(masks_file))
    assert "smp~StripeSampler-" in str(masks_file)  # the node is in the key
    assert np.array_equal(masks, stripes(120, masks.shape[1], 1))
    p = Predictions.load(str(preds_file)).probs[:, 0]
    a, b = all_weights(tmp_path / "explain" / "explanation.json"), all_weights(run_json)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)  # bit for bit
    meta = json.loads(run_json.read_text())["metadata"]["explanation_params"]
    assert meta["sampler"] == {"_target_": "userstrat.StripeSampler", "offset": 1}
    assert meta["estimator"] == {"_target_": "userstrat.DropEstimator"}
    exp_weights = json.loads(run_json.read_text())["explanations"]
    [label] = exp_weights
    weights = {w["feature"]: w["weight"] for w in exp_weights[label]["weights"]}
    expected = drop_weights(masks, p)
    assert sorted(weights.values()) == sorted(expected.tolist())
