"""Train, save and evaluate the small Open-Unmix separator shipped with the demo.

Four ``openunmix.model.OpenUnmix`` spectrogram models (vocals, drums, bass, other) are trained
on the ground-truth stems of the demo corpus's train split, validated on the val split (the
best epoch is kept) and saved in openunmix's local-directory format, so that openunmix loads
them unchanged::

    separator = openunmix.utils.load_separator(path, targets=[...], niter=1)
    estimates = openunmix.predict.separate(audio, rate=44100, model_str_or_path=path,
                                           targets=[...])

The folder holds ``separator.json`` (sample_rate, nfft, nhop, nb_channels), ``<target>.json``
(``{"args": {nfft, nhop, nb_channels, hidden_size, ...}, ...}``), ``<target>.pth`` (state
dict, including input_mean/input_scale computed from the training mixtures as openunmix does),
``training.json`` (configuration, epochs, time, per-target validation loss, SHA-256 of each
.pth) and ``evaluation.json`` (held-out SDR per stem on the test split with
``mir_eval.separation.bss_eval_sources``, against the mixture and oracle baselines).

CLI::

    python -m musiclime_demo.train_separator --manifest data/demo/manifest.csv \\
        --out src/musiclime/assets/demo_separator [--epochs N] [--evaluate-only]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from musiclime.io.fileio import atomic_path, write_json
from musiclime.models.separation import default_separator_dir

from .corpus import read_corpus_manifest

log = logging.getLogger(__name__)

TARGETS = ("vocals", "drums", "bass", "other")
DEFAULT_OUT = default_separator_dir()


@dataclass
class TrainConfig:
    sample_rate: int = 44100
    nfft: int = 2048
    nhop: int = 1024
    nb_channels: int = 1
    hidden_size: int = 64
    nb_layers: int = 3  # openunmix's loader builds the default 3-layer model
    bandwidth: float = 16000.0
    seq_dur: float = 3.0
    batch_size: int = 12
    steps_per_epoch: int = 50
    epochs: int = 20
    max_minutes: float | None = None  # stop early (after an epoch) past this budget
    lr: float = 2e-3
    weight_decay: float = 1e-5
    lr_decay_patience: int = 3
    lr_decay_gamma: float = 0.3
    random_mix_p: float = 0.5
    gain_low: float = 0.6
    gain_high: float = 1.3
    val_dur: float = 10.0
    seed: int = 0
    threads: int = 1  # 2 threads thrash on a busy 2-core machine (5x slower)


# --------------------------------------------------------------------------------------------
# Data


def load_split(manifest: str | os.PathLike, split: str, limit: int | None = None) -> list[dict]:
    """Ground-truth stems of one split: ``[{"song_id", "stems": float32 (4, n)}]``."""
    manifest = Path(manifest)
    rows = [r for r in read_corpus_manifest(manifest, ("song_id", "split", "stems_dir")) if r["split"] == split]
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise ValueError(f"no songs of split {split!r} in {manifest}")
    songs = []
    for r in rows:
        stems = []
        for t in TARGETS:
            x, sr = sf.read(manifest.parent / r["stems_dir"] / f"{t}.wav", dtype="float32")
            if sr != 44100:
                raise ValueError(f"{r['song_id']}/{t}: sample rate {sr}, expected 44100")
            stems.append(x if x.ndim == 1 else x.mean(axis=1))
        songs.append({"song_id": r["song_id"], "stems": np.stack(stems)})
    return songs


class Spectrogram(torch.nn.Module):
    """Mono magnitude STFT, the same transform as openunmix's Separator (hann, centered)."""

    def __init__(self, nfft: int, nhop: int):
        super().__init__()
        self.nfft, self.nhop = nfft, nhop
        self.register_buffer("window", torch.hann_window(nfft), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, samples) -> (b, 1, bins, frames)
        spec = torch.stft(
            x, self.nfft, self.nhop, window=self.window, center=True, return_complex=True
        )
        return spec.abs().unsqueeze(1)


