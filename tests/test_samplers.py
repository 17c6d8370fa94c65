"""Mask samplers: prefix property, seeding, row 0/1, pairs, size stratification, no repeats."""

from __future__ import annotations

import numpy as np
import pytest

from musiclime.core import samplers
from musiclime.core.coalition_sizes import binomial_sizes, shapley_sizes, uniform_sizes
from musiclime.core.hadamard import hadamard, smallest_order
from musiclime.core.masks import sample_masks
from musiclime.core.samplers import SAMPLERS, SizeSampler, get_sampler

ALL = sorted(SAMPLERS)
SIZE_BASED = [n for n in ALL if isinstance(SAMPLERS[n], SizeSampler)]
PAIRED = [n for n in ALL if SAMPLERS[n].paired]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("n_features", [1, 2, 3, 8, 20, 45])
def test_prefix_property_every_sampler_and_seed(name, n_features):
    sampler = SAMPLERS[name]
    for seed in (0, 1, 7):
        big = sampler(n_features, 600, seed)
        assert big.dtype == np.uint8 and big.shape[1] == n_features
        assert set(np.unique(big)) <= {0, 1}
        assert (big[0] == 1).all()
        assert big.flags.c_contiguous  # a masks file loads back C-ordered; fits must match
        for n in (2, 3, 17, 64, 301, 600):
            small = sampler(n_features, n, seed)
            assert small.shape[0] == min(n, big.shape[0])
            np.testing.assert_array_equal(small, big[: small.shape[0]])


@pytest.mark.parametrize("name", ALL)
def test_seeded(name):
    sampler = SAMPLERS[name]
    np.testing.assert_array_equal(sampler(45, 200, 3), sampler(45, 200, 3))
    assert not np.array_equal(sampler(45, 200, 3), sampler(45, 200, 4))


def test_bernoulli_is_todays_sampler_bit_for_bit():
    for f, n, seed in ((8, 100, 0), (8, 300, 2), (16, 50, 1), (17, 50, 1), (45, 1000, 5)):
        np.testing.assert_array_equal(samplers.bernoulli(f, n, seed), sample_masks(f, n, seed))
    np.testing.assert_array_equal(samplers.BernoulliSampler(exhaustive=False)(8, 100, 0),
                                  sample_masks(8, 100, 0, exhaustive=False))


@pytest.mark.parametrize("name", PAIRED)
@pytest.mark.parametrize("n_features", [3, 8, 45])
def test_pairs_are_adjacent_complements(name, n_features):
    masks = SAMPLERS[name](n_features, 501, 0)
    assert (masks[1] == 0).all()
    even = masks[0:len(masks) - 1:2]
    odd = masks[1::2]
    np.testing.assert_array_equal(odd, 1 - even[: len(odd)])


@pytest.mark.parametrize("name", SIZE_BASED)
def test_size_samplers_predict_the_empty_coalition_at_row_1(name):
    for f in (2, 8, 45):
        assert (SAMPLERS[name](f, 10, 0)[1] == 0).all()


@pytest.mark.parametrize("name", [n for n in ALL if n != "bernoulli"] + ["bernoulli"])
def test_no_repeats_and_exhaustive_for_few_features(name):
    sampler = SAMPLERS[name]
    masks = sampler(8, 1000, 3)
    assert masks.shape == (256, 8)  # all 2^8 masks, each once, then the draw stops
    assert np.unique(masks, axis=0).shape[0] == 256
    if name != "bernoulli":  # F = 45: the with-replacement Bernoulli draw may (rarely) repeat
        big = sampler(45, 4096, 0)
        assert np.unique(big, axis=0).shape[0] == 4096


def test_stratified_size_counts_exact():
    f = 45
    masks = samplers.stratified(f, 2 + 3 * (f - 1), 0)
    sizes = masks[2:].sum(axis=1)
    # every size 1..F-1 exactly 3 times, and in each block of F-1 rows exactly once
    np.testing.assert_array_equal(np.bincount(sizes, minlength=f + 1)[1:f], np.full(f - 1, 3))
    for b in range(3):
        block = sizes[b * (f - 1):(b + 1) * (f - 1)]
        np.testing.assert_array_equal(np.sort(block), np.arange(1, f))


