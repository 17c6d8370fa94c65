"""Deletion and insertion curves (faithfulness of the ranking).

Source: the deletion/insertion metrics of Petsiuk, Das & Saenko, "RISE: Randomized Input
Sampling for Explanation of Black-box Models" (BMVC 2018), applied to MusicLIME's interpretable
features instead of pixels (as in the audioLIME / MusicLIME evaluations).

Definition used here, for the explained label ``c`` and the ``F`` perturbed features (mask
columns):

- rank the features by weight, **descending** (signed: evidence *for* ``c`` first);
- a grid of ``k`` values from 0 to ``F`` (all of them when ``F + 1 <= points``, otherwise
  ``points`` values ``round(linspace(0, F, points))``);
- **deletion**: start from the all-on mask and switch off the top-``k`` features; the curve is
  ``P(c | mask_k)``; **insertion**: start from all-off and switch on the top-``k``;
- **AUC**: trapezoid rule over ``x = k / F`` (so ``x`` runs over [0, 1] and the AUC is a mean
  probability, in [0, 1]); probabilities are raw, not divided by the unperturbed one;
- **baseline**: the same curves for ``R`` random orderings drawn in the same call
  (``numpy.random.default_rng(seed)``: same seed, same result), their AUC mean and std, and
  ``ratio = auc / random_auc_mean``.

Direction: **lower deletion AUC is better** (ratio < 1 beats random), **higher insertion AUC is
better** (ratio > 1 beats random).

Cost: all curve points go through one ``predict`` call of ``2 * (R + 1) * points`` masks, of
which the all-on and all-off rows are shared by every curve (so at most
``2 * (R + 1) * (points - 2) + 2`` distinct rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .predictor import PredictFn, as_predict_fn, ranking

MODES = ("deletion", "insertion")


@dataclass
class CurveResult:
    """One curve of the explanation's ranking and its random-ordering baseline."""

    mode: str
    ks: np.ndarray  # number of features switched off (deletion) / on (insertion)
    x: np.ndarray  # ks / F
    probs: np.ndarray  # P(label) along the curve
    auc: float
    random_probs: np.ndarray = field(repr=False)  # (R, points)
    random_aucs: np.ndarray = field(repr=False)  # (R,)

    @property
    def random_auc_mean(self) -> float:
        return float(np.mean(self.random_aucs)) if self.random_aucs.size else float("nan")

    @property
    def random_auc_std(self) -> float:
        return float(np.std(self.random_aucs)) if self.random_aucs.size else float("nan")

    @property
    def ratio(self) -> float:
        mean = self.random_auc_mean
        return float(self.auc / mean) if mean > 0 else float("nan")

    def as_dict(self) -> dict[str, float]:
        return {"auc": self.auc, "random_auc_mean": self.random_auc_mean,
                "random_auc_std": self.random_auc_std, "ratio": self.ratio}


def curve_ks(n_features: int, points: int = 20) -> np.ndarray:
    """The ``k`` grid: every ``0..F`` when that is at most ``points`` values, else ``points``
    evenly spaced, rounded values (always including 0 and ``F``)."""
    if n_features < 1:
        raise ValueError("there are no features to delete or insert")
    if points < 2:
        raise ValueError(f"a curve needs at least 2 points, got {points}")
    if n_features + 1 <= points:
        return np.arange(n_features + 1)
    return np.unique(np.round(np.linspace(0, n_features, points)).astype(np.int64))


def curve_auc(ks: np.ndarray, probs: np.ndarray, n_features: int) -> float:
    """Trapezoid area under ``probs`` over ``x = ks / F`` in [0, 1]."""
    x = np.asarray(ks, dtype=np.float64) / float(n_features)
    y = np.asarray(probs, dtype=np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def curve_masks(order: np.ndarray, ks: np.ndarray, mode: str) -> np.ndarray:
    """``(len(ks), F)`` masks: the first ``k`` of ``order`` off (deletion) or on (insertion)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    n = len(order)
    rank = np.empty(n, dtype=np.int64)
    rank[np.asarray(order)] = np.arange(n)
    top = rank[None, :] < np.asarray(ks)[:, None]  # (points, F): feature among the top k
    return (~top if mode == "deletion" else top).astype(np.uint8)


def deletion_insertion(weights: np.ndarray, predict: PredictFn, label: int, points: int = 20,
                       random_orderings: int = 10, seed: int = 0,
                       modes: tuple[str, ...] = MODES) -> dict[str, CurveResult]:
    """Deletion and/or insertion curves of the ranking by ``weights`` (one per mask column).

    ``predict(masks)`` returns class probabilities for ``(rows, F)`` masks; it is called once.
    """
    predict = as_predict_fn(predict)
    weights = np.asarray(weights, dtype=np.float64)
    n = weights.size
    ks = curve_ks(n, points)
    rng = np.random.default_rng(seed)
    orders = [ranking(weights)] + [rng.permutation(n) for _ in range(int(random_orderings))]
    blocks = [curve_masks(o, ks, mode) for mode in modes for o in orders]
    probs = predict(np.concatenate(blocks, axis=0))[:, int(label)]
    probs = probs.reshape(len(modes), len(orders), len(ks))
    out = {}
    for m, mode in enumerate(modes):
        aucs = np.array([curve_auc(ks, p, n) for p in probs[m]])
        out[mode] = CurveResult(mode=mode, ks=ks, x=ks / n, probs=probs[m, 0], auc=float(aucs[0]),
                                random_probs=probs[m, 1:], random_aucs=aucs[1:])
    return out


def deletion_curve(weights, predict: PredictFn, label: int, points: int = 20,
                   random_orderings: int = 10, seed: int = 0) -> CurveResult:
    """The deletion curve alone (lower AUC is better)."""
    return deletion_insertion(weights, predict, label, points, random_orderings, seed,
                              modes=("deletion",))["deletion"]


def insertion_curve(weights, predict: PredictFn, label: int, points: int = 20,
                    random_orderings: int = 10, seed: int = 0) -> CurveResult:
    """The insertion curve alone (higher AUC is better)."""
    return deletion_insertion(weights, predict, label, points, random_orderings, seed,
                              modes=("insertion",))["insertion"]
