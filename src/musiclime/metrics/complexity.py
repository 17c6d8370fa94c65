"""Complexity: how concentrated is the explanation's attribution?

Source: Bhatt, Weller & Moura, "Evaluating and Aggregating Feature-based Model Explanations"
(IJCAI 2020): the complexity of an explanation is the Shannon entropy of the fractional
contribution distribution ``p_j = |w_j| / sum_i |w_i|``.

- ``entropy`` = ``-sum_j p_j ln p_j`` (nats; terms with ``p_j = 0`` count 0): 0 when one feature
  carries all the weight, ``ln F`` when all ``F`` weights have the same magnitude;
- ``entropy_normalized`` = ``entropy / ln F`` in [0, 1] (0 when ``F = 1``).

NaN when every weight is 0. Direction: **lower is better** (a more concentrated, simpler
explanation); it says nothing about correctness, so read it with the faithfulness metrics.

Cost: no classifier call.
"""

from __future__ import annotations

import numpy as np


def weight_entropy(weights: np.ndarray) -> tuple[float, float]:
    """``(entropy, entropy / ln F)`` of the normalised absolute weights."""
    a = np.abs(np.asarray(weights, dtype=np.float64).ravel())
    total = a.sum()
    if a.size == 0 or not np.isfinite(total) or total <= 0:
        return float("nan"), float("nan")
    p = a[a > 0] / total
    h = float(max(0.0, -np.sum(p * np.log(p))))
    norm = h / np.log(a.size) if a.size > 1 else 0.0
    return h, float(norm)


def complexity(weights: np.ndarray) -> dict[str, float]:
    h, hn = weight_entropy(weights)
    return {"entropy": h, "entropy_normalized": hn}
