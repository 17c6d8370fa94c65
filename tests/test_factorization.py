"""Audio factorization: segment bounds, component naming and order, residual modes."""

from __future__ import annotations

import numpy as np
import pytest

from musiclime.core.factorization import (
    AudioFactorization,
    residual_of,
    segment_bounds,
    stack_stems,
)

STEMS = ("vocals", "drums", "bass", "other")


def _random_stems(n: int, seed: int = 0, names=STEMS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s: (0.1 * rng.standard_normal(n)).astype(np.float32) for s in names}


def test_segment_bounds_remainder_goes_to_last_segment():
    bounds = segment_bounds(103, 10, segments=10)
    assert len(bounds) == 10
    assert bounds[0] == (0, 10)
    assert bounds[-1] == (90, 103)  # 10 + the remainder 3
    # contiguous, no gap, cover every sample
    assert all(e == s2 for (_, e), (s2, _) in zip(bounds, bounds[1:], strict=False))
    covered = np.zeros(103, dtype=int)
    for s, e in bounds:
        covered[s:e] += 1
    assert np.all(covered == 1)


def test_segment_bounds_even_split():
    assert segment_bounds(40, 8000, segments=4) == [(0, 10), (10, 20), (20, 30), (30, 40)]


def test_segment_bounds_manual_boundaries_in_seconds():
    bounds = segment_bounds(8000, 1000, boundaries=[0.5, 1.25, 4.0, 8.0])
    assert bounds == [(500, 1250), (1250, 4000), (4000, 8000)]
    # boundaries win over the segment count
    assert segment_bounds(8000, 1000, segments=10, boundaries=[0, 8]) == [(0, 8000)]


@pytest.mark.parametrize("boundaries", [[1.0], [0, 2, 2], [3, 1], [-1, 2], [0, 9]])
def test_segment_bounds_bad_boundaries(boundaries):
    with pytest.raises(ValueError):
        segment_bounds(8000, 1000, boundaries=boundaries)


def test_segment_bounds_bad_counts():
    with pytest.raises(ValueError):
        segment_bounds(100, 10, segments=0)
    with pytest.raises(ValueError):
        segment_bounds(5, 10, segments=10)


def test_component_names_segment_major_reference_order():
    n = 300
    fac = AudioFactorization.from_stems(np.zeros(n, np.float32), _random_stems(n), 100,
                                        segments=3)
    names = fac.component_names()
    assert names == ["vocals_T0", "drums_T0", "bass_T0", "other_T0",
                     "vocals_T1", "drums_T1", "bass_T1", "other_T1",
                     "vocals_T2", "drums_T2", "bass_T2", "other_T2"]
    assert fac.n_components == 12
    # component c is stem c % S during segment c // S
    assert fac.component_info(6) == ("bass", 1, 100, 200)
    comp = fac.component(6)
    np.testing.assert_array_equal(comp[100:200], fac.stems[2, 100:200])
    assert not comp[:100].any() and not comp[200:].any()


def _factorization(residual: str, n: int = 1003, segments: int = 10):
    stems = _random_stems(n, seed=1)
    # a mix that is NOT the sum of its stems (as with any real separator)
    rng = np.random.default_rng(2)
    mix = (np.sum(list(stems.values()), axis=0) + 0.05 * rng.standard_normal(n)).astype(
        np.float32)
    return AudioFactorization.from_stems(mix, stems, 1000, segments=segments, residual=residual)


def test_residual_keep_all_ones_is_exactly_the_mix():
    fac = _factorization("keep")
    assert not np.allclose(fac.stems.sum(0), fac.mix)
    out = fac.compose(np.ones(fac.n_components, dtype=bool))
    assert out.dtype == np.float32
    assert np.array_equal(out, fac.mix)
    # all off leaves the residual (mix - sum of stems), which is always on
    np.testing.assert_allclose(fac.compose(np.zeros(fac.n_components)), fac.residual, atol=1e-5)


def test_residual_drop_all_ones_is_sum_of_stems():
    fac = _factorization("drop")
    out = fac.compose(np.ones(fac.n_components, dtype=bool))
    np.testing.assert_allclose(out, fac.stems.sum(0), atol=1e-6)
    assert not np.allclose(out, fac.mix, atol=1e-3)
    np.testing.assert_allclose(fac.compose(np.zeros(fac.n_components)), 0.0, atol=1e-6)
    assert fac.n_components == 4 * 10


