"""Uncertainty of every weight: standard errors, nominal 90% intervals and top-k stability.

**What is estimated.** An explanation's weights are a statistic of the sampled masks: another
seed draws other masks and gives other weights. What they estimate is the surrogate's coefficient
with infinitely many samples at the same settings (sampler, kernel, estimator, target), the
population weighted least-squares solution over the sampler's distribution of masks ``z``::

    theta* = argmin_theta  E_z[ w(z) (y(z) - x(z) . theta)^2 ]

- ``lime_ridge``: ``x = (1, z)``, ``w`` the kernel. The ridge penalty ``alpha ||beta||^2`` stays
  fixed while the data term grows with the samples, so ``theta*`` is the *unpenalised*
  kernel-weighted least-squares coefficient: the best linear approximation of the classifier
  under the kernel (the "projection" coefficient of Buja et al., "Models as approximations I",
  Statistical Science 2019; no linearity is assumed). ``banzhaf`` is this with ``w = 1``:
  ``theta*`` is then the Banzhaf values over uniform masks.
- ``kernel_shap`` / ``leverage_shap``: the Shapley regression with its constraints
  (:mod:`musiclime.core.estimators`); over a sampler that draws every coalition size (the
  size-based samplers) ``theta*`` is the exact Shapley value (Lundberg & Lee, NeurIPS 2017,
  Theorem 2). Over uniform masks with many features the extreme sizes, which carry most of the
  Shapley kernel, are never drawn: the estimate is then far from the Shapley values in a way no
  interval of the sample can see.

**Method: design-based linearisation (the sandwich).** With ``B = sum_i w_i x_i x_i^T`` (the
bread), the residuals ``e_i = y_i - x_i . theta_hat`` of the unpenalised fit and the leverages
``h_i = w_i x_i^T B^+ x_i``::

    Cov(theta_hat) ~= B^+ V B^+,
    V = sum_h (1 - n_h / N_h) n_h / (n_h - 1) sum_{u in h} (s_u - mean_h s)(s_u - mean_h s)^T,
    s_u = sum_{i in u} w_i x_i e_i / (1 - h_i)

(Huber 1967; White, Econometrica 1980: heteroscedasticity-robust, right for a misspecified
linear fit with random rows; the ``1 / (1 - h_i)`` is HC3, MacKinnon & White, J. Econometrics
1985, which keeps the intervals honest down to a few rows per feature, Long & Ervin, American
Statistician 2000; Binder, Int. Statistical Review 1983: the same for stratified, clustered
samples without replacement). The sampler says what is random (:func:`sampling_design`): rows
every draw starts with (row 0, the all-zeros row) are not; a complement pair is one unit (the
paired sampling of Covert & Lee, AISTATS 2021, whose KernelSHAP variance estimate also works on
the per-pair terms); scheduled sizes, and Leverage SHAP's reweighting by the counts drawn
(post-stratification), make size classes strata ``h``; a class drawn without replacement has
``N_h`` coalitions and the finite-population factor ``1 - n_h / N_h`` (0 once it is complete,
so an exhaustive enumeration has standard error 0). A stratum with one unit is centred on the
mean of all units (the "adjust" rule of R's ``survey`` package). The orthogonal samplers' blocks
are treated as independent rows: their balance lowers the variance, so there the intervals err
on the wide side.

Why not a bootstrap over the rows: for these least-squares fits the bootstrap variance converges
to the same sandwich, but costs one refit per resample, must reproduce pairs, strata and draws
without replacement to be right, and adds Monte Carlo noise; the sandwich is two extra solves
(a few milliseconds) and needs no random numbers.

**Intervals.** ``theta_tilde +- z_0.95 se_tilde`` with ``theta_tilde`` the unpenalised fit on the
same rows and ``se_tilde`` its sandwich standard error, widened to contain the reported weight
``w``: ``[min(w, tilde) - z se_tilde, max(w, tilde) + z se_tilde]``. For LIME the ridge's
shrinkage ``w - tilde`` is an offset of this sample, not an estimate of the target; for the
Shapley estimators ``w == tilde``. Where the rows do not determine the coefficient (fewer
effective rows than features) the standard errors are infinite and the interval unbounded.

**Standard error** (``weight_se``): that of the reported weight, its spread from draw to draw.
For the Shapley estimators it is ``se_tilde``; for LIME the same sandwich of the ridge itself
(bread ``B + alpha D``, ``D`` the identity but for the intercept; residuals of the ridge fit),
which also carries how the shrinkage moves from draw to draw: where the classifier is nearly
linear the small weights are mostly shrinkage leaking from the large ones, and ``se_tilde``
would be near 0 while the weights still change with the seed.

**Top-k stability.** For the ``k`` features of largest signed weight (the project's top-k, as
:mod:`musiclime.metrics.stability` and ``num_samples=auto``), the probability that each stays in
the top-``k`` under resampling, estimated from ``DRAWS`` draws of ``N(w, Cov(w))`` (a
parametric bootstrap), seeded by ``explainer.seed``: the same seed gives the same numbers bit
for bit. Like every bootstrap of a ranking it is optimistic for a feature that made the top-k
by chance among many near-equal ones (the winner's curse): with two real effects and 43 null
features, the three null features in the top-5 get 0.42 on average where another seed keeps
them 7-9% of the time; with real effects (``many_small``, ``saturating_or``) the mean is 0-0.06
above the seed-to-seed rate. A low value flags an unstable feature; a high one is no guarantee.

**Measured** (``bench/uncertainty.py``, docs/method.md; white-box games of
:mod:`musiclime.models.groundtruth` against their exact answers, 45 features): coverage of the
nominal 90% intervals 89.0-93.4% at 1,000 and 4,000 samples for LIME's ridge (bernoulli, paired,
orthogonal) and Leverage SHAP (leverage, leverage_stratified, kernel, stratified samplers),
83-95% at 256 (the kernel sampler lowest). Far below nominal only where the estimator misses its
own target: Kernel SHAP over uniform masks (58-77%)
and over the kernel sampler once a size class is used up (84-86% at 4,000).

Not covered: the variability of lime's feature selection (the sandwich is that of the fit on all
features) and user estimators (no uncertainty is recorded for them).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np

from .masks import EXHAUSTIVE_MAX_FEATURES
from .params import FitParams
from .surrogate import LabelFit, cosine_distance

#: nominal level of the intervals and its normal quantile ``z_0.95``
LEVEL = 0.9
Z = 1.6448536269514722
#: the ``k`` of the top-k stability
TOP_K = 5
#: draws of the parametric bootstrap for the top-k stability
DRAWS = 2000
#: HC3's ``1 - h_ii`` is kept above this (a row that alone determines a coefficient)
MIN_ONE_MINUS_LEVERAGE = 1e-3


@dataclass
class WeightUncertainty:
    """One label's uncertainty: per mask column a standard error and a nominal 90% interval,
    and for the top-``k`` columns (rank order) the probability of staying in the top-``k``."""

    se: np.ndarray  # (F,), inf where the sample does not determine the weight
    lower: np.ndarray  # (F,)
    upper: np.ndarray  # (F,)
    topk: dict[int, float]  # mask column -> P(in the top-k under resampling), rank order
    method: str
    k: int = TOP_K
    level: float = LEVEL
    draws: int = DRAWS

    def info(self) -> dict:
        return {"method": self.method, "level": self.level, "k": self.k, "draws": self.draws}


@dataclass(frozen=True)
class Design:
    """What is random in a draw of masks: rows past ``fixed_rows``, in units of one row or
    (``paired``) one complement pair, within strata of size classes when ``stratified``."""

    fixed_rows: int = 1
    paired: bool = False
    stratified: bool = False
    sampler: object = None
    without_replacement: bool = False


def sampling_design(sampler, post_stratify: bool = False) -> Design:
    """The :class:`Design` of ``sampler`` (:mod:`musiclime.core.samplers`; a user's sampler:
    independent rows after row 0 unless it says ``paired``/``fixed_rows``).
    ``post_stratify``: the estimator reweights by the counts of each size drawn."""
    schedule = getattr(sampler, "schedule", None)
    return Design(fixed_rows=int(getattr(sampler, "fixed_rows", 1)),
                  paired=bool(getattr(sampler, "paired", False)),
                  stratified=post_stratify or schedule == "stratified",
                  sampler=sampler,
                  without_replacement=(hasattr(sampler, "class_capacity")
                                       or bool(getattr(sampler, "exhaustive", False))))


def _units(masks: np.ndarray, design: Design):
    """``(unit of each row or -1, stratum of each unit, population size of each stratum)``."""
    n, m = masks.shape
    fixed = min(design.fixed_rows, n)
    idx = np.arange(n) - fixed
    unit = np.where(idx >= 0, idx // 2 if design.paired else idx, -1)
    n_units = int(unit.max()) + 1 if n > fixed else 0
    first = fixed + (2 if design.paired else 1) * np.arange(n_units)
    sizes = masks[first].sum(axis=1).astype(np.int64)
    cls = np.minimum(sizes, m - sizes) if design.paired else sizes
    strata = cls if design.stratified else np.zeros(n_units, dtype=np.int64)
    capacity = {int(h): _capacity(design, m, int(h)) for h in np.unique(strata)}
    return unit, strata, capacity


def _capacity(design: Design, m: int, cls: int) -> float:
    """How many units a stratum's population holds (``inf``: drawn with replacement)."""
    if not design.without_replacement:
        return float("inf")
    sampler = design.sampler
    if hasattr(sampler, "class_capacity"):
        return float(sampler.class_capacity(m)[cls]) if design.stratified else float("inf")
    if m > EXHAUSTIVE_MAX_FEATURES:  # Bernoulli-style samplers draw without replacement only here
        return float("inf")
    if not design.stratified:  # all masks but the fixed ones (pairs: all pairs but the first)
        return float(2 ** (m - 1) - 1) if design.paired else float(2 ** m - 1)
    if design.paired and 2 * cls == m:
        return comb(m, cls) / 2.0
    return float(comb(m, cls))


