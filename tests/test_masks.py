"""Perturbation masks: row 0, dtype, prefix property, seeds, exhaustive mode, layouts."""

from __future__ import annotations

import numpy as np
import pytest

from musiclime.core.masks import MaskLayout, is_exhaustive, sample_masks


@pytest.mark.parametrize("n_features", [44, 12])  # Bernoulli draw / without replacement
def test_row0_all_ones_and_uint8(n_features):
    m = sample_masks(n_features, 300, seed=7)
    assert m.dtype == np.uint8
    assert m.shape == (300, n_features)
    assert np.all(m[0] == 1)
    assert set(np.unique(m)) == {0, 1}
    # roughly Bernoulli(0.5) per entry
    assert 0.4 < m[1:].mean() < 0.6


@pytest.mark.parametrize("n_features", [44, 12])
def test_prefix_property(n_features):
    big = sample_masks(n_features, 1000, seed=3)
    for n in (2, 10, 257, 999):
        np.testing.assert_array_equal(sample_masks(n_features, n, seed=3), big[:n])


@pytest.mark.parametrize("n_features", [44, 12])
def test_seeds_differ_and_repeat(n_features):
    a = sample_masks(n_features, 200, seed=0)
    b = sample_masks(n_features, 200, seed=1)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, sample_masks(n_features, 200, seed=0))


def test_without_replacement_has_no_duplicates():
    m = sample_masks(12, 1000, seed=5)
    assert len({r.tobytes() for r in m}) == 1000


@pytest.mark.parametrize("n_features", [1, 3, 6])
def test_exhaustive_enumeration(n_features):
    m = sample_masks(n_features, 500, seed=11)
    assert m.shape == (2 ** n_features, n_features)
    assert len({r.tobytes() for r in m}) == 2 ** n_features
    assert np.all(m[0] == 1)
    assert is_exhaustive(n_features, 500)
    assert not is_exhaustive(n_features, 2 ** n_features - 1)
    # exactly at the boundary as well
    assert sample_masks(n_features, 2 ** n_features, seed=0).shape[0] == 2 ** n_features


def test_exhaustive_can_be_turned_off():
    m = sample_masks(3, 50, seed=0, exhaustive=False)
    assert m.shape == (50, 3)
    assert len({r.tobytes() for r in m}) <= 8


def test_invalid_arguments():
    with pytest.raises(ValueError, match="no features"):
        sample_masks(0, 10, 0)
    with pytest.raises(ValueError, match="num_samples"):
        sample_masks(5, 1, 0)


def test_layout_both():
    lay = MaskLayout(40, 4, "both")
    assert (lay.perturbs_audio, lay.perturbs_lyrics) == (True, True)
    assert lay.n_columns == 44
    np.testing.assert_array_equal(lay.feature_indices(), np.arange(44))
    masks = sample_masks(lay.n_columns, 20, 0)
    a, t = lay.split(masks)
    np.testing.assert_array_equal(a, masks[:, :40])
    np.testing.assert_array_equal(t, masks[:, 40:])


def test_layout_audio():
    lay = MaskLayout(40, 4, "audio")
    assert (lay.perturbs_audio, lay.perturbs_lyrics) == (True, False)
    assert lay.n_columns == 40 and lay.n_lyrics_columns == 0
    np.testing.assert_array_equal(lay.feature_indices(), np.arange(40))
    masks = sample_masks(lay.n_columns, 20, 0)
    a, t = lay.split(masks)
    assert t is None
    np.testing.assert_array_equal(a, masks)


def test_layout_lyrical():
    lay = MaskLayout(40, 4, "lyrical")
    assert (lay.perturbs_audio, lay.perturbs_lyrics) == (False, True)
    assert lay.n_columns == 4 and lay.n_audio_columns == 0
    np.testing.assert_array_equal(lay.feature_indices(), [40, 41, 42, 43])
    masks = sample_masks(lay.n_columns, 20, 0)
    a, t = lay.split(masks)
    assert a is None
    np.testing.assert_array_equal(t, masks)


def test_layout_rejects_unknown_modality():
    with pytest.raises(ValueError, match="modality"):
        MaskLayout(4, 4, "video")
