"""Listenable explanations (audioLIME, Haunschmid et al. 2020): the audio of the top-k
positively weighted stem-segment components, summed, so a person can hear the evidence."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.explanation import Explanation
from ..core.factorization import AudioFactorization
from ..io.audio import write_wav


def top_audio_components(exp: Explanation, k: int = 3, label: int | None = None) -> list[int]:
    """Component indices of the ``k`` largest positive audio weights."""
    out = []
    for idx, w in sorted(exp.weights(label).items(), key=lambda kv: (-kv[1], kv[0])):
        if w <= 0 or len(out) == k:
            break
        if exp.features[idx].kind == "audio":
            out.append(idx)
    return out


def listenable_audio(exp: Explanation, fac: AudioFactorization, k: int = 3,
                     label: int | None = None) -> np.ndarray:
    if fac.n_components != exp.features.n_audio:
        raise ValueError(f"the factorization has {fac.n_components} components but the "
                         f"explanation was made on {exp.features.n_audio}")
    return fac.sum_components(top_audio_components(exp, k, label))


def save_listenable(exp: Explanation, fac: AudioFactorization, path: str | os.PathLike,
                    k: int = 3, label: int | None = None) -> Path:
    return write_wav(path, listenable_audio(exp, fac, k, label), fac.sample_rate)
