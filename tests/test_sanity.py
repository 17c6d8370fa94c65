"""Adebayo et al.'s sanity check (cascading randomisation) on the shipped demo classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TONE_HZ

from musiclime.config import compose_config, metric_settings
from musiclime.core.explainer import ExplainerConfig, MusicLIME, factorize, load_song
from musiclime.errors import ConfigError
from musiclime.io.audio import resample
from musiclime.metrics import MetricSettings, evaluate_explanation
from musiclime.metrics.evaluate import config_from_explanation
from musiclime.metrics.registry import metric_for_key
from musiclime.metrics.sanity import (
    cascade_depths,
    explain_with,
    plot_sanity_cascade,
    randomisable_layers,
    sanity_cascade,
    sanity_plot_path,
)
from musiclime.models import DemoClassifier
from musiclime.models.separation import OracleSeparator
from musiclime.models.whitebox import ToneKeywordClassifier

#: the demo net's layers from the output down: fusion head, lyrics branch, audio branch
DEMO_LAYERS = ["head.3", "head.0", "lyrics.mlp.0", "lyrics.embedding", "audio.proj.1",
               "audio.convs.8", "audio.convs.5", "audio.convs.2", "audio.convs.0",
               "audio.input_norm"]


@pytest.fixture(scope="module")
def clf() -> DemoClassifier:
    return DemoClassifier.load(device="cpu")


@pytest.fixture(scope="module")
def demo(clf):
    """A rendered 4-s 'ai' test song of the demo corpus, explained with 64 samples."""
    from musiclime_demo.corpus import render_song

    cs = render_song(171, seed=0, split="test", duration=4.0)
    config = ExplainerConfig(num_samples=64, temporal_segments=4, seed=3)
    mix = resample(cs.mix, cs.sample_rate, clf.sample_rate)
    song = factorize(mix, cs.stems, clf.sample_rate, cs.lyrics, config, song_id=cs.song_id,
                     stems_rate=cs.sample_rate)
    exp = MusicLIME(clf, config, progress=False).explain(song)
    assert exp.class_names[exp.predicted_label] == cs.label == "ai"
    return exp, song, config


@pytest.fixture(scope="module")
def full_cascade(clf, demo):
    exp, song, config = demo
    before = {k: v.clone() for k, v in clf.net.state_dict().items()}
    result = sanity_cascade(exp, song, clf, config, seed=7)
    return result, before


def test_layers_run_from_the_fusion_head_down(clf):
    layers = randomisable_layers(clf)
    assert [layer.name for layer in layers] == DEMO_LAYERS
    assert layers[0].kind == "Linear" and layers[-1].kind == "BatchNorm1d"
    assert cascade_depths(10) == list(range(11))
    assert cascade_depths(10, 3) == [0, 4, 7, 10] and cascade_depths(10, 1) == [0, 10]
    assert cascade_depths(10, 20) == list(range(11))


def test_refit_with_the_untouched_classifier_is_the_explanation(clf, demo):
    """Step 0's premise: same masks, same settings, same classifier -> the same weights."""
    exp, song, config = demo
    label = exp.predicted_label
    refit, rows = explain_with(clf, exp, song, config_from_explanation(exp, config, label))
    assert np.array_equal(refit.fits[label].weights, exp.fits[label].weights)
    assert 0 < rows <= 64


