"""Mask samplers: which coalitions of features the classifier is asked about.

Every sampler is a small injectable strategy: ``sampler(n_features, num_samples, seed)`` returns
``uint8`` masks of shape ``(rows, n_features)`` with

- **row 0 all ones** (the original song);
- **seeded**: the same ``(n_features, num_samples, seed)`` gives the same masks, bit for bit;
- **C order** (row-major): the surrogate's fit on a column-major copy of the same masks (how a
  masks file loads back) can differ in the last bits, and ``explain`` and ``run`` must agree;
- **the prefix property**: the first ``n`` rows of a draw of ``N`` equal the draw of ``n``, so a
  num_samples sweep fits on prefixes of one prediction run. Paired samplers keep pairs together:
  rows ``2i`` and ``2i + 1`` are complements (row 1, the complement of row 0, is all zeros);
  an odd prefix ends with the first half of a pair.

``rows == num_samples`` except when the sampler runs out of distinct masks (samplers that draw
without replacement stop after all ``2**F`` masks).

The size-based samplers (everything but :data:`bernoulli` and :data:`paired`) also put the
**all-zeros mask at row 1**, so ``f(none)``, the base value of the Shapley efficiency
constraint, is always predicted (the prefix property is kept: it is row 1 of every draw).

Every sampler here draws, *given a coalition size* ``k = |z|``, a uniform subset of that size; they
differ in the distribution of sizes (``size_distribution(F)``, over ``k = 0..F``, for the rows past
the fixed ones). The estimators in :mod:`musiclime.core.estimators` use that to reweight.

The samplers (``SAMPLERS``; formulas in each docstring):

==================== ======================================================= ==================
name                 size distribution / pairing                             paper
==================== ======================================================= ==================
``bernoulli``        Binomial(F, 1/2), no pairs (today's default, bit for   Ribeiro et al. 2016
                     bit :func:`musiclime.core.masks.sample_masks`)
``paired``           Binomial(F, 1/2), each mask followed by its complement Covert & Lee 2021
``orthogonal``       uniform rows in randomised orthogonal-array blocks      Plackett & Burman
                     (Hadamard columns, random signs): balanced, orthogonal  1946
``orthogonal_foldover`` as ``orthogonal``, each block followed by its        Box & Wilson 1951
                     complement (a foldover: resolution IV)
``plackett_burman``  as ``orthogonal``, blocks of the fewest rows (a multiple  Plackett & Burman
                     of 4 above F; Paley's Hadamard matrices)                1946; Paley 1933
``plackett_burman_foldover`` as ``orthogonal_foldover``, blocks of the fewest rows
``stratified``       uniform over sizes 1..F-1, sizes scheduled, no pairs    (stratified sampling)
``kernel``           Shapley kernel size distribution, sizes scheduled,      Lundberg & Lee 2017
                     pairs (the KernelSHAP paper's practice)
``leverage``         uniform over sizes 1..F-1 (the leverage scores), sizes  Musco & Witter 2025
                     drawn at random, pairs, without replacement
``leverage_stratified`` as ``leverage`` but sizes scheduled                  (this module)
==================== ======================================================= ==================

"Scheduled" sizes come from a deterministic apportionment (:func:`~.coalition_sizes.size_schedule`): after ``n``
scheduled rows each size class ``k`` holds ``floor`` or ``ceil`` of ``n * q_k`` rows (largest
deficit first), at every prefix. Subsets within a size are drawn without replacement: small size
classes (at most :data:`ENUMERATE_MAX` coalitions) follow a seeded permutation of the class,
large ones are drawn by random keys and redrawn on a repeat; a class that is used up drops out of
the schedule (the estimators reweight by the counts actually drawn).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import comb
from typing import ClassVar, Protocol

import numpy as np

from .coalition_sizes import SIZE_TARGETS, binomial_sizes, size_schedule, target_sizes
from .hadamard import hadamard, smallest_order
from .masks import EXHAUSTIVE_MAX_FEATURES, sample_masks

#: size classes with at most this many coalitions (pairs) are drawn from a seeded permutation of
#: the whole class; larger ones by random keys with a redraw on a repeat
ENUMERATE_MAX = 20000


class Sampler(Protocol):
    """``sampler(n_features, num_samples, seed) -> uint8 masks z (rows, n_features)``, row 0
    all ones (the original), ``z_ij = 1`` keeping feature ``j`` in sample ``i``.

    LIME (Ribeiro, Singh & Guestrin, KDD 2016) draws ``z ~ Uniform({0,1}^F)``; Kernel SHAP
    (Lundberg & Lee, NeurIPS 2017) draws sizes ``|z| ~ pi(|z|) propto (F - 1) / (|z| (F -
    |z|))``. Keep the prefix property (the first ``n`` rows of a larger draw equal the
    ``n``-row draw) so a num_samples sweep predicts once. ``paired`` (each row followed by
    its complement), ``fixed_rows`` (rows every draw starts with) and ``size_distribution``
    (``q(k)``, the probability of a row with ``k`` ones) are optional for a user's sampler:
    they tune the held-out folds and Kernel SHAP's importance weights. ``explainer.sampler``
    names one of :data:`SAMPLERS` or gives a node with ``_target_``; ``MusicLIME(...,
    sampler=obj)`` takes the object."""

    name: str
    paired: bool
    fixed_rows: int  # the rows every draw starts with (row 0 the original; see each sampler)

    def __call__(self, n_features: int, num_samples: int, seed: int) -> np.ndarray: ...

    def size_distribution(self, n_features: int) -> np.ndarray: ...


def draws_uniform_masks(sampler, n_features: int = 12) -> bool:
    """Whether ``sampler``'s rows are uniform on ``{0, 1}^F``: its ``size_distribution`` is
    the binomial one (a sampler without one is taken at its word)."""
    q = getattr(sampler, "size_distribution", None)
    return q is None or bool(np.allclose(q(n_features), binomial_sizes(n_features)))


def _check(n_features: int, num_samples: int) -> None:
    if n_features < 1:
        raise ValueError("there are no features to perturb")
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, got {num_samples}")


# --- the Bernoulli samplers --------------------------------------------------------------------
@dataclass(frozen=True)
class BernoulliSampler:
    """Today's default: every entry Bernoulli(1/2), ``P(z) = 2^-F``; row 0 all ones.

    Bit for bit :func:`musiclime.core.masks.sample_masks` (so for ``F <= 16`` a seeded permutation of
    all masks, without replacement). LIME's own sampler (Ribeiro, Singh & Guestrin, "Why should I
    trust you?", KDD 2016) draws uniformly from ``{0, 1}^F`` as well.
    """

    exhaustive: bool = True
    name: str = "bernoulli"
    paired: bool = False
    fixed_rows: ClassVar[int] = 1  # rows every draw starts with (row 0, the original)

    def __call__(self, n_features: int, num_samples: int, seed: int) -> np.ndarray:
        return sample_masks(int(n_features), int(num_samples), int(seed),
                            exhaustive=self.exhaustive)

    def size_distribution(self, n_features: int) -> np.ndarray:
        return binomial_sizes(n_features)


@dataclass(frozen=True)
class PairedSampler:
    """Antithetic (paired) sampling: ``z_1, 1 - z_1, z_2, 1 - z_2, ...`` with ``z_i`` uniform
    (Bernoulli(1/2) entries), so each row is still uniform, ``P(z) = 2^-F``.

    Row 0 is all ones and row 1 all zeros (the first pair). For ``F <= 16`` the pairs follow a
    seeded permutation of all ``2^(F-1)`` complement pairs (without replacement; all ``2^F``
    masks once ``num_samples >= 2^F``). Paired sampling cancels the even-order part of the
    regression noise (Covert & Lee, "Improving KernelSHAP", AISTATS 2021; for Shapley
    regression with interactions of order <= 2 it is exact once the design has full rank).
    """

    exhaustive: bool = True
    name: str = "paired"
    paired: bool = True
    fixed_rows: ClassVar[int] = 2  # the (all ones, all zeros) pair

    def __call__(self, n_features: int, num_samples: int, seed: int) -> np.ndarray:
        m, n = int(n_features), int(num_samples)
        _check(m, n)
        rng = np.random.Generator(np.random.PCG64(int(seed)))
        n_pairs = (n + 1) // 2
        if self.exhaustive and m <= EXHAUSTIVE_MAX_FEATURES:
            # pair {c, full ^ c} is named by its member with column 0 off (codes below
            # 2^(F-1)); code 0 is the (all ones, all zeros) pair, always first
            others = 1 + rng.permutation((1 << (m - 1)) - 1)[: n_pairs - 1]
            heads = np.concatenate([[0], others]).astype(np.int64)
            bits = ((heads[:, None] >> np.arange(m - 1, -1, -1)) & 1).astype(np.uint8)
            flip = rng.random(len(heads)) < 0.5  # which member of a pair comes first
            bits[flip] = 1 - bits[flip]
            bits[0] = 1
        else:
            bits = (rng.random((n_pairs, m)) < 0.5).astype(np.uint8)
            bits[0] = 1
        out = np.empty((2 * bits.shape[0], m), dtype=np.uint8)
        out[0::2] = bits
        out[1::2] = 1 - bits
        return out[: min(n, out.shape[0])]

    def size_distribution(self, n_features: int) -> np.ndarray:
        return binomial_sizes(n_features)


@dataclass(frozen=True)
class OrthogonalSampler:
    """Randomised orthogonal-array blocks: uniform masks whose columns are exactly balanced
    and pairwise orthogonal within each block of ``N = 2^ceil(log2(F + 1))`` rows
    (``design="sylvester"``), or of the fewest rows a Hadamard matrix allows
    (``design="smallest"``, :func:`musiclime.core.hadamard.smallest_order`: a multiple of 4,
    48 for ``F = 46``, where Sylvester's is 64).

    Row 0 is all ones. The rows after it come in blocks; block ``b`` is a normalised Hadamard
    matrix ``H_N`` (:func:`musiclime.core.hadamard.hadamard`: Sylvester's ``H_1 = [1]``,
    ``H_2N = [[H, H], [H, -H]]`` for powers of two, else Paley's; entries +-1) with

    - ``F`` of its ``N - 1`` non-constant columns, chosen at random without replacement,
    - each chosen column's sign flipped with probability 1/2 (``z = (h * s > 0)``),
    - its rows in a random order,

    all drawn afresh per block. Any ``F <= N - 1`` columns of ``H_N`` form an orthogonal array
    of strength 2 (Plackett & Burman, Biometrika 1946; Hedayat, Sloane & Stufken, *Orthogonal
    Arrays*, 1999): over a whole block every feature is on in exactly half the rows and every
    two features are on together in exactly a quarter. The random flips make every row
    uniform on ``{0, 1}^F`` (``P(z) = 2^-F``), as Bernoulli(1/2) rows are, so a surrogate fitted
    on these rows estimates the same thing as on :data:`bernoulli`'s; the balance removes the
    design's own noise: with ``n`` of the order of ``F`` uniform rows ``X^T X`` is far from
    diagonal and the regression's variance is inflated about ``n / (n - F)`` times (Wishart), a
    whole orthogonal block has ``X^T X = N I / 4`` (on the centred +-1/2 coding).

    ``orthogonal_foldover`` follows every block with its complement (``1 - z``, rows in the
    same order): a foldover design (Box & Wilson, JRSS B 1951), of strength 3 over the pair of
    blocks, so, as with :data:`paired` sampling, the even-order interactions drop out of the
    main effects (exactly for a fit with equal weights on ``z`` and ``1 - z``). Its first block
    is the plain design's, so at ``N`` rows or fewer the two samplers give the same masks.

    ``plackett_burman`` and ``plackett_burman_foldover`` are the same with ``design="smallest"``
    (Plackett & Burman's point: a balanced design needs only the next multiple of 4 above
    ``F`` runs). With the foldover a pair of blocks needs only ``N >= F`` (``[H; -H]`` is
    balanced in all ``N`` columns, the constant one included; it is used only when ``F = N``,
    and is then constant within each single block). On the demo songs (``F = 46-48``) a whole
    foldover pair is 96 rows against Sylvester's 128, so the even-order interactions leave
    the main effects from 97 calls on instead of 129.

    The prefix property holds (blocks are drawn in order from one seeded generator); a prefix
    that ends inside a block holds a random subset of its rows. For ``F > 16`` a row can repeat
    one of an earlier block (as Bernoulli rows can; the predictor deduplicates them). For
    ``F <= 16`` with ``exhaustive`` (the default, as for :data:`bernoulli`) a row drawn before is
    skipped, so blocks after the first are only nearly balanced, and the draw stops after all
    ``2^F`` masks.
    """

    exhaustive: bool = True
    name: str = "orthogonal"
    paired: bool = False  # complements (foldover) are a block apart, not in adjacent rows
    foldover: bool = False  # every block followed by its complement
    #: "sylvester": blocks of 2^k rows; "smallest": of the fewest rows a design can have
    design: str = "sylvester"
    fixed_rows: ClassVar[int] = 1  # row 0, the original

    def __post_init__(self):
        if self.design not in ("sylvester", "smallest"):
            raise ValueError(f"unknown orthogonal design {self.design!r}: use 'sylvester' or "
                             "'smallest'")

    def block_rows(self, n_features: int) -> int:
        """``N``: the smallest power of two above ``F`` (``sylvester``), or the smallest order
        of a Hadamard matrix with room for ``F`` columns (``smallest``: ``>= F + 1``, and
        ``>= F`` with the foldover, whose pair of blocks balances the constant column too)."""
        m = int(n_features)
        if self.design == "sylvester":
            return 1 << int(np.ceil(np.log2(m + 1)))
        return smallest_order(m if self.foldover else m + 1)

    def __call__(self, n_features: int, num_samples: int, seed: int) -> np.ndarray:
        m, n = int(n_features), int(num_samples)
        _check(m, n)
        rng = np.random.Generator(np.random.PCG64(int(seed)))
        size = self.block_rows(m)
        h = hadamard(size)
        unique = self.exhaustive and m <= EXHAUSTIVE_MAX_FEATURES
        n = min(n, 1 << m) if unique else n
        weights = 1 << np.arange(m - 1, -1, -1, dtype=np.int64)
        seen = {(1 << m) - 1}  # row 0's code
        out = [np.ones((1, m), dtype=np.uint8)]
        rows = 1
        while rows < n:
            cols = (1 + rng.choice(size - 1, m, replace=False) if m < size
                    else rng.permutation(size))  # F = N: the foldover's constant column too
            flip = rng.random(m) < 0.5
            block = ((h[rng.permutation(size)][:, cols] > 0) ^ flip).astype(np.uint8)
            for part in (block, 1 - block) if self.foldover else (block,):
                if unique:
                    keep = []
                    for i, code in enumerate((part @ weights).tolist()):
                        if code not in seen:
                            seen.add(code)
                            keep.append(i)
                    part = part[keep]
                out.append(part)
                rows += part.shape[0]
        # C order, as every sampler returns: a column-major copy fits to other last bits
        return np.ascontiguousarray(np.concatenate(out)[:n])

    def size_distribution(self, n_features: int) -> np.ndarray:
        return binomial_sizes(n_features)


# --- size-based samplers -----------------------------------------------------------------------
@dataclass(frozen=True)
class SizeSampler:
    """Coalitions by size: row 0 all ones, row 1 all zeros, then for each further row (or pair)
    a size ``k`` with ``P(k) = q_k`` and a uniform subset of that size, ``P(z) = q_|z| / C(F,|z|)``.

    ``target``: ``"uniform"`` (``q_k = 1/(F-1)``, the leverage scores of the Shapley regression,
    Musco & Witter 2025) or ``"shapley"`` (``q_k ∝ (F-1)/(k(F-k))``, coalitions in proportion to
    the Shapley kernel, Lundberg & Lee 2017). ``paired``: each subset is followed by its
    complement (sizes ``k`` and ``F-k``; a pair is scheduled with the pair class's probability
    ``q_k + q_{F-k}``). ``schedule``: ``"stratified"`` sizes by :func:`size_schedule` (each
    class within one row of its quota at every prefix) or ``"random"`` (i.i.d. draws from
    ``q``). Subsets are drawn without replacement (see the module docstring), so the draw stops
    after all ``2^F`` masks.
    """

    name: str
    target: str = "uniform"
    paired: bool = False
    schedule: str = "stratified"
    fixed_rows: ClassVar[int] = 2  # all ones, then all zeros

    def __post_init__(self):
        if self.target not in SIZE_TARGETS:
            raise ValueError(f"target must be one of {SIZE_TARGETS}, got {self.target!r}")
        if self.schedule not in ("stratified", "random"):
            raise ValueError(f"schedule must be stratified or random, got {self.schedule!r}")

    def size_distribution(self, n_features: int) -> np.ndarray:
        return target_sizes(self.target, n_features)

    def class_distribution(self, n_features: int) -> np.ndarray:
        """Over the classes the schedule picks: sizes, or for pairs ``min(k, F-k)``."""
        q = self.size_distribution(n_features)
        if not self.paired:
            return q
        m = int(n_features)
        out = np.zeros(m + 1)
        for k in range(1, m):
            out[min(k, m - k)] += q[k]
        return out

    def class_capacity(self, n_features: int) -> np.ndarray:
        """How many distinct units (masks, or complement pairs) each class holds."""
        m = int(n_features)
        cap = np.array([comb(m, k) for k in range(m + 1)], dtype=object)
        if self.paired and m % 2 == 0:
            cap[m // 2] = comb(m, m // 2) // 2
        return cap

    def __call__(self, n_features: int, num_samples: int, seed: int) -> np.ndarray:
        m, n = int(n_features), int(num_samples)
        _check(m, n)
        rows: list[np.ndarray] = [np.ones(m, np.uint8), np.zeros(m, np.uint8)]
        if m < 2 or n <= 2:
            return np.stack(rows)[:n]
        q = self.class_distribution(m)
        cap = self.class_capacity(m)
        available = q > 0
        counts = np.zeros(m + 1)
        drawn: set[int] = set()
        classes: dict[int, _ClassDraw] = {}
        main = np.random.Generator(np.random.PCG64([int(seed), 0]))
        scheduled = 0
        full = (1 << m) - 1
        while len(rows) < n and available.any():
            if self.schedule == "stratified":
                k = size_schedule(q, scheduled, counts, available)
            else:
                p = np.where(available, q, 0.0)
                k = int(np.searchsorted(np.cumsum(p / p.sum()), main.random(), side="right"))
                if k > m or not available[k]:  # rounding at the top end of the cumsum
                    k = int(np.flatnonzero(available)[-1])
            draw = classes.get(k)
            if draw is None:
                draw = classes[k] = _ClassDraw.start(m, k, self.paired, int(seed), cap[k])
            code = draw.next(main, drawn)
            counts[k] += 1
            scheduled += 1
            if draw.used >= cap[k]:
                available[k] = False
            bits = _bits(code, m)
            if self.paired:
                if main.random() < 0.5:  # orientation: which of the pair comes first
                    code, bits = full ^ code, 1 - bits
                drawn.update((code, full ^ code))
                rows.extend([bits, 1 - bits])
            else:
                drawn.add(code)
                rows.append(bits)
        return np.stack(rows)[:n].astype(np.uint8)


def _bits(code: int, m: int) -> np.ndarray:
    return np.array([(code >> j) & 1 for j in range(m)], dtype=np.uint8)


@dataclass
class _ClassDraw:
    """Draws without replacement from one size class (bit ``j`` of a code = column ``j``)."""

    m: int
    k: int
    paired: bool
    order: list[int] | None  # a seeded permutation of the class, for small classes
    used: int = 0

    @classmethod
    def start(cls, m: int, k: int, paired: bool, seed: int, capacity: int) -> _ClassDraw:
        if capacity > ENUMERATE_MAX:
            return cls(m, k, paired, None)
        codes = [sum(1 << j for j in c) for c in itertools.combinations(range(m), k)]
        if paired and 2 * k == m:  # one member per pair: the one holding column 0
            codes = [c for c in codes if c & 1]
        rng = np.random.Generator(np.random.PCG64([seed, 1, k]))
        return cls(m, k, paired, [codes[i] for i in rng.permutation(len(codes))])

    def next(self, rng: np.random.Generator, drawn: set[int]) -> int:
        if self.order is not None:
            code = self.order[self.used]
        else:
            while True:  # random keys: the k smallest of m uniforms are a uniform k-subset
                idx = np.argpartition(rng.random(self.m), self.k)[: self.k]
                code = sum(1 << int(j) for j in idx)
                if code not in drawn:
                    break
        self.used += 1
        return code


#: today's default sampler (bit-identical to :func:`musiclime.core.masks.sample_masks`)
bernoulli = BernoulliSampler()
#: antithetic Bernoulli pairs
paired = PairedSampler()
#: uniform rows in randomised orthogonal-array blocks
orthogonal = OrthogonalSampler()
#: the same, each block followed by its complement (a foldover design)
orthogonal_foldover = OrthogonalSampler(name="orthogonal_foldover", foldover=True)
#: the orthogonal samplers with the smallest blocks (Plackett-Burman orders: 48 rows for F = 46)
plackett_burman = OrthogonalSampler(name="plackett_burman", design="smallest")
plackett_burman_foldover = OrthogonalSampler(name="plackett_burman_foldover", foldover=True,
                                             design="smallest")
#: stratified by size, uniform over sizes, unpaired
stratified = SizeSampler("stratified", target="uniform", paired=False, schedule="stratified")
#: the KernelSHAP paper's practice: sizes in proportion to the Shapley kernel, paired
kernel = SizeSampler("kernel", target="shapley", paired=True, schedule="stratified")
#: Leverage SHAP: size uniform at random, then a uniform subset, paired, without replacement
leverage = SizeSampler("leverage", target="uniform", paired=True, schedule="random")
#: Leverage SHAP's distribution with scheduled sizes (stratified), paired
leverage_stratified = SizeSampler("leverage_stratified", target="uniform", paired=True,
                                  schedule="stratified")

SAMPLERS: dict[str, Sampler] = {s.name: s for s in (bernoulli, paired, orthogonal, orthogonal_foldover,
                                                    plackett_burman, plackett_burman_foldover,
                                                    stratified, kernel,
                                                    leverage, leverage_stratified)}


def get_sampler(name: str) -> Sampler:
    """The sampler called ``name`` (one of :data:`SAMPLERS`)."""
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; samplers are {sorted(SAMPLERS)}") from None
