"""Batched composition of perturbed waveforms on the classifier's device (the hot path).

A perturbed waveform is ``base - sum_{s,t} (1 - mask[t, s]) * stem_s[segment t]``: the mix (or,
under ``residual=drop``, the sum of stems) minus the switched-off components. Segments do not
overlap, so one batch is a single batched matrix product (``einsum('tbs,tsl->tbl')``, run as
``torch.bmm``) of the inverted masks with a ``(segments, stems, samples-per-segment)`` tensor,
followed by one in-place subtraction per segment. Subtracting from the mix rather than adding up
components makes the all-ones row reproduce the mix bit for bit.

Only one batch of waveforms exists at a time (and, with ``reuse=True``, in buffers allocated
once), so memory does not grow with num_samples.
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
        self.bounds = list(fac.bounds)
        self.lengths = [e - s for s, e in self.bounds]
        self.seg_len = max(self.lengths)
        feats = fac.feature_stems
        seg = np.zeros((self.n_segments, self.n_stems, self.seg_len), dtype=np.float32)
        for t, (s, e) in enumerate(self.bounds):
            seg[t, :, : e - s] = feats[:, s:e]
        self.segments = torch.from_numpy(seg).to(self.device, dtype)  # (T, S, L)
        self.base = torch.from_numpy(fac.base.copy()).to(self.device, dtype)
        self._bufs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _buffers(self, batch: int, reuse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if reuse and batch in self._bufs:
            return self._bufs[batch]
        bufs = (torch.empty((self.n_segments, batch, self.seg_len), device=self.device,
                            dtype=self.dtype),
                torch.empty((batch, self.n_samples), device=self.device, dtype=self.dtype))
        if reuse:
            self._bufs = {batch: bufs}  # keep one size: the last batch may be smaller
        return bufs

    def compose(self, masks: np.ndarray | torch.Tensor, reuse: bool = False) -> torch.Tensor:
        """``(B, n_components)`` masks -> ``(B, n_samples)`` waveforms on ``self.device``.

        With ``reuse=True`` the result lives in a buffer that the next call overwrites.
        """
        m = torch.as_tensor(masks).to(self.device, non_blocking=True)
        if m.ndim != 2 or m.shape[1] != self.n_segments * self.n_stems:
            raise ValueError(
                f"audio masks must be (batch, {self.n_segments * self.n_stems}), got {tuple(m.shape)}"
            )
        b = m.shape[0]
        off = (1 - m.to(self.dtype)).reshape(b, self.n_segments, self.n_stems).transpose(0, 1)
        removed, out = self._buffers(b, reuse)
        torch.bmm(off, self.segments, out=removed)  # (T, B, L)
        out.copy_(self.base.expand(b, -1))
        for t, (s, e) in enumerate(self.bounds):
            out[:, s:e].sub_(removed[t, :, : e - s])
        return out

    def original(self, batch: int = 1) -> torch.Tensor:
        """The unperturbed waveform repeated ``batch`` times (a view, no copy)."""
        return self.base.expand(batch, -1)
