"""The LIME fit: distances, kernel and the weighted linear surrogate (``lime.lime_base``).

Distance: cosine distance of each binary mask to the all-ones row 0, ``d = 1 - sqrt(k / F)``
for a mask with ``k`` of ``F`` features on, so ``d`` lies in [0, 1] (1 for the empty mask).

Kernel (lime's exponential kernel, as in the reference explainer)::

    w(d) = sqrt(exp(-(s * d)**2 / width**2))

with ``s`` the distance scale. The reference uses ``width = 25`` on raw cosine distance
(``s = 1``): every weight is then within 0.9998..1, the kernel is flat and "locality" does
nothing. lime's text explainer multiplies cosine distance by 100 for this reason (``s = 100``,
width 25); audioLIME uses width 0.25 on raw distance. Both are the same kernel. musiclime's
default is ``width = 0.25, s = 1``: a Bernoulli(0.5) mask lies at ``d ~ 0.29`` and gets weight
~0.5, a mask with a quarter of the features on (``d = 0.5``) ~0.14, so the surrogate is local
but still sees most samples. The min/mean/max of the weights are reported with every fit so a
flat (or collapsed) kernel is visible.

Surrogate: ``lime.lime_base.LimeBase.explain_instance_with_data`` (ridge regression,
``alpha=1``), one per explained label, returning all feature weights, the intercept, the
weighted R^2 and the local prediction for row 0.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import sklearn.metrics
from lime.lime_base import LimeBase
from sklearn.linear_model import Ridge

KERNEL_FORMULA = "w = sqrt(exp(-(scale * d)^2 / width^2)), d = cosine distance to the all-ones mask"
FEATURE_SELECTIONS = ("none", "auto", "forward_selection", "highest_weights", "lasso_path")


def cosine_distances(masks: np.ndarray) -> np.ndarray:
    """Cosine distance of every mask row to row 0 (the all-ones original)."""
    data = np.asarray(masks, dtype=np.float64)
    return sklearn.metrics.pairwise_distances(data, data[:1], metric="cosine").ravel()


def exponential_kernel(d: np.ndarray, kernel_width: float, distance_scale: float = 1.0):
    """lime's kernel ``sqrt(exp(-(scale*d)^2 / width^2))`` (see module docstring)."""
    d = np.asarray(d, dtype=np.float64) * float(distance_scale)
    return np.sqrt(np.exp(-(d ** 2) / float(kernel_width) ** 2))


@dataclass
class LabelFit:
    label: int
    intercept: float
    weights: np.ndarray  # (F,) one weight per mask column
    score: float  # weighted R^2 of the surrogate
    local_pred: float  # surrogate's prediction for row 0


@dataclass
class KernelStats:
    width: float
    distance_scale: float
    distance: str
    formula: str
    weight_min: float
    weight_mean: float
    weight_max: float
    distance_min: float
    distance_mean: float
    distance_max: float
    effective_samples: float  # (sum w)^2 / sum w^2: how many samples the fit really uses

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def kernel_stats(distances: np.ndarray, width: float, scale: float) -> KernelStats:
    w = exponential_kernel(distances, width, scale)
    ess = float(w.sum() ** 2 / np.sum(w ** 2)) if np.sum(w ** 2) > 0 else 0.0
    return KernelStats(width=float(width), distance_scale=float(scale), distance="cosine",
                       formula=KERNEL_FORMULA, weight_min=float(w.min()),
                       weight_mean=float(w.mean()), weight_max=float(w.max()),
                       distance_min=float(distances.min()), distance_mean=float(distances.mean()),
                       distance_max=float(distances.max()), effective_samples=ess)


def fit_lime(masks: np.ndarray, probs: np.ndarray, labels: list[int], kernel_width: float = 0.25,
             distance_scale: float = 1.0, feature_selection: str = "none",
             num_features: int | None = None, ridge_alpha: float = 1.0,
             random_state: int = 0) -> tuple[dict[int, LabelFit], KernelStats]:
    """Fit one weighted ridge surrogate per label with ``lime.lime_base.LimeBase``."""
    if kernel_width <= 0:
        raise ValueError(f"kernel_width must be > 0, got {kernel_width}")
    if feature_selection not in FEATURE_SELECTIONS:
        raise ValueError(f"feature_selection must be one of {FEATURE_SELECTIONS}, "
                         f"got {feature_selection!r}")
    masks = np.asarray(masks)
    probs = np.asarray(probs, dtype=np.float64)
    if masks.shape[0] != probs.shape[0]:
        raise ValueError(f"{masks.shape[0]} masks but {probs.shape[0]} prediction rows")
    n_features = masks.shape[1]
    data = masks.astype(np.float64)
    distances = cosine_distances(data)
    stats = kernel_stats(distances, kernel_width, distance_scale)
    kernel_fn = functools.partial(exponential_kernel, kernel_width=kernel_width,
                                  distance_scale=distance_scale)
    base = LimeBase(kernel_fn, verbose=False, random_state=random_state)
    fits = {}
    for label in labels:
        if not 0 <= int(label) < probs.shape[1]:
            raise ValueError(f"label {label} is out of range for {probs.shape[1]} classes")
        regressor = Ridge(alpha=ridge_alpha, fit_intercept=True, random_state=random_state)
        intercept, exp, score, local_pred = base.explain_instance_with_data(
            data, probs, distances, int(label),
            num_features=num_features or n_features, feature_selection=feature_selection,
            model_regressor=regressor)
        weights = np.zeros(n_features, dtype=np.float64)
        for idx, w in exp:
            weights[int(idx)] = float(w)
        fits[int(label)] = LabelFit(label=int(label), intercept=float(intercept), weights=weights,
                                    score=float(score),
                                    local_pred=float(np.asarray(local_pred).ravel()[0]))
    return fits, stats
