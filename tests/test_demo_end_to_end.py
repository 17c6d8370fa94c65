"""The shipped demo pieces together: a rendered demo song explained by `musiclime explain`
with the default separator (the shipped Open-Unmix model) and the default classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from musiclime.cli import main
from musiclime_demo.corpus import render_song

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ai_song(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_song")
    song = next(s for s in (render_song(i, seed=0, split="test", duration=8.0)
                            for i in range(170, 180)) if s.label == "ai")
    # an mp3 at another rate exercises decoding and resampling too
    sf.write(root / "song.mp3", song.mix, song.sample_rate, format="MP3")
    (root / "song.txt").write_text(song.lyrics)
    return root, song


def test_explain_with_default_separator_and_classifier(ai_song, tmp_path, capsys):
    root, song = ai_song
    out = tmp_path / "out"
    rc = main(["explain", str(root / "song.mp3"), "--lyrics", str(root / "song.txt"),
               "--out", str(out), "--quiet", "explainer.num_samples=300"])
    assert rc == 0
    data = json.loads((out / "explanation.json").read_text())
    assert data["metadata"]["song_id"] == "song"
    assert data["metadata"]["model_info"]["class_names"] == ["ai", "human"]
    assert data["metadata"]["model_info"]["total_audio_components"] == 40
    probs = data["metadata"]["prediction"]["probabilities"]
    assert np.isclose(sum(probs), 1.0)
    # the classifier recognises the planted evidence: the song is explained as "ai"
    assert data["metadata"]["prediction"]["predicted_class"] == "ai"
    label = data["explanations"]["label_0"]
    evidence_lines = {e["text"] for e in song.evidence["lyrics"]}
    top = [f["feature"] for f in label["top_features"][:5]]
    assert evidence_lines & set(top), (top, evidence_lines)
    for name in ("audio_heatmap.png", "lyrics.png", "listen_top.wav", "config.yaml"):
        assert (out / name).stat().st_size > 0
    assert "separator" in (out / "config.yaml").read_text()
    assert "predicted ai" in capsys.readouterr().out
