"""Batched composition of perturbed waveforms on the classifier's device (the hot path).

A perturbed waveform is ``base - sum_{s,t} (1 - mask[t, s]) * stem_s[segment t]``: the mix (or,
under ``residual=drop``, the sum of stems) minus the switched-off components. Segments do not
overlap, so one batch is a single ``einsum('bts,stl->btl')`` of the inverted masks with a
``(stems, segments, samples-per-segment)`` tensor. Subtracting from the mix rather than adding
up components makes the all-ones row reproduce the mix bit for bit.

Only one batch of waveforms exists at a time, so memory does not grow with num_samples.
"""

from __future__ import annotations

import numpy as np
import torch

from .factorization import AudioFactorization


class WaveformComposer:
    """Holds the segment tensor on ``device`` and composes mask batches into waveforms."""

    def __init__(self, factorization: AudioFactorization, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.factorization = factorization
        self.device = torch.device(device)
        self.dtype = dtype
        fac = factorization
        self.n_stems = len(fac.feature_stem_names)
        self.n_segments = fac.n_segments
        self.n_samples = fac.n_samples
        lengths = [e - s for s, e in fac.bounds]
        self.seg_len = max(lengths)
        self.start = fac.bounds[0][0]
        self.end = fac.bounds[-1][1]
        contiguous = all(fac.bounds[i][1] == fac.bounds[i + 1][0] for i in range(len(lengths) - 1))
        if not contiguous:
            raise ValueError("segments must be contiguous")
        feats = fac.feature_stems
        seg = np.zeros((self.n_stems, self.n_segments, self.seg_len), dtype=np.float32)
        for t, (s, e) in enumerate(fac.bounds):
            seg[:, t, : e - s] = feats[:, s:e]
        self.segments = torch.from_numpy(seg).to(self.device, dtype)
        self.base = torch.from_numpy(fac.base.copy()).to(self.device, dtype)
        # positions of real (unpadded) samples in the flattened (segments x seg_len) layout
        if all(n == self.seg_len for n in lengths):
            self.gather = None
        else:
            idx = np.concatenate([t * self.seg_len + np.arange(n) for t, n in enumerate(lengths)])
            self.gather = torch.from_numpy(idx).to(self.device)

    def compose(self, masks: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(B, n_components)`` masks -> ``(B, n_samples)`` waveforms on ``self.device``."""
        m = torch.as_tensor(masks, device=self.device)
        if m.ndim != 2 or m.shape[1] != self.n_segments * self.n_stems:
            raise ValueError(
                f"audio masks must be (batch, {self.n_segments * self.n_stems}), got {tuple(m.shape)}"
            )
        off = (1 - m.to(self.dtype)).reshape(-1, self.n_segments, self.n_stems)
        removed = torch.einsum("bts,stl->btl", off, self.segments).reshape(m.shape[0], -1)
        if self.gather is not None:
            removed = removed.index_select(1, self.gather)
        out = self.base.expand(m.shape[0], -1).clone()
        out[:, self.start:self.end] -= removed
        return out

    def original(self, batch: int = 1) -> torch.Tensor:
        """The unperturbed waveform repeated ``batch`` times (a view, no copy)."""
        return self.base.expand(batch, -1)