def linearised_cov(x: np.ndarray, w: np.ndarray, e: np.ndarray, bread_inv: np.ndarray,
                   masks: np.ndarray, design: Design) -> np.ndarray:
    """``B^+ V B^+`` (see the module docstring) for design rows ``x``, row weights ``w`` and
    residuals ``e``."""
    unit, strata, capacity = _units(masks, design)
    keep = unit >= 0
    # HC3: each residual over 1 - h_ii, its leverage (the jackknife's small-sample correction)
    leverage = w * np.sum((x @ bread_inv) * x, axis=1)
    e = e / np.clip(1.0 - leverage, MIN_ONE_MINUS_LEVERAGE, None)
    scores = np.zeros((len(strata), x.shape[1]))
    np.add.at(scores, unit[keep], (w * e)[keep, None] * x[keep])
    meat = np.zeros((x.shape[1], x.shape[1]))
    overall = scores.mean(axis=0) if len(scores) else 0.0
    for h, cap in capacity.items():
        sh = scores[strata == h]
        nh = sh.shape[0]
        fpc = max(0.0, 1.0 - nh / cap)
        dev = sh - (sh.mean(axis=0) if nh > 1 else overall)
        meat += fpc * (nh / (nh - 1) if nh > 1 else 1.0) * (dev.T @ dev)
    return bread_inv @ meat @ bread_inv


