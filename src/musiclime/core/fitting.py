"""The configured surrogate of every explained label, fitted to the predictions.

:func:`surrogate_fits` is the one place that turns a :class:`~musiclime.core.params.FitParams`
into per-label fits: the predictions are put on the scale ``fit.target`` names
(:func:`target_values`), then LIME's weighted ridge (:func:`musiclime.core.surrogate.fit_ridge`)
or another attribution estimator (:func:`estimator_fits`, :mod:`musiclime.core.estimators`) is
fitted, once per scale for ``target=auto``. The explainer, the fit's cross-validation
(:func:`musiclime.core.fit_quality.assess_fit`) and ``num_samples=auto``
(:func:`surrogate_weights`) all fit through it, so they fit the same surrogate.
"""

from __future__ import annotations

import numpy as np

from .params import FitParams, stage, strategy
from .surrogate import LabelFit, UniformKernel, cosine_distance, fit_ridge


def target_values(target, probs: np.ndarray) -> np.ndarray:
    """``probs`` on the scale ``target`` names (:func:`musiclime.core.targets.transform`), or
    through a :class:`musiclime.core.targets.Target` object (a ``_target_`` node is built)."""
    from .targets import transform

    if isinstance(target, str):
        return transform(target, probs)
    return np.asarray(strategy("target", target)(np.asarray(probs, dtype=np.float64)),
                      dtype=np.float64)


def estimator_fits(spec, masks: np.ndarray, probs: np.ndarray,
                 labels: list[int], sampler=None, ridge_alpha: float | None = None
                 ) -> dict[int, LabelFit]:
    """One :class:`~musiclime.core.surrogate.LabelFit` per label from an estimator of
    :mod:`musiclime.core.estimators` (a name, a ``_target_`` node or an object): the weights are
    its attributions (Shapley values), the intercept its base value ``phi_0``,
    ``local_pred = phi_0 + sum(phi)``, ``score`` its weighted R^2.

    ``sampler`` (the one that drew ``masks``): Kernel SHAP weighs rows by the Shapley kernel
    over the sampler's size distribution (``pi / q``) when the sampler does not draw uniform
    masks; Leverage SHAP's stratified reweighting is right for every sampler."""
    from .estimators import estimate

    estimator = configured_estimator(spec, masks, sampler, ridge_alpha)
    out = {}
    for label, att in estimate(estimator, masks, probs, labels).items():
        out[label] = LabelFit(label=label, intercept=float(att.base_value),
                              weights=np.asarray(att.weights, dtype=np.float64),
                              score=float(att.score),
                              local_pred=float(att.base_value + np.sum(att.weights)))
    return out


def configured_estimator(spec, masks: np.ndarray, sampler=None,
                         ridge_alpha: float | None = None):
    """The estimator object :func:`estimator_fits` fits with: ``spec``'s, except that
    ``kernel_shap`` over a sampler whose sizes are not binomial weighs rows by ``pi / q``, and
    ``banzhaf`` takes ``ridge_alpha`` (``explainer.ridge_alpha``) and refuses such a sampler:
    its equal row weights estimate the Banzhaf values only on uniform masks."""
    from dataclasses import replace

    from .estimators import KernelSHAP
    from .samplers import draws_uniform_masks

    estimator = strategy("estimator", spec)
    uniform = sampler is None or draws_uniform_masks(sampler, masks.shape[1])
    if spec == "kernel_shap" and not uniform:
        estimator = KernelSHAP(weighting="importance", sampler=sampler)
    if spec == "banzhaf":
        if not uniform:
            raise ValueError(f"explainer.estimator=banzhaf needs uniform masks, and sampler "
                             f"{getattr(sampler, 'name', sampler)!r} draws coalition sizes of "
                             "its own: use sampler bernoulli, paired, orthogonal[_foldover] or "
                             "plackett_burman[_foldover]")
        if ridge_alpha is not None:
            estimator = replace(estimator, ridge_alpha=float(ridge_alpha))
    return estimator


def surrogate_fits(fit: FitParams, masks: np.ndarray, probs: np.ndarray,
                   labels: list[int]):
    """The configured surrogate of every label: ``(fits, kernel stats, chosen)``.

    The estimator (LIME ridge, a Shapley estimator, or the user's) is fitted to the
    predictions on the scale ``fit.target`` names (:mod:`musiclime.core.targets`). ``target=auto``
    fits it on the probability and on the logit and keeps, per label, the fit with the higher
    weighted R^2: the scale on which the classifier is locally most linear; ``chosen`` maps
    each label to the scale kept (``None`` for a fixed target). R^2 is a share of explained
    variance, so it compares across the two scales."""
    from .targets import FIXED_TARGETS

    # banzhaf is LIME's ridge with every row weighing 1: fitted (and its weights described) here
    kernel = UniformKernel() if fit.estimator == "banzhaf" else fit.make_kernel()
    names = FIXED_TARGETS if fit.target == "auto" else (fit.target,)
    candidates = {}
    stats = None
    for i, name in enumerate(names):
        values = target_values(name, probs)
        fits, stats = fit_ridge(masks, values, labels, kernel, cosine_distance,
                               feature_selection=fit.feature_selection,
                               ridge_alpha=fit.ridge_alpha, random_state=fit.draw.seed)
        if fit.estimator not in ("lime_ridge", "banzhaf"):
            # another estimator on the same predictions (the LIME kernel's statistics above
            # stay in the record: they describe the sample)
            fits = estimator_fits(fit.estimator, masks, values, labels, fit.draw.make_sampler(),
                                  fit.ridge_alpha)
        candidates[i] = fits
    if len(names) == 1:
        return candidates[0], stats, None
    chosen = {label: max(range(len(names)),
                         key=lambda i: (candidates[i][label].score, i == 0))
              for label in labels}
    return ({label: candidates[chosen[label]][label] for label in labels}, stats,
            {label: names[i] for label, i in chosen.items()})


def surrogate_weights(fit: FitParams):
    """``fit(masks, p) -> weights``: the configured surrogate (estimator, target, kernel, ridge)
    on one label's probabilities ``p`` (rows,) (for :mod:`.adaptive` and the benchmarks)."""
    fit = stage(fit, FitParams, "fit")

    def weights(masks, p):
        fits, _, _ = surrogate_fits(fit, masks, np.asarray(p, dtype=np.float64)[:, None], [0])
        return fits[0].weights
    return weights
