"""Train the shipped demo classifier (:class:`musiclime.models.DemoClassifier`) on the demo corpus.

::

    python -m musiclime_demo.train_classifier --manifest data/demo/manifest.csv \\
        --out src/musiclime/assets/demo_classifier [--epochs 24] [--seed 0]

Trains on the ``train`` split, keeps the epoch with the lowest validation loss, and writes
``model.pt`` (the state dict), ``config.json`` (network + training settings) and
``metrics.json`` (validation and test accuracy, timings, checkpoint size and SHA-256).

**Perturbation augmentation.** LIME feeds the classifier perturbed songs: stems silenced in
some of 10 equal time segments and lyric lines (or words) removed. The network is trained on
the same kind of inputs: most training examples are composed from the ground-truth stems with
random binary gains per (stem, segment), in the three modalities musiclime perturbs (both,
audio only, lyrics only), and lyric units dropped at random.

**Targets.** A demo song of class ``ai`` carries planted evidence (a glitch in the ``other``
stem during annotated spans, and 2-3 machine-themed lyric lines); a ``human`` song carries none.
A perturbed ``ai`` song whose evidence is partly removed is less AI-like, and one whose evidence
is wholly removed is a human-like song. With ``--target graded`` (the default) the soft target
``P(ai)`` of an ``ai`` example is the share of its evidence still present,
``0.5 * audio_share + 0.5 * lyrics_share`` (audio share: evidence seconds left audible; lyrics
share: evidence lines left, or for word units the share of those lines' words left), so the
classifier's response to removing evidence is graded and LIME's linear surrogate can fit it.
``--target evidence`` gives ``ai`` while any evidence remains, else ``human``; ``--target
label`` keeps the song's label whatever was removed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from musiclime.core.lyrics import LineUnits, WordUnits
from musiclime.io.audio import load_audio
from musiclime.io.fileio import atomic_path, write_json, write_npy
from musiclime.models.demo_classifier import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    METRICS_NAME,
    DemoClassifier,
    DemoClassifierConfig,
    DemoNet,
    hash_lyrics,
)

from .corpus import read_corpus_manifest

log = logging.getLogger(__name__)

STEMS = ("vocals", "drums", "bass", "other")
N_SEGMENTS = 10
TARGETS = ("graded", "evidence", "label")
MANIFEST_REQUIRED = ("song_id", "split", "label", "stems_dir", "lyrics_path")


@dataclass
class TrainSong:
    """One corpus song at the classifier's rate: stems, lyrics and evidence annotations."""

    song_id: str
    split: str
    label: str
    stems: np.ndarray  # [4, samples] float32, order STEMS
    sample_rate: int
    lyrics: str
    audio_evidence: list[dict] = field(default_factory=list)  # {"stem", "start", "end"} seconds
    lyric_evidence_lines: list[str] = field(default_factory=list)  # texts of evidence lines

    @property
    def duration(self) -> float:
        return self.stems.shape[1] / self.sample_rate


def _cache_path(cache_dir: Path, song_id: str, sample_rate: int) -> Path:
    return cache_dir / f"{song_id}.stems{sample_rate}.npy"


def load_training_song(
    row: dict[str, str],
    root: str | os.PathLike,
    sample_rate: int,
    cache_dir: str | os.PathLike | None = None,
) -> TrainSong:
    """Read one manifest row (paths relative to ``root``); stems resampled to ``sample_rate``.

    With ``cache_dir`` the resampled stems are kept as ``.npy`` there and reused while newer
    than the stem files.
    """
    root = Path(root)
    song_id = row["song_id"]
    stems_dir = root / row["stems_dir"]
    stem_files = [stems_dir / f"{s}.wav" for s in STEMS]
    stems = None
    cache = _cache_path(Path(cache_dir), song_id, sample_rate) if cache_dir else None
    if cache is not None and cache.is_file():
        newest = max(f.stat().st_mtime for f in stem_files)
        if cache.stat().st_mtime >= newest:
            stems = np.load(cache)
    if stems is None:
        stems = np.stack([load_audio(f, sample_rate)[0] for f in stem_files]).astype(np.float32)
        if cache is not None:
            write_npy(cache, stems)
    lyrics = (root / row["lyrics_path"]).read_text(encoding="utf-8")
    audio_ev: list[dict] = []
    lyric_ev: list[str] = []
    ev_path = row.get("evidence_path")
    if ev_path:
        evidence = json.loads((root / ev_path).read_text(encoding="utf-8"))
        audio_ev = list(evidence.get("audio", []))
        lyric_ev = [item["text"] for item in evidence.get("lyrics", [])]
    return TrainSong(
        song_id=song_id,
        split=row.get("split", ""),
        label=row["label"],
        stems=stems,
        sample_rate=sample_rate,
        lyrics=lyrics,
        audio_evidence=audio_ev,
        lyric_evidence_lines=lyric_ev,
    )


