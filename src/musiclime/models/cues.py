"""A white-box cue detector: the classifier of the hard planted corpus (``musiclime_demo.hard``).

Its ``ai`` logit is a fixed logistic model over a handful of detectors and nothing else, so
what it responds to is known by construction and every planted cue's effect can be computed:

``logit = bias + sum_tone w_tone * D(tone) + sum_pair w_pair * G(a, b)
+ sum_word w_word * [word in lyrics] + sum_gate w_gate * [word in lyrics] * D(tone)``

- **tone energy** ``D(f)``: the audio is cut into Hann frames of ``frame_seconds`` (two hops
  of half a frame each); in each frame the power at ``f`` Hz is the squared magnitude of the
  frame's projection on ``exp(2 pi i f t)`` (one DFT bin, 10 Hz wide for 0.1 s frames),
  divided by the power a sine of ``reference_amplitude`` gives. ``D`` is the sum over frames
  times the hop in seconds: a sine of amplitude ``A`` lasting ``L`` seconds gives
  ``D ~ (A / reference_amplitude)^2 * L`` ("reference tone-seconds"). ``D`` is additive over
  time (a frame's power, not its maximum), so a cue split by a segment boundary lends each
  segment its share;
- **pair** ``G(a, b)``: the same sum over frames of ``sqrt(power_a * power_b)``: it is zero
  unless tones ``a`` and ``b`` sound *in the same frames* (an AND: interacting evidence);
- **keyword**: ``word`` occurs in the lyrics as a whole word (case-insensitive);
- **gate**: a keyword times a tone's energy: the tone counts only while the lyrics carry the
  word (interacting evidence across modalities).

The tones sit at 7.6-9.3 kHz, where the demo corpus's General MIDI music has little energy
(turned down to half as in the hard corpus, a 20 s song adds at most ~0.01 tone-seconds to a
detector); anything outside the detectors' 10 Hz bins -- loud noise bursts, tones a few
hundred Hz away, lyric lines without the keywords -- is ignored by construction.
``musiclime_demo.hard`` plants cues of known effect and checks each by ablation against this
class.

Output: ``[P(ai), P(human)] = [sigmoid(logit), 1 - sigmoid(logit)]``, like the demo classifier.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import torch

#: detector name -> frequency (Hz); the names say which cue kind of the hard corpus uses it
TONES: dict[str, float] = {"weak": 7610.0, "gated": 7930.0, "off_grid": 8230.0,
                           "pair_a": 8770.0, "pair_b": 9310.0}
#: logit per reference tone-second of a tone that counts alone
TONE_WEIGHTS: dict[str, float] = {"weak": 1.0, "off_grid": 1.0}
#: (tone a, tone b, logit per reference tone-second of both together)
PAIRS: tuple[tuple[str, str, float], ...] = (("pair_a", "pair_b", 1.0),)
#: keyword -> logit when it occurs in the lyrics
KEYWORDS: dict[str, float] = {"neon": 0.25, "chrome": 0.4}
#: (tone, keyword, logit per reference tone-second while the keyword occurs)
GATES: tuple[tuple[str, str, float], ...] = (("gated", "signal", 1.0),)
BIAS = -2.5
REFERENCE_AMPLITUDE = 0.05
FRAME_SECONDS = 0.1
#: most float64 values one chunk of frames may hold (rows are processed in chunks below it)
_CHUNK_VALUES = 1 << 24


class CueDetectorClassifier:
    """The cue detector (module docstring). Every argument has the hard corpus's default; the
    corpus's planted effects hold for the defaults only."""

    class_names = ["ai", "human"]

    def __init__(self, sample_rate: int = 22050, tones: Mapping[str, float] | None = None,
                 tone_weights: Mapping[str, float] | None = None,
                 pairs: Sequence[Sequence] | None = None,
                 keywords: Mapping[str, float] | None = None,
                 gates: Sequence[Sequence] | None = None, bias: float = BIAS,
                 reference_amplitude: float = REFERENCE_AMPLITUDE,
                 frame_seconds: float = FRAME_SECONDS, device: str = "cpu"):
        self.sample_rate = int(sample_rate)
        self.tones = {str(k): float(v) for k, v in (TONES if tones is None else tones).items()}
        self.tone_weights = {str(k): float(v) for k, v in
                             (TONE_WEIGHTS if tone_weights is None else tone_weights).items()}
        self.pairs = [(str(a), str(b), float(w)) for a, b, w in (PAIRS if pairs is None else pairs)]
        self.keywords = {str(k).lower(): float(v)
                         for k, v in (KEYWORDS if keywords is None else keywords).items()}
        self.gates = [(str(t), str(k).lower(), float(w))
                      for t, k, w in (GATES if gates is None else gates)]
        self.bias = float(bias)
        self.reference_amplitude = float(reference_amplitude)
        self.hop = int(round(float(frame_seconds) * self.sample_rate / 2))
        self.frame = 2 * self.hop
        self.device = torch.device(device)
        self._check()
        self._names = list(self.tones)
        self._kernels: torch.Tensor | None = None
        self._patterns = {k: re.compile(rf"\b{re.escape(k)}\b", re.IGNORECASE)
                          for k in {*self.keywords, *(k for _, k, _ in self.gates)}}

    def _check(self) -> None:
        if self.reference_amplitude <= 0 or self.frame < 8:
            raise ValueError("reference_amplitude must be > 0 and a frame at least 8 samples")
        nyquist = self.sample_rate / 2
        for name, hz in self.tones.items():
            if not 0 < hz < 0.9 * nyquist:
                raise ValueError(f"tone {name!r} at {hz} Hz must lie below 0.9 x Nyquist "
                                 f"({0.9 * nyquist:.0f} Hz at {self.sample_rate} Hz)")
        used = [*self.tone_weights, *(t for p in self.pairs for t in p[:2]),
                *(t for t, _, _ in self.gates)]
        unknown = sorted(set(used) - set(self.tones))
        if unknown:
            raise ValueError(f"cue terms name tones {unknown} that are not in tones "
                             f"{sorted(self.tones)}")

    def _basis(self, device: torch.device) -> torch.Tensor:
        """(frame, 2K) float64: Hann-windowed cosines then sines, scaled so that a sine of
        ``reference_amplitude`` at a tone's frequency has power 1 in that tone's column pair."""
        if self._kernels is None or self._kernels.device != device:
            n = self.frame
            t = torch.arange(n, dtype=torch.float64) / self.sample_rate
            window = torch.hann_window(n, periodic=True, dtype=torch.float64)
            hz = torch.tensor([self.tones[k] for k in self._names], dtype=torch.float64)
            phase = 2 * np.pi * t[:, None] * hz[None, :]
            scale = 2.0 / (self.reference_amplitude * float(window.sum()))
            basis = torch.cat([window[:, None] * torch.cos(phase),
                               window[:, None] * torch.sin(phase)], dim=1) * scale
            self._kernels = basis.to(device)
        return self._kernels

    def tone_powers(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, tones, frames) float64: each frame's power at each tone, in units of the
        reference sine's power (tones in the order of ``self.tones``).

        A frame is two blocks of ``hop`` samples, so the audio is viewed as blocks without a
        copy and each frame's projection is the first block's on the basis's first half plus
        the next block's on its second half: two plain matrix products."""
        if audio.ndim != 2:
            raise ValueError(f"audio must be (batch, samples), got {tuple(audio.shape)}")
        hop, k = self.hop, len(self._names)
        blocks = max(2, -(-audio.shape[1] // hop))
        basis = self._basis(audio.device)
        first, second = basis[:hop], basis[hop:]
        rows = max(1, _CHUNK_VALUES // (blocks * hop))
        out = []
        for i in range(0, audio.shape[0], rows):
            x = audio[i:i + rows]
            if x.shape[1] != blocks * hop:
                x = torch.nn.functional.pad(x, (0, blocks * hop - x.shape[1]))
            x = x.to(torch.float64).reshape(x.shape[0], blocks, hop)
            proj = (x @ first)[:, :-1] + (x @ second)[:, 1:]  # (rows, frames, 2K)
            out.append((proj[..., :k] ** 2 + proj[..., k:] ** 2).transpose(1, 2))
        return torch.cat(out, dim=0)

    def keyword_flags(self, lyrics: Sequence[str]) -> dict[str, np.ndarray]:
        """keyword -> (batch,) 1.0 where the lyrics hold it as a whole word, else 0.0."""
        return {k: np.array([1.0 if p.search(text) else 0.0 for text in lyrics])
                for k, p in self._patterns.items()}

    def terms(self, lyrics: Sequence[str], audio: torch.Tensor) -> dict[str, np.ndarray]:
        """Each term's contribution to the logit, per row: ``tone:<name>``, ``pair:<a>+<b>``,
        ``keyword:<word>``, ``gate:<tone>+<word>`` (their sum plus ``bias`` is the logit)."""
        if len(lyrics) != audio.shape[0]:
            raise ValueError(f"{len(lyrics)} lyrics for {audio.shape[0]} audio rows")
        power = self.tone_powers(audio)
        seconds = self.hop / self.sample_rate
        energy = {n: (power[:, i].sum(dim=1) * seconds).cpu().numpy()
                  for i, n in enumerate(self._names)}
        flags = self.keyword_flags(lyrics)
        out: dict[str, np.ndarray] = {}
        for name, w in self.tone_weights.items():
            out[f"tone:{name}"] = w * energy[name]
        for a, b, w in self.pairs:
            pa, pb = power[:, self._names.index(a)], power[:, self._names.index(b)]
            both = (torch.sqrt(pa * pb).sum(dim=1) * seconds).cpu().numpy()
            out[f"pair:{a}+{b}"] = w * both
        for word, w in self.keywords.items():
            out[f"keyword:{word}"] = w * flags[word]
        for tone, word, w in self.gates:
            out[f"gate:{tone}+{word}"] = w * flags[word] * energy[tone]
        return out

    def logit(self, lyrics: Sequence[str], audio: torch.Tensor) -> np.ndarray:
        out = np.full(audio.shape[0], self.bias)
        for value in self.terms(lyrics, audio).values():
            out = out + value
        return out

    def predict_proba(self, lyrics: list[str], audio: torch.Tensor) -> np.ndarray:
        p_ai = 1.0 / (1.0 + np.exp(-self.logit(lyrics, audio)))
        return np.stack([p_ai, 1.0 - p_ai], axis=1)
