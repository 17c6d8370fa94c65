"""Batched torch composition equals the numpy reference; the all-ones row is the mix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musiclime.core.composition import WaveformComposer
from musiclime.core.factorization import AudioFactorization
from musiclime.core.masks import sample_masks

STEMS = ("vocals", "drums", "bass", "other")
SR = 8000


def _fac(n, segments=10, boundaries=None, residual="keep", seed=0):
    rng = np.random.default_rng(seed)
    stems = {s: (0.2 * rng.standard_normal(n)).astype(np.float32) for s in STEMS}
    mix = (np.sum(list(stems.values()), axis=0) + 0.03 * rng.standard_normal(n)).astype(
        np.float32)
    return AudioFactorization.from_stems(mix, stems, SR, segments=segments,
                                         boundaries=boundaries, residual=residual)


CASES = {
    "equal": dict(n=8000, segments=10),
    "unequal": dict(n=8003, segments=7),  # remainder on the last segment
    "manual_partial": dict(n=16000, boundaries=[0.1, 0.35, 1.2, 1.25, 1.9]),
    "feature_residual": dict(n=8001, segments=5, residual="feature"),
    "drop_residual": dict(n=8000, segments=4, residual="drop"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_batched_matches_numpy_reference(case):
    fac = _fac(**CASES[case])
    if case == "manual_partial":
        assert fac.bounds[0][0] > 0 and fac.bounds[-1][1] < fac.n_samples
    if case == "unequal":
        lengths = {e - s for s, e in fac.bounds}
        assert len(lengths) == 2
    masks = sample_masks(fac.n_components, 40, seed=1, exhaustive=False)
    comp = WaveformComposer(fac)
    out = comp.compose(masks)
    assert out.shape == (40, fac.n_samples) and out.dtype == torch.float32
    ref = np.stack([fac.compose(m) for m in masks])
    np.testing.assert_allclose(out.numpy(), ref, atol=2e-6, rtol=0)
    # the all-ones row is the base (the mix, or the sum of stems under drop) bit for bit
    assert np.array_equal(out[0].numpy(), fac.base)
    if fac.residual_mode != "drop":
        assert np.array_equal(out[0].numpy(), fac.mix)


def test_compose_in_batches_with_reused_buffers():
    fac = _fac(8000, segments=10)
    masks = sample_masks(fac.n_components, 53, seed=2)
    comp = WaveformComposer(fac)
    full = comp.compose(masks).clone()
    parts = []
    for lo in range(0, 53, 16):
        parts.append(comp.compose(torch.from_numpy(masks[lo:lo + 16]), reuse=True).clone())
    torch.testing.assert_close(torch.cat(parts), full, rtol=0, atol=0)


def test_all_ones_reproduces_mix_exactly_on_real_values():
    fac = _fac(8003, segments=9)
    comp = WaveformComposer(fac)
    ones = np.ones((3, fac.n_components), dtype=np.uint8)
    out = comp.compose(ones).numpy()
    for row in out:
        assert np.array_equal(row, fac.mix)
    assert torch.equal(comp.original(2)[1], torch.from_numpy(fac.mix))


def test_rejects_wrong_mask_width():
    comp = WaveformComposer(_fac(800, segments=4))
    with pytest.raises(ValueError, match="audio masks"):
        comp.compose(np.ones((2, 15), dtype=np.uint8))
