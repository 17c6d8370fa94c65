"""A white-box classifier with a known answer, for checking an explainer end to end.

Its ``ai`` logit is a sum of two evidence terms and nothing else:

- audio: the energy of a pure tone at ``tone_hz`` during ``[start, end)`` seconds of the input,
  measured by projecting that stretch onto the tone (a single-bin DFT), relative to
  ``reference_energy``;
- lyrics: whether ``keyword`` occurs in the lyrics.

``logit = audio_gain * min(energy ratio, 1) + lyrics_gain * [keyword present] - bias``, and the
output is ``[P(ai), P(human)] = [sigmoid(logit), 1 - sigmoid(logit)]``. A song whose only tone at
``tone_hz`` lives in one stem during one segment, and whose keyword is on one line, therefore has
exactly two relevant features; a correct explainer ranks them first.
"""

from __future__ import annotations

import numpy as np
import torch


class ToneKeywordClassifier:
    class_names = ["ai", "human"]

    def __init__(self, sample_rate: int = 22050, tone_hz: float = 880.0, start: float = 0.0,
                 end: float = 1.0, keyword: str = "robot", reference_energy: float | None = None,
                 audio_gain: float = 4.0, lyrics_gain: float = 4.0, bias: float = 4.0,
                 device: str = "cpu"):
        self.sample_rate = int(sample_rate)
        self.tone_hz = float(tone_hz)
        self.start, self.end = float(start), float(end)
        self.keyword = keyword.lower()
        self.reference_energy = reference_energy
        self.audio_gain, self.lyrics_gain, self.bias = audio_gain, lyrics_gain, bias
        self.device = torch.device(device)

    def tone_energy(self, audio: torch.Tensor) -> torch.Tensor:
        a = int(round(self.start * self.sample_rate))
        b = int(round(self.end * self.sample_rate))
        x = audio[:, a:b].to(torch.float64)
        t = torch.arange(x.shape[1], dtype=torch.float64, device=x.device) / self.sample_rate
        cos = torch.cos(2 * np.pi * self.tone_hz * t)
        sin = torch.sin(2 * np.pi * self.tone_hz * t)
        return ((x @ cos) ** 2 + (x @ sin) ** 2) / max(1, x.shape[1]) ** 2

    def predict_proba(self, lyrics: list[str], audio: torch.Tensor) -> np.ndarray:
        if audio.ndim != 2:
            raise ValueError(f"audio must be (batch, samples), got {tuple(audio.shape)}")
        energy = self.tone_energy(audio).cpu().numpy()
        ref = self.reference_energy or 1.0
        audio_term = np.minimum(energy / ref, 1.0)
        kw = np.array([self.keyword in text.lower() for text in lyrics], dtype=np.float64)
        logit = self.audio_gain * audio_term + self.lyrics_gain * kw - self.bias
        p_ai = 1.0 / (1.0 + np.exp(-logit))
        return np.stack([p_ai, 1.0 - p_ai], axis=1)