def _pinv(bread: np.ndarray, rank: int) -> np.ndarray | None:
    """The pseudo-inverse of the symmetric ``bread``, or ``None`` when its rank is below
    ``rank`` (the sample does not determine the coefficients)."""
    vals, vecs = np.linalg.eigh(bread)
    top = vals.max() if vals.size else 0.0
    ok = vals > max(top, 0.0) * 1e-10
    if top <= 0 or ok.sum() < rank:
        return None
    return (vecs[:, ok] / vals[ok]) @ vecs[:, ok].T


def lime_covariance(masks: np.ndarray, y: np.ndarray, kernel, distance=cosine_distance,
                    fit: LabelFit | None = None, ridge_alpha: float = 1.0):
    """``(theta_tilde, pieces)``: the unpenalised kernel-weighted least-squares weights (no
    intercept) and the ``(design, row weights, residuals, bread inverse)`` of their sandwich,
    then, given the ridge ``fit``, those of the ridge weights' (bread ``B + alpha D``, ``D``
    the identity without the intercept; residuals of the ridge fit); ``None`` when the rows do
    not determine the weights."""
    z = np.ascontiguousarray(masks, dtype=np.float64)
    w = np.asarray(kernel(np.asarray(distance(z), dtype=np.float64)), dtype=np.float64)
    x = np.column_stack([np.ones(len(z)), z])
    bread = (x * w[:, None]).T @ x
    inv = _pinv(bread, x.shape[1])
    if inv is None:
        return None
    theta = inv @ (x.T @ (w * y))
    pieces = [(x, w, y - x @ theta, inv)]
    if fit is not None:
        penalty = np.full(x.shape[1], float(ridge_alpha))
        penalty[0] = 0.0
        ridge_inv = np.linalg.inv(bread + np.diag(penalty))
        pieces.append((x, w, y - fit.intercept - z @ fit.weights, ridge_inv))
    return theta[1:], pieces


