"""Distributions over coalition sizes ``k = |z|`` (how many of ``F`` features a mask keeps on)
and the deterministic schedule that apportions rows to sizes.

The samplers (:mod:`.samplers`) draw a size, then a uniform subset of that size; these are the
size distributions they draw from, and the one the estimators reweight against (uniform masks'
:func:`binomial_sizes`; :func:`musiclime.core.fitting.estimator_fits`).
"""

from __future__ import annotations

from math import comb

import numpy as np

SIZE_TARGETS = ("uniform", "shapley")


def binomial_sizes(n_features: int) -> np.ndarray:
    """``P(|z| = k) = C(F, k) / 2^F``: the size distribution of uniform (Bernoulli(1/2)) masks."""
    m = int(n_features)
    return np.array([comb(m, k) for k in range(m + 1)], dtype=np.float64) / 2.0 ** m


def uniform_sizes(n_features: int) -> np.ndarray:
    """``P(|z| = k) = 1 / (F - 1)`` for ``k = 1..F-1``: the leverage-score size distribution of
    the Shapley regression (Musco & Witter 2025, Lemma: every coalition's leverage score is
    proportional to ``1 / C(F, |z|)``, so each *size* is equally likely)."""
    m = int(n_features)
    q = np.zeros(m + 1)
    if m >= 2:
        q[1:m] = 1.0 / (m - 1)
    return q


def shapley_sizes(n_features: int) -> np.ndarray:
    """``P(|z| = k) ∝ C(F, k) * pi(k) = (F - 1) / (k (F - k))`` for ``k = 1..F-1``: the size
    distribution of coalitions drawn in proportion to the Shapley kernel
    ``pi(z) = (F - 1) / (C(F, |z|) |z| (F - |z|))`` (Lundberg & Lee 2017)."""
    m = int(n_features)
    q = np.zeros(m + 1)
    if m >= 2:
        k = np.arange(1, m)
        q[1:m] = (m - 1) / (k * (m - k))
        q /= q.sum()
    return q


def target_sizes(target: str, n_features: int) -> np.ndarray:
    if target == "uniform":
        return uniform_sizes(n_features)
    if target == "shapley":
        return shapley_sizes(n_features)
    raise ValueError(f"size target must be one of {SIZE_TARGETS}, got {target!r}")


def size_schedule(q: np.ndarray, n: int, counts: np.ndarray | None = None,
                  available: np.ndarray | None = None) -> int:
    """The next size class of the apportionment schedule: the class with the largest deficit
    ``(n + 1) * q_k - c_k`` (ties: the smallest ``k``) among ``available`` ones; ``n`` rows were
    scheduled so far and ``counts`` holds ``c_k``. Keeps every ``c_k`` within one of ``n q_k``."""
    counts = np.zeros_like(q) if counts is None else counts
    deficit = (n + 1) * q - counts
    if available is not None:
        deficit = np.where(available & (q > 0), deficit, -np.inf)
    else:
        deficit = np.where(q > 0, deficit, -np.inf)
    return int(np.argmax(deficit))