def test_residual_feature_adds_a_fifth_stem():
    fac = _factorization("feature")
    assert fac.feature_stem_names == STEMS + ("residual",)
    assert fac.n_components == 5 * 10
    names = fac.component_names()
    assert names[:5] == ["vocals_T0", "drums_T0", "bass_T0", "other_T0", "residual_T0"]
    assert names[-1] == "residual_T9"
    assert np.array_equal(fac.compose(np.ones(fac.n_components, dtype=bool)), fac.mix)
    # switching every residual component off leaves the sum of the stems
    active = np.array([not n.startswith("residual") for n in names])
    np.testing.assert_allclose(fac.compose(active), fac.stems.sum(0), atol=1e-5)
    np.testing.assert_allclose(fac.compose(np.zeros(fac.n_components)), 0.0, atol=1e-5)


def test_compose_switches_one_component_off():
    fac = _factorization("keep")
    active = np.ones(fac.n_components, dtype=bool)
    idx = fac.component_names().index("drums_T4")
    active[idx] = False
    out = fac.compose(active)
    s, e = fac.bounds[4]
    np.testing.assert_allclose(out[s:e], fac.mix[s:e] - fac.stems[1, s:e], atol=1e-6)
    np.testing.assert_array_equal(out[:s], fac.mix[:s])
    np.testing.assert_array_equal(out[e:], fac.mix[e:])
    np.testing.assert_allclose(fac.sum_components([idx]), fac.component(idx))


def test_audio_outside_manual_segments_stays_on():
    stems = _random_stems(1000, seed=3)
    mix = np.sum(list(stems.values()), axis=0)
    fac = AudioFactorization.from_stems(mix, stems, 1000, boundaries=[0.2, 0.5, 0.7])
    assert fac.bounds == [(200, 500), (500, 700)]
    out = fac.compose(np.zeros(fac.n_components))
    np.testing.assert_array_equal(out[:200], mix[:200])
    np.testing.assert_array_equal(out[700:], mix[700:])
    np.testing.assert_allclose(out[200:700], 0.0, atol=1e-6)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="residual"):
        AudioFactorization.from_stems(np.zeros(100), _random_stems(100), 10, 2, residual="x")
    with pytest.raises(ValueError, match="samples"):
        AudioFactorization.from_stems(np.zeros(99), _random_stems(100), 10, 2)
    fac = AudioFactorization.from_stems(np.zeros(100), _random_stems(100), 10, 2)
    with pytest.raises(ValueError):
        fac.compose(np.ones(3))


def test_residual_is_bit_identical_to_the_float64_stack_sum():
    rng = np.random.default_rng(3)
    for n_stems in (1, 4, 5):
        stems = (rng.standard_normal((n_stems, 10007))
                 * rng.uniform(0.01, 3.0, (n_stems, 1))).astype(np.float32)
        mix = rng.standard_normal(10007).astype(np.float32)
        expected = (mix.astype(np.float64) - stems.astype(np.float64).sum(0)).astype(np.float32)
        np.testing.assert_array_equal(residual_of(mix, stems), expected)


def test_stack_stems_resamples_and_fits_the_length():
    sr = 8000
    t = np.arange(sr) / sr
    stems = {"a": np.sin(2 * np.pi * 100 * t).astype(np.float32),
             "b": np.zeros(sr, dtype=np.float32)}
    same = stack_stems(stems, sr, sr)
    assert same.shape == (2, sr) and same.dtype == np.float32
    np.testing.assert_array_equal(same[0], stems["a"])
    # at another rate: resampled, then trimmed or zero-padded to the mix length asked for
    half = stack_stems(stems, 4003, 4000, stems_rate=sr)
    assert half.shape == (2, 4003) and np.all(half[:, 4000:] == 0)
    np.testing.assert_allclose(half[0, 100:3900], np.sin(2 * np.pi * 100 * np.arange(
        100, 3900) / 4000), atol=1e-3)
    with pytest.raises(ValueError, match="'a'"):
        stack_stems(stems, sr + 1, sr)  # same rate, wrong length: a bug upstream, not padded
