"""Attribution estimators: from masks and one label's predictions to per-feature weights.

An estimator is a small injectable strategy, ``estimator(masks, values) -> Attribution``, with
``masks`` the ``(rows, F)`` binary masks (row 0, or any row, all ones: the original) and
``values`` the ``(rows,)`` predictions of one label for them. It returns the weights ``(F,)``, a
base value (LIME's intercept, or Shapley's ``phi_0 = f(none)``) and a fit score (weighted R^2)
(:class:`Attribution`).

``lime_ridge`` -- :func:`musiclime.core.surrogate.fit_ridge` (lime's ``LimeBase``: ridge regression
weighted by ``sqrt(exp(-d^2 / width^2))`` on cosine distance; Ribeiro, Singh & Guestrin, KDD
2016), bit for bit today's fit.

``banzhaf`` -- the Banzhaf values (Banzhaf, Rutgers Law Review 1965), ``beta_j = E_z[f(z with
j on) - f(z with j off)]`` over uniform masks ``z`` of the other features: every coalition
weighs the same, where Shapley's kernel weighs the nearly empty and nearly full ones most. They
are the coefficients of the best linear approximation of ``f`` in *unweighted* least squares
over all ``2^F`` masks (Hammer & Holzman, ZOR 1992), so LIME's ridge with every row weighing 1
(:class:`~musiclime.core.surrogate.UniformKernel`) estimates them from uniform masks (the
samplers ``bernoulli``, ``paired``, ``orthogonal[_foldover]``, ``plackett_burman[_foldover]``),
each row informing every feature (the maximum-sample-reuse estimator of Wang & Jia, "Data
Banzhaf", AISTATS 2023, who also show that the Banzhaf value is the semivalue whose ranking is
most robust to noise in ``f``). With a foldover design (strength 3) the fit is exact, up to
the ridge's common shrinkage ``N / (N + 4 alpha)``, for any game with interactions of order 2
at most, where the Banzhaf and Shapley values coincide (``a_j + sum_k b_jk / 2``).
``explainer.ridge_alpha`` applies; a size-based sampler's masks are not uniform, and are
refused.

``kernel_shap`` / ``leverage_shap`` -- the Shapley regression (Lundberg & Lee, "A unified approach
to interpreting model predictions", NeurIPS 2017, Theorem 2): the Shapley values are the solution
of

    min_phi  sum_z pi(z) (f(z) - phi_0 - z . phi)^2,
    pi(z) = (F - 1) / (C(F, |z|) |z| (F - |z|))         for 0 < |z| < F,

with the rows ``|z| in {0, F}`` (infinite kernel weight) turned into the exact constraints
``phi_0 = f(none)`` and ``phi_0 + sum_j phi_j = f(all)`` (efficiency). On a sample the sum runs over
the sampled rows with row weights ``w(z)``, which is where the estimators differ
(:func:`shapley_row_weights`):

- ``kernel``: ``w = pi(z)``: the paper's formula as it stands; unbiased for uniform masks
  (:data:`musiclime.core.samplers.bernoulli`, :data:`~musiclime.core.samplers.paired`) and exact when all
  ``2^F`` masks are there.
- ``importance``: ``w = pi(z) / q(z)`` with ``q(z) = q_|z| / C(F, |z|)`` the sampler's
  distribution (its ``size_distribution``). For the KernelSHAP practice (sizes in proportion to
  the kernel, :data:`musiclime.core.samplers.kernel`) every row weighs the same.
- ``stratified``: ``w = pi_k C(F, k) / n_k`` with ``n_k`` the rows of size ``k`` in the sample:
  the sum over all coalitions of size ``k`` estimated by ``C(F, k)`` times the mean over the
  ``n_k`` sampled ones (post-stratification). Unbiased within each size for every sampler that
  draws a uniform subset given the size (all of :mod:`musiclime.core.samplers`), and exactly ``pi``
  when a size class is complete. This is Leverage SHAP's reweighting (Musco & Witter,
  "Provably accurate Shapley value estimation via leverage score sampling", ICLR 2025): they
  include a coalition with probability ``min(1, c p(z))``, ``p(z) ∝ 1 / C(F, |z|)`` (the
  leverage scores: every size equally likely), and weigh it by ``pi(z) / min(1, c p(z))``; with
  sizes drawn uniformly without replacement that inclusion probability is ``n_k / C(F, k)``.

Solving with the constraints (:func:`shapley_regression`): with ``f(none)`` known the constraint
``sum phi = f(all) - f(none) = D`` is eliminated by the projection ``P = I - 11^T / F`` (Musco &
Witter, Sec. 3): ``phi = P phi' + D/F 1`` and ``phi'`` solves an unconstrained weighted least squares
(minimum norm where the sample does not determine it), so efficiency holds to rounding. Without
an all-zeros row (:data:`musiclime.core.samplers.bernoulli` with ``F > 16`` never draws one) and no
``empty_value`` given, ``f(none)`` is not predicted: ``phi_0`` is then estimated with the rest,
tied to the prediction by ``phi_0 + sum phi = f(all)``, i.e. ``f(z) - f(all) = -(1 - z) . phi``;
the reported ``base_value`` is that estimate. Every size-based sampler puts the all-zeros mask at
row 1, so this fallback is only for the Bernoulli sampler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import comb
from typing import Any, Protocol

import numpy as np

from .surrogate import UniformKernel, fit_ridge

WEIGHTINGS = ("kernel", "importance", "stratified")


@dataclass
class Attribution:
    """One label's explanation by one estimator."""

    weights: np.ndarray  # (F,) one weight per mask column
    base_value: float  # LIME: the intercept; Shapley: phi_0 = f(none) (or its estimate)
    score: float  # weighted R^2 of the fit (NaN where it means nothing)
    estimator: str
    info: dict[str, Any] = field(default_factory=dict)  # e.g. f(all), whether f(none) was known

    def as_dict(self) -> dict:
        return {"weights": [float(w) for w in self.weights], "base_value": float(self.base_value),
                "score": float(self.score), "estimator": self.estimator, "info": dict(self.info)}


