"""Top-k sufficiency: does the prediction survive with only the top-k features?

Source: the audioLIME authors' sanity check (Haunschmid, Manilow & Widmer, "audioLIME:
Listenable Explanations Using Source Separation", MML workshop 2020): keep only the top-``k``
components, switch the rest off, and check whether the classifier still predicts the explained
label. The same idea is ERASER's "sufficiency" (DeYoung et al., ACL 2020).

Definition, for the explained label ``c`` and the ``F`` perturbed features:

- top-``k`` = the ``k`` features of largest weight (signed, descending); ``k`` is clipped to
  ``F`` (then every feature is on and the mask is the original);
- ``prob`` = ``P(c | only top-k on)``; ``survives`` = 1.0 when ``c`` is the argmax of that prediction,
  strictly (a tie with another class, e.g. 0.5/0.5, does not count), else 0.0;
- baseline: the same for ``R`` random ``k``-subsets (``numpy.random.default_rng(seed)``):
  ``random_prob`` (mean probability) and ``random_survives`` (fraction that keep ``c``).

Direction: **higher is better** (and the top-k should beat the random ``k``-subsets).

Cost: one ``predict`` call of ``len(ks) * (R + 1)`` masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .predictor import PredictFn, as_predict_fn, ranking


@dataclass
class SufficiencyResult:
    k: int  # as asked
    k_used: int  # clipped to the feature count
    prob: float
    survives: float
    random_prob: float
    random_survives: float

    def as_dict(self) -> dict[str, float]:
        return {"prob": self.prob, "survives": self.survives, "random_prob": self.random_prob,
                "random_survives": self.random_survives}


def top_k_mask(order: np.ndarray, k: int, n_features: int) -> np.ndarray:
    mask = np.zeros(n_features, dtype=np.uint8)
    mask[np.asarray(order)[:k]] = 1
    return mask


def sufficiency(weights: np.ndarray, predict: PredictFn, label: int,
                ks: Sequence[int] = (1, 3, 5, 10), random_subsets: int = 10,
                seed: int = 0) -> dict[int, SufficiencyResult]:
    """``{k: SufficiencyResult}`` for the ranking by ``weights`` (one per mask column)."""
    predict = as_predict_fn(predict)
    weights = np.asarray(weights, dtype=np.float64)
    n = weights.size
    if n < 1:
        raise ValueError("there are no features to keep")
    order = ranking(weights)
    rng = np.random.default_rng(seed)
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"sufficiency ks must be >= 1, got {ks}")
    rows = []
    for k in ks:
        kk = min(k, n)
        rows.append(top_k_mask(order, kk, n))
        rows.extend(top_k_mask(rng.permutation(n), kk, n) for _ in range(int(random_subsets)))
    probs = predict(np.stack(rows))
    per = 1 + int(random_subsets)
    out = {}
    for i, k in enumerate(ks):
        block = probs[i * per:(i + 1) * per]
        p = block[:, int(label)]
        others = np.delete(block, int(label), axis=1)
        best_other = others.max(axis=1) if others.shape[1] else np.full(len(block), -np.inf)
        keep = (p > best_other).astype(np.float64)
        out[k] = SufficiencyResult(
            k=k, k_used=min(k, n), prob=float(p[0]), survives=float(keep[0]),
            random_prob=float(np.mean(p[1:])) if per > 1 else float("nan"),
            random_survives=float(np.mean(keep[1:])) if per > 1 else float("nan"))
    return out
