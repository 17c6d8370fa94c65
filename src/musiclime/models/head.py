"""The fusion head of ``model=hf_fusion``, and how ``musiclime train-classifier`` trains it.

The head is the MusicLIME paper's: the audio and text embeddings, each standardised with the
training set's mean and standard deviation, are concatenated and fed to
``Linear(Da + Dt, hidden) -> ReLU -> Dropout -> Linear(hidden, classes)``. Training is
full-batch Adam with weight decay on cross-entropy over frozen-encoder embeddings; the epoch
with the lowest validation loss is kept. Everything is seeded, so the same embeddings, split
and settings give the same head, bit for bit, on the CPU.

A head folder holds ``config.json`` (dimensions, class names, training settings and the
encoders' identity), ``head.pt`` (the state dict) and ``metrics.json`` (written by
:func:`musiclime.training.train_classifier`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..io.fileio import atomic_path, write_json

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "head.pt"


@dataclass
class HeadConfig:
    audio_dim: int
    text_dim: int
    class_names: list[str]
    hidden: int = 256
    dropout: float = 0.1
    encoders: dict = field(default_factory=dict)


class FusionHead(nn.Module):
    """Standardise, concatenate, MLP. ``forward(audio_emb, text_emb) -> logits``."""

    def __init__(self, cfg: HeadConfig):
        super().__init__()
        self.cfg = cfg
        self.audio_dim, self.text_dim = int(cfg.audio_dim), int(cfg.text_dim)
        self.class_names = list(cfg.class_names)
        d = self.audio_dim + self.text_dim
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))
        self.mlp = nn.Sequential(nn.Linear(d, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.hidden, len(cfg.class_names)))

    def forward(self, audio_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        x = torch.cat([audio_emb.float(), text_emb.float()], dim=1)
        return self.mlp((x - self.mean) / self.std)


def save_head(head: FusionHead, folder: str | Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / CONFIG_NAME, {"head": asdict(head.cfg)})
    with atomic_path(folder / WEIGHTS_NAME, ".pt") as tmp:
        torch.save(head.state_dict(), tmp)
    return folder


def load_head(folder: str | Path) -> FusionHead:
    folder = Path(folder)
    if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
        raise ConfigError(f"model.head={folder} is not a trained head (it needs {CONFIG_NAME} "
                          f"and {WEIGHTS_NAME}); train one with `musiclime train-classifier "
                          f"model=hf_fusion ... --out {folder}`")
    cfg = HeadConfig(**json.loads((folder / CONFIG_NAME).read_text())["head"])
    head = FusionHead(cfg)
    head.load_state_dict(torch.load(folder / WEIGHTS_NAME, map_location="cpu",
                                    weights_only=True))
    return head.eval()


@dataclass
class TrainSettings:
    hidden: int = 256
    dropout: float = 0.1
    epochs: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == y).double().mean()) if len(y) else float("nan")


def confusion(pred: np.ndarray, y: np.ndarray, n_classes: int) -> list[list[int]]:
    """Rows: true class; columns: predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=int)
    for t, p in zip(y, pred, strict=True):
        m[int(t), int(p)] += 1
    return m.tolist()


def train_head(audio: np.ndarray, text: np.ndarray, labels: np.ndarray,
               train_idx: np.ndarray, val_idx: np.ndarray, class_names: list[str],
               settings: TrainSettings, encoders: dict | None = None,
               ) -> tuple[FusionHead, dict]:
    """Fit a :class:`FusionHead` on ``audio[train_idx]``/``text[train_idx]``; keep the epoch
    with the lowest validation loss (the last one when there is no validation set)."""
    if len(train_idx) == 0:
        raise ConfigError("no training songs: the manifest needs labelled songs")
    gen = torch.Generator().manual_seed(int(settings.seed))
    torch.manual_seed(int(settings.seed))
    cfg = HeadConfig(audio_dim=int(audio.shape[1]), text_dim=int(text.shape[1]),
                     class_names=list(class_names), hidden=int(settings.hidden),
                     dropout=float(settings.dropout), encoders=encoders or {})
    head = FusionHead(cfg)
    with torch.no_grad():  # deterministic re-initialisation from the seed
        for layer in head.mlp:
            if isinstance(layer, nn.Linear):
                bound = 1.0 / np.sqrt(layer.in_features)
                layer.weight.copy_(torch.rand(layer.weight.shape, generator=gen) * 2 * bound
                                   - bound)
                layer.bias.zero_()
    a, t = torch.as_tensor(audio, dtype=torch.float32), torch.as_tensor(text, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.long)
    x_train = torch.cat([a[train_idx], t[train_idx]], dim=1)
    head.mean.copy_(x_train.mean(dim=0))
    head.std.copy_(x_train.std(dim=0, unbiased=False).clamp(min=1e-6))
    opt = torch.optim.Adam(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    best = (float("inf"), -1, None)
    history = []
    tr, va = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
    for epoch in range(int(settings.epochs)):
        head.train()
        opt.zero_grad()
        loss = loss_fn(head(a[tr], t[tr]), y[tr])
        loss.backward()
        opt.step()
        head.eval()
        with torch.no_grad():
            val_loss = loss_fn(head(a[va], t[va]), y[va]).item() if len(va) else loss.item()
        history.append((loss.item(), val_loss))
        if val_loss < best[0] - 1e-9 or not len(va):
            best = (val_loss, epoch, {k: v.clone() for k, v in head.state_dict().items()})
    head.load_state_dict(best[2])
    head.eval()
    with torch.no_grad():
        train_logits = head(a[tr], t[tr])
        val_logits = head(a[va], t[va]) if len(va) else torch.zeros(0, len(class_names))
    metrics = {
        "train_accuracy": _accuracy(train_logits, y[tr]),
        "val_accuracy": _accuracy(val_logits, y[va]) if len(va) else None,
        "val_loss": best[0] if len(va) else None,
        "best_epoch": best[1],
        "epochs": int(settings.epochs),
        "n_train": len(train_idx), "n_val": len(val_idx),
        "class_names": list(class_names),
        "val_confusion": confusion(val_logits.argmax(dim=1).numpy(), y[va].numpy(),
                                   len(class_names)) if len(va) else None,
        "chance_accuracy": float(np.bincount(labels[val_idx], minlength=len(class_names)).max()
                                 / max(len(val_idx), 1)) if len(val_idx) else None,
    }
    return head, metrics