class Estimator(Protocol):
    """``estimator(masks, values) -> Attribution`` for one label's ``values`` (rows,).

    The attribution ``phi`` explains ``values ~ phi_0 + masks @ phi``: LIME (Ribeiro et al.,
    KDD 2016) by a ridge fit weighted by the kernel ``pi(z)``; Kernel SHAP (Lundberg & Lee,
    NeurIPS 2017) by the regression weighted by the Shapley kernel ``(F - 1) / (C(F, |z|)
    |z| (F - |z|))`` with ``phi_0 + sum(phi) = f(all)``; Leverage SHAP (Musco & Witter,
    ICLR 2025) by leverage-score sampling. The returned object needs ``weights``,
    ``base_value`` and ``score``. ``explainer.estimator`` names one of :data:`ESTIMATORS` or
    gives a node with ``_target_``; ``MusicLIME(..., estimator=obj)`` takes the object."""

    name: str

    def __call__(self, masks: np.ndarray, values: np.ndarray) -> Attribution: ...


def _inputs(masks: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    masks = np.asarray(masks)
    values = np.asarray(values, dtype=np.float64)
    if masks.ndim != 2:
        raise ValueError(f"masks must be (rows, features), got shape {masks.shape}")
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.shape != (masks.shape[0],):
        raise ValueError(f"{masks.shape[0]} masks but values of shape {values.shape}: pass one "
                         "label's predictions, (rows,)")
    return masks, values


# --- LIME --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LimeRidge:
    """lime's weighted ridge surrogate, through :func:`musiclime.core.surrogate.fit_ridge` (see there
    for the kernel ``sqrt(exp(-(s d)^2 / width^2))``, ``d`` the cosine distance to row 0, and
    Ribeiro et al., KDD 2016). ``kernel``/``distance`` default to ``fit_ridge``'s."""

    kernel: Any = None
    distance: Any = None
    ridge_alpha: float = 1.0
    feature_selection: str = "none"
    random_state: int = 0
    name: str = "lime_ridge"

    def __call__(self, masks: np.ndarray, values: np.ndarray) -> Attribution:
        masks, values = _inputs(masks, values)
        fits, stats = fit_ridge(masks, values[:, None], [0], self.kernel, self.distance,
                               feature_selection=self.feature_selection,
                               ridge_alpha=self.ridge_alpha, random_state=self.random_state)
        fit = fits[0]
        return Attribution(weights=fit.weights, base_value=fit.intercept, score=fit.score,
                           estimator=self.name,
                           info={"local_pred": fit.local_pred, "kernel": stats.as_dict()})


# --- Shapley regression ------------------------------------------------------------------------
def shapley_kernel(n_features: int, sizes: np.ndarray) -> np.ndarray:
    """``pi(k) = (F - 1) / (C(F, k) k (F - k))`` per coalition of size ``k`` (``inf`` at 0, F)."""
    m = int(n_features)
    sizes = np.asarray(sizes, dtype=np.int64)
    table = np.full(m + 1, np.inf)
    for k in range(1, m):
        table[k] = (m - 1) / (comb(m, k) * k * (m - k))
    return table[sizes]


def shapley_row_weights(masks: np.ndarray, weighting: str = "kernel",
                        size_distribution: np.ndarray | None = None) -> np.ndarray:
    """Row weights of the sampled Shapley regression (see the module docstring); 0 for the
    constraint rows ``|z| in {0, F}``. Scaled so the largest is 1 (the solution does not
    change with a common factor)."""
    masks = np.asarray(masks)
    m = masks.shape[1]
    sizes = masks.sum(axis=1).astype(np.int64)
    inner = (sizes > 0) & (sizes < m)
    # pi_k C(F, k) = (F - 1) / (k (F - k)): the kernel mass of the whole size class
    mass = np.zeros(m + 1)
    k = np.arange(1, m)
    mass[1:m] = (m - 1) / (k * (m - k))
    if weighting == "kernel":
        w = np.zeros(len(sizes))
        w[inner] = shapley_kernel(m, sizes[inner])
    elif weighting == "importance":
        if size_distribution is None:
            raise ValueError("weighting='importance' needs the sampler's size_distribution")
        q = np.asarray(size_distribution, dtype=np.float64)
        if q.shape != (m + 1,):
            raise ValueError(f"size_distribution must have F + 1 = {m + 1} entries")
        if np.any(q[sizes[inner]] <= 0):
            raise ValueError("a sampled size has probability 0 under size_distribution")
        # pi(z) / q(z) = pi_k C(F, k) / q_k
        w = np.zeros(len(sizes))
        w[inner] = mass[sizes[inner]] / q[sizes[inner]]
    elif weighting == "stratified":
        counts = np.bincount(sizes[inner], minlength=m + 1).astype(np.float64)
        w = np.zeros(len(sizes))
        w[inner] = mass[sizes[inner]] / counts[sizes[inner]]
    else:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    top = w.max() if w.size else 0.0
    return w / top if top > 0 else w


def shapley_regression(masks: np.ndarray, values: np.ndarray, row_weights: np.ndarray, *,
                       empty_value: float | None = None, full_value: float | None = None,
                       name: str = "shapley_regression") -> Attribution:
    """Weighted least squares for the Shapley values with the efficiency constraint exact.

    ``f(all)`` is ``full_value`` or the value of the first all-ones row; ``f(none)`` is
    ``empty_value`` or the value of the first all-zeros row, and estimated (see the module
    docstring) when neither is there. Rows with ``|z| in {0, F}`` and rows of weight 0 are not
    in the regression (they are the constraints).
    """
    masks, values = _inputs(masks, values)
    m = masks.shape[1]
    w = np.asarray(row_weights, dtype=np.float64)
    sizes = masks.sum(axis=1).astype(np.int64)
    if full_value is None:
        full_rows = np.flatnonzero(sizes == m)
        if full_rows.size == 0:
            raise ValueError("no all-ones row (the original) among the masks: pass full_value")
        full_value = float(values[full_rows[0]])
    if empty_value is None:
        empty_rows = np.flatnonzero(sizes == 0)
        if empty_rows.size:
            empty_value = float(values[empty_rows[0]])
    use = (sizes > 0) & (sizes < m) & (w > 0)
    z = masks[use].astype(np.float64)
    y = values[use]
    sw = np.sqrt(w[use])
    info = {"full_value": float(full_value), "empty_value_known": empty_value is not None,
            "regression_rows": int(use.sum())}
    if empty_value is not None:
        delta = float(full_value) - float(empty_value)
        # phi = P phi' + delta / F: sum(phi) = delta whatever phi' is
        design = z - z.mean(axis=1, keepdims=True) if m > 1 else z * 0.0  # Z P
        target = y - empty_value - sizes[use] * delta / m
        if use.any():
            sol = np.linalg.lstsq(design * sw[:, None], target * sw, rcond=None)[0]
            sol = sol - sol.mean()
        else:
            sol = np.zeros(m)
        phi = sol + delta / m
        base = float(empty_value)
    else:
        # f(z) = phi_0 + z . phi and phi_0 = f(all) - sum(phi): f(z) - f(all) = -(1 - z) . phi
        design = -(1.0 - z)
        target = y - float(full_value)
        if use.any():
            phi = np.linalg.lstsq(design * sw[:, None], target * sw, rcond=None)[0]
        else:
            phi = np.zeros(m)
        base = float(full_value) - float(phi.sum())
    score = float("nan")
    if use.sum() > 1:
        pred = base + z @ phi
        wu = w[use]
        mean = np.sum(wu * y) / wu.sum()
        total = np.sum(wu * (y - mean) ** 2)
        if total > 0:
            score = float(1.0 - np.sum(wu * (y - pred) ** 2) / total)
    return Attribution(weights=np.asarray(phi, dtype=np.float64), base_value=base, score=score,
                       estimator=name, info=info)


@dataclass(frozen=True)
class KernelSHAP:
    """Kernel SHAP (Lundberg & Lee, NeurIPS 2017): the Shapley regression with Shapley kernel
    ``pi(z) = (F - 1) / (C(F, |z|) |z| (F - |z|))`` row weights, efficiency
    ``phi_0 + sum phi = f(all)`` and ``phi_0 = f(none)`` exact (see the module docstring).

    ``weighting``: ``"kernel"`` (``w = pi(z)``, for uniform masks), ``"importance"``
    (``w = pi(z) / q(z)``, ``q`` from ``sampler.size_distribution``) or ``"stratified"``
    (``w = pi_k C(F, k) / n_k``). ``empty_value``: ``f(none)`` when it was predicted apart from
    the masks.
    """

    weighting: str = "kernel"
    sampler: Any = None  # for weighting="importance": anything with size_distribution(F)
    empty_value: float | None = None
    name: str = "kernel_shap"

    def __post_init__(self):
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.weighting == "importance" and self.sampler is None:
            raise ValueError("weighting='importance' needs the sampler")

    def __call__(self, masks: np.ndarray, values: np.ndarray) -> Attribution:
        masks, values = _inputs(masks, values)
        q = (self.sampler.size_distribution(masks.shape[1])
             if self.weighting == "importance" else None)
        w = shapley_row_weights(masks, self.weighting, q)
        out = shapley_regression(masks, values, w, empty_value=self.empty_value, name=self.name)
        out.info["weighting"] = self.weighting
        return out


@dataclass(frozen=True)
class LeverageSHAP:
    """Leverage SHAP (Musco & Witter, ICLR 2025): coalitions sampled in proportion to the
    leverage scores of the Shapley regression, ``p(z) ∝ 1 / C(F, |z|)`` (a uniform size, then a
    uniform subset: :data:`musiclime.core.samplers.leverage`), paired and without replacement, and
    the Shapley regression reweighted by ``pi(z) / P(z sampled) = pi_k C(F, k) / n_k``
    (``n_k`` sampled coalitions of size ``k``: the ``stratified`` weighting), solved with
    efficiency exact by the projection ``P = I - 11^T / F``. Exact once every size class is
    complete; unbiased within each size for any sampler of :mod:`musiclime.core.samplers`."""

    empty_value: float | None = None
    name: str = "leverage_shap"

    def __call__(self, masks: np.ndarray, values: np.ndarray) -> Attribution:
        masks, values = _inputs(masks, values)
        w = shapley_row_weights(masks, "stratified")
        out = shapley_regression(masks, values, w, empty_value=self.empty_value, name=self.name)
        out.info["weighting"] = "stratified"
        return out


#: today's fit (fit_ridge with its defaults)
lime_ridge = LimeRidge()
#: Kernel SHAP with the kernel as row weights (for uniform masks)
kernel_shap = KernelSHAP()
#: Leverage SHAP's reweighted Shapley regression
leverage_shap = LeverageSHAP()
#: the Banzhaf values: LIME's ridge with every row weighing the same (see the module docstring)
banzhaf = LimeRidge(kernel=UniformKernel(), name="banzhaf")

ESTIMATORS: dict[str, Estimator] = {e.name: e for e in (lime_ridge, kernel_shap, leverage_shap,
                                                        banzhaf)}


def get_estimator(name: str) -> Estimator:
    """The estimator called ``name`` (one of :data:`ESTIMATORS`)."""
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"unknown estimator {name!r}; estimators are "
                         f"{sorted(ESTIMATORS)}") from None


def estimate(estimator: Estimator | Callable, masks: np.ndarray, probs: np.ndarray,
             labels: list[int]) -> dict[int, Attribution]:
    """One :class:`Attribution` per label of ``probs`` ``(rows, classes)``."""
    probs = np.asarray(probs, dtype=np.float64)
    return {int(label): estimator(masks, probs[:, int(label)]) for label in labels}