@pytest.mark.parametrize("name", ["stratified", "kernel", "leverage_stratified"])
def test_scheduled_classes_stay_within_one_of_their_quota_at_every_prefix(name):
    sampler = SAMPLERS[name]
    f = 45
    masks = sampler(f, 1200, 1)
    sizes = masks[2:].sum(axis=1)
    classes = sizes if not sampler.paired else np.minimum(sizes, f - sizes)[::2]
    q = sampler.class_distribution(f)
    capacity = np.array(sampler.class_capacity(f), dtype=np.float64)
    counts = np.zeros(f + 1)
    for n, c in enumerate(classes, start=1):
        counts[c] += 1
        if (counts >= capacity).any():  # a used-up class leaves the schedule (kernel: size 1)
            break
        assert np.abs(counts - n * q).max() < 1.0
    assert n > 150


def test_leverage_sizes_are_uniform_pair_classes():
    f = 45
    masks = samplers.leverage(f, 4096, 0)
    sizes = masks[2:].sum(axis=1)
    # pairs: sizes k and F - k equally often
    counts = np.bincount(sizes, minlength=f + 1)
    np.testing.assert_array_equal(counts[1:f], counts[1:f][::-1])
    # 2047 pairs over 22 classes (93 expected each); class 1 holds only 45 pairs
    pair_class = np.bincount(np.minimum(sizes, f - sizes)[::2], minlength=23)[1:]
    assert pair_class[0] == 45
    assert pair_class[1:].min() > 60 and pair_class[1:].max() < 130


def test_size_distributions():
    f = 10
    for q in (binomial_sizes(f), uniform_sizes(f), shapley_sizes(f)):
        assert q.shape == (f + 1,) and abs(q.sum() - 1) < 1e-12
    np.testing.assert_allclose(uniform_sizes(f)[1:f], 1 / 9)
    k = np.arange(1, f)
    expected = (f - 1) / (k * (f - k))
    np.testing.assert_allclose(shapley_sizes(f)[1:f], expected / expected.sum())
    assert samplers.kernel.size_distribution(f) is not None
    pc = samplers.kernel.class_distribution(f)
    np.testing.assert_allclose(pc[1:5], 2 * shapley_sizes(f)[1:5])
    assert pc[5] == shapley_sizes(f)[5] and pc[6:].sum() == 0


def test_row_count_and_errors():
    assert samplers.paired(45, 7, 0).shape == (7, 45)  # an odd prefix: the last pair is cut
    assert samplers.leverage(1, 50, 0).shape == (2, 1)  # only all-ones and all-zeros exist
    with pytest.raises(ValueError):
        samplers.stratified(0, 10, 0)
    with pytest.raises(ValueError):
        samplers.paired(5, 1, 0)
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler("nope")
    assert get_sampler("leverage") is samplers.leverage
    with pytest.raises(ValueError):
        SizeSampler("x", target="nope")


# --- orthogonal-array samplers ------------------------------------------------------------------
@pytest.mark.parametrize("n_features", [1, 3, 20, 45, 63, 64])
def test_orthogonal_blocks_are_balanced_and_pairwise_orthogonal(n_features):
    size = samplers.orthogonal.block_rows(n_features)
    assert size > n_features and size & (size - 1) == 0 and size // 2 <= n_features
    masks = samplers.OrthogonalSampler(exhaustive=False)(n_features, 1 + 3 * size, 5)
    for b in range(3):
        block = masks[1 + b * size: 1 + (b + 1) * size].astype(np.int64)
        assert (block.mean(axis=0) == 0.5).all()  # every feature on in exactly half the rows
        x = 2 * block - 1
        np.testing.assert_array_equal(x.T @ x, size * np.eye(n_features, dtype=np.int64))
    # the blocks differ (columns, signs and row order are drawn afresh)
    assert n_features < 3 or not np.array_equal(masks[1:1 + size], masks[1 + size:1 + 2 * size])


def test_orthogonal_foldover_follows_each_block_with_its_complement():
    f = 45
    size = samplers.orthogonal.block_rows(f)
    plain = samplers.orthogonal(f, 1 + 2 * size, 3)
    fold = samplers.orthogonal_foldover(f, 1 + 4 * size, 3)
    np.testing.assert_array_equal(fold[:1 + size], plain[:1 + size])  # same first block
    np.testing.assert_array_equal(fold[1 + size:1 + 2 * size], 1 - fold[1:1 + size])
    np.testing.assert_array_equal(fold[1 + 2 * size:1 + 3 * size], plain[1 + size:])
    np.testing.assert_array_equal(fold[1 + 3 * size:], 1 - fold[1 + 2 * size:1 + 3 * size])


