"""The LIME fit: distances, kernel and the weighted linear surrogate (``lime.lime_base``).

The distance and the kernel are small injectable callables (captum's ``similarity_func``):
:func:`fit_ridge` takes any ``distance(masks) -> d`` and ``kernel(d) -> weights``, and records
their ``name`` / ``formula`` with every fit. The defaults, :data:`cosine_distance` and
:class:`ExponentialKernel`, are lime's.

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

from dataclasses import dataclass
from typing import Protocol

import numpy as np

# scikit-learn and lime are imported where a fit or a distance needs them: importing them costs
# ~3 s of CPU, which every process that only reads these settings (each Snakemake job, the
# command line) would pay

FEATURE_SELECTIONS = ("none", "auto", "forward_selection", "highest_weights", "lasso_path")


class Distance(Protocol):
    """``distance(masks) -> d``: one distance per mask row to row 0 (the original)."""

    name: str
    formula: str

    def __call__(self, masks: np.ndarray) -> np.ndarray: ...


class Kernel(Protocol):
    """``kernel(d) -> w``: one sample weight per distance ``d`` to the original (row 0).

    LIME's (Ribeiro et al., KDD 2016) is :class:`ExponentialKernel`,
    ``w = sqrt(exp(-(s d)^2 / width^2))``. ``MusicLIME(..., kernel=obj)`` takes any object
    like this in place of ``explainer.kernel_width``/``distance_scale``."""

    formula: str

    def __call__(self, d: np.ndarray) -> np.ndarray: ...


class CosineDistance:
    """Cosine distance of every mask row to row 0 (the all-ones original), as lime's text and
    audioLIME explainers measure it: ``d = 1 - sqrt(k / F)`` for ``k`` of ``F`` features on, in
    [0, 1] (computed with ``sklearn.metrics.pairwise_distances(metric="cosine")``)."""

    name = "cosine"
    formula = "1 - cos(mask, all-ones mask)"

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        data = np.asarray(masks, dtype=np.float64)
        import sklearn.metrics

        return sklearn.metrics.pairwise_distances(data, data[:1], metric="cosine").ravel()

    def __repr__(self) -> str:
        return "CosineDistance()"


#: the default distance of :func:`fit_ridge`
cosine_distance = CosineDistance()


def cosine_distances(masks: np.ndarray) -> np.ndarray:
    """Cosine distance of every mask row to row 0 (the all-ones original)."""
    return cosine_distance(masks)


def exponential_kernel(d: np.ndarray, kernel_width: float, distance_scale: float = 1.0):
    """lime's kernel ``sqrt(exp(-(scale*d)^2 / width^2))`` (see module docstring)."""
    d = np.asarray(d, dtype=np.float64) * float(distance_scale)
    return np.sqrt(np.exp(-(d ** 2) / float(kernel_width) ** 2))


@dataclass(frozen=True)
class ExponentialKernel:
    """lime's exponential kernel ``w(d) = sqrt(exp(-(distance_scale * d)^2 / width^2))``.

    The kernel of ``lime.lime_text`` / ``lime.lime_tabular`` (Ribeiro et al., KDD 2016), which
    lime's text explainer applies to ``100 * d`` with width 25, and audioLIME (Haunschmid et al.,
    ISMIR 2020) to raw ``d`` with width 0.25: both are ``ExponentialKernel(0.25)`` on cosine
    distance. ``width`` is in units of the scaled distance ``distance_scale * d``.
    """

    width: float = 0.25
    distance_scale: float = 1.0

    def __post_init__(self):
        if not float(self.width) > 0:
            raise ValueError(f"kernel_width must be > 0, got {self.width}")
        if not float(self.distance_scale) > 0:
            raise ValueError(f"distance_scale must be > 0, got {self.distance_scale}")

    def __call__(self, d: np.ndarray) -> np.ndarray:
        return exponential_kernel(d, self.width, self.distance_scale)

    @property
    def formula(self) -> str:
        """The formula with this kernel's numbers, e.g. ``w = sqrt(exp(-(1.0 * d)^2 / 0.25^2))``."""
        return (f"w = sqrt(exp(-({float(self.distance_scale)!r} * d)^2 / "
                f"{float(self.width)!r}^2))")


