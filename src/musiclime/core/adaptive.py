"""``explainer.num_samples=auto``: predict until the explanation is stable, not a fixed count.

The rule (one song, one explained label; the settings are :class:`ExplainerConfig`'s
``auto_*`` fields):

1. draw the masks of the budget ``B = auto_budget`` once (the sampler's prefix property makes the
   first ``n`` of them the draw of ``n``);
2. predict them in blocks of ``auto_block`` rows;
3. after each block, with ``n`` rows predicted, estimate the top-``k`` stability by the bootstrap
   (Efron 1979): draw ``R = auto_bootstrap`` resamples of the ``n`` rows with replacement, fit
   the configured surrogate (estimator, target, kernel) on each, and take the mean pairwise
   Jaccard overlap of their top-``k`` sets (signed weights, descending)::

       J_hat(n) = 2 / (R (R - 1)) * sum_{r < s} |T_r & T_s| / |T_r | T_s|

   This estimates the expected top-``k`` Jaccard between two explanations of the song from
   independent draws of ``n`` masks, the seed-to-seed stability of
   :mod:`musiclime.metrics.stability` (a resample holds about 63% distinct rows, so the estimate
   errs on the side of more samples);
4. stop at the first ``n`` with ``J_hat(n) >= auto_target`` (default 0.8, the "stable"
   threshold of the stability benchmark), or at ``B``.

Rows that must stay are kept in every resample: row 0 (the original, LIME's reference point)
and, for samplers that draw it, the all-zeros row 1 (``f(none)``, Shapley's base value);
paired samplers resample whole pairs, so each resample is still a paired design.

The resamples are drawn from a generator seeded by ``explainer.seed``: the same config and seed
stop at the same ``n``, with the same predictions, bit for bit, in ``musiclime explain`` and in
``musiclime run``. The explanation records ``params["auto"]``: the calls used, the estimate at the
stop, whether the target was reached, and the ``(n, J_hat)`` trace.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

#: rows predicted before the first check is at least this many (a bootstrap of fewer rows
#: than features says little)
MIN_FIRST_CHECK = 32


def top_set(weights: np.ndarray, k: int) -> frozenset[int]:
    """The ``k`` columns of largest signed weight (ties keep column order)."""
    order = np.argsort(-np.asarray(weights, dtype=np.float64), kind="stable")
    return frozenset(int(i) for i in order[:k])


def mean_pairwise_jaccard(sets: list[frozenset[int]]) -> float:
    pairs = list(itertools.combinations(sets, 2))
    if not pairs:
        return 1.0
    return float(np.mean([len(a & b) / len(a | b) if a | b else 1.0 for a, b in pairs]))


def bootstrap_stability(masks: np.ndarray, values: np.ndarray,
                        fit: Callable[[np.ndarray, np.ndarray], np.ndarray], *, top_k: int,
                        resamples: int, rng: np.random.Generator, paired: bool = False,
                        fixed_rows: int = 1) -> float:
    """``J_hat``: the mean pairwise top-``k`` Jaccard of ``fit`` on ``resamples`` bootstrap
    resamples of the rows of ``masks``/``values`` (one label's target values, ``(rows,)``).

    ``fixed_rows`` leading rows are in every resample; ``paired``: rows ``2i, 2i + 1`` past
    them are resampled together (pairs stay complements)."""
    n = masks.shape[0]
    fixed = np.arange(min(fixed_rows, n))
    rest = np.arange(len(fixed), n)
    sets = []
    for _ in range(int(resamples)):
        if paired:
            starts = rest[(rest - len(fixed)) % 2 == 0]
            pick = rng.integers(0, len(starts), size=len(starts)) if len(starts) else []
            chosen = [np.arange(s, min(s + 2, n)) for s in starts[pick]] if len(starts) else []
            rows = np.concatenate([fixed, *chosen]) if chosen else fixed
        else:
            rows = np.concatenate([fixed, rng.choice(rest, size=len(rest), replace=True)
                                   if len(rest) else rest])
        sets.append(top_set(fit(masks[rows], values[rows]), top_k))
    return mean_pairwise_jaccard(sets)


def check_points(block: int, budget: int) -> list[int]:
    """The row counts after which the stability is checked: every ``block`` rows from the first
    multiple of ``block`` that is at least :data:`MIN_FIRST_CHECK`, and the budget itself."""
    first = block * max(1, -(-MIN_FIRST_CHECK // block))
    points = list(range(first, budget, block))
    return [*points, budget]


def run_adaptive(masks: np.ndarray, predict: Callable[[np.ndarray], np.ndarray],
                 fit: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 target: Callable[[np.ndarray], np.ndarray], *, block: int,
                 stability_target: float, top_k: int, resamples: int, seed: int,
                 paired: bool = False, fixed_rows: int = 1
                 ) -> tuple[np.ndarray, dict]:
    """Predict ``masks`` (the budget's draw) block by block until the bootstrap stability
    reaches ``stability_target``.

    ``predict(rows) -> probs (len(rows), classes)``; ``target(probs) -> (rows,)`` the explained
    label's values as ``fit`` takes them; ``fit(masks, values) -> weights``. Returns the
    probabilities of the rows predicted and the record for ``params["auto"]``."""
    budget = masks.shape[0]
    rng = np.random.Generator(np.random.PCG64([int(seed), 0x6175746F]))  # "auto"
    parts: list[np.ndarray] = []
    done = 0
    trace: list[list[float]] = []
    estimate = float("nan")
    for stop in check_points(int(block), budget):
        parts.append(np.asarray(predict(masks[done:stop])))
        done = stop
        probs = np.concatenate(parts, axis=0)
        estimate = bootstrap_stability(masks[:done], target(probs), fit, top_k=top_k,
                                       resamples=resamples, rng=rng, paired=paired,
                                       fixed_rows=fixed_rows)
        trace.append([int(done), round(float(estimate), 6)])
        if estimate >= stability_target:
            break
    probs = np.concatenate(parts, axis=0)
    record = {"calls": int(done), "stability": float(estimate),
              "reached": bool(estimate >= stability_target), "target": float(stability_target),
              "budget": int(budget), "block": int(block), "top_k": int(top_k),
              "bootstrap": int(resamples), "trace": trace}
    return probs, record
