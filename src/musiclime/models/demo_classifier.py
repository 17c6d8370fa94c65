"""A small multimodal (audio + lyrics) AI-vs-human classifier, trained on the demo corpus.

It exists so that musiclime runs offline out of the box; it is not a research model. It follows
musiclime's classifier protocol:

- ``class_names = ["ai", "human"]`` (the reference app's order: ``[P(AI), P(Human)]``),
- ``sample_rate = 22050`` (the reference app's rate; callers must resample to it),
- ``predict_proba(lyrics, audio) -> np.ndarray[batch, 2]``,
- and the optional split API ``encode_audio`` / ``encode_lyrics`` / ``predict_from_embeddings``,
  so single-modality explanations encode the constant modality once.

Architecture (``DemoNet``):

- **Audio**: log-mel spectrogram (``torch.stft``, Hann window, n_fft 1024, hop 512, 64 Slaney
  mels, ``log(mel + 1e-6)``), a per-band affine normalisation (``BatchNorm1d`` frozen in eval
  mode), four 3x3 conv blocks (16-32-32-32 channels, batch norm, ReLU; the first with stride 2,
  the second and third followed by 2x2 max pooling), then max and mean pooling over *time
  only*, so the frequency layout survives and clips of any length give the same embedding size,
  and a linear layer to a 64-d embedding. For inference the batch norms are folded into the
  convolutions (:func:`fuse_conv_batchnorm`).
- **Lyrics**: lower-cased ``\\w+`` tokens and adjacent-token bigrams, hashed with ``zlib.crc32``
  into ``n_buckets`` buckets (stable across processes, unlike Python's ``hash``), an embedding
  table pooled with a scaled sum and a max (``F.embedding_bag``), and a small MLP to a 32-d
  embedding. Empty lyrics give an empty bag, whose pooled vector is zero.
- **Fusion**: concatenation, MLP, 2 logits, softmax.

It is trained on LIME-style perturbed songs with a graded target (the share of the planted
evidence still present), so removing evidence lowers ``P(ai)`` step by step; see
:mod:`musiclime_demo.train_classifier`.

Inference is deterministic on CPU: the same input gives bit-identical output (no random ops,
batch norm and dropout in eval mode).
"""

from __future__ import annotations

import copy
import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DEFAULT_ASSET_DIR",
    "DemoClassifier",
    "DemoClassifierConfig",
    "DemoNet",
    "hash_lyrics",
]

DEFAULT_ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo_classifier"
CHECKPOINT_NAME = "model.pt"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.json"

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class DemoClassifierConfig:
    """Every hyper-parameter that fixes the network's shape and its input pipeline."""

    class_names: list[str] = field(default_factory=lambda: ["ai", "human"])
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float = 11025.0
    log_eps: float = 1e-6
    conv_channels: list[int] = field(default_factory=lambda: [16, 32, 32, 32])
    audio_dim: int = 64
    n_buckets: int = 4096
    ngrams: int = 2
    word_dim: int = 32
    # Pooling of the n-gram embeddings: "sum" (scaled by 1/lyrics_sum_scale) grows with how many
    # evidence n-grams are present, independent of the other lines; "max" detects any; "mean" is
    # diluted by every other line (removing an unrelated line would raise the evidence's share).
    lyrics_pooling: list[str] = field(default_factory=lambda: ["sum", "max"])
    lyrics_sum_scale: float = 16.0
    lyrics_dim: int = 32
    fusion_dim: int = 64
    dropout: float = 0.2

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DemoClassifierConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown demo classifier config keys: {unknown}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tokenize(text: str) -> list[str]:
    """Lower-cased ``\\w+`` tokens of ``text``."""
    return [m.group(0).lower() for m in _WORD.finditer(text or "")]


def _bucket(token: str, n_buckets: int) -> int:
    return zlib.crc32(token.encode("utf-8")) % n_buckets


