"""Hugging Face classifiers (model=hf_audio, hf_text, hf_fusion) with tiny, randomly initialised
AST and RoBERTa models built from configs and saved with save_pretrained, loaded through the
real loading path; a head trained by `musiclime train-classifier` on a rendered demo corpus."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import write_song
from test_pipeline import all_weights, musiclime
from test_workflow import executed_rules

from musiclime.core.explainer import ExplainerConfig, MusicLIME, load_song
from musiclime.models.hf import (
    HFAudioClassifier,
    HFFusionClassifier,
    HFTextClassifier,
    extractor_window,
    window_starts,
)
from musiclime.models.separation import OracleSeparator
from musiclime_demo import corpus as demo_corpus
from musiclime_demo.hf_models import build_ast, build_roberta, demo_lyrics


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """16 rendered demo songs of 6 s (8 ai, 8 human), with stems, lyrics and labels."""
    root = tmp_path_factory.mktemp("demo")
    demo_corpus.main(["--out", str(root), "--splits", "test", "--n-test", "16",
                      "--duration", "6"])
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, demo) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("hf")
    texts = demo_lyrics(demo.parent / "songs")
    return SimpleNamespace(
        ast=build_ast(root / "ast"), roberta=build_roberta(root / "roberta", texts),
        ast_clf=build_ast(root / "ast-classifier", class_names=["ai", "human"]),
        roberta_clf=build_roberta(root / "roberta-classifier", texts,
                                  class_names=["ai", "human"], initializer_range=0.5))


def fusion_overrides(tiny, demo, *extra: str) -> list[str]:
    return ["model=hf_fusion", f"model.audio_encoder={tiny.ast}",
            f"model.text_encoder={tiny.roberta}", "model.device=cpu",
            f"dataset.manifest={demo}", "dataset.split=null", *extra]


def test_window_starts_cover_the_clip_and_the_last_window_ends_at_its_end():
    assert window_starts(100, None) == [0]
    assert window_starts(100, 100) == [0]
    assert window_starts(250, 100) == [0, 100, 150]
    assert window_starts(300, 100) == [0, 100, 200]
    starts = window_starts(60 * 16000, 164080)
    assert len(starts) == 6 and starts[-1] + 164080 == 60 * 16000


def test_the_code_fingerprint_covers_every_module_the_hf_classifiers_are_split_into(
        monkeypatch):
    """A cached prediction of an hf model is stale when the windowing or loading code changes,
    not only when hf.py does."""
    from musiclime.models import identity

    hashed = []
    real = identity.file_digest
    monkeypatch.setattr(identity, "file_digest", lambda p: hashed.append(Path(p).name) or real(p))
    fingerprint = identity.code_fingerprint("musiclime.models.hf.HFFusionClassifier.load")
    assert fingerprint.startswith("source:")
    assert {"hf.py", "hf_frontend.py", "hf_loading.py"} <= set(hashed)
    # a module without CODE_MODULES keeps its one-file fingerprint (existing cache keys hold)
    from musiclime.models import whitebox

    assert identity.code_fingerprint("musiclime.models.whitebox.ToneKeywordClassifier") == (
        "source:" + real(whitebox.__file__)[:16])


def test_batched_ast_features_are_the_extractors():
    """ast_fbank (a batch at once, on the audio's device) == ASTFeatureExtractor (per clip)."""
    from transformers import ASTFeatureExtractor

    from musiclime.models.hf import ast_fbank

    rng = np.random.default_rng(0)
    for fe in (ASTFeatureExtractor(), ASTFeatureExtractor(max_length=300, num_mel_bins=64,
                                                          do_normalize=False)):
        for n in (16000 * 3, 164080, 200000):
            x = (rng.standard_normal((3, n)) * 0.1).astype(np.float32)
            ref = fe(list(x), sampling_rate=16000, return_tensors="pt")["input_values"]
            got = ast_fbank(torch.from_numpy(x), fe)
            assert got.shape == ref.shape
            assert torch.allclose(got, ref, atol=1e-5), float((got - ref).abs().max())


def test_tiny_models_load_through_the_real_path(tiny):
    clf = HFAudioClassifier.load(str(tiny.ast_clf), device="cpu")
    assert clf.sample_rate == 16000 and clf.class_names == ["ai", "human"]
    # AST: 1024 frames of 10 ms, 25 ms analysis window -> 10.255 s at 16 kHz
    assert clf.frontend.window == extractor_window(clf.frontend.feature_extractor, 16000) == 164080
    p = clf.predict_proba(["x", "y"], torch.randn(2, 3 * 16000) * 0.1)
    assert p.shape == (2, 2) and np.allclose(p.sum(axis=1), 1)
    assert {Path(f) for f in clf.weights_files} == {tiny.ast_clf}

    text = HFTextClassifier.load(str(tiny.roberta_clf), device="cpu")
    assert text.frontend.max_length == 512
    p = text.predict_proba(["the robot sings", "a choir sings tonight"], torch.zeros(2, 10))
    assert p.shape == (2, 2) and np.allclose(p.sum(axis=1), 1)
    assert not np.allclose(p[0], p[1])  # the text changes the output

    fusion = HFFusionClassifier.load(str(tiny.ast), str(tiny.roberta), device="cpu")
    assert fusion.head is None and fusion.sample_rate == 16000
    assert fusion.encode_audio(torch.zeros(3, 16000)).shape == (3, 32)
    assert fusion.encode_lyrics(["a", "b c"]).shape == (2, 32)
    with pytest.raises(Exception, match="train-classifier"):
        fusion.predict_proba(["a"], torch.zeros(1, 16000))


def test_a_hub_id_that_is_not_cached_gives_a_one_line_error(tmp_path, short_song):
    env = {"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"}
    rc, out = musiclime("explain", str(short_song.audio_path), "--lyrics",
                        str(short_song.lyrics_path), "--out", str(tmp_path / "o"), "--quiet",
                        "model=hf_audio", "model.model=someorg/not-a-cached-model",
                        "separator=oracle", "--stems", str(short_song.stems_dir), env=env)
    assert rc == 2, out
    [line] = [x for x in out.splitlines() if x.startswith("musiclime: error:")]
    assert "hf download someorg/not-a-cached-model" in line
    assert str(tmp_path / "hf-home") in line  # where it was looked for
    assert "Traceback" not in out
    rc, out = musiclime("explain", str(short_song.audio_path), "--out", str(tmp_path / "o"),
                        "model=hf_text", "separator=oracle", "--stems",
                        str(short_song.stems_dir), env=env)
    assert rc == 2 and "model.model has no value" in out, out


def test_a_cached_hub_id_loads_from_the_hf_cache_and_is_keyed_by_its_blobs(tmp_path, tiny,
                                                                          short_song):
    """A hub id found in the local Hugging Face cache (its layout: refs/main -> a snapshot of
    links to blobs named by sha256) loads offline; its cache key uses the blob names."""
    import hashlib
    import shutil

    from musiclime.models.identity import classifier_identity

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someorg--tiny-ast"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    digests = {}
    for f in sorted(tiny.ast_clf.iterdir()):
        digests[f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copy(f, repo / "blobs" / digests[f.name])
        (snap / f.name).symlink_to(Path("../../blobs") / digests[f.name])

    clf = HFAudioClassifier.load(str(snap), device="cpu")
    assert clf.weights_files == []
    ident = classifier_identity({"_target_": "musiclime.models.hf.HFAudioClassifier.load",
                                 "model": "someorg/tiny-ast"}, clf)
    assert sorted(ident["weights"].values()) == sorted(digests.values())

    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    rc, out = musiclime("explain", str(short_song.audio_path), "--lyrics",
                        str(short_song.lyrics_path), "--out", str(tmp_path / "o"), "--quiet",
                        "model=hf_audio", "model.model=someorg/tiny-ast", "model.device=cpu",
                        "explainer.modality=audio", "explainer.num_samples=16",
                        "separator=oracle", "--stems", str(short_song.stems_dir), env=env)
    assert rc == 0, out
    assert (tmp_path / "o" / "explanation.json").is_file()


def test_train_classifier_learns_on_the_demo_features(tmp_path, demo):
    """The head trainer on the demo classifier's own (trained) features: well above chance."""
    rc, out = musiclime("train-classifier", "--out", str(tmp_path / "head"), "--quiet",
                        "model=demo", f"dataset.manifest={demo}", "dataset.split=null",
                        f"results_root={tmp_path / 'results'}")
    assert rc == 0, out
    m = json.loads((tmp_path / "head" / "metrics.json").read_text())
    print(f"\ndemo features: val accuracy {m['val_accuracy']:.3f} on {m['n_val']} songs "
          f"(chance {m['chance_accuracy']:.3f}), train {m['train_accuracy']:.3f}")
    assert m["n_train"] == 12 and m["n_val"] == 4 and m["split"] == "stratified"
    assert m["val_accuracy"] >= 0.75 > m["chance_accuracy"] - 0.01
    assert sum(map(sum, m["val_confusion"])) == 4
    assert f"val accuracy {m['val_accuracy']:.3f}" in out


@pytest.mark.slow
def test_fusion_head_trained_then_explained_by_explain_and_run(tmp_path, tiny, demo):
    head = tmp_path / "head"
    results = tmp_path / "results"
    rc, out = musiclime("train-classifier", "--out", str(head), "--quiet",
                        *fusion_overrides(tiny, demo), f"results_root={results}")
    assert rc == 0, out
    m = json.loads((head / "metrics.json").read_text())
    print(f"\ntiny random encoders: val accuracy {m['val_accuracy']:.3f} on {m['n_val']} songs "
          f"(chance {m['chance_accuracy']:.3f})")
    assert {"config.json", "head.pt", "metrics.json"} <= {p.name for p in head.iterdir()}
    cfg = json.loads((head / "config.json").read_text())["head"]
    assert cfg["audio_dim"] == cfg["text_dim"] == 32 and cfg["class_names"] == ["ai", "human"]
    assert cfg["encoders"]["identity"]["sample_rate"] == 16000
    # logged to MLflow, in the results root's store
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    exp = client.get_experiment_by_name("musiclime-train")
    [run] = client.search_runs([exp.experiment_id])
    assert run.data.metrics["val_accuracy"] == pytest.approx(m["val_accuracy"])
    # embeddings are cached: a second training encodes nothing
    cached = sorted((head / "embeddings").rglob("*.npz"))
    assert len(cached) == 16
    mtimes = [p.stat().st_mtime_ns for p in cached]
    rc, out = musiclime("train-classifier", "--out", str(head), "--quiet", "--hidden", "64",
                        *fusion_overrides(tiny, demo), "tracking.enabled=false")
    assert rc == 0, out
    assert [p.stat().st_mtime_ns for p in cached] == mtimes

    # explain one demo song with both front doors; same config, same seed -> same weights
    songs = demo.parent / "songs"
    manifest = tmp_path / "one.csv"
    rows = demo.read_text().splitlines()
    manifest.write_text("\n".join(rows[:2]).replace("songs/", f"{songs}/") + "\n")
    sid = rows[1].split(",")[0]
    settings = [f"model.head={head}", "explainer.num_samples=64", "metrics.enabled=false",
                "tracking.enabled=false", "separator=oracle"]
    rc, out = musiclime("explain", str(songs / f"{sid}.wav"), "--lyrics",
                        str(songs / f"{sid}.txt"), "--stems", str(songs / f"{sid}.stems"),
                        "--out", str(tmp_path / "explain"), "--quiet",
                        *fusion_overrides(tiny, demo, *settings))
    assert rc == 0, out
    rc, out = musiclime("run", f"results_root={tmp_path / 'run'}",
                        *fusion_overrides(tiny, manifest, *settings))
    assert rc == 0, out
    [run_json] = (tmp_path / "run").glob(f"fit/**/{sid}/explanation.json")
    a, b = all_weights(tmp_path / "explain" / "explanation.json"), all_weights(run_json)
    assert a.keys() == b.keys()
    for label in a:
        assert np.abs(a[label]).max() > 0
        assert np.array_equal(a[label], b[label]), label
    meta = json.loads(run_json.read_text())["metadata"]
    assert meta["model_info"]["class_names"] == ["ai", "human"]

    # the head's weights are part of the prediction cache key: a retrained head re-predicts
    run_args = ["run", f"results_root={tmp_path / 'run'}",
                *fusion_overrides(tiny, manifest, *settings)]
    rc, out = musiclime(*run_args, "-n")
    assert rc == 0 and executed_rules(out) == [], out
    rc, out = musiclime("train-classifier", "--out", str(head), "--quiet", "--seed", "1",
                        *fusion_overrides(tiny, demo), "tracking.enabled=false")
    assert rc == 0, out
    rc, out = musiclime(*run_args, "-n")
    assert rc == 0 and "predict_masks" in executed_rules(out), out


def _explain(clf, song, **cfg):
    config = ExplainerConfig(num_samples=cfg.pop("num_samples", 120), seed=0, **cfg)
    s = load_song(song.audio_path, song.lyrics_path, OracleSeparator(), clf.sample_rate, config,
                  stems_dir=song.stems_dir)
    return MusicLIME(clf, config, progress=False).explain(s)


def test_hf_audio_and_hf_text_explain_their_own_modality(tiny, demo):
    """A rendered demo song (44.1 kHz, its own stems and lyrics), decoded at the models' 16 kHz."""
    sid = demo.read_text().splitlines()[2].split(",")[0]
    songs = demo.parent / "songs"
    song = SimpleNamespace(audio_path=songs / f"{sid}.wav", lyrics_path=songs / f"{sid}.txt",
                           stems_dir=songs / f"{sid}.stems")
    audio = _explain(HFAudioClassifier.load(str(tiny.ast_clf), device="cpu"), song,
                     modality="audio")
    names = [f for f, _ in audio.top_features(audio.predicted_label, k=100)]
    assert names and all("_T" in f for f in names)  # stem-segment features only
    assert len(names) == 40
    text = _explain(HFTextClassifier.load(str(tiny.roberta_clf), device="cpu"), song,
                    modality="lyrical")
    weights = text.top_features(text.predicted_label, k=100)
    assert [f for f, _ in weights] and not any("_T" in f for f, _ in weights)
    assert max(abs(w) for _, w in weights) > 1e-4  # the random text model does react


def _count(module) -> list[int]:
    """Batch sizes of every forward call of ``module``."""
    sizes: list[int] = []

    def hook(mod, args, kwargs, out):
        x = kwargs.get("input_values", kwargs.get("input_ids"))
        sizes.append(int(x.shape[0]))

    module.register_forward_hook(hook, with_kwargs=True)
    return sizes


def test_the_constant_modality_is_encoded_once(tiny, tmp_path):
    """modality=audio encodes the lyrics once (and lyrical the audio), and gives the same
    probabilities as encoding both modalities of every perturbed song."""
    from musiclime.core.composition import WaveformComposer
    from musiclime.core.explainer import make_masks
    from musiclime.core.inference import predict_masks
    from musiclime.models.head import FusionHead, HeadConfig

    song = write_song(tmp_path / "song", seconds=12.0, sr=16000)  # 2 AST windows
    # without the window cache, which would also encode the constant audio once: this test
    # isolates reuse_constant_modality (the cache has its own test below)
    clf = HFFusionClassifier.load(str(tiny.ast), str(tiny.roberta), device="cpu", batch_size=8,
                                  window_cache=False)
    torch.manual_seed(0)
    clf.set_head(FusionHead(HeadConfig(audio_dim=32, text_dim=32, class_names=["ai", "human"],
                                       hidden=16)))
    audio_sizes, text_sizes = _count(clf.audio_model), _count(clf.text_model)
    for modality in ("audio", "lyrical"):
        config = ExplainerConfig(num_samples=20, seed=0, modality=modality)
        s = load_song(song.audio_path, song.lyrics_path, OracleSeparator(), 16000, config,
                      stems_dir=song.stems_dir)
        masks, layout = make_masks(s.feature_table, config)

        def predict(reuse: bool, s=s, masks=masks, layout=layout):
            audio_sizes.clear()
            text_sizes.clear()
            return predict_masks(clf, WaveformComposer(s.audio), s.lyrics, masks, layout,
                                 batch_size=8, progress=False, reuse_constant_modality=reuse)

        preds = predict(True)
        n = preds.unique_rows
        assert n > 10
        if modality == "audio":
            assert text_sizes == [1], text_sizes  # the whole lyrics, once
            assert sum(audio_sizes) == 2 * n  # every perturbed song, 2 windows each
        else:
            assert audio_sizes == [2], audio_sizes  # the whole audio (2 windows), once
            assert sum(text_sizes) == n
        ref = predict(False)
        assert (len(text_sizes) if modality == "audio" else len(audio_sizes)) > 1
        assert np.allclose(preds.probs, ref.probs, atol=1e-6)


def test_long_audio_is_explained_through_windows(tmp_path):
    """A white-box 'audio model' on AST's real fbank features: its ai-logit grows with the
    share of frames whose mel bins around 880 Hz are loud (above every frame of the song
    without its tone). The 60 s song's only 880 Hz tone is in `other` during
    segment 9 (54-60 s), i.e. only in the last of 6 windows: truncating to the model's
    10.24 s (what AST's feature extractor alone does) would make every weight zero."""
    from transformers import ASTFeatureExtractor

    class ToneBins(torch.nn.Module):
        config = SimpleNamespace(num_labels=2, id2label={0: "ai", 1: "human"})

        def __init__(self):
            super().__init__()
            self.ref, self.scale, self.threshold, self.windows = 0.0, 1.0, 0.0, []

        @staticmethod
        def band(input_values):  # [windows, frames]: 880 Hz is mel bin ~40 of 128
            return input_values[:, :, 38:43].mean(dim=2)

        def forward(self, input_values):
            self.windows.append(int(input_values.shape[0]))
            energy = (self.band(input_values) > self.threshold).double().mean(dim=1)
            logit = self.scale * (energy - self.ref)
            return SimpleNamespace(logits=torch.stack([logit, torch.zeros_like(logit)], 1))

    song = write_song(tmp_path / "song", seconds=60.0, sr=16000, tone_segment=9)
    net = ToneBins()
    clf = HFAudioClassifier(net, ASTFeatureExtractor(), device="cpu", batch_size=8)
    full = torch.from_numpy(song.mix)[None]
    no_tone = torch.from_numpy(song.mix - song.stems["other"] + 0.05 * np.sin(
        2 * np.pi * 523.0 * np.arange(song.mix.size) / 16000).astype(np.float32))[None]
    def band(x):
        return ToneBins.band(clf.frontend.features(clf.frontend.windows(x)[0], "cpu")[
            "input_values"])

    net.threshold = (band(no_tone).max() + band(full).max()) / 2
    e_full, e_none = (float(clf.logits(x)[0, 0]) for x in (full, no_tone))
    assert e_full > e_none == 0
    net.ref, net.scale = (e_full + e_none) / 2, 8.0 / (e_full - e_none)
    net.windows.clear()
    clf.reset_cache()  # the logits above put these windows in the window cache
    clf.predict_proba([""], full)
    assert net.windows == [6]  # one batch of 6 windows
    exp = _explain(clf, song, modality="audio", num_samples=300)
    ai = exp.class_names.index("ai") if hasattr(exp, "class_names") else 0
    top = exp.top_features(ai, k=3)
    assert top[0][0] == "other_T9" and top[0][1] > 0, top
    weights = dict(exp.top_features(ai, k=100))
    assert abs(weights["other_T9"]) > 10 * max(abs(weights[f"other_T{t}"]) for t in range(8))


def test_sanity_cascade_randomises_a_fusion_classifier_from_its_head_down(tiny, demo):
    """metrics.sanity on model=hf_fusion: the head's layers first, then the text encoder's and
    the audio encoder's from their last layer down; the full cascade decorrelates the
    explanation and leaves the classifier that was explained alone."""
    from musiclime.metrics.sanity import randomisable_layers, sanity_cascade
    from musiclime.models.head import FusionHead, HeadConfig

    clf = HFFusionClassifier.load(str(tiny.ast), str(tiny.roberta), device="cpu")
    torch.manual_seed(0)
    clf.set_head(FusionHead(HeadConfig(clf.audio_dim, clf.text_dim, ["ai", "human"], hidden=16)))
    layers = [layer.path for layer in randomisable_layers(clf)]
    assert layers[:2] == ["head.mlp.3", "head.mlp.0"]
    first = {part: next(i for i, p in enumerate(layers) if p.startswith(part + "."))
             for part in ("head", "lyrics", "audio")}
    assert first["head"] < first["lyrics"] < first["audio"]
    assert "lyrics.embeddings.word_embeddings" in layers
    lyric_layers = [p for p in layers if p.startswith("lyrics.encoder.layer.")]
    assert lyric_layers[0].startswith("lyrics.encoder.layer.1.")  # the last of 2 layers first

    sid = demo.read_text().splitlines()[3].split(",")[0]
    songs = demo.parent / "songs"
    config = ExplainerConfig(num_samples=48, seed=0)
    song = load_song(songs / f"{sid}.wav", songs / f"{sid}.txt", OracleSeparator(),
                     clf.sample_rate, config, stems_dir=songs / f"{sid}.stems")
    exp = MusicLIME(clf, config, progress=False).explain(song)
    before = {k: v.clone() for k, v in clf.net.state_dict().items()}
    result = sanity_cascade(exp, song, clf, config, layers=3, seed=1)
    assert result.depths == [0, -(-len(layers) // 3), -(-2 * len(layers) // 3), len(layers)]
    assert result.spearman[0] == pytest.approx(1.0)
    print(f"\nhf_fusion cascade rho: {[round(r, 2) for r in result.spearman]}")
    assert abs(result.spearman[-1]) < 0.5, result.spearman
    after = clf.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_window_cache_computes_each_distinct_window_once_and_changes_no_probability(
        tiny, tmp_path):
    """A 30 s song in 3 segments, 5 s model windows (each inside one segment): a window can
    hold at most 2^4 contents (its segment's 4 stems on or off), so most windows of 200
    perturbed songs were seen before. With the cache, the model sees each distinct window
    content once (counted here from the composed waveforms themselves, byte for byte), and
    every probability is the one computed without it."""
    from musiclime.core.composition import WaveformComposer
    from musiclime.core.explainer import make_masks
    from musiclime.core.inference import predict_masks

    song = write_song(tmp_path / "song", seconds=30.0, sr=16000, segments=3)
    config = ExplainerConfig(num_samples=200, seed=0, modality="audio", temporal_segments=3)
    s = load_song(song.audio_path, song.lyrics_path, OracleSeparator(), 16000, config,
                  stems_dir=song.stems_dir)
    masks, layout = make_masks(s.feature_table, config)
    cached, plain = (HFAudioClassifier.load(str(tiny.ast_clf), device="cpu", batch_size=8,
                                            window_seconds=5.0, window_cache=on)
                     for on in (True, False))
    sizes = _count(cached.model)
    composer = WaveformComposer(s.audio)
    with_cache = predict_masks(cached, composer, s.lyrics, masks, layout, batch_size=32,
                               progress=False)
    without = predict_masks(plain, composer, s.lyrics, masks, layout, batch_size=32,
                            progress=False)
    np.testing.assert_allclose(with_cache.probs, without.probs, rtol=0, atol=1e-6)

    rows = np.unique(masks[:, :layout.n_columns], axis=0)
    audio = composer.compose(rows[:, :composer.n_segments * composer.n_stems]).numpy()
    windows = audio.reshape(len(rows), 6, 5 * 16000).reshape(-1, 5 * 16000)
    distinct = len(np.unique(windows, axis=0))
    assert sum(sizes) == distinct == cached.window_cache.misses
    assert distinct <= 6 * 16 < 0.2 * windows.shape[0]  # most windows were looked up
    assert with_cache.timings["window_cache_hit_rate"] == pytest.approx(
        1 - distinct / windows.shape[0])
    assert "window_cache_hit_rate" not in without.timings
    # a second run starts from an empty cache: the same computations, the same numbers
    sizes.clear()
    again = predict_masks(cached, composer, s.lyrics, masks, layout, batch_size=32,
                          progress=False)
    assert sum(sizes) == distinct and np.array_equal(again.probs, with_cache.probs)