def test_full_cascade_leaves_the_classifier_alone_and_decorrelates(clf, demo, full_cascade):
    exp, _, _ = demo
    result, before = full_cascade
    after = clf.net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert result.layers == DEMO_LAYERS and result.depths == list(range(11))
    assert result.steps == ["original", *DEMO_LAYERS]
    assert result.spearman[0] == result.spearman_abs[0] == result.jaccard[0] == 1.0
    assert result.classifier_rows == 10 * 64
    rho = np.asarray(result.spearman[1:])
    # measured (seed 7): -0.92 after the output layer alone (a new output layer may flip
    # which features speak for the label), then 0.59 .. 0.03 as the encoders go
    assert np.all(np.isfinite(rho)) and np.all(rho < 0.9), rho
    assert abs(result.spearman[-1]) < 0.5, rho
    assert result.jaccard[-1] < 1.0
    d = result.as_dict()
    assert d["spearman_final"] == result.spearman[-1] and d["layer_count"] == 10.0
    assert d["spearman_depth0"] == 1.0 and "jaccard_top5_depth10" in d
    # the original classifier still gives the original prediction
    again = MusicLIME(clf, demo[2], progress=False).explain(demo[1])
    assert np.array_equal(again.fits[exp.predicted_label].weights,
                          exp.fits[exp.predicted_label].weights)


def test_a_fixed_seed_gives_the_same_cascade_bit_for_bit(clf, demo, full_cascade):
    exp, song, config = demo
    a = sanity_cascade(exp, song, clf, config, layers=2, seed=7)
    b = sanity_cascade(exp, song, clf, config, layers=2, seed=7)
    assert a.depths == [0, 5, 10] and a.as_dict() == b.as_dict()
    # every layer's re-initialisation depends on (seed, layer) only: grouping the cascade
    # gives the same fully randomised network as stepping through every layer
    full, _ = full_cascade
    assert a.spearman[-1] == full.spearman[-1] and a.spearman[1] == full.spearman[5]
    other = sanity_cascade(exp, song, clf, config, layers=1, seed=8)
    assert other.spearman[-1] != full.spearman[-1]


def test_metrics_sanity_through_evaluate_gives_registered_keys_and_a_plot(clf, demo, tmp_path):
    exp, song, config = demo
    settings = MetricSettings(sanity=True, sanity_layers=2, seed=7, stability_seeds=0,
                              random_orderings=1, curve_points=3, sufficiency_ks=(1,),
                              heldout_masks=4)
    out = evaluate_explanation(exp, song, clf, config, settings=settings)
    sanity = {k: v for k, v in out.items() if k.startswith("sanity_")}
    assert set(sanity) == {f"sanity_{k}_depth{d}" for k in ("spearman", "spearman_abs",
                                                           "jaccard_top5") for d in (0, 5, 10)
                           } | {"sanity_spearman_final", "sanity_spearman_abs_final",
                                "sanity_layer_count"}
    for key in sanity:
        info = metric_for_key(key)
        assert info is not None and info.stage == "sanity", key
    assert out["sanity_spearman_depth0"] == 1.0 and out["sanity_layer_count"] == 10.0
    assert out["metrics_classifier_rows"] >= 2 * 64  # the two refits count
    # off (the default): no sanity keys, and the settings hash as before the option existed
    plain = evaluate_explanation(exp, song, clf, config, settings=MetricSettings(
        stability_seeds=0, random_orderings=1, curve_points=3, sufficiency_ks=(1,),
        heldout_masks=4))
    assert not any(k.startswith("sanity_") for k in plain)
    assert "sanity" not in MetricSettings().as_dict()
    assert settings.as_dict()["sanity_layers"] == 2

    # the figure the workflow writes next to the metrics JSON, from the metrics dict
    path = sanity_plot_path(tmp_path / "song.json")
    assert path.name == "song.sanity.png"
    fig = plot_sanity_cascade(out, path, layers=DEMO_LAYERS)
    assert path.stat().st_size > 0
    ax = fig.axes[0]
    assert len([ln for ln in ax.lines if ln.get_gid() == "sanity-curve"]) == 2
    assert [t.get_text() for t in ax.get_xticklabels()] == ["original", "audio.proj.1",
                                                           "audio.input_norm"]


