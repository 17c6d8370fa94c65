"""The shipped demo classifier: protocol, probabilities, determinism, split API, accuracy."""

from __future__ import annotations

import csv
import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from musiclime.models import DemoClassifier
from musiclime.models.demo_classifier import (
    DEFAULT_ASSET_DIR,
    DemoClassifierConfig,
    DemoNet,
    hash_lyrics,
)

REPO = Path(__file__).resolve().parents[1]
DEMO_MANIFEST = REPO / "data" / "demo" / "manifest.csv"

LYRICS = [
    "hello darkness my old friend\nI've come to talk with you again",
    "",
    "[Chorus]\nla la la",
    "neon circuits humming in the night",
]


@pytest.fixture(scope="module")
def clf() -> DemoClassifier:
    return DemoClassifier.load(device="cpu")


@pytest.fixture(scope="module")
def audio() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return 0.1 * torch.randn(len(LYRICS), 22050 * 3, generator=gen)


def test_shipped_assets_are_complete_and_small():
    config = json.loads((DEFAULT_ASSET_DIR / "config.json").read_text())
    metrics = json.loads((DEFAULT_ASSET_DIR / "metrics.json").read_text())
    ckpt = DEFAULT_ASSET_DIR / "model.pt"
    assert ckpt.stat().st_size < 2_000_000
    assert metrics["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert config["model"]["class_names"] == ["ai", "human"]
    assert metrics["test_accuracy"] >= 0.95


def test_protocol_attributes(clf):
    assert clf.class_names == ["ai", "human"]
    assert clf.sample_rate == 22050
    assert clf.device == torch.device("cpu")


def test_predict_proba_returns_probability_rows(clf, audio):
    probs = clf.predict_proba(LYRICS, audio)
    assert probs.shape == (len(LYRICS), 2)
    assert np.all(np.isfinite(probs))
    assert np.all((probs >= 0) & (probs <= 1))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_variable_length_and_silence(clf):
    for n in (10, 600, 22050, 22050 * 7 + 13):
        for lyrics in (["", "la"], ["", ""]):
            probs = clf.predict_proba(lyrics, torch.zeros(2, n))
            assert probs.shape == (2, 2)
            assert np.all(np.isfinite(probs))


def test_predict_proba_is_deterministic(clf, audio):
    first = clf.predict_proba(LYRICS, audio)
    second = clf.predict_proba(LYRICS, audio.clone())
    assert np.array_equal(first, second)


def test_batching_does_not_change_results(audio):
    small = DemoClassifier.load(device="cpu", batch_size=3)
    big = DemoClassifier.load(device="cpu", batch_size=64)
    np.testing.assert_allclose(
        small.predict_proba(LYRICS, audio), big.predict_proba(LYRICS, audio), atol=1e-5
    )


def test_split_api_matches_predict_proba(clf, audio):
    expected = clf.predict_proba(LYRICS, audio)
    a_emb = clf.encode_audio(audio)
    l_emb = clf.encode_lyrics(LYRICS)
    assert a_emb.shape[0] == l_emb.shape[0] == len(LYRICS)
    np.testing.assert_allclose(clf.predict_from_embeddings(a_emb, l_emb), expected, atol=1e-6)
    # A single embedding of the constant modality is broadcast over the batch.
    single = clf.predict_from_embeddings(a_emb[:1], l_emb)
    np.testing.assert_allclose(
        single, clf.predict_proba(LYRICS, audio[:1].expand(len(LYRICS), -1)), atol=1e-6
    )


def test_bad_inputs_raise_clear_errors(clf):
    with pytest.raises(ValueError, match="2-D float"):
        clf.predict_proba(["a"], torch.zeros(22050))
    with pytest.raises(ValueError, match="2-D float"):
        clf.predict_proba(["a"], torch.zeros(1, 22050, dtype=torch.int16))
    with pytest.raises(ValueError, match="must match"):
        clf.predict_proba(["a", "b"], torch.zeros(1, 22050))
    with pytest.raises(ValueError, match="list of strings"):
        clf.predict_proba("a", torch.zeros(1, 22050))


def test_hashing_is_stable_and_handles_empty_lyrics():
    indices, offsets = hash_lyrics(["Hello hello WORLD", ""], n_buckets=4096, ngrams=2)
    # crc32 buckets are fixed across processes and platforms (Python's hash() is salted)
    assert indices[0] == zlib.crc32(b"hello") % 4096
    assert indices[3] == zlib.crc32(b"hello hello") % 4096
    assert indices[0] == indices[1]  # case-insensitive
    assert offsets.tolist() == [0, 5]  # 3 unigrams + 2 bigrams, then an empty bag
    again, _ = hash_lyrics(["Hello hello WORLD"], n_buckets=4096, ngrams=2)
    assert again.tolist() == indices.tolist()


def test_untrained_network_shapes():
    cfg = DemoClassifierConfig()
    net = DemoNet(cfg).eval()
    indices, offsets = hash_lyrics(["a b c", ""], cfg.n_buckets, cfg.ngrams)
    with torch.inference_mode():
        logits = net(torch.randn(2, 4000), indices, offsets)
    assert logits.shape == (2, 2)


def _demo_test_songs(n: int) -> list[dict]:
    with open(DEMO_MANIFEST, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("split") == "test"]
    by_label: dict[str, list[dict]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    return [row for label in sorted(by_label) for row in by_label[label][:n]]


@pytest.mark.skipif(not DEMO_MANIFEST.is_file(), reason="demo corpus not generated")
def test_classifies_demo_test_songs(clf):
    from musiclime_demo.train_classifier import load_training_song

    songs = _demo_test_songs(2)
    assert songs, "no test songs in the demo manifest"
    for row in songs:
        song = load_training_song(row, DEMO_MANIFEST.parent, clf.sample_rate)
        audio = torch.from_numpy(song.stems.sum(axis=0))[None]
        probs = clf.predict_proba([song.lyrics], audio)
        assert clf.class_names[int(probs[0].argmax())] == row["label"], row["id"]


def test_classifies_freshly_rendered_test_songs(clf):
    """The same check without a generated corpus: render test-split songs in memory."""
    from musiclime.io.audio import resample
    from musiclime_demo.corpus import render_song

    seen = set()
    for index in range(170, 176):
        song = render_song(index, seed=0, split="test")
        audio = resample(song.mix, song.sample_rate, clf.sample_rate)
        probs = clf.predict_proba([song.lyrics], torch.from_numpy(audio)[None])
        assert clf.class_names[int(probs[0].argmax())] == song.label, song.song_id
        seen.add(song.label)
    assert seen == {"ai", "human"}
