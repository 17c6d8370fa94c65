"""Batched composition of perturbed waveforms on the classifier's device (the hot path).

A perturbed waveform is ``base - sum_{s,t} (1 - mask[t, s]) * stem_s[segment t]``: the mix (or,
under ``residual=drop``, the sum of stems) minus the switched-off components. Segments do not
overlap, so a batch is, per segment ``t``, one matrix product of the inverted masks ``(B, S)``
with that segment's ``(S, L)`` stem slice, a strided view of the stems
(``einsum('bts,tsl->btl')`` as ``T`` calls of
``torch.mm(..., out=waveforms[:, start:end])``, written straight into the output's columns),
then one in-place ``base - removed`` on those columns. No ``(T, B, L)`` intermediate and no
separate copy of the base: about half the memory traffic of a ``bmm`` into a temporary followed by
a copy of the base and per-segment subtractions, with bit-identical results. (A fused
``addmm(base, off, seg, alpha=-1)`` is no faster and its rounding depends on the batch size.)
Subtracting from the mix rather than adding up components makes the all-ones row reproduce the
mix bit for bit.

Only one batch of waveforms exists at a time (and, with ``reuse=True``, in a buffer allocated
once), so memory does not grow with num_samples. The segment slices are views of the
factorization's stems (no copy on the CPU), so a long song's stems are held once.
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
        # The (S, N) stems, shared with the factorization on the CPU in float32 (a long song's
        # stems are hundreds of MB: no padded per-segment copy), one copy on another device.
        self.stems = torch.from_numpy(fac.feature_stems).to(self.device, dtype)
        # segment t's (S, L_t) slice: a strided view, which torch.mm reads in place
        self.segments = [self.stems[:, s:e] for s, e in self.bounds]
        self.base = torch.from_numpy(fac.base.copy()).to(self.device, dtype)
        # sample ranges outside every segment (explicit boundaries may leave some): always on
        self.uncovered = _gaps(self.bounds, self.n_samples)
        self._bufs: dict[int, torch.Tensor] = {}

    def _buffer(self, batch: int, reuse: bool) -> torch.Tensor:
        if reuse and batch in self._bufs:
            return self._bufs[batch]
        buf = torch.empty((batch, self.n_samples), device=self.device, dtype=self.dtype)
        if reuse:
            self._bufs = {batch: buf}  # keep one size: the last batch may be smaller
        return buf

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
        off = (1 - m.to(self.dtype)).reshape(b, self.n_segments, self.n_stems)
        out = self._buffer(b, reuse)
        for s, e in self.uncovered:
            out[:, s:e].copy_(self.base[s:e].expand(b, -1))
        for t, (s, e) in enumerate(self.bounds):
            cols = out[:, s:e]  # a strided view: mm and sub write into it in place
            torch.mm(off[:, t], self.segments[t], out=cols)  # removed components
            torch.sub(self.base[s:e], cols, out=cols)
        return out

    def original(self, batch: int = 1) -> torch.Tensor:
        """The unperturbed waveform repeated ``batch`` times (a view, no copy)."""
        return self.base.expand(batch, -1)


def _gaps(bounds: list[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """Sample ranges of ``[0, n)`` that no (non-overlapping) segment covers."""
    gaps, pos = [], 0
    for s, e in sorted(bounds):
        if s > pos:
            gaps.append((pos, s))
        pos = max(pos, e)
    if pos < n:
        gaps.append((pos, n))
    return gaps