def test_plot_of_several_songs_has_a_line_per_song_and_the_mean(full_cascade):
    result, _ = full_cascade
    shifted = {f"sanity_spearman_depth{d}": v - 0.1 for d, v in zip(result.depths,
                                                                  result.spearman, strict=True)}
    fig = plot_sanity_cascade([result, result.as_dict(), shifted])
    gids = [ln.get_gid() for ln in fig.axes[0].lines]
    assert gids.count("sanity-curve sanity-song") == 3 + 2  # signed: 3 songs; |w|: 2
    assert gids.count("sanity-curve") == 2  # the means
    assert any(ln.get_linestyle() == "--" for ln in fig.axes[0].lines)  # the zero line
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks[0] == "original" and ticks[-1] == "audio.input_norm"
    with pytest.raises(ValueError, match="metrics.sanity"):
        plot_sanity_cascade({"heldout_r2": 0.5})


def test_a_classifier_without_torch_parameters_gives_a_one_line_error(song):
    config = ExplainerConfig(num_samples=16, temporal_segments=4)
    s = load_song(song.audio_path, song.lyrics_path, OracleSeparator(), song.sample_rate, config,
                  stems_dir=song.stems_dir)
    wb = ToneKeywordClassifier(sample_rate=song.sample_rate, tone_hz=TONE_HZ)
    exp = MusicLIME(wb, config, progress=False).explain(s)
    with pytest.raises(ConfigError, match="needs a torch classifier") as err:
        evaluate_explanation(exp, s, wb, config, settings=MetricSettings(
            sanity=True, stability_seeds=0, random_orderings=1, curve_points=3,
            sufficiency_ks=(1,), heldout_masks=4))
    assert "\n" not in str(err.value) and "ToneKeywordClassifier" in str(err.value)


def test_the_metrics_config_group_takes_the_sanity_keys():
    settings = metric_settings(compose_config(["metrics.sanity=true",
                                               "metrics.sanity_layers=3"]))
    assert settings.sanity is True and settings.sanity_layers == 3
    assert metric_settings(compose_config([])).sanity is False
    with pytest.raises(ConfigError, match="sanity_layers"):
        metric_settings(compose_config(["metrics.sanity_layers=-1"]))


@pytest.mark.slow
def test_a_sanity_sweep_logs_each_cascade_figure_and_rolls_up_the_final_rho(tmp_path):
    """`musiclime run -m ... metrics.sanity=true` with the demo classifier: every child run
    holds its song's cascade figure next to the metrics JSON, and the sweep's parent run gets
    best/mean of sanity_spearman_final (the lowest |rho| is the best pass)."""
    import mlflow
    from test_workflow import make_corpus, run_capture

    manifest = make_corpus(tmp_path / "corpus", n_songs=1)
    results = tmp_path / "results"
    rc, out = run_capture([f"results_root={results}", f"dataset.manifest={manifest}",
                           "dataset.split=null", "separator=oracle", "explainer.num_samples=48",
                           "explainer.kernel_width=0.25,1", "metrics.sanity=true",
                           "metrics.sanity_layers=2", "metrics.stability_seeds=0",
                           "metrics.random_orderings=1", "metrics.curve_points=3"],
                          multirun=True)
    assert rc == 0, out
    pngs = sorted(results.glob("evaluate/**/song0.sanity.png"))
    assert len(pngs) == 2, pngs
    client = mlflow.MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    [exp] = [e for e in client.search_experiments() if e.name == "musiclime"]
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2, [r.data.tags for r in runs]
    finals = []
    for run in children:
        names = [a.path for a in client.list_artifacts(run.info.run_id, "metrics")]
        assert "metrics/song0.sanity.png" in names, names
        finals.append(run.data.metrics["sanity_spearman_final"])
    [parent] = [r for r in runs if r.info.run_id == children[0].data.tags["mlflow.parentRunId"]]
    assert parent.data.metrics["best/sanity_spearman_final"] == pytest.approx(min(finals))
    assert parent.data.metrics["mean/sanity_spearman_final"] == pytest.approx(np.mean(finals))