def test_hadamard_matrices_of_every_order_the_constructions_cover():
    covered = [n for n in range(1, 201) if hadamard(n) is not None]
    assert [n for n in range(4, 201, 4) if n not in covered] == [52, 92, 100, 116, 156, 172,
                                                                 184, 188]
    assert set(covered) - set(range(4, 201, 4)) == {1, 2}
    sylvester = np.ones((1, 1), dtype=np.int64)
    for n in covered:
        h = hadamard(n).astype(np.int64)
        np.testing.assert_array_equal(h @ h.T, n * np.eye(n, dtype=np.int64))
        assert (h[0] == 1).all() and (h[:, 0] == 1).all()  # normalised
        if n & (n - 1) == 0:  # a power of two is Sylvester's, as the orthogonal sampler's was
            while sylvester.shape[0] < n:
                sylvester = np.block([[sylvester, sylvester], [sylvester, -sylvester]])
            np.testing.assert_array_equal(h, sylvester)
    assert [smallest_order(f) for f in (3, 45, 47, 48, 49, 52)] == [4, 48, 48, 48, 56, 56]


@pytest.mark.parametrize("n_features", [20, 46, 47, 48])
def test_plackett_burman_blocks_are_the_smallest_balanced_ones(n_features):
    plain, fold = samplers.plackett_burman, samplers.plackett_burman_foldover
    size = plain.block_rows(n_features)
    assert size == smallest_order(n_features + 1) and size % 4 == 0
    assert size < samplers.orthogonal.block_rows(n_features)
    masks = plain(n_features, 1 + 2 * size, 4)
    for b in range(2):
        x = 2 * masks[1 + b * size: 1 + (b + 1) * size].astype(np.int64) - 1
        np.testing.assert_array_equal(x.T @ x, size * np.eye(n_features, dtype=np.int64))
        assert (x.sum(axis=0) == 0).all()
    # the foldover: a pair of blocks of N >= F rows is balanced, orthogonal and of strength 3
    # (every triple of columns sums to 0 over the pair), F = N included (demo songs: F = 48)
    n = fold.block_rows(n_features)
    assert n == smallest_order(n_features) and (n_features != 48 or n == 48)
    pair = fold(n_features, 1 + 2 * n, 4)
    np.testing.assert_array_equal(pair[1 + n:], 1 - pair[1:1 + n])
    x = 2 * pair[1:].astype(np.int64) - 1
    np.testing.assert_array_equal(x.T @ x, 2 * n * np.eye(n_features, dtype=np.int64))
    assert not np.einsum("ri,rj,rk->ijk", x, x, x).any()


def test_plackett_burman_equals_orthogonal_where_the_smallest_block_is_a_power_of_two():
    # F = 31: both use 32 rows, Sylvester's matrix, the same draws
    np.testing.assert_array_equal(samplers.plackett_burman(31, 200, 7),
                                  samplers.orthogonal(31, 200, 7))
    assert get_sampler("plackett_burman_foldover") is samplers.plackett_burman_foldover
    with pytest.raises(ValueError, match="unknown orthogonal design 'paley'"):
        samplers.OrthogonalSampler(design="paley")


def test_orthogonal_rows_are_uniform_like_bernoulli_rows():
    """Each row, over seeds, is uniform on {0,1}^F: entries 1/2, independent in pairs, sizes
    Binomial(F, 1/2)."""
    f, seeds = 12, 4000
    rows = np.stack([samplers.orthogonal(f, 20, s)[7] for s in range(seeds)]).astype(float)
    assert np.abs(rows.mean(axis=0) - 0.5).max() < 0.04
    corr = np.corrcoef(rows.T)
    assert np.abs(corr[np.triu_indices(f, 1)]).max() < 0.08
    sizes = np.bincount(rows.sum(axis=1).astype(int), minlength=f + 1) / seeds
    assert np.abs(sizes - binomial_sizes(f)).max() < 0.03