# --------------------------------------------------------------------------------------------
# Perturbation augmentation


@dataclass
class Example:
    """One (possibly perturbed) training input with its soft target ``P(ai)``."""

    audio: np.ndarray
    lyrics: str
    p_ai: float


def segment_bounds(n_samples: int, n_segments: int = N_SEGMENTS) -> np.ndarray:
    """``n_segments + 1`` sample boundaries of equal segments (as musiclime segments audio)."""
    return np.linspace(0, n_samples, n_segments + 1).round().astype(np.int64)


def mix_stems(stems: np.ndarray, gains: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Sum of stems gated by binary ``gains[stem, segment]``."""
    gate = np.repeat(gains.astype(np.float32), np.diff(bounds), axis=1)  # [stems, samples]
    return (stems * gate).sum(axis=0, dtype=np.float32)


def audio_evidence_share(song: TrainSong, gains: np.ndarray, bounds: np.ndarray) -> float:
    """Share of the song's audio evidence seconds left audible by ``gains``."""
    if not song.audio_evidence:
        return 1.0
    sr = song.sample_rate
    total = kept = 0.0
    for span in song.audio_evidence:
        s = STEMS.index(span["stem"])
        a, z = span["start"] * sr, span["end"] * sr
        for t in range(len(bounds) - 1):
            overlap = max(0.0, min(z, bounds[t + 1]) - max(a, bounds[t]))
            total += overlap
            kept += overlap * float(gains[s, t])
    return kept / total if total > 0 else 1.0


def _word_set(text: str) -> set[str]:
    return set(WordUnits(text).units)


def perturb_lyrics(song: TrainSong, rng: np.random.Generator, keep: float) -> tuple[str, float]:
    """Drop lyric lines (or, one time in four, words) at random; returns text and evidence share."""
    if rng.random() < 0.25:
        units = WordUnits(song.lyrics)
        active = rng.random(len(units)) < keep
        text = units.compose(active)
        kept_words = {w for w, on in zip(units.units, active, strict=True) if on}
        shares = []
        for line in song.lyric_evidence_lines:
            words = _word_set(line)
            shares.append(len(words & kept_words) / len(words) if words else 1.0)
    else:
        units = LineUnits(song.lyrics)
        active = rng.random(len(units)) < keep
        text = units.compose(active)
        kept_lines = [line.strip() for line, on in zip(units.units, active, strict=True) if on]
        shares = [1.0 if line in kept_lines else 0.0 for line in song.lyric_evidence_lines]
    return text, (float(np.mean(shares)) if shares else 1.0)


def make_example(
    song: TrainSong, rng: np.random.Generator, target: str = "graded", p_clean: float = 0.2
) -> Example:
    """A training example of ``song``: clean with probability ``p_clean``, else perturbed."""
    n_stems, n = song.stems.shape
    bounds = segment_bounds(n)
    gains = np.ones((n_stems, N_SEGMENTS), dtype=np.float32)
    lyrics = song.lyrics
    audio_share = lyrics_share = 1.0
    if rng.random() >= p_clean:
        modality = rng.choice(["both", "audio", "lyrical"], p=[0.5, 0.25, 0.25])
        if modality in ("both", "audio"):
            keep = rng.uniform(0.15, 0.95)
            gains = (rng.random((n_stems, N_SEGMENTS)) < keep).astype(np.float32)
            audio_share = audio_evidence_share(song, gains, bounds)
        if modality in ("both", "lyrical"):
            keep = rng.uniform(0.15, 0.95)
            lyrics, lyrics_share = perturb_lyrics(song, rng, keep)
        elif rng.random() < 0.5:
            # musiclime's all-ones lyrics are the line units joined (headers, ad-libs dropped)
            lyrics = LineUnits(song.lyrics).full_text()
    audio = mix_stems(song.stems, gains, bounds)
    # Small level changes: separated stems (Open-Unmix) do not sum to the exact levels.
    audio *= np.float32(rng.uniform(0.7, 1.3))
    if song.label == "human":
        p_ai = 0.0
    elif target == "label":
        p_ai = 1.0
    else:
        has_audio = bool(song.audio_evidence)
        has_lyrics = bool(song.lyric_evidence_lines)
        weights = np.array([has_audio, has_lyrics], dtype=np.float64)
        shares = np.array([audio_share, lyrics_share])
        share = float((weights * shares).sum() / weights.sum()) if weights.sum() else 1.0
        if target == "graded":
            p_ai = share
        else:  # "evidence"
            p_ai = 1.0 if share > 0 else 0.0
    return Example(audio=audio, lyrics=lyrics, p_ai=p_ai)


# --------------------------------------------------------------------------------------------
# Training


def _batch_tensors(
    examples: Sequence[Example], cfg: DemoClassifierConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    length = max(len(e.audio) for e in examples)
    audio = np.zeros((len(examples), length), dtype=np.float32)
    for i, e in enumerate(examples):
        audio[i, : len(e.audio)] = e.audio
    indices, offsets = hash_lyrics([e.lyrics for e in examples], cfg.n_buckets, cfg.ngrams)
    ai = cfg.class_names.index("ai")
    target = np.zeros((len(examples), len(cfg.class_names)), dtype=np.float32)
    for i, e in enumerate(examples):
        target[i, ai] = e.p_ai
        target[i, 1 - ai] = 1.0 - e.p_ai
    return torch.from_numpy(audio), indices, offsets, torch.from_numpy(target)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


@torch.no_grad()
def evaluate(
    net: DemoNet, examples: Sequence[Example], cfg: DemoClassifierConfig, batch_size: int = 32
) -> dict[str, float]:
    """Loss, accuracy (argmax vs target > 0.5) and mean |P(ai) - target| on fixed examples."""
    net.eval()
    ai = cfg.class_names.index("ai")
    losses, correct, abs_err = [], 0, []
    for i in range(0, len(examples), batch_size):
        audio, idx, off, target = _batch_tensors(examples[i : i + batch_size], cfg)
        logits = net(audio, idx, off)
        losses.append(float(soft_cross_entropy(logits, target)) * len(target))
        p_ai = torch.softmax(logits, dim=1)[:, ai]
        t_ai = target[:, ai]
        correct += int(((p_ai > 0.5) == (t_ai > 0.5)).sum())
        abs_err.extend((p_ai - t_ai).abs().tolist())
    n = len(examples)
    return {
        "loss": sum(losses) / n,
        "accuracy": correct / n,
        "mae_p_ai": float(np.mean(abs_err)),
    }


def _fixed_examples(
    songs: Sequence[TrainSong], seed: int, n_perturbed: int, target: str
) -> tuple[list[Example], list[Example]]:
    """Clean examples of every song, and ``n_perturbed`` seeded perturbed ones per song."""
    clean = [Example(s.stems.sum(axis=0), s.lyrics, 1.0 if s.label == "ai" else 0.0) for s in songs]
    rng = np.random.default_rng([seed, 7])
    perturbed = [
        make_example(s, rng, target=target, p_clean=0.0) for _ in range(n_perturbed) for s in songs
    ]
    return clean, perturbed


def train(
    manifest: str | os.PathLike,
    out: str | os.PathLike,
    epochs: int = 24,
    seed: int = 0,
    batch_size: int = 16,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    target: str = "graded",
    examples_per_song: int = 2,
    cache_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    model_cfg: DemoClassifierConfig | None = None,
) -> dict:
    """Train, select on validation loss, evaluate on test, write the checkpoint directory."""
    t_start = time.perf_counter()
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 0])
    cfg = model_cfg or DemoClassifierConfig()

    manifest = Path(manifest)
    rows = read_corpus_manifest(manifest, MANIFEST_REQUIRED)
    t0 = time.perf_counter()
    songs = [load_training_song(r, manifest.parent, cfg.sample_rate, cache_dir) for r in rows]
    load_s = time.perf_counter() - t0
    by_split = {s: [x for x in songs if x.split == s] for s in ("train", "val", "test")}
    for split, items in by_split.items():
        if not items:
            raise ValueError(f"manifest {manifest} has no {split!r} songs")
        log.info(
            "%s: %d songs (%s)", split, len(items),
            ", ".join(f"{lab} {sum(x.label == lab for x in items)}" for lab in cfg.class_names),
        )  # fmt: skip
    log.info("loaded %d songs in %.1f s", len(songs), load_s)

    val_clean, val_pert = _fixed_examples(by_split["val"], seed, 2, target)
    net = DemoNet(cfg)
    n_params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    train_songs = by_split["train"]
    steps_per_epoch = math.ceil(len(train_songs) * examples_per_song / batch_size)
    total_steps = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=total_steps, pct_start=0.1
    )
    best: dict | None = None
    best_state = None
    history = []
    t_train = time.perf_counter()
    for epoch in range(1, epochs + 1):
        net.train()
        order = np.concatenate(
            [rng.permutation(len(train_songs)) for _ in range(examples_per_song)]
        )
        losses = []
        for b in range(steps_per_epoch):
            chosen = order[b * batch_size : (b + 1) * batch_size]
            examples = [make_example(train_songs[i], rng, target=target) for i in chosen]
            audio, idx, off, tgt = _batch_tensors(examples, cfg)
            loss = soft_cross_entropy(net(audio, idx, off), tgt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        vc = evaluate(net, val_clean, cfg)
        vp = evaluate(net, val_pert, cfg)
        score = vc["loss"] + vp["loss"]
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "val_clean": vc,
            "val_perturbed": vp,
            "val_score": score,
            "elapsed_s": round(time.perf_counter() - t_train, 1),
        }
        history.append(record)
        log.info(
            "epoch %d/%d train %.4f | val clean loss %.4f acc %.3f | val perturbed loss %.4f "
            "acc %.3f mae %.3f | %.0f s", epoch, epochs, record["train_loss"], vc["loss"],
            vc["accuracy"], vp["loss"], vp["accuracy"], vp["mae_p_ai"], record["elapsed_s"],
        )  # fmt: skip
        if best is None or score < best["val_score"]:
            best = record
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    train_s = time.perf_counter() - t_train
    assert best_state is not None and best is not None
    net.load_state_dict(best_state)
    net.eval()

    test_clean, test_pert = _fixed_examples(by_split["test"], seed, 4, target)
    tc = evaluate(net, test_clean, cfg)
    tp = evaluate(net, test_pert, cfg)
    evidence_removed = _evidence_removed_check(net, by_split["test"], cfg)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT_NAME
    with atomic_path(ckpt, ".pt") as tmp:
        torch.save(best_state, tmp)
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()

    train_cfg = {
        "manifest": str(manifest),
        "epochs": epochs,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "target": target,
        "examples_per_song": examples_per_song,
        "optimizer": "AdamW + OneCycleLR",
        "selection": "lowest validation loss (clean + perturbed)",
        "augmentation": {
            "p_clean": 0.2,
            "modality_probs": {"both": 0.5, "audio": 0.25, "lyrical": 0.25},
            "keep_prob": "uniform(0.15, 0.95) per example and modality",
            "segments": N_SEGMENTS,
            "lyric_units": "lines (3/4), words (1/4)",
            "gain": "uniform(0.7, 1.3)",
        },
    }
    config = {"model": cfg.to_dict(), "training": train_cfg}
    write_json(out / CONFIG_NAME, config)

    clf = DemoClassifier(net, device="cpu")
    throughput = measure_throughput(clf, seconds=20.0, batch_size=32)
    metrics = {
        "val_accuracy": best["val_clean"]["accuracy"],
        "test_accuracy": tc["accuracy"],
        "best_epoch": best["epoch"],
        "val_clean": best["val_clean"],
        "val_perturbed": best["val_perturbed"],
        "test_clean": tc,
        "test_perturbed": tp,
        "test_evidence_removed": evidence_removed,
        "n_songs": {k: len(v) for k, v in by_split.items()},
        "n_parameters": n_params,
        "checkpoint_bytes": ckpt.stat().st_size,
        "checkpoint_sha256": sha,
        "train_wall_s": round(train_s, 1),
        "total_wall_s": round(time.perf_counter() - t_start, 1),
        "load_wall_s": round(load_s, 1),
        "cpu_throughput_20s_clips_per_s_batch32": round(throughput, 1),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "machine": platform.machine(),
        "config": config,
        "history": history,
    }
    write_json(out / METRICS_NAME, metrics)
    log.info(
        "best epoch %d: val acc %.3f | test acc %.3f | test perturbed mae %.3f | %.0f s training"
        " | checkpoint %d bytes | %.1f clips/s", best["epoch"], metrics["val_accuracy"],
        tc["accuracy"], tp["mae_p_ai"], train_s, metrics["checkpoint_bytes"], throughput,
    )  # fmt: skip
    return metrics