def input_statistics(songs: list[dict], spec: Spectrogram) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and std of the training mixtures' magnitudes (openunmix's scaler)."""
    total = None
    total_sq = None
    count = 0
    with torch.no_grad():
        for song in songs:
            mix = torch.from_numpy(song["stems"].sum(axis=0))[None]
            mag = spec(mix)[0, 0].double()  # (bins, frames)
            s, s2 = mag.sum(dim=1), (mag**2).sum(dim=1)
            total = s if total is None else total + s
            total_sq = s2 if total_sq is None else total_sq + s2
            count += mag.shape[1]
    mean = (total / count).numpy()
    std = np.sqrt(np.maximum((total_sq / count).numpy() - mean**2, 0.0))
    std = np.maximum(std, 1e-4 * std.max())  # as openunmix
    return mean.astype(np.float32), std.astype(np.float32)


class ChunkSampler:
    """Random training excerpts with per-source gains and random cross-song remixing."""

    def __init__(self, songs: list[dict], cfg: TrainConfig, rng: np.random.Generator):
        self.songs, self.cfg, self.rng = songs, cfg, rng
        self.n = int(cfg.seq_dur * cfg.sample_rate)

    def _excerpt(self, song: int, source: int) -> np.ndarray:
        x = self.songs[song]["stems"][source]
        start = int(self.rng.integers(0, max(1, len(x) - self.n)))
        out = x[start : start + self.n]
        if len(out) < self.n:
            out = np.pad(out, (0, self.n - len(out)))
        return out

    def batch(self) -> torch.Tensor:
        """(batch, sources, samples) float32."""
        cfg = self.cfg
        out = np.empty((cfg.batch_size, len(TARGETS), self.n), dtype=np.float32)
        for b in range(cfg.batch_size):
            song = int(self.rng.integers(len(self.songs)))
            remix = self.rng.random() < cfg.random_mix_p
            start = int(self.rng.integers(0, max(1, self.songs[song]["stems"].shape[1] - self.n)))
            for j in range(len(TARGETS)):
                if remix:
                    x = self._excerpt(int(self.rng.integers(len(self.songs))), j)
                else:
                    x = self.songs[song]["stems"][j, start : start + self.n]
                    if len(x) < self.n:
                        x = np.pad(x, (0, self.n - len(x)))
                out[b, j] = x * self.rng.uniform(cfg.gain_low, cfg.gain_high)
        return torch.from_numpy(out)


# --------------------------------------------------------------------------------------------
# Models


def make_models(
    cfg: TrainConfig, mean: np.ndarray | None = None, scale: np.ndarray | None = None
) -> dict[str, torch.nn.Module]:
    from openunmix.model import OpenUnmix
    from openunmix.utils import bandwidth_to_max_bin

    max_bin = int(bandwidth_to_max_bin(cfg.sample_rate, cfg.nfft, cfg.bandwidth))
    return {
        t: OpenUnmix(
            nb_bins=cfg.nfft // 2 + 1,
            nb_channels=cfg.nb_channels,
            hidden_size=cfg.hidden_size,
            nb_layers=cfg.nb_layers,
            max_bin=max_bin,
            input_mean=mean,
            input_scale=scale,
        )
        for t in TARGETS
    }


def _loss(models, spec, sources: torch.Tensor) -> dict[str, torch.Tensor]:
    """Magnitude MSE per target for a (batch, sources, samples) excerpt."""
    mix = spec(sources.sum(dim=1))
    losses = {}
    for j, t in enumerate(TARGETS):
        target = spec(sources[:, j])
        losses[t] = torch.nn.functional.mse_loss(models[t](mix), target)
    return losses


def _validate(models, spec, val: list[dict], cfg: TrainConfig) -> dict[str, float]:
    n = int(cfg.val_dur * cfg.sample_rate)
    sums = dict.fromkeys(TARGETS, 0.0)
    for m in models.values():
        m.eval()
    with torch.no_grad():
        for song in val:
            x = torch.from_numpy(song["stems"][:, :n])[None]
            for t, v in _loss(models, spec, x).items():
                sums[t] += float(v)
    return {t: s / len(val) for t, s in sums.items()}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_torch_save(path: Path, state) -> None:
    with atomic_path(path, ".pth") as tmp:
        torch.save(state, tmp)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(manifest: str | os.PathLike, out: str | os.PathLike, cfg: TrainConfig) -> dict:
    """Train the four target models; writes the separator folder; returns training.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    log.info("loading train/val stems from %s", manifest)
    train_songs = load_split(manifest, "train")
    val_songs = load_split(manifest, "val")
    spec = Spectrogram(cfg.nfft, cfg.nhop)
    mean, scale = input_statistics(train_songs, spec)
    models = make_models(cfg, mean, scale)
    params = [p for m in models.values() for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=cfg.lr_decay_gamma, patience=cfg.lr_decay_patience
    )
    sampler = ChunkSampler(train_songs, cfg, np.random.default_rng(cfg.seed))
    best = dict.fromkeys(TARGETS, math.inf)
    best_epoch = dict.fromkeys(TARGETS, -1)
    history = []
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        for m in models.values():
            m.train()
        train_sum = dict.fromkeys(TARGETS, 0.0)
        for _ in range(cfg.steps_per_epoch):
            losses = _loss(models, spec, sampler.batch())
            opt.zero_grad()
            sum(losses.values()).backward()
            opt.step()
            for t, v in losses.items():
                train_sum[t] += v.item() / cfg.steps_per_epoch
        val = _validate(models, spec, val_songs, cfg)
        sched.step(sum(val.values()))
        for t in TARGETS:
            if val[t] < best[t]:
                best[t], best_epoch[t] = val[t], epoch
                _atomic_torch_save(out / f"{t}.pth", models[t].state_dict())
        history.append({"epoch": epoch, "train": train_sum, "val": val,
                        "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0})  # fmt: skip
        log.info(
            "epoch %d/%d  %.0f s  train %s  val %s", epoch, cfg.epochs, time.perf_counter() - t0,
            " ".join(f"{t}={v:.2e}" for t, v in train_sum.items()),
            " ".join(f"{t}={v:.2e}" for t, v in val.items()),
        )  # fmt: skip
        if cfg.max_minutes is not None and time.perf_counter() - t_start > 60 * cfg.max_minutes:
            log.warning("time budget of %.0f min reached after epoch %d", cfg.max_minutes, epoch)
            break
    seconds = time.perf_counter() - t_start
    for t in TARGETS:
        write_json(
            out / f"{t}.json",
            {
                "args": {**asdict(cfg), "target": t},
                "best_loss": best[t],
                "best_epoch": best_epoch[t],
                "train_loss_history": [h["train"][t] for h in history],
                "valid_loss_history": [h["val"][t] for h in history],
            },
        )
    write_json(
        out / "separator.json",
        {
            "targets": list(TARGETS),
            "sample_rate": cfg.sample_rate,
            "nfft": cfg.nfft,
            "nhop": cfg.nhop,
            "nb_channels": cfg.nb_channels,
        },
    )
    info = {
        "config": asdict(cfg),
        "manifest": str(manifest),
        "n_train_songs": len(train_songs),
        "n_val_songs": len(val_songs),
        "epochs": cfg.epochs,
        "epochs_run": len(history),
        "training_seconds": round(seconds, 1),
        "val_loss": best,
        "best_epoch": best_epoch,
        "history": history,
        "torch": torch.__version__,
        "sha256": {f"{t}.pth": sha256(out / f"{t}.pth") for t in TARGETS},
        "size_bytes": {f"{t}.pth": (out / f"{t}.pth").stat().st_size for t in TARGETS},
    }
    write_json(out / "training.json", info)
    log.info("trained in %.1f min; saved to %s", seconds / 60, out)
    return info


# --------------------------------------------------------------------------------------------
# Evaluation


def _excerpt_start(stems: np.ndarray, n: int, sr: int) -> int | None:
    """Start of an excerpt of n samples in which every source is audible (bss_eval needs it)."""
    hop = sr // 2
    for start in [stems.shape[1] // 2 - n // 2, *range(0, stems.shape[1] - n + 1, hop)]:
        start = max(0, min(start, stems.shape[1] - n))
        seg = stems[:, start : start + n]
        if np.all(np.sqrt(np.mean(seg.astype(np.float64) ** 2, axis=1)) > 1e-3):
            return start
    return None


def _ideal_ratio_mask(stems: np.ndarray, nfft: int, nhop: int) -> np.ndarray:
    """Oracle masking baseline: |S_j| / sum |S_k| applied to the mixture's STFT."""
    window = torch.hann_window(nfft, dtype=torch.float64)
    x = torch.from_numpy(stems.astype(np.float64))
    S = torch.stft(x, nfft, nhop, window=window, center=True, return_complex=True)
    M = torch.stft(x.sum(0), nfft, nhop, window=window, center=True, return_complex=True)
    mask = S.abs() / (S.abs().sum(0, keepdim=True) + 1e-12)
    y = torch.istft(mask * M[None], nfft, nhop, window=window, center=True, length=x.shape[1])
    return y.numpy()


def evaluate(
    manifest: str | os.PathLike,
    model_dir: str | os.PathLike,
    split: str = "test",
    excerpt: float = 10.0,
    niter: int = 0,
    limit: int | None = None,
    sdr_cap: float = 100.0,
) -> dict:
    """Held-out SDR per stem (mir_eval bss_eval_sources): separator vs mixture vs oracles."""
    import mir_eval
    from openunmix import predict, utils

    torch.set_num_threads(1)
    model_dir = Path(model_dir)
    conf = json.loads((model_dir / "separator.json").read_text())
    separator = utils.load_separator(str(model_dir), targets=list(TARGETS), niter=niter)
    separator.freeze()
    sr = int(conf["sample_rate"])
    n = int(excerpt * sr)
    songs = load_split(manifest, split, limit)
    methods = ("separator", "mixture", "oracle_irm", "oracle_stems")
    sdr = {m: {t: [] for t in TARGETS} for m in methods}
    used = []
    t0 = time.perf_counter()
    for song in songs:
        start = _excerpt_start(song["stems"], n, sr)
        if start is None:
            log.warning("%s: no excerpt with all sources audible; skipped", song["song_id"])
            continue
        ref = song["stems"][:, start : start + n].astype(np.float64)
        mix = ref.sum(axis=0)
        with torch.no_grad():
            est = predict.separate(
                torch.from_numpy(mix.astype(np.float32))[None], rate=sr, separator=separator
            )
        sep = np.stack([est[t][0].mean(dim=0).numpy().astype(np.float64) for t in TARGETS])
        candidates = {
            "separator": sep,
            "mixture": np.repeat(mix[None], len(TARGETS), axis=0),
            "oracle_irm": _ideal_ratio_mask(ref, int(conf["nfft"]), int(conf["nhop"])),
            "oracle_stems": ref,
        }
        for m, estimate in candidates.items():
            values, _, _, _ = mir_eval.separation.bss_eval_sources(
                ref, estimate, compute_permutation=False
            )
            for t, v in zip(TARGETS, values, strict=True):
                sdr[m][t].append(float(min(v, sdr_cap)))
        used.append({"song_id": song["song_id"], "start": start / sr})
        log.info(
            "evaluated %s (%d/%d): separator SDR %s", song["song_id"], len(used), len(songs),
            " ".join(f"{t}={sdr['separator'][t][-1]:.1f}" for t in TARGETS),
        )  # fmt: skip
    if not used:
        raise RuntimeError("no song could be evaluated")
    table = {
        m: {
            t: {
                "median": float(np.median(v)),
                "mean": float(np.mean(v)),
                "min": float(np.min(v)),
                "max": float(np.max(v)),
            }
            for t, v in per.items()
        }
        for m, per in sdr.items()
    }
    result = {
        "metric": "SDR (dB), mir_eval.separation.bss_eval_sources, compute_permutation=False",
        "split": split,
        "excerpt_seconds": excerpt,
        "n_songs": len(used),
        "excerpts": used,
        "niter": niter,
        "sdr_cap_db": sdr_cap,
        "notes": (
            "mixture: the mixture used as every stem's estimate; oracle_stems: the true stems "
            "(SDR unbounded, capped at sdr_cap_db); oracle_irm: ideal ratio masks from the "
            "true stems with the separator's STFT (a ceiling for spectrogram masking); "
            "separator: the shipped Open-Unmix models via openunmix.predict.separate. "
            "niter=0 on purpose: openunmix duplicates mono input to stereo, and its float32 "
            "EM Wiener step (niter>=1) then inverts a rank-1 2x2 covariance whose determinant "
            "cancels to 0 in some frames, giving NaN estimates (seen on 2 of 30 test excerpts); "
            "niter=0 (or float64, or a NaN check) avoids it"
        ),
        "sdr": table,
        "per_song": sdr,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(model_dir / "evaluation.json", result)
    return result


def format_table(result: dict) -> str:
    methods = list(result["sdr"])
    lines = [f"median SDR (dB) over {result['n_songs']} {result['split']} excerpts "
             f"of {result['excerpt_seconds']:g} s",
             f"{'stem':8s}" + "".join(f"{m:>14s}" for m in methods)]  # fmt: skip
    for t in TARGETS:
        lines.append(f"{t:8s}" + "".join(f"{result['sdr'][m][t]['median']:14.2f}" for m in methods))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m musiclime_demo.train_separator",
        description="Train and evaluate the demo Open-Unmix separator.",
    )
    p.add_argument("--manifest", default="data/demo/manifest.csv")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=TrainConfig.steps_per_epoch)
    p.add_argument("--hidden-size", type=int, default=TrainConfig.hidden_size)
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--max-minutes", type=float, default=None, help="training time budget")
    p.add_argument("--evaluate-only", action="store_true")
    p.add_argument("--excerpt", type=float, default=10.0, help="evaluation excerpt (s)")
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate only N test songs")
    p.add_argument("--niter", type=int, default=0, help="openunmix EM iterations in evaluation")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.evaluate_only:
        cfg = TrainConfig(
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            hidden_size=args.hidden_size,
            seed=args.seed,
            max_minutes=args.max_minutes,
        )
        train(args.manifest, args.out, cfg)
    result = evaluate(
        args.manifest, args.out, excerpt=args.excerpt, limit=args.eval_limit, niter=args.niter
    )
    log.info("evaluation\n%s", format_table(result))


if __name__ == "__main__":
    main()
