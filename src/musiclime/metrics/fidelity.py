"""Surrogate fidelity: how well the linear surrogate reproduces the classifier.

Source: LIME's local fidelity (Ribeiro, Singh & Guestrin, "Why Should I Trust You?", KDD 2016;
``lime_base`` reports the kernel-weighted R^2 of the ridge fit on its own samples) and the
fidelity of a global/local surrogate to the black box as defined in Guidotti et al., "A Survey of
Methods for Explaining Black Box Models" (ACM Computing Surveys 2018). The in-sample score is
optimistic (``F`` weights fitted to the same ``N`` samples), so it is complemented by the usual
held-out estimate on masks the surrogate never saw.

- ``insample_r2``: the weighted R^2 stored with the fit (``LabelFit.score``), on the very masks
  the surrogate was fitted to;
- ``heldout_r2`` / ``heldout_weighted_r2``: R^2 (``sklearn.metrics.r2_score``) of the surrogate
  ``intercept + masks @ weights`` against the classifier's probability of the explained label on
  ``n`` fresh masks, unweighted and weighted by the explanation's kernel
  (``sqrt(exp(-(scale * d)^2 / width^2))``, ``d`` the cosine distance to the all-ones mask).

Held-out masks are Bernoulli(0.5) draws (the explainer's own sampling distribution) from
``numpy.random.Generator(PCG64(SeedSequence(seed, spawn_key=(1,))))``: a different stream from
the explainer's ``PCG64(seed)`` masks even with the same seed. Row 0 is not forced to all ones.

Direction: **higher is better** (1 = perfect; can be negative when the surrogate predicts worse
than the mean).

Cost: one ``predict`` call of ``n`` masks.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import r2_score

from ..core.surrogate import exponential_kernel
from ..core.targets import fitted_target
from .predictor import PredictFn, as_predict_fn

HELDOUT_SPAWN_KEY = (1,)


def heldout_masks(n_features: int, n: int, seed: int = 0) -> np.ndarray:
    """``(n, F)`` uint8 Bernoulli(0.5) masks from a stream apart from the explainer's."""
    if n < 2:
        raise ValueError(f"held-out fidelity needs at least 2 masks, got {n}")
    ss = np.random.SeedSequence(int(seed), spawn_key=HELDOUT_SPAWN_KEY)
    rng = np.random.Generator(np.random.PCG64(ss))
    return (rng.random((int(n), int(n_features))) < 0.5).astype(np.uint8)


def distances_to_original(masks: np.ndarray) -> np.ndarray:
    """Cosine distance of each binary mask to the all-ones mask: ``1 - sqrt(k / F)``."""
    m = np.asarray(masks, dtype=np.float64)
    return 1.0 - np.sqrt(m.sum(axis=1) / m.shape[1])


def surrogate_predict(masks: np.ndarray, intercept: float, weights: np.ndarray) -> np.ndarray:
    return float(intercept) + np.asarray(masks, dtype=np.float64) @ np.asarray(weights,
                                                                               dtype=np.float64)


def _r2(y, yhat, w=None) -> float:
    y = np.asarray(y, dtype=np.float64)
    if y.size < 2:
        return float("nan")
    return float(r2_score(y, yhat, sample_weight=w))


def heldout_fidelity(weights: np.ndarray, intercept: float, predict: PredictFn, label: int,
                     n_masks: int = 200, seed: int = 0, kernel_width: float | None = 0.25,
                     distance_scale: float = 1.0,
                     target: str = "probability") -> dict[str, float]:
    """``heldout_r2`` and ``heldout_weighted_r2`` on ``n_masks`` fresh masks (one call);
    ``kernel_width=None`` (kernel unknown): ``heldout_weighted_r2`` is NaN. ``target``: the
    scale the surrogate was fitted on (:mod:`musiclime.core.targets`); the classifier's output is
    compared on the same scale."""
    from ..core.targets import transform

    predict = as_predict_fn(predict)
    weights = np.asarray(weights, dtype=np.float64)
    masks = heldout_masks(weights.size, n_masks, seed)
    y = transform(target, predict(masks)[:, int(label)])
    yhat = surrogate_predict(masks, intercept, weights)
    if kernel_width is None:
        return {"heldout_r2": _r2(y, yhat), "heldout_weighted_r2": float("nan")}
    kw = exponential_kernel(distances_to_original(masks), kernel_width, distance_scale)
    return {"heldout_r2": _r2(y, yhat), "heldout_weighted_r2": _r2(y, yhat, kw)}


def explanation_fidelity(exp, predict: PredictFn, label: int | None = None, n_masks: int = 200,
                         seed: int = 0) -> dict[str, float]:
    """In-sample and held-out R^2 of one explanation's surrogate for ``label``."""
    label = exp.predicted_label if label is None else int(label)
    fit = exp.fits[label]
    out = {"insample_r2": float(fit.score)}
    width = exp.kernel.get("width", 0.25)
    scale = exp.kernel.get("distance_scale", 1.0)
    # a custom kernel (fit_ridge(kernel=...)) records no width: it cannot be re-applied here
    out.update(heldout_fidelity(fit.weights, fit.intercept, predict, label, n_masks, seed,
                                kernel_width=None if width is None else float(width),
                                distance_scale=1.0 if scale is None else float(scale),
                                target=fitted_target(exp.params, label)))
    return out