@torch.no_grad()
def _evidence_removed_check(
    net: DemoNet, songs: Sequence[TrainSong], cfg: DemoClassifierConfig
) -> dict[str, float]:
    """Mean P(ai) of test ``ai`` songs with all evidence (segments and lines) removed, next to
    the clean ``ai`` and ``human`` songs: removing the planted evidence should make them human."""
    ai_songs = [s for s in songs if s.label == "ai"]
    human = [s for s in songs if s.label == "human"]
    examples = []
    for s in ai_songs:
        bounds = segment_bounds(s.stems.shape[1])
        gains = np.ones((len(STEMS), N_SEGMENTS), dtype=np.float32)
        for span in s.audio_evidence:
            st = STEMS.index(span["stem"])
            a, z = span["start"] * s.sample_rate, span["end"] * s.sample_rate
            for t in range(N_SEGMENTS):
                if min(z, bounds[t + 1]) > max(a, bounds[t]):
                    gains[st, t] = 0.0
        units = LineUnits(s.lyrics)
        active = [line.strip() not in s.lyric_evidence_lines for line in units.units]
        examples.append(Example(mix_stems(s.stems, gains, bounds), units.compose(active), 0.0))
    ai = cfg.class_names.index("ai")

    def mean_p_ai(exs: Sequence[Example]) -> float:
        if not exs:
            return float("nan")
        audio, idx, off, _ = _batch_tensors(exs, cfg)
        return float(torch.softmax(net(audio, idx, off), dim=1)[:, ai].mean())

    clean_ai = [Example(s.stems.sum(axis=0), s.lyrics, 1.0) for s in ai_songs]
    clean_human = [Example(s.stems.sum(axis=0), s.lyrics, 0.0) for s in human]
    return {
        "p_ai_clean_ai_songs": mean_p_ai(clean_ai),
        "p_ai_ai_songs_evidence_removed": mean_p_ai(examples),
        "p_ai_clean_human_songs": mean_p_ai(clean_human),
    }


