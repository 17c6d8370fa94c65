"""Hydra composition, validation, object building and the ``musiclime`` command."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml
from conftest import KEYWORD_LINE, TONE_REFERENCE_ENERGY

from musiclime.cli import main
from musiclime.config import (
    build_classifier,
    build_separator,
    compose_config,
    config_dir,
    explainer_config,
    metric_settings,
    to_yaml,
)
from musiclime.core.explainer import ExplainerConfig
from musiclime.core.explanation import Explanation
from musiclime.errors import ConfigError
from musiclime.metrics import MetricsConfig, MetricSettings
from musiclime.models.separation import OpenUnmixSeparator, OracleSeparator
from musiclime.models.whitebox import ToneKeywordClassifier


def test_defaults_compose_and_match_explainer_defaults():
    cfg = compose_config([])
    assert cfg.separator.name == "demo" and cfg.model.name == "demo"
    econf = explainer_config(cfg)
    assert econf == ExplainerConfig()  # config/explainer/default.yaml == the dataclass defaults
    assert econf.kernel_width == 0.25 and econf.num_samples == 1000
    assert cfg.results_root == "results" and cfg.working_sample_rate is None


def test_the_few_calls_explainer_option_composes_over_the_defaults():
    econf = explainer_config(compose_config(["explainer=few_calls"]))
    assert (econf.sampler, econf.estimator, econf.target, econf.num_samples) == (
        "plackett_burman_foldover", "banzhaf", "auto", 256)
    assert econf.kernel_width == 0.25 and econf.modality == "both"  # the rest: the defaults
    later = explainer_config(compose_config(["explainer=few_calls", "explainer.num_samples=512"]))
    assert later.num_samples == 512 and later.estimator == "banzhaf"
    with pytest.raises(ConfigError, match="estimator='banzhaf'.*'kernel'"):
        explainer_config(compose_config(["explainer=few_calls", "explainer.sampler=kernel"]))


def test_explainer_and_metrics_defaults_come_from_the_dataclass_schemas():
    # the groups' yaml files hold no keys: every default is a dataclass field
    for group in ("explainer", "metrics"):
        data = yaml.safe_load((config_dir() / group / "default.yaml").read_text())
        assert data == {"defaults": ["schema", "_self_"]}, group
    cfg = compose_config([])
    assert list(cfg.explainer) == [f.name for f in dataclasses.fields(ExplainerConfig)]
    assert list(cfg.metrics) == [f.name for f in dataclasses.fields(MetricsConfig)]
    assert set(cfg.metrics) == {"enabled", *(f.name for f in dataclasses.fields(MetricSettings))}
    assert cfg.metrics.enabled is True
    # the pipeline leaves the costly stability reruns off; the Python API's default is 3
    assert metric_settings(cfg) == MetricSettings(stability_seeds=0)
    assert metric_settings(compose_config(["metrics.enabled=false"])) is None
    assert metric_settings(compose_config(["sweep=paper"])).stability_seeds == 3


def test_typed_schema_keeps_lists_and_converts_numbers():
    cfg = compose_config(["explainer.kernel_width=1", "explainer.labels=[ai]",
                   "metrics.sufficiency_ks=[1,2]", "metrics.label=1"])
    assert cfg.explainer.kernel_width == 1.0 and isinstance(cfg.explainer.kernel_width, float)
    assert explainer_config(cfg).labels == ["ai"]
    m = metric_settings(cfg)
    assert m.sufficiency_ks == (1, 2) and m.label == 1


@pytest.mark.parametrize("separator", ["demo", "oracle", "umxhq", "umxl"])
def test_every_separator_choice_composes_and_builds(separator):
    cfg = compose_config([f"separator={separator}", "model=whitebox", "dataset=demo",
                   "tracking=local", "sweep=none", "explainer=default"])
    assert cfg.separator.name == separator
    sep = build_separator(cfg)
    if separator == "oracle":
        assert isinstance(sep, OracleSeparator)
    else:
        # building does not load weights (nothing is downloaded)
        assert isinstance(sep, OpenUnmixSeparator)
        assert sep._separator is None
        if separator in ("umxhq", "umxl"):
            assert sep.model == separator and not sep.is_local
        else:
            assert sep.model.endswith("demo_separator")


def test_whitebox_model_builds_with_overrides():
    cfg = compose_config(["model=whitebox", "model.start=1.5", "model.end=2.5", "model.keyword=Zebra"])
    clf = build_classifier(cfg)
    assert isinstance(clf, ToneKeywordClassifier)
    assert (clf.start, clf.end, clf.keyword, clf.sample_rate) == (1.5, 2.5, "zebra", 22050)
    assert clf.class_names == ["ai", "human"]


def test_explainer_overrides_reach_the_explainer_config():
    cfg = compose_config(["explainer.kernel_width=1.5", "explainer.modality=lyrical",
                   "explainer.segment_boundaries=[0,1.5,3]", "explainer.labels=[0,1]",
                   "explainer.lyrics_unit=word"])
    e = explainer_config(cfg)
    assert (e.kernel_width, e.modality, e.lyrics_unit) == (1.5, "lyrical", "word")
    assert e.segment_boundaries == [0, 1.5, 3] and e.labels == [0, 1]
    assert "kernel_width: 1.5" in to_yaml(cfg)


@pytest.mark.parametrize("override,key", [
    ("explainer.kernel_widht=3", "kernel_widht"),
    ("+explainer.kernel_widht=3", "kernel_widht"),
    ("explainer.modality=bogus", "explainer.modality"),
    ("explainer.num_samples=1", "explainer.num_samples"),
    ("explainer.kernel_width=-1", "explainer.kernel_width"),
    ("explainer.kernel_width=wide", "kernel_width"),
    ("explainer.residual=maybe", "explainer.residual"),
    ("explainer.modality=visual", "explainer.modality"),
    ("explainer.num_samples=many", "explainer.num_samples"),  # an integer or "auto"
    ("metrics.foo=1", "foo"),
    ("+metrics.foo=1", "foo"),
    ("metrics.stability_seeds=x", "metrics.stability_seeds"),
    ("metrics.curve_points=1", "curve_points"),
    ("+bogus_top=1", "bogus_top"),
    ("separator=nope", "nope"),
    ("working_sample_rate=-5", "working_sample_rate"),
])
def test_bad_config_raises_config_error_naming_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        compose_config([override])
    assert key in str(info.value)


# --- the command ------------------------------------------------------------------------------

def _whitebox_overrides(song):
    start, end = song.tone_window
    return ["model=whitebox", f"model.start={start}", f"model.end={end}",
            f"model.reference_energy={TONE_REFERENCE_ENERGY}", "explainer.num_samples=200"]


EXPECTED_FILES = ("explanation.json", "audio_heatmap.png", "lyrics.png", "listen_top.wav",
                  "config.yaml")


def test_cli_explain_with_oracle_stems(short_song, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["explain", str(short_song.flac_path), "--lyrics", str(short_song.lyrics_path),
               "--stems", str(short_song.stems_dir), "--out", str(out), "--quiet",
               "separator=oracle", *_whitebox_overrides(short_song)])
    assert rc == 0
    for name in EXPECTED_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    exp = Explanation.load(out / "explanation.json")
    assert exp.num_samples == 200 and exp.song_id == "mix"
    assert exp.predicted_label == 0
    assert {n for n, _ in exp.top_features(k=2)} == {short_song.tone_feature, KEYWORD_LINE}
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["separator"]["name"] == "oracle"
    assert saved["explainer"]["num_samples"] == 200
    assert saved["model"]["start"] == pytest.approx(short_song.tone_window[0])
    stdout = capsys.readouterr().out
    assert "predicted ai" in stdout and "other_T6" in stdout
    table = json.loads((out / "feature_table.json").read_text())
    assert table["n_audio"] == 40 and table["n_lyrics"] == 4


def test_cli_explain_with_local_openunmix_dir(short_song, tiny_umx_dir, tmp_path,
                                              torch_single_thread):
    out = tmp_path / "out"
    overrides = ["separator=demo", f"separator.model={tiny_umx_dir}", "separator.device=cpu",
                 *_whitebox_overrides(short_song)]
    cfg = compose_config(overrides)
    sep = build_separator(cfg)
    assert isinstance(sep, OpenUnmixSeparator) and sep.model == str(tiny_umx_dir)
    assert sep.is_local and sep.sample_rate == 44100

    rc = main(["explain", str(short_song.audio_path), "--lyrics", str(short_song.lyrics_path),
               "--out", str(out), "--quiet", *overrides])
    assert rc == 0
    for name in EXPECTED_FILES:
        assert (out / name).is_file(), name
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["separator"]["model"] == str(tiny_umx_dir)
    assert saved["separator"]["_target_"] == "musiclime.models.separation.OpenUnmixSeparator"
    exp = Explanation.load(out / "explanation.json")
    assert exp.features.stems == ["vocals", "drums", "bass", "other"]
    # the keyword line matters whatever the (untrained) separator did to the audio
    assert KEYWORD_LINE in [n for n, _ in exp.top_features(k=3)]


def test_cli_missing_audio_exits_2_naming_the_path(short_song, tmp_path, capsys):
    missing = tmp_path / "no_such_song.wav"
    rc = main(["explain", str(missing), "--lyrics", str(short_song.lyrics_path),
               "--stems", str(short_song.stems_dir), "--out", str(tmp_path / "out"), "--quiet",
               "separator=oracle", *_whitebox_overrides(short_song)])
    assert rc == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "out" / "explanation.json").exists()


def test_cli_bad_override_exits_2(short_song, tmp_path, capsys):
    rc = main(["explain", str(short_song.audio_path), "--out", str(tmp_path / "o"), "--quiet",
               "model=whitebox", "explainer.kernel_widht=3"])
    assert rc == 2
    assert "kernel_widht" in capsys.readouterr().err


def test_cli_oracle_without_stems_folder_exits_2(short_song, tmp_path, capsys):
    rc = main(["explain", str(short_song.audio_path), "--out", str(tmp_path / "o"), "--quiet",
               "separator=oracle", *_whitebox_overrides(short_song)])
    assert rc == 2
    assert "mix.stems" in capsys.readouterr().err


def test_cli_config_prints_resolved_yaml(capsys):
    assert main(["config", "model=whitebox", "explainer.seed=7"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["explainer"]["seed"] == 7 and printed["model"]["name"] == "whitebox"
    # every explainer key, with its default
    assert printed["explainer"] == {**dataclasses.asdict(ExplainerConfig()), "seed": 7}
    assert printed["metrics"]["enabled"] is True


def test_cli_overrides_may_follow_options_but_unknown_options_fail(capsys):
    # overrides after options are overrides; an unknown --option is still an error
    assert main(["config", "model=whitebox", "explainer.seed=3"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["explain", "song.wav", "--out", "o", "--bogus", "model=whitebox"])
    assert info.value.code == 2
    assert "--bogus" in capsys.readouterr().err


# --- one spelling per configuration; overrides that need quoting --------------------------------
def test_equivalent_overrides_plan_the_same_points(tmp_path, monkeypatch):
    from test_workflow import base_overrides, make_corpus

    from musiclime.workflow.plan import normalize_overrides, plan_from_overrides

    manifest = make_corpus(tmp_path / "corpus", n_songs=1, seconds=1.0)
    monkeypatch.chdir(tmp_path)
    absolute = base_overrides(manifest, tmp_path / "results")
    relative = [o for o in absolute if not o.startswith(("dataset.manifest=", "results_root="))]
    relative = [*relative[::-1], "dataset.manifest=corpus/manifest.csv", "results_root=results"]
    assert normalize_overrides(relative) == normalize_overrides(absolute)
    assert normalize_overrides(relative) == sorted(absolute, key=lambda o: o.split("=")[0])
    plans = [plan_from_overrides(ov)[0] for ov in (absolute, relative)]
    assert list(plans[0].points) == list(plans[1].points)
    assert [p.overrides for p in plans[0].points.values()] == \
        [p.overrides for p in plans[1].points.values()]
    # a sweep: each point is normalised too
    sweep = [*relative, "explainer.kernel_width=0.5,1"]
    plan, _ = plan_from_overrides(sweep, multirun=True)
    for point in plan.points.values():
        assert f"dataset.manifest={manifest}" in point.overrides, point.overrides
    # names and hub ids are not paths; a folder that exists is
    (tmp_path / "models" / "umx").mkdir(parents=True)
    assert normalize_overrides(["separator.model=umxl", "separator.model=models/umx"]) == \
        ["separator.model=umxl", f"separator.model={tmp_path / 'models' / 'umx'}"]


@pytest.mark.parametrize("path", ["/tmp/a (live)/m.csv", "/tmp/it's/m.csv", "/tmp/ä ö/m.csv",
                                  '/tmp/x"y\'s/m.csv'])
def test_a_path_hydra_cannot_read_gets_the_quoted_override_to_type(path, capsys):
    import shlex
    import subprocess

    assert main(["config", f"dataset.manifest={path}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    hint = err.split("only with its value quoted: write ")[1].split(" on the command line")[0]
    # what the shell makes of the hint is an override Hydra reads back as the path
    typed = subprocess.run(["bash", "-c", f"printf %s {hint}"], capture_output=True,
                           text=True, check=True).stdout
    assert shlex.split(hint) == [typed]
    assert compose_config([typed]).dataset.manifest == path