def shapley_covariance(masks: np.ndarray, y: np.ndarray, fit: LabelFit, estimator):
    """``(weights, [(design, row weights, residuals, bread inverse)])`` of the Shapley
    regression's sandwich (see
    :func:`musiclime.core.estimators.shapley_regression`), or ``None``."""
    from .estimators import shapley_row_weights

    m = masks.shape[1]
    z = np.ascontiguousarray(masks, dtype=np.float64)
    sizes = z.sum(axis=1).astype(np.int64)
    q = (estimator.sampler.size_distribution(m) if estimator.weighting == "importance"
         else None)
    w = shapley_row_weights(masks, estimator.weighting, q)
    w = np.where((sizes > 0) & (sizes < m), w, 0.0)
    empty_known = estimator.empty_value is not None or bool(np.any(sizes == 0))
    x = z - z.mean(axis=1, keepdims=True) if empty_known else -(1.0 - z)
    inv = _pinv((x * w[:, None]).T @ x, m - 1 if empty_known else m)
    if inv is None:
        return None
    e = y - fit.intercept - z @ fit.weights
    return np.asarray(fit.weights, dtype=np.float64), [(x, w, e, inv)]


def topk_stability(weights: np.ndarray, cov: np.ndarray, k: int, draws: int,
                   seed) -> dict[int, float]:
    """``P(j in top-k)`` for each of the top-``k`` columns of ``weights`` (signed, descending,
    ties in column order) over ``draws`` draws of ``N(weights, cov)``."""
    w = np.asarray(weights, dtype=np.float64)
    order = np.argsort(-w, kind="stable")[:k]
    if not np.all(np.isfinite(cov)):
        return {int(j): float("nan") for j in order}
    vals, vecs = np.linalg.eigh(cov)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    rng = np.random.Generator(np.random.PCG64(seed))
    sims = w + rng.standard_normal((int(draws), w.size)) @ root.T
    top = np.argsort(-sims, kind="stable", axis=1)[:, :k]
    hits = np.zeros(w.size)
    np.add.at(hits, top.ravel(), 1.0)
    return {int(j): float(hits[j] / draws) for j in order}