def measure_throughput(
    clf: DemoClassifier, seconds: float = 20.0, batch_size: int = 32, repeats: int = 3
) -> float:
    """Clips per second of ``clf.predict_proba`` on random ``seconds``-long clips."""
    gen = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(batch_size, int(seconds * clf.sample_rate), generator=gen)
    audio = audio.to(clf.device)
    lyrics = ["a line of lyrics\nanother line"] * batch_size
    clf.predict_proba(lyrics, audio)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        clf.predict_proba(lyrics, audio)
    return batch_size * repeats / (time.perf_counter() - t0)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m musiclime_demo.train_classifier",
        description="Train the musiclime demo classifier on the demo corpus.",
    )
    p.add_argument("--manifest", required=True, help="demo corpus manifest.csv")
    p.add_argument("--out", required=True, help="output directory (model.pt, config.json, ...)")
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--examples-per-song", type=int, default=2, help="per epoch")
    p.add_argument("--target", choices=TARGETS, default="graded")
    p.add_argument("--cache-dir", default=None, help="keep the resampled stems as .npy here "
                   "(about 7 MB per 20-s song; default: resample in memory, ~10 s for 200 songs)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    train(
        args.manifest,
        args.out,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        target=args.target,
        examples_per_song=args.examples_per_song,
        cache_dir=args.cache_dir,
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
