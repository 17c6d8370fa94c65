"""A stand-in for the reference MusicLIME explainer (``seed/explainer.py.txt``), for benchmarks.

Written from the reference's description, not copied. It keeps the reference's algorithm and
its costs, which are what the benchmark compares musiclime against:

- **factorization**: one *full-length* float32 array per component (stem x temporal segment),
  zero outside its segment, in segment-major order (``vocals_T0, drums_T0, ..., other_T9``);
  segments are ``len // T`` samples long and any remainder lies outside every segment (as in
  the reference);
- **perturbation**: per mask row, in Python, the perturbed waveform is the ``sum`` of the
  selected full-length component arrays (``audio`` and ``both`` modes), or of *all* of them
  (``lyrical``: audio kept whole), and the text keeps the lines whose bit is on;
- **every perturbed waveform is kept** in a list, and the classifier gets the whole list in
  **one** ``predict_fn(texts, audios)`` call;
- **fit**: cosine distances of the masks to row 0 (``sklearn.metrics.pairwise_distances``),
  kernel ``sqrt(exp(-d^2 / width^2))`` and ``lime.lime_base.LimeBase(kernel, verbose=False)
  .explain_instance_with_data(...)`` per label.

Masks are passed in (musiclime's), so both implementations see the same perturbations and their
explanations can be compared. The residual (mix minus the sum of the stems) is dropped, as in
the reference: with stems that sum to the mix (the demo corpus' oracle stems) both agree.

Two deliberate differences from the reference, neither changing its cost: the kernel width and
``num_features`` are parameters (the reference hard-codes width 25, a flat kernel, and 20
features), so that the comparison with musiclime uses the same surrogate; and an all-zero audio
mask composes silence instead of the integer ``0`` that ``sum([])`` returns.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Sequence

import numpy as np
import sklearn.metrics
from lime.lime_base import LimeBase

STEMS = ("vocals", "drums", "bass", "other")
_METADATA = re.compile(r"^\s*(\[[^\]]*\]|\([^)]*\))\s*$")


class ReferenceFactorization:
    """Full-length component arrays, as the reference's Open-Unmix factorization builds them."""

    def __init__(self, stems: dict[str, np.ndarray], temporal_segments: int = 10):
        self.stem_names = list(stems)
        n = len(next(iter(stems.values())))
        self.n_samples = n
        seg_len = n // temporal_segments
        self.segments = [(t * seg_len, (t + 1) * seg_len) for t in range(temporal_segments)]
        self.components: list[np.ndarray] = []
        self.names: list[str] = []
        for t, (start, end) in enumerate(self.segments):
            for name in self.stem_names:
                comp = np.zeros(n, dtype=np.float32)
                comp[start:end] = np.asarray(stems[name], dtype=np.float32)[start:end]
                self.components.append(comp)
                self.names.append(f"{name}_T{t}")

    def get_number_components(self) -> int:
        return len(self.components)

    def compose_model_input(self, active: Sequence[int]) -> np.ndarray:
        if len(active) == 0:
            return np.zeros(self.n_samples, dtype=np.float32)
        return sum([self.components[i] for i in active])


class LineIndexedText:
    """Lyric lines: non-empty lines that are not wholly ``[...]`` or ``(...)``."""

    def __init__(self, text: str):
        self.lines = [ln for ln in (text or "").split("\n")
                      if ln.strip() and not _METADATA.match(ln)]

    def num_words(self) -> int:
        return len(self.lines)

    def inverse_removing(self, removed: Sequence[int]) -> str:
        drop = set(int(i) for i in removed)
        return "\n".join(ln for i, ln in enumerate(self.lines) if i not in drop)


