"""Hadamard matrices of the orders the orthogonal-array samplers need.

A Hadamard matrix ``H`` of order ``n`` has entries ±1 and ``H H^T = n I``; it can exist only for
``n = 1, 2`` or a multiple of 4. Any ``F <= n - 1`` of the non-constant columns of a *normalised*
one (first row and column all +1) form a two-level orthogonal array of strength 2 with ``n`` runs
(Plackett & Burman, "The design of optimum multifactorial experiments", Biometrika 1946), and
``[H; -H]`` with up to ``n`` of its columns one of strength 3 with ``2n`` runs (the foldover;
Box & Wilson, JRSS B 1951). The fewer runs per block, the sooner a prefix of the masks holds
whole balanced blocks.

Constructions (:func:`hadamard`):

- **Sylvester**: ``H_1 = [1]``, ``H_2n = [[H, H], [H, -H]]`` (orders ``2^k``);
- **Paley I**: ``n = q + 1`` for a prime ``q = 3 (mod 4)``: ``H = I + S`` with
  ``S = [[0, 1^T], [-1, Q]]`` and ``Q`` the Jacobsthal matrix ``Q_ij = chi(j - i)``, ``chi`` the
  quadratic character mod ``q`` (Paley, J. Math. Phys. 1933);
- **Paley II**: ``n = 2(q + 1)`` for a prime ``q = 1 (mod 4)``: ``C = [[0, 1^T], [1, Q]]``
  (symmetric), each 0 replaced by ``[[1, -1], [-1, -1]]`` and each ±1 by ±``[[1, 1], [1, -1]]``;
- **doubling** any of them (``H_2 ⊗ H``; ``H_2 ⊗ H_n = [[H, H], [H, -H]]``, so a power of two
  is always Sylvester's).

Up to order 200 this covers every multiple of 4 except 52, 92, 100, 116, 156, 172, 184 and 188
(they need prime-power fields or Williamson's construction); :func:`smallest_order` then takes the
next order that is covered, which stays a valid, only slightly larger, design.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def _is_prime(q: int) -> bool:
    return q > 1 and all(q % d for d in range(2, int(q ** 0.5) + 1))


def _jacobsthal(q: int) -> np.ndarray:
    """``Q_ij = chi(j - i)``: 1 for a nonzero square mod ``q``, -1 for a non-square, 0 on 0."""
    squares = {(x * x) % q for x in range(1, q)}
    chi = np.array([0] + [1 if a in squares else -1 for a in range(1, q)], dtype=np.int64)
    i = np.arange(q)
    return chi[(i[None, :] - i[:, None]) % q]


@lru_cache(maxsize=64)
def _construct(n: int) -> np.ndarray | None:
    if n == 1:
        return np.ones((1, 1), dtype=np.int64)
    if n == 2:
        return np.array([[1, 1], [1, -1]], dtype=np.int64)
    if n % 4:
        return None
    if n & (n - 1) == 0:  # Sylvester first: its matrices are the orthogonal sampler's of old
        return np.kron(np.array([[1, 1], [1, -1]]), _construct(n // 2))
    q = n - 1
    if _is_prime(q) and q % 4 == 3:  # Paley I
        s = np.zeros((n, n), dtype=np.int64)
        s[0, 1:], s[1:, 0], s[1:, 1:] = 1, -1, _jacobsthal(q)
        return s + np.eye(n, dtype=np.int64)
    q = n // 2 - 1
    if _is_prime(q) and q % 4 == 1:  # Paley II
        c = np.zeros((q + 1, q + 1), dtype=np.int64)
        c[0, 1:], c[1:, 0], c[1:, 1:] = 1, 1, _jacobsthal(q)
        zero, one = np.array([[1, -1], [-1, -1]]), np.array([[1, 1], [1, -1]])
        return np.kron((c == 0).astype(np.int64), zero) + np.kron(c, one)
    half = _construct(n // 2)
    return None if half is None else np.kron(np.array([[1, 1], [1, -1]]), half)


def hadamard(n: int) -> np.ndarray | None:
    """A *normalised* Hadamard matrix of order ``n`` (int8, first row and column all +1), or
    ``None`` when none of the constructions above gives one."""
    h = _construct(int(n))
    if h is None:
        return None
    h = h * h[0][None, :]  # first row all +1
    return (h * h[:, :1]).astype(np.int8)  # first column all +1


def smallest_order(at_least: int) -> int:
    """The smallest order ``>= at_least`` that :func:`hadamard` constructs."""
    n = max(1, int(at_least))
    while _construct(n) is None:
        n += 1
    return n
