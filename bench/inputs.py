"""Inputs the benchmarks share: the demo corpus's test songs, a synthetic clip, the shipped demo
classifier (``bench/run.py``, ``calls.py``, ``stability.py``, ``hf.py`` and ``e2e.py`` import
them from here, so no benchmark imports another)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEMO_CORPUS = ROOT / "data" / "demo"
STEM_NAMES = ("vocals", "drums", "bass", "other")


def demo_entries(corpus: str | Path, split: str | None = "test"):
    from musiclime.io.dataset import load_dataset

    manifest = Path(corpus) / "manifest.csv"
    if not manifest.is_file():
        return []
    return [e for e in load_dataset(manifest, split) if e.stems_dir and e.lyrics]


def synthetic_clip(seconds: float, rate: int, seed: int = 0, n_lines: int = 12) -> dict:
    """Noise-and-tone stems that sum to the mix, numbered lyric lines (no corpus needed)."""
    n = int(round(seconds * rate))
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    stems = {"vocals": 0.1 * np.sin(2 * np.pi * 330 * t) * (1 + rng.standard_normal(n) * 0.1),
             "drums": 0.05 * rng.standard_normal(n),
             "bass": 0.2 * np.sin(2 * np.pi * 110 * t),
             "other": 0.05 * np.sin(2 * np.pi * 880 * t)}
    stems = {k: v.astype(np.float32) for k, v in stems.items()}
    mix = np.sum([stems[k] for k in STEM_NAMES], axis=0).astype(np.float32)
    lyrics = "\n".join(f"line number {i} of the song, robot {i % 3}" for i in range(n_lines))
    return {"mix": mix, "stems": stems, "lyrics": lyrics, "rate": rate, "source": "synthetic"}


def demo_clip(seconds: float, rate: int, corpus: str | Path = DEMO_CORPUS) -> dict:
    """``seconds`` of demo test songs joined end to end (mix, ground-truth stems, lyrics)."""
    from musiclime.io.audio import load_audio

    entries = demo_entries(corpus)
    if not entries:
        return synthetic_clip(seconds, rate)
    n = int(round(seconds * rate))
    mixes, stems, lyrics, used = [], {s: [] for s in STEM_NAMES}, [], []
    have = 0
    for e in entries:
        mix, _ = load_audio(e.audio, rate)
        take = min(len(mix), n - have)
        mixes.append(mix[:take])
        for s in STEM_NAMES:
            y, _ = load_audio(Path(e.stems_dir) / f"{s}.wav", rate)
            y = np.pad(y, (0, max(0, len(mix) - len(y))))[:len(mix)]
            stems[s].append(y[:take])
        lyrics.append(Path(e.lyrics).read_text(encoding="utf-8").strip("\n"))
        used.append(e.song_id)
        have += take
        if have >= n:
            break
    return {"mix": np.concatenate(mixes).astype(np.float32),
            "stems": {s: np.concatenate(v).astype(np.float32) for s, v in stems.items()},
            "lyrics": "\n\n".join(lyrics), "rate": rate, "source": "demo:" + "+".join(used)}


def load_demo(allow_untrained: bool = False, device: str = "cpu"):
    """The shipped demo classifier; with ``allow_untrained``, its architecture with seeded random
    weights when no checkpoint is there (same compute, meaningless probabilities)."""
    import torch

    from musiclime.models.demo_classifier import DemoClassifier, DemoClassifierConfig, DemoNet

    try:
        clf = DemoClassifier.load(device=device)
        clf.trained = True
        return clf
    except FileNotFoundError:
        if not allow_untrained:
            raise
    torch.manual_seed(0)
    clf = DemoClassifier(DemoNet(DemoClassifierConfig()), device=device)
    clf.trained = False
    return clf