def label_uncertainty(fit: FitParams, masks: np.ndarray, y: np.ndarray, label_fit: LabelFit,
                      estimator=None, seed=0, k: int = TOP_K,
                      draws: int = DRAWS) -> WeightUncertainty | None:
    """The uncertainty of one label's fit ``label_fit`` on target values ``y`` (rows,);
    ``estimator``: the estimator object that made it (``None``: LIME's ridge). ``None`` for an
    estimator this module does not know."""
    from .estimators import KernelSHAP, LeverageSHAP, LimeRidge
    from .surrogate import ExponentialKernel

    sampler = fit.draw.make_sampler()
    y = np.asarray(y, dtype=np.float64)
    weights = np.asarray(label_fit.weights, dtype=np.float64)
    if estimator is None or isinstance(estimator, LimeRidge):
        design = sampling_design(sampler)
        kernel, distance, alpha = fit.make_kernel(), cosine_distance, fit.ridge_alpha
        if estimator is not None:
            kernel = estimator.kernel or ExponentialKernel()
            distance = estimator.distance or cosine_distance
            alpha = estimator.ridge_alpha
        parts = lime_covariance(masks, y, kernel, distance, label_fit, alpha)
        estimator, name = None, "lime"
    elif isinstance(estimator, (KernelSHAP, LeverageSHAP)):
        weighting = getattr(estimator, "weighting", "stratified")
        estimator = KernelSHAP(weighting, getattr(estimator, "sampler", None),
                               estimator.empty_value)
        design = sampling_design(sampler, post_stratify=weighting == "stratified")
        parts = shapley_covariance(masks, y, label_fit, estimator)
        name = f"shapley_{weighting}"
    else:
        return None
    m = weights.size
    if parts is None:
        center, covs = weights, [np.full((m, m), np.inf)]
    else:
        center, pieces = parts
        covs = [linearised_cov(*piece, masks, design)[-m:, -m:] for piece in pieces]
    # the interval: the infinite-sample coefficient's (unpenalised fit); the standard error and
    # the top-k draws: the reported weights' (for LIME the ridge's, whose shrinkage also varies
    # from draw to draw)
    se_target, cov = (np.sqrt(np.clip(np.diag(covs[0]), 0.0, None)), covs[-1])
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(invalid="ignore"):
        lower = np.minimum(weights, center) - Z * se_target
        upper = np.maximum(weights, center) + Z * se_target
    kk = min(int(k), m)
    method = (f"sandwich ({name}; units: {'pairs' if design.paired else 'rows'}; strata: "
              f"{'size classes' if design.stratified else 'none'})")
    return WeightUncertainty(se=se, lower=lower, upper=upper,
                             topk=topk_stability(weights, cov, kk, draws, seed),
                             method=method, k=kk, draws=int(draws))


def explanation_uncertainty(fit: FitParams, masks: np.ndarray, probs: np.ndarray,
                            labels: list[int], fits: dict[int, LabelFit],
                            chosen: dict[int, str] | None = None) -> dict[int, WeightUncertainty]:
    """:func:`label_uncertainty` of every label's fit (``fits``, from
    :func:`musiclime.core.fitting.surrogate_fits` on these rows; ``chosen``: the scale each
    label was fitted on with ``target=auto``). Labels of an estimator this module does not know
    are left out. Deterministic for ``fit.draw.seed``, and on one BLAS thread: the sandwich's
    products and eigendecompositions sum in a thread-count-dependent order, so ``musiclime
    explain`` (every core) and a ``musiclime run`` job (one thread) gave standard errors that
    differed in the 15th digit on a 153-feature song."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _explanation_uncertainty(fit, masks, probs, labels, fits, chosen)


def _explanation_uncertainty(fit, masks, probs, labels, fits, chosen):
    from .fitting import configured_estimator, target_values

    estimator = (None if fit.estimator == "lime_ridge"
                 else configured_estimator(fit.estimator, masks, fit.draw.make_sampler(),
                                           fit.ridge_alpha))
    out = {}
    for label in labels:
        scale = chosen[label] if chosen else fit.target
        y = target_values(scale, probs)[:, label]
        found = label_uncertainty(fit, masks, y, fits[label], estimator,
                                  seed=[int(fit.draw.seed), int(label), 0x756E63])  # "unc"
        if found is not None:
            out[int(label)] = found
    return out