def list_predict_fn(classifier, batch_size: int) -> Callable:
    """A seed-style ``predict_fn(texts, audios)`` over a musiclime-protocol classifier.

    It gets the whole list at once (as in the reference) and feeds the classifier
    ``batch_size`` rows at a time (``np.stack`` of each chunk: a seed-style wrapper must build
    its batch tensors itself). ``fn.classifier_s`` accumulates the time inside the classifier.
    """
    import torch

    def predict_fn(texts: list[str], audios: list[np.ndarray]) -> np.ndarray:
        out = []
        for lo in range(0, len(audios), batch_size):
            x = torch.from_numpy(np.stack(audios[lo:lo + batch_size]))
            t0 = time.perf_counter()
            with torch.inference_mode():
                p = classifier.predict_proba(list(texts[lo:lo + batch_size]), x)
            predict_fn.classifier_s += time.perf_counter() - t0
            out.append(np.asarray(p, dtype=np.float64))
        return np.concatenate(out, axis=0)

    predict_fn.classifier_s = 0.0
    return predict_fn


def _kernel(d, kernel_width):
    return np.sqrt(np.exp(-(d ** 2) / kernel_width ** 2))


def reference_explain(stems: dict[str, np.ndarray], lyrics: str, predict_fn: Callable,
                      masks: np.ndarray, modality: str = "both", labels: Sequence[int] = (1,),
                      temporal_segments: int = 10, kernel_width: float = 25.0,
                      num_features: int = 20, random_state: int | None = 0) -> dict:
    """Explain one song the reference's way; returns fits, predictions and stage timings."""
    t_start = time.perf_counter()
    audio_fact = ReferenceFactorization(stems, temporal_segments)
    text_fact = LineIndexedText(lyrics)
    t_fact = time.perf_counter()
    n_audio, n_text = audio_fact.get_number_components(), text_fact.num_words()
    expected = {"both": n_audio + n_text, "audio": n_audio, "lyrical": n_text}[modality]
    data = np.asarray(masks)
    if data.ndim != 2 or data.shape[1] != expected:
        raise ValueError(f"masks must be (rows, {expected}) for modality {modality}, "
                         f"got {data.shape}")

    texts: list[str] = []
    audios: list[np.ndarray] = []
    for row in data:
        if modality == "both":
            audios.append(audio_fact.compose_model_input(np.where(row[:n_audio] != 0)[0]))
            texts.append(text_fact.inverse_removing(np.where(row[n_audio:] == 0)[0]))
        elif modality == "audio":
            audios.append(audio_fact.compose_model_input(np.where(row != 0)[0]))
            texts.append(text_fact.inverse_removing([]))
        else:  # lyrical: the audio is recomposed from every component, every row
            audios.append(audio_fact.compose_model_input(np.arange(n_audio)))
            texts.append(text_fact.inverse_removing(np.where(row == 0)[0]))
    t_perturb = time.perf_counter()

    predictions = np.asarray(predict_fn(texts, audios), dtype=np.float64)
    t_predict = time.perf_counter()

    distances = sklearn.metrics.pairwise_distances(
        data, data[0].reshape(1, -1), metric="cosine").ravel()
    base = LimeBase(functools.partial(_kernel, kernel_width=kernel_width), verbose=False,
                    random_state=random_state)
    fits = {}
    for label in labels:
        intercept, exp, score, local_pred = base.explain_instance_with_data(
            data, predictions, distances, int(label), num_features=num_features)
        weights = np.zeros(data.shape[1])
        for idx, w in exp:
            weights[int(idx)] = float(w)
        fits[int(label)] = {"intercept": float(intercept), "weights": weights,
                            "score": float(score),
                            "local_pred": float(np.asarray(local_pred).ravel()[0])}
    t_end = time.perf_counter()
    return {"fits": fits, "predictions": predictions, "n_audio": n_audio, "n_text": n_text,
            "waveform_bytes": int(sum(a.nbytes for a in audios)),
            "timings": {"factorize_s": t_fact - t_start, "perturb_s": t_perturb - t_fact,
                        "predict_s": t_predict - t_perturb, "fit_s": t_end - t_predict,
                        "total_s": t_end - t_start,
                        "classifier_s": float(getattr(predict_fn, "classifier_s", float("nan")))}}