def hash_lyrics(
    lyrics: Sequence[str], n_buckets: int, ngrams: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hashed bags of n-grams: ``(indices, offsets)`` for :func:`torch.nn.functional.embedding_bag`.

    Uses ``zlib.crc32`` so the buckets are the same in every process (Python's ``hash`` of a
    string is salted per process).
    """
    indices: list[int] = []
    offsets: list[int] = []
    for text in lyrics:
        if not isinstance(text, str):
            raise ValueError(f"lyrics must be strings, got {type(text).__name__}")
        offsets.append(len(indices))
        tokens = tokenize(text)
        for n in range(1, ngrams + 1):
            for i in range(len(tokens) - n + 1):
                indices.append(_bucket(" ".join(tokens[i : i + n]), n_buckets))
    return torch.tensor(indices, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


class LogMel(nn.Module):
    """``log(mel power spectrogram + eps)``, shape ``[batch, n_mels, frames]``."""

    def __init__(self, cfg: DemoClassifierConfig):
        super().__init__()
        import torchaudio.functional as AF

        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self.log_eps = cfg.log_eps
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        fb = AF.melscale_fbanks(
            n_freqs=cfg.n_fft // 2 + 1,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            sample_rate=cfg.sample_rate,
            norm="slaney",
            mel_scale="slaney",
        )
        self.register_buffer("mel_fb", fb, persistent=False)  # [freqs, mels]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        # Constant (zero) padding instead of reflection: works for clips shorter than n_fft / 2.
        spec = torch.stft(
            audio,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # [B, freqs, T]
        mel = torch.matmul(power.transpose(1, 2), self.mel_fb)  # [B, T, mels]
        return torch.log(mel + self.log_eps).transpose(1, 2)


class AudioEncoder(nn.Module):
    """Log-mel -> conv blocks -> time pooling -> ``audio_dim`` embedding."""

    def __init__(self, cfg: DemoClassifierConfig):
        super().__init__()
        self.logmel = LogMel(cfg)
        self.input_norm = nn.BatchNorm1d(cfg.n_mels)
        blocks: list[nn.Module] = []
        in_ch = 1
        n_down = len(cfg.conv_channels) - 1
        for i, out_ch in enumerate(cfg.conv_channels):
            # The first block downsamples by its stride (cheaper than a conv at full
            # resolution followed by pooling); the middle ones by 2x2 max pooling.
            stride = 2 if i == 0 else 1
            blocks += [
                nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
            ]
            if 0 < i < n_down:
                blocks.append(nn.MaxPool2d(2))
            in_ch = out_ch
        self.convs = nn.Sequential(*blocks)
        # frames = 1 + samples // hop (centred STFT); the conv stack needs 2**n_down of them
        self.min_samples = cfg.hop_length * (2**n_down - 1)
        pooled_freqs = cfg.n_mels // 2**n_down
        self.proj = nn.Sequential(
            nn.Dropout(cfg.dropout),
            nn.Linear(2 * in_ch * pooled_freqs, cfg.audio_dim),
            nn.ReLU(inplace=True),
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.shape[-1] < self.min_samples:  # very short clips: pad with silence
            audio = F.pad(audio, (0, self.min_samples - audio.shape[-1]))
        x = self.input_norm(self.logmel(audio))  # [B, M, T]
        x = self.convs(x.unsqueeze(1))  # [B, C, M', T']
        pooled = torch.cat([x.amax(dim=-1), x.mean(dim=-1)], dim=1)  # [B, 2C, M']
        return self.proj(pooled.flatten(1))


class LyricsEncoder(nn.Module):
    """Hashed n-gram bag -> mean and max pooled embeddings -> ``lyrics_dim`` embedding."""

    def __init__(self, cfg: DemoClassifierConfig):
        super().__init__()
        unknown = set(cfg.lyrics_pooling) - {"sum", "mean", "max"}
        if unknown or not cfg.lyrics_pooling:
            raise ValueError(f"lyrics_pooling must be a non-empty list of sum/mean/max, got "
                             f"{cfg.lyrics_pooling}")  # fmt: skip
        self.pooling = list(cfg.lyrics_pooling)
        self.sum_scale = float(cfg.lyrics_sum_scale)
        self.embedding = nn.Parameter(torch.randn(cfg.n_buckets, cfg.word_dim) * 0.1)
        self.mlp = nn.Sequential(
            nn.Linear(len(self.pooling) * cfg.word_dim, cfg.lyrics_dim),
            nn.ReLU(inplace=True),
        )

    def forward(self, indices: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        pooled = []
        for mode in self.pooling:
            if mode == "max" and not indices.numel():  # every bag empty
                pooled.append(self.embedding.new_zeros(len(offsets), self.embedding.shape[1]))
                continue
            # Empty bags pool to zero in every mode.
            x = F.embedding_bag(indices, self.embedding, offsets, mode=mode)
            pooled.append(x / self.sum_scale if mode == "sum" else x)
        return self.mlp(torch.cat(pooled, dim=1))


class DemoNet(nn.Module):
    """The fused network: ``forward(audio, indices, offsets) -> logits [B, n_classes]``."""

    def __init__(self, cfg: DemoClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.audio = AudioEncoder(cfg)
        self.lyrics = LyricsEncoder(cfg)
        self.head = nn.Sequential(
            nn.Linear(cfg.audio_dim + cfg.lyrics_dim, cfg.fusion_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.fusion_dim, len(cfg.class_names)),
        )

    def fuse(self, audio_emb: torch.Tensor, lyrics_emb: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([audio_emb, lyrics_emb], dim=1))

    def forward(
        self, audio: torch.Tensor, indices: torch.Tensor, offsets: torch.Tensor
    ) -> torch.Tensor:
        return self.fuse(self.audio(audio), self.lyrics(indices, offsets))


def fuse_conv_batchnorm(net: DemoNet) -> DemoNet:
    """An eval-mode copy of ``net`` with every Conv2d + BatchNorm2d pair folded into one conv.

    Same function up to float rounding, fewer passes over the largest activations (the batch
    norm after the first conv cost more than the conv itself on CPU).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(net).eval()
    layers = list(fused.audio.convs)
    out: list[nn.Module] = []
    i = 0
    while i < len(layers):
        if (
            i + 1 < len(layers)
            and isinstance(layers[i], nn.Conv2d)
            and isinstance(layers[i + 1], nn.BatchNorm2d)
        ):
            out.append(fuse_conv_bn_eval(layers[i], layers[i + 1]))
            i += 2
        else:
            out.append(layers[i])
            i += 1
    fused.audio.convs = nn.Sequential(*out)
    return fused


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class DemoClassifier:
    """musiclime classifier protocol around :class:`DemoNet`.

    Build it with :meth:`load` (the shipped checkpoint by default)::

        clf = DemoClassifier.load()               # CUDA if available
        probs = clf.predict_proba(["la la"], torch.zeros(1, 22050 * 5))
    """

    def __init__(self, net: DemoNet, device: str | torch.device = "auto", batch_size: int = 32):
        self.device = resolve_device(device)
        # Folding batch norm is exact in eval mode up to float rounding; the unfused module stays
        # available as ``self.trained_net`` (e.g. to fine-tune it).
        self.trained_net = net
        self.net = fuse_conv_batchnorm(net).to(self.device).eval()
        self.cfg = net.cfg
        self.class_names: list[str] = list(self.cfg.class_names)
        self.sample_rate: int = int(self.cfg.sample_rate)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        device: str | torch.device = "auto",
        batch_size: int = 32,
    ) -> DemoClassifier:
        """Load a checkpoint directory (``config.json`` + ``model.pt``); default: the shipped one."""
        directory = Path(path) if path is not None else DEFAULT_ASSET_DIR
        config_path = directory / CONFIG_NAME
        ckpt_path = directory / CHECKPOINT_NAME
        if not config_path.is_file() or not ckpt_path.is_file():
            raise FileNotFoundError(
                f"no demo classifier at {directory}: expected {CONFIG_NAME} and {CHECKPOINT_NAME}. "
                "Train one with `python -m musiclime_demo.train_classifier --manifest "
                "data/demo/manifest.csv --out <dir>`."
            )
        with open(config_path, encoding="utf-8") as fh:
            cfg = DemoClassifierConfig.from_dict(json.load(fh)["model"])
        net = DemoNet(cfg)
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        clf = cls(net, device=device, batch_size=batch_size)
        # what musiclime.models.identity hashes into the prediction cache key
        clf.weights_files = [config_path.resolve(), ckpt_path.resolve()]
        return clf

    # ------------------------------------------------------------------ input checks
    def _check_audio(self, audio: torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(audio, np.ndarray):
            audio = torch.from_numpy(audio)
        if not isinstance(audio, torch.Tensor):
            raise ValueError(
                f"audio must be a float tensor [batch, samples], got {type(audio).__name__}"
            )
        if audio.ndim != 2 or not audio.is_floating_point():
            raise ValueError(
                "audio must be a 2-D float tensor [batch, samples] of mono waveforms at "
                f"{self.sample_rate} Hz, got shape {tuple(audio.shape)} and dtype {audio.dtype}"
            )
        if audio.shape[1] == 0:
            raise ValueError("audio has zero samples")
        return audio.to(device=self.device, dtype=torch.float32)

    @staticmethod
    def _check_lyrics(lyrics: Sequence[str] | str) -> list[str]:
        if isinstance(lyrics, str):
            raise ValueError("lyrics must be a list of strings (one per batch item), got a str")
        return ["" if text is None else text for text in lyrics]

    # ------------------------------------------------------------------ protocol
    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio embeddings ``[B, audio_dim]`` (on ``self.device``)."""
        audio = self._check_audio(audio)
        with torch.inference_mode():
            parts = [
                self.net.audio(audio[i : i + self.batch_size])
                for i in range(0, audio.shape[0], self.batch_size)
            ]
        return torch.cat(parts, dim=0)

    def encode_lyrics(self, lyrics: Sequence[str]) -> torch.Tensor:
        """Lyrics embeddings ``[B, lyrics_dim]`` (on ``self.device``)."""
        lyrics = self._check_lyrics(lyrics)
        indices, offsets = hash_lyrics(lyrics, self.cfg.n_buckets, self.cfg.ngrams)
        with torch.inference_mode():
            return self.net.lyrics(indices.to(self.device), offsets.to(self.device))

    def predict_from_embeddings(
        self, audio_emb: torch.Tensor, lyrics_emb: torch.Tensor
    ) -> np.ndarray:
        """Class probabilities from embeddings; a batch of 1 on either side is broadcast."""
        audio_emb = audio_emb.to(self.device)
        lyrics_emb = lyrics_emb.to(self.device)
        if audio_emb.ndim != 2 or lyrics_emb.ndim != 2:
            raise ValueError("embeddings must be 2-D [batch, dim]")
        n = max(audio_emb.shape[0], lyrics_emb.shape[0])
        if audio_emb.shape[0] not in (1, n) or lyrics_emb.shape[0] not in (1, n):
            raise ValueError(
                f"embedding batches differ: audio {audio_emb.shape[0]}, lyrics {lyrics_emb.shape[0]}"
            )
        audio_emb = audio_emb.expand(n, -1)
        lyrics_emb = lyrics_emb.expand(n, -1)
        with torch.inference_mode():
            probs = torch.softmax(self.net.fuse(audio_emb, lyrics_emb).double(), dim=1)
        return probs.cpu().numpy()

    def predict_proba(self, lyrics: Sequence[str], audio: torch.Tensor) -> np.ndarray:
        """``[P(ai), P(human)]`` per item: ``lyrics`` has ``batch`` strings, ``audio`` is
        ``[batch, samples]`` float at :attr:`sample_rate`."""
        audio = self._check_audio(audio)
        lyrics = self._check_lyrics(lyrics)
        if len(lyrics) != audio.shape[0]:
            raise ValueError(
                f"got {len(lyrics)} lyrics for {audio.shape[0]} audio clips; they must match"
            )
        out = []
        for i in range(0, audio.shape[0], self.batch_size):
            a_emb = self.encode_audio(audio[i : i + self.batch_size])
            l_emb = self.encode_lyrics(lyrics[i : i + self.batch_size])
            out.append(self.predict_from_embeddings(a_emb, l_emb))
        return np.concatenate(out, axis=0)

    def __repr__(self) -> str:
        return (
            f"DemoClassifier(class_names={self.class_names}, sample_rate={self.sample_rate}, "
            f"device={self.device})"
        )
