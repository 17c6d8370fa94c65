"""The classifier protocol, an adapter for seed-style callables, and output validation.

A classifier is any object with ``class_names``, ``sample_rate`` and
``predict_proba(lyrics: list[str], audio: torch.Tensor[batch, samples]) -> ndarray[batch, classes]``
(optionally ``device``, where it wants its input). The reference explainer's plain
``predict_fn(texts, audios) -> probs`` callables are wrapped by :class:`CallableClassifier`,
which hands them one batch at a time as lists of numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import ClassifierOutputError


@runtime_checkable
class Classifier(Protocol):
    class_names: Sequence[str]
    sample_rate: int

    def predict_proba(self, lyrics: list[str], audio: torch.Tensor) -> np.ndarray: ...


class CallableClassifier:
    """Adapter for ``predict_fn(texts: list[str], audios: list[np.ndarray]) -> probs``.

    Parameters
    ----------
    predict_fn: the seed-style callable.
    sample_rate: the rate its audio must be at (Hz).
    class_names: names of the output columns; default ``class_0 .. class_{C-1}``.
    """

    def __init__(self, predict_fn: Callable, sample_rate: int,
                 class_names: Sequence[str] | None = None, device: str = "cpu"):
        if not callable(predict_fn):
            raise TypeError(f"predict_fn must be callable, got {type(predict_fn).__name__}")
        self.predict_fn = predict_fn
        self.sample_rate = int(sample_rate)
        self._class_names = list(class_names) if class_names is not None else None
        self.device = torch.device(device)

    @property
    def class_names(self) -> list[str]:
        if self._class_names is None:
            raise AttributeError("class names are learnt from the first prediction")
        return self._class_names

    def predict_proba(self, lyrics: list[str], audio: torch.Tensor) -> np.ndarray:
        # copy: on the CPU .numpy() shares memory with the composer's reused batch buffer, which
        # the next batch overwrites; a predict_fn that keeps its inputs must not see them change
        audios = list(np.array(audio.detach().cpu().numpy(), copy=True))
        probs = np.asarray(self.predict_fn(list(lyrics), audios), dtype=np.float64)
        if self._class_names is None and probs.ndim == 2:
            self._class_names = [f"class_{i}" for i in range(probs.shape[1])]
        return probs


def as_classifier(model, sample_rate: int | None = None,
                  class_names: Sequence[str] | None = None) -> Classifier:
    """Return ``model`` if it follows the protocol, else wrap a plain callable."""
    if hasattr(model, "predict_proba") and hasattr(model, "sample_rate"):
        return model
    if callable(model):
        if sample_rate is None:
            raise ValueError("a plain predict_fn needs the sample_rate its audio must be at")
        return CallableClassifier(model, sample_rate=sample_rate, class_names=class_names)
    raise TypeError(
        f"{type(model).__name__} is not a classifier: it needs class_names, sample_rate and "
        "predict_proba(lyrics, audio), or must be a callable predict_fn(texts, audios)"
    )


def classifier_device(model) -> torch.device:
    dev = getattr(model, "device", None)
    return torch.device(dev) if dev is not None else torch.device("cpu")


def validate_probabilities(probs, batch: int, n_classes: int | None = None,
                           where: str = "classifier", atol: float = 1e-3) -> np.ndarray:
    """Check a classifier's output: ``(batch, classes)``, finite, in [0, 1], rows sum to 1."""
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().cpu().numpy()
    try:
        p = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ClassifierOutputError(f"{where} returned {type(probs).__name__}, not numbers") from exc
    if p.ndim != 2 or p.shape[0] != batch:
        raise ClassifierOutputError(
            f"{where} returned shape {p.shape} for a batch of {batch}; expected (batch, classes). "
            "predict_proba must return one probability row per input."
        )
    if n_classes is not None and p.shape[1] != n_classes:
        raise ClassifierOutputError(
            f"{where} returned {p.shape[1]} columns but has {n_classes} class names"
        )
    if not np.all(np.isfinite(p)):
        bad = int(np.argwhere(~np.isfinite(p))[0][0])
        raise ClassifierOutputError(f"{where} returned NaN or infinite values (row {bad})")
    if p.min() < -atol or p.max() > 1 + atol:
        raise ClassifierOutputError(
            f"{where} returned values outside [0, 1] (min {p.min():.4g}, max {p.max():.4g}); "
            "return probabilities (apply softmax), not logits"
        )
    sums = p.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > atol):
        bad = int(np.argmax(np.abs(sums - 1.0)))
        raise ClassifierOutputError(
            f"{where}: probability row {bad} sums to {sums[bad]:.6f}, not 1; return a "
            "probability distribution per input (softmax over classes)"
        )
    return p
