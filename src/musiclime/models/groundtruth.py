"""White-box "classifiers" with exact attributions: games on masks with closed-form Shapley values.

A :class:`GroundTruthGame` is a function of the binary mask ``z`` (``(rows, F)``, audio columns
first, then lyric lines, as in :class:`musiclime.core.masks.MaskLayout`)::

    v(z) = bias + sum_j a_j z_j + sum_g gain_g [sum_{j in S_g} z_j >= t_g]

a linear part plus *threshold groups*: group ``g`` pays ``gain_g`` once at least ``t_g`` of its
members ``S_g`` are on. ``t_g = |S_g|`` is an AND (a stem-segment that matters only together with a
lyric line), ``t_g = 1`` a saturating OR (any one of a few segments is enough; more add nothing).

Exact Shapley values (Shapley 1953; linearity, symmetry, dummy and efficiency)::

    phi_j = a_j + sum_{g : j in S_g} gain_g / |S_g|

because a threshold group is a symmetric game over its members worth ``gain_g`` when all are on
and 0 when none is: every member gets an equal share, non-members nothing. For the additive family
this is also the exact (unregularised) LIME weight: a linear function is its own best linear fit
under any kernel. :func:`exact_shapley` checks the closed form by enumeration for ``F <= 16``.

The families (:data:`FAMILIES`, one seeded constructor each, over ``n_audio`` stem-segments and
``n_lyrics`` lyric lines):

- ``additive``: ``v = bias + z . a``; a few strong, distinct effects, the rest small.
- ``interaction``: ANDs of one stem-segment and one lyric line (Shapley splits each gain
  equally), plus a weak linear part.
- ``saturating_or``: OR groups of adjacent segments of one stem, and one "at least two of"
  group, plus a weak linear part (interactions of every order).
- ``many_small``: every feature has a small effect, many small pairwise ANDs, and the top effects
  are only moderately larger.

Each constructor redraws until the exact top-``k`` (``k = 5``) is separated from the rest by a
margin (the ``k``-th value at least ``1 + margin`` times the next), so "top-5 stable" is
well defined. Values are kept around [0, 1] (a probability-like output for one label).

:class:`GameClassifier` runs a game as a real classifier on a real song: it reads the mask back
from the composed audio (least squares on each segment's stem waveforms) and the lyrics text
(which lines are present), then returns ``[v, 1 - v]`` clipped to [0, 1].
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

STEMS = ("vocals", "drums", "bass", "other")
TOP_K = 5


@dataclass(frozen=True)
class ThresholdGroup:
    """``gain * [sum_{j in members} z_j >= threshold]``."""

    members: tuple[int, ...]
    threshold: int
    gain: float

    def __post_init__(self):
        if not 1 <= self.threshold <= len(self.members):
            raise ValueError(f"threshold {self.threshold} must lie in 1..{len(self.members)}")
        if len(set(self.members)) != len(self.members):
            raise ValueError("group members repeat")


@dataclass
class GroundTruthGame:
    """``v(z) = bias + z . coef + sum_g gain_g [|z & S_g| >= t_g]`` (see the module docstring)."""

    coef: np.ndarray  # (F,)
    bias: float = 0.0
    groups: list[ThresholdGroup] = field(default_factory=list)
    family: str = "custom"
    names: list[str] | None = None
    n_audio: int | None = None

    def __post_init__(self):
        self.coef = np.asarray(self.coef, dtype=np.float64)
        for g in self.groups:
            if max(g.members) >= self.n_features or min(g.members) < 0:
                raise ValueError(f"group members {g.members} out of range for "
                                 f"{self.n_features} features")

    @property
    def n_features(self) -> int:
        return int(self.coef.size)

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        z = np.asarray(masks, dtype=np.float64)
        if z.ndim == 1:
            z = z[None, :]
        if z.shape[1] != self.n_features:
            raise ValueError(f"masks have {z.shape[1]} columns, the game {self.n_features}")
        v = self.bias + z @ self.coef
        for g in self.groups:
            v = v + g.gain * (z[:, list(g.members)].sum(axis=1) >= g.threshold)
        return v

    def shapley(self) -> np.ndarray:
        """Exact Shapley values ``phi_j = a_j + sum_{g ∋ j} gain_g / |S_g|``."""
        phi = self.coef.copy()
        for g in self.groups:
            phi[list(g.members)] += g.gain / len(g.members)
        return phi

    @property
    def base_value(self) -> float:
        """``phi_0 = v(none)``."""
        return float(self(np.zeros((1, self.n_features)))[0])

    def top_k(self, k: int = TOP_K) -> np.ndarray:
        """Columns of the ``k`` largest exact Shapley values (signed, descending)."""
        return np.argsort(-self.shapley(), kind="stable")[:k]

    def separation(self, k: int = TOP_K) -> float:
        """``phi_(k) / phi_(k+1) - 1`` of the sorted exact values: how clearly the top-``k``
        stands out (``inf`` when the ``k+1``-th is <= 0)."""
        s = np.sort(self.shapley())[::-1]
        if s.size <= k:
            return float("inf")
        return float(s[k - 1] / s[k] - 1.0) if s[k] > 0 else float("inf")


def lime_coefficients(game: GroundTruthGame, kernel, distance,
                      size_distribution: np.ndarray) -> tuple[float, np.ndarray]:
    """The exact infinite-sample LIME surrogate of ``game``: ``(intercept, weights)`` of

        min_{b, beta}  E_z[ w(z) (v(z) - b - z . beta)^2 ],   w = kernel(distance(z)),

    for masks ``z`` of size ``k ~ size_distribution`` (``q_k``, ``k = 0..F``; e.g.
    :func:`musiclime.core.coalition_sizes.binomial_sizes` for Bernoulli(1/2) masks) and, given
    the size, a uniform subset: what :func:`musiclime.core.surrogate.fit_ridge` converges to as
    the samples grow (its penalty ``alpha ||beta||^2`` stays fixed while the data term grows).
    ``distance`` must depend on the size only (cosine distance to the all-ones row does).

    Exact for every ``F``: the normal equations need ``E[w z_i z_j]``, ``E[w z_j v]``, which
    given the size are binomial coefficient ratios and, for a threshold group ``S`` with
    threshold ``t``, hypergeometric tails, ``P(|z & S| >= t | |z| = k)``."""
    from scipy.stats import hypergeom

    m = game.n_features
    q = np.asarray(size_distribution, dtype=np.float64)
    k = np.arange(m + 1)
    # one mask per size, all ones first: the distance is to the first row (the original)
    by_size = (np.arange(m)[None, :] < k[::-1, None]).astype(np.float64)
    w = np.asarray(kernel(distance(by_size)), dtype=np.float64)[::-1]
    om = q * w  # the mass of size k in the weighted normal equations
    on = k / m  # P(z_j = 1 | k)
    both = k * (k - 1) / (m * (m - 1)) if m > 1 else np.zeros(m + 1)  # P(z_i = z_j = 1 | k)
    gram = np.empty((m + 1, m + 1))
    gram[0, 0] = om.sum()
    gram[0, 1:] = gram[1:, 0] = om @ on
    gram[1:, 1:] = om @ both
    gram[np.arange(1, m + 1), np.arange(1, m + 1)] = om @ on
    rhs = game.bias * gram[0].copy()
    rhs += gram[:, 1:] @ game.coef  # the linear part: E[w x z] . a
    for g in game.groups:
        size = len(g.members)
        member = np.zeros(m, dtype=bool)
        member[list(g.members)] = True
        rhs[0] += g.gain * (om @ hypergeom(m, size, k).sf(g.threshold - 1))
        if m > 1:  # given z_j = 1, the other k - 1 are a uniform subset of the other F - 1
            inside = hypergeom(m - 1, size - 1, np.maximum(k - 1, 0)).sf(g.threshold - 2)
            outside = hypergeom(m - 1, size, np.maximum(k - 1, 0)).sf(g.threshold - 1)
            rhs[1:] += g.gain * np.where(member, om @ (on * inside), om @ (on * outside))
    theta = np.linalg.solve(gram, rhs)
    return float(theta[0]), theta[1:]


def exact_shapley(game, n_features: int) -> np.ndarray:
    """Shapley values of any ``game(masks) -> values`` by enumerating all ``2^F`` coalitions
    (``F <= 16``): ``phi_j = sum_{S not ∋ j} |S|! (F-|S|-1)! / F! (v(S ∪ j) - v(S))``."""
    m = int(n_features)
    if m > 16:
        raise ValueError("exact enumeration is for F <= 16")
    codes = np.arange(1 << m, dtype=np.int64)
    z = ((codes[:, None] >> np.arange(m)) & 1).astype(np.uint8)
    v = np.asarray(game(z), dtype=np.float64)
    sizes = z.sum(axis=1)
    fact = [float(np.prod(np.arange(1, i + 1))) for i in range(m + 1)]
    table = np.array([fact[k] * fact[m - k - 1] / fact[m] for k in range(m)])
    phi = np.zeros(m)
    for j in range(m):
        without = codes[(codes >> j) & 1 == 0]
        phi[j] = np.sum(table[sizes[without]] * (v[without | (1 << j)] - v[without]))
    return phi


# --- names -------------------------------------------------------------------------------------
def feature_names(n_audio: int, n_lyrics: int, stems: Sequence[str] = STEMS) -> list[str]:
    """``vocals_T0, drums_T0, .. other_T9`` (segment-major, as
    :meth:`musiclime.core.factorization.AudioFactorization.component_names`) then ``line_0 ..``;
    ``n_audio`` must be a multiple of ``len(stems)``."""
    if n_audio % len(stems):
        raise ValueError(f"{n_audio} audio features do not split over {len(stems)} stems")
    segments = n_audio // len(stems)
    audio = [f"{s}_T{t}" for t in range(segments) for s in stems]
    return audio + [f"line_{i}" for i in range(n_lyrics)]


def _segments(n_audio: int, n_stems: int = len(STEMS)) -> int:
    return n_audio // n_stems


def _audio_index(stem: int, segment: int, n_stems: int = len(STEMS)) -> int:
    return segment * n_stems + stem


# --- the families ------------------------------------------------------------------------------
def _finish(coef, groups, bias, family, n_audio, n_lyrics) -> GroundTruthGame:
    return GroundTruthGame(coef=coef, bias=bias, groups=groups, family=family,
                           names=feature_names(n_audio, n_lyrics), n_audio=n_audio)


def _separated(build, rng: np.random.Generator, margin: float, tries: int = 200):
    for _ in range(tries):
        game = build(rng)
        if game.separation() >= margin:
            return game
    raise RuntimeError("could not draw a game whose top-5 is separated; lower the margin")


def additive_game(seed: int, n_audio: int = 40, n_lyrics: int = 5,
                  margin: float = 0.25) -> GroundTruthGame:
    """Six strong effects (0.04..0.12, distinct; mixed over audio and lyrics), the rest
    ``N(0, 0.01^2)``. ``phi = a``."""
    m = n_audio + n_lyrics

    def build(rng):
        coef = rng.normal(0.0, 0.01, m)
        strong = rng.choice(m, 6, replace=False)
        coef[strong] = np.sort(rng.uniform(0.04, 0.12, 6))[::-1] * rng.choice([1, 1, 1, -1], 6)
        coef[strong[:5]] = np.abs(coef[strong[:5]])
        return _finish(coef, [], 0.3, "additive", n_audio, n_lyrics)

    return _separated(build, np.random.default_rng([seed, 1]), margin)


def interaction_game(seed: int, n_audio: int = 40, n_lyrics: int = 5,
                     margin: float = 0.25) -> GroundTruthGame:
    """Three ANDs of a stem-segment and a lyric line (gains 0.1..0.3, each member gets half),
    one strong linear effect, weak linear rest ``N(0, 0.005^2)``."""
    m = n_audio + n_lyrics

    def build(rng):
        coef = rng.normal(0.0, 0.005, m)
        lines = rng.choice(n_lyrics, min(3, n_lyrics), replace=False)
        audio = rng.choice(n_audio, len(lines) + 1, replace=False)
        gains = np.sort(rng.uniform(0.1, 0.3, len(lines)))[::-1]
        groups = [ThresholdGroup((int(a), n_audio + int(t)), 2, float(g))
                  for a, t, g in zip(audio, lines, gains, strict=False)]
        coef[audio[-1]] = rng.uniform(0.04, 0.12)
        return _finish(coef, groups, 0.2, "interaction", n_audio, n_lyrics)

    return _separated(build, np.random.default_rng([seed, 2]), margin)


def saturating_or_game(seed: int, n_audio: int = 40, n_lyrics: int = 5,
                       margin: float = 0.15) -> GroundTruthGame:
    """Six ORs (fewer for few segments) over 2-4 adjacent segments of one stem (gains 0.06..0.3: any one segment is
    enough, more add nothing), one "at least 2 of 3 lines" group (gain 0.05..0.15), three
    linear effects (0.02..0.06), weak linear rest ``N(0, 0.005^2)``: interactions of every
    order, and many features with comparable values."""
    m = n_audio + n_lyrics
    segs = _segments(n_audio)
    if segs < 2:
        raise ValueError("saturating_or needs at least 2 segments per stem")
    n_or = min(6, n_audio // 4)

    def build(rng):
        coef = rng.normal(0.0, 0.005, m)
        groups = []
        used: set[int] = set()
        for gain in np.sort(rng.uniform(0.06, 0.3, n_or))[::-1]:
            for _ in range(1000):
                stem = int(rng.integers(len(STEMS)))
                width = int(rng.integers(2, min(4, segs) + 1))
                start = int(rng.integers(0, segs - width + 1))
                members = tuple(_audio_index(stem, start + i) for i in range(width))
                if not used.intersection(members):
                    break
            else:
                continue  # no room left for another group
            used.update(members)
            groups.append(ThresholdGroup(members, 1, float(gain)))
        if n_lyrics >= 3:
            lines = rng.choice(n_lyrics, 3, replace=False)
            groups.append(ThresholdGroup(tuple(int(n_audio + t) for t in lines), 2,
                                         float(rng.uniform(0.05, 0.15))))
        free = np.setdiff1d(np.arange(n_audio), list(used))
        lin = rng.choice(free, 3, replace=False)
        coef[lin] = rng.uniform(0.02, 0.06, 3)
        return _finish(coef, groups, 0.05, "saturating_or", n_audio, n_lyrics)

    return _separated(build, np.random.default_rng([seed, 3]), margin)


def many_small_game(seed: int, n_audio: int = 40, n_lyrics: int = 5,
                    margin: float = 0.15) -> GroundTruthGame:
    """Every feature ``N(0, 0.01^2)``, five effects of 0.02..0.04 on top, and many small
    interactions of order 2 and 3: 40 ANDs of two features, 20 "2 of 3" groups and 20 ORs of
    three, gains ``N(0, 0.015^2)``: the top-5 is small against the rest."""
    m = n_audio + n_lyrics

    def build(rng):
        coef = rng.normal(0.0, 0.01, m)
        top = rng.choice(m, 5, replace=False)
        coef[top] = rng.uniform(0.02, 0.04, 5)
        groups = []
        for size, threshold, count in ((2, 2, 40), (3, 2, 20), (3, 1, 20)):
            for _ in range(count):
                members = tuple(sorted(int(x) for x in rng.choice(m, size, replace=False)))
                groups.append(ThresholdGroup(members, threshold,
                                             float(rng.normal(0.0, 0.015))))
        return _finish(coef, groups, 0.4, "many_small", n_audio, n_lyrics)

    return _separated(build, np.random.default_rng([seed, 4]), margin)


FAMILIES = {"additive": additive_game, "interaction": interaction_game,
            "saturating_or": saturating_or_game, "many_small": many_small_game}


def make_game(family: str, seed: int, n_audio: int = 40, n_lyrics: int = 5) -> GroundTruthGame:
    """The ``family`` game drawn with ``seed`` (see :data:`FAMILIES`)."""
    try:
        build = FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown family {family!r}; families are {sorted(FAMILIES)}") from None
    return build(seed, n_audio, n_lyrics)


# --- the game as a classifier on a real song ---------------------------------------------------
class GameClassifier:
    """A :class:`musiclime.core.classifier.Classifier` whose ``P(class 0)`` is ``game(z)`` for the mask
    ``z`` that composed its input, read back from the input itself.

    Audio: a composed waveform is ``base - sum_{j off} c_j`` (``c_j``: stem ``s`` in segment
    ``t``; :meth:`musiclime.core.factorization.AudioFactorization.compose`), so within each segment
    the stems that are off are the least-squares solution of ``base - audio`` against the
    segment's stem waveforms, rounded. Lyrics (line units): line ``i`` is on when it is among
    the input's lines, matched in order; identical lines cannot be told apart from the text, the
    earliest unmatched one is taken. ``modality="both"`` layout (audio columns, then lyrics);
    needs linearly independent, non-silent stems in every segment.
    """

    class_names = ["target", "rest"]

    def __init__(self, song, game: GroundTruthGame, device: str = "cpu"):
        import torch

        table = song.feature_table
        if table.n_audio + table.n_lyrics != game.n_features:
            raise ValueError(f"the game has {game.n_features} features, the song "
                             f"{table.n_audio + table.n_lyrics}")
        self.song, self.game = song, game
        self.sample_rate = int(song.audio.sample_rate)
        self.device = torch.device(device)
        self._units = [u.strip() for u in song.lyrics.units]

    def audio_masks(self, audio: np.ndarray) -> np.ndarray:
        fac = self.song.audio
        stems = fac.feature_stems.astype(np.float64)
        base = fac.base.astype(np.float64)
        n_stems = stems.shape[0]
        out = np.ones((audio.shape[0], fac.n_components))
        for t, (start, end) in enumerate(fac.bounds):
            removed = base[start:end][None, :] - audio[:, start:end].astype(np.float64)
            off = np.linalg.lstsq(stems[:, start:end].T, removed.T, rcond=None)[0].T
            out[:, t * n_stems:(t + 1) * n_stems] = 1.0 - np.round(off)
        return out

    def lyrics_masks(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self._units)))
        for r, text in enumerate(texts):
            lines = [line.strip() for line in text.split("\n") if line.strip()]
            pos = 0
            for i, unit in enumerate(self._units):
                if pos < len(lines) and lines[pos] == unit:
                    out[r, i] = 1.0
                    pos += 1
        return out

    def predict_proba(self, lyrics: list[str], audio) -> np.ndarray:
        a = audio.detach().cpu().numpy() if hasattr(audio, "detach") else np.asarray(audio)
        z = np.concatenate([self.audio_masks(a), self.lyrics_masks(list(lyrics))], axis=1)
        p = np.clip(self.game(z), 0.0, 1.0)
        return np.stack([p, 1.0 - p], axis=1)


def all_masks(n_features: int) -> np.ndarray:
    """All ``2^F`` masks (row ``c`` = the bits of ``c``, column ``j`` = bit ``j``)."""
    m = int(n_features)
    return np.array(list(itertools.product([0, 1], repeat=m)), dtype=np.uint8)[:, ::-1].copy()