@dataclass(frozen=True)
class UniformKernel:
    """Every row weighs the same, ``w(d) = 1``: the unweighted least-squares fit, with no
    locality. Over uniform masks its coefficients estimate the Banzhaf values
    (:data:`musiclime.core.estimators.banzhaf`)."""

    formula = "w = 1"

    def __call__(self, d: np.ndarray) -> np.ndarray:
        return np.ones_like(np.asarray(d, dtype=np.float64))


@dataclass
class LabelFit:
    label: int
    intercept: float
    weights: np.ndarray  # (F,) one weight per mask column
    score: float  # weighted R^2 of the surrogate
    local_pred: float  # surrogate's prediction for row 0


@dataclass
class KernelStats:
    width: float | None  # None for a kernel without a width
    distance_scale: float | None
    distance: str  # the distance's name
    formula: str  # the kernel's formula with its numbers, and the distance's
    weight_min: float
    weight_mean: float
    weight_max: float
    distance_min: float
    distance_mean: float
    distance_max: float
    effective_samples: float  # (sum w)^2 / sum w^2: how many samples the fit really uses

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _describe(obj, attr: str) -> str:
    value = getattr(obj, attr, None)
    return str(value) if value is not None else getattr(obj, "__name__", repr(obj))


def kernel_stats(distances: np.ndarray, kernel: Kernel,
                 distance: Distance = cosine_distance) -> KernelStats:
    """The weights ``kernel`` gives ``distances``, summarised (recorded with every fit)."""
    w = np.asarray(kernel(distances), dtype=np.float64)
    ess = float(w.sum() ** 2 / np.sum(w ** 2)) if np.sum(w ** 2) > 0 else 0.0
    width = getattr(kernel, "width", None)
    scale = getattr(kernel, "distance_scale", None)
    return KernelStats(width=None if width is None else float(width),
                       distance_scale=None if scale is None else float(scale),
                       distance=_describe(distance, "name"),
                       formula=f"{_describe(kernel, 'formula')}, "
                               f"d = {_describe(distance, 'formula')}",
                       weight_min=float(w.min()),
                       weight_mean=float(w.mean()), weight_max=float(w.max()),
                       distance_min=float(distances.min()), distance_mean=float(distances.mean()),
                       distance_max=float(distances.max()), effective_samples=ess)


def fit_ridge(masks: np.ndarray, probs: np.ndarray, labels: list[int],
             kernel: Kernel | None = None, distance: Distance | None = None, *,
             kernel_width: float | None = None, distance_scale: float | None = None,
             feature_selection: str = "none", num_features: int | None = None,
             ridge_alpha: float = 1.0,
             random_state: int = 0) -> tuple[dict[int, LabelFit], KernelStats]:
    """Fit one weighted ridge surrogate per label with ``lime.lime_base.LimeBase``.

    ``kernel`` (default ``ExponentialKernel(kernel_width or 0.25, distance_scale or 1.0)``) maps
    the ``distance`` of each mask to row 0 (default :data:`cosine_distance`) to its sample
    weight. ``kernel_width`` / ``distance_scale`` are shorthands for the default kernel.
    """
    from lime.lime_base import LimeBase
    from sklearn.linear_model import Ridge

    if kernel is None:
        kernel = ExponentialKernel(0.25 if kernel_width is None else kernel_width,
                                   1.0 if distance_scale is None else distance_scale)
    elif kernel_width is not None or distance_scale is not None:
        raise ValueError("pass either kernel or kernel_width/distance_scale, not both")
    distance = cosine_distance if distance is None else distance
    if feature_selection not in FEATURE_SELECTIONS:
        raise ValueError(f"feature_selection must be one of {FEATURE_SELECTIONS}, "
                         f"got {feature_selection!r}")
    masks = np.asarray(masks)
    probs = np.asarray(probs, dtype=np.float64)
    if masks.shape[0] != probs.shape[0]:
        raise ValueError(f"{masks.shape[0]} masks but {probs.shape[0]} prediction rows")
    n_features = masks.shape[1]
    data = masks.astype(np.float64)
    distances = np.asarray(distance(data), dtype=np.float64)
    stats = kernel_stats(distances, kernel, distance)
    base = LimeBase(kernel, verbose=False, random_state=random_state)
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


#: Deprecated name of :func:`fit_ridge` (exported by ``musiclime``); "fit_lime" is also the
#: workflow rule that fits whole explanations, so the ridge fit is named for what it fits.
fit_lime = fit_ridge
