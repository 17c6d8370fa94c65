"""Fit quality: whether a surrogate's fit can mean anything, and its R^2 on samples it never saw.

A weighted linear surrogate's in-sample R^2 (lime's ``score``) is optimistic: ``F`` weights
fitted to ``n`` samples reach an R^2 near 1 on anything once ``F`` approaches ``n``. For ordinary
least squares with an intercept on pure noise, ``E[R^2] = F / (n - 1)`` (the R^2 of a regression
whose true coefficients are all zero; e.g. Cramer, "Mean and variance of R^2 in small and
moderate samples", J. Econometrics 1987). With kernel weights, the ``n`` that counts is the
effective sample size of the weights (Kish, "Survey Sampling", 1965)::

    n_eff = (sum_i w_i)^2 / sum_i w_i^2

which is ``n`` for equal weights and 1 when a single sample carries all the weight. Every
explanation records these diagnostics (``metadata.fit_quality``) and a list of warnings
(``metadata.fit_warnings``: a code and a one-line message) for the conditions below, which are
also logged. The thresholds, and why:

``features_ge_samples``
    ``F >= n``: at least as many weights as samples. The ridge surrogate interpolates (almost)
    any prediction, so R^2 ~ 1 whatever the classifier does.
``kernel_collapsed``
    ``n_eff <`` :data:`MIN_KERNEL_EFFECTIVE_SAMPLES` (10) *and* ``n_eff <``
    :data:`MIN_KERNEL_SHARE` (10%) of ``n``: the kernel gives (almost) all its weight to a
    handful of samples, usually row 0 (the original) alone (``kernel_width`` far below the
    distances, ~0.29 for a Bernoulli(0.5) mask). The second clause keeps the blame off the
    kernel when there are simply few samples.
``few_effective_samples``
    ``n_eff <`` :data:`MIN_SAMPLES_PER_FEATURE` (2) ``x F`` (reported only when neither
    condition above explains it): noise alone would then reach ``E[R^2] = F / (n_eff - 1)`` of
    about 0.5 or more, so half the scale of R^2 says nothing about the classifier. 2x is a floor
    for "the number means nothing", not a target: the defaults (1000 samples, 44 features, a
    kernel keeping ~94%) have ~21 effective samples per feature.
``zero_weights``
    ``max |w| <`` :data:`ZERO_WEIGHT` (1e-6, on the target's scale; a float32 softmax resolves
    ~1e-7) for an explained label: the surrogate ranks nothing, and its R^2 (1 when the fitted
    values are constant) is no evidence of fidelity.

Held-out R^2 (:func:`cross_validated_r2`), so in-sample R^2 is never shown alone: K-fold
(:data:`HELDOUT_FOLDS` = 5) cross-validation on the masks that were already predicted, so no
extra classifier call. Each fold refits the configured surrogate (estimator, target, ridge,
kernel) on the other rows and predicts the held-out ones; the out-of-fold predictions of all
folds are scored together by R^2 weighted with the explanation's kernel (the same weighting as
the in-sample R^2, so the two compare). Rows the sampler always draws first (row 0, the
original; for size-based samplers also the all-zeros row) are in every training fold; a paired
sampler's complement pairs stay together. Folds come from
``numpy.random.Generator(PCG64(SeedSequence(seed, spawn_key=(2,))))``: deterministic for a seed
(``musiclime explain`` and ``musiclime run`` agree bit for bit) and apart from the mask stream
and from :mod:`musiclime.metrics.fidelity`'s fresh masks (``spawn_key=(1,)``). Where it cannot
be computed it is ``None`` with a reason: fewer than :data:`MIN_HELDOUT_ROWS` rows to hold out
(``too few samples``), no kernel weight on any held-out row, or constant predictions. The
evaluate stage's ``heldout_r2`` (:mod:`musiclime.metrics.fidelity`) is the costlier estimate on
fresh masks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from .fitting import surrogate_fits, target_values
from .params import FitParams
from .surrogate import LabelFit, cosine_distance

#: warn when the kernel's effective samples are fewer than this many per feature
MIN_SAMPLES_PER_FEATURE = 2.0
#: the kernel has collapsed below this many effective samples ...
MIN_KERNEL_EFFECTIVE_SAMPLES = 10.0
#: ... when they are also under this share of the samples
MIN_KERNEL_SHARE = 0.1
#: a surrogate weight below this (absolute, on the target's scale) counts as zero
ZERO_WEIGHT = 1e-6
#: folds of the held-out (cross-validated) R^2
HELDOUT_FOLDS = 5
#: held-out R^2 needs at least this many rows outside the always-trained ones (2 per fold)
MIN_HELDOUT_ROWS = 2 * HELDOUT_FOLDS
#: the held-out folds' random stream (the evaluate stage's fresh masks use spawn_key (1,))
HELDOUT_SPAWN_KEY = (2,)

THRESHOLDS = {"min_samples_per_feature": MIN_SAMPLES_PER_FEATURE,
              "min_kernel_effective_samples": MIN_KERNEL_EFFECTIVE_SAMPLES,
              "min_kernel_share": MIN_KERNEL_SHARE, "zero_weight": ZERO_WEIGHT}
HELDOUT_METHOD = (f"{HELDOUT_FOLDS}-fold cross-validation on the predicted masks, "
                  "kernel-weighted R^2 of the out-of-fold predictions")

#: the codes of :class:`FitWarning`, in the order they are reported
CODES = ("features_ge_samples", "kernel_collapsed", "few_effective_samples", "zero_weights")


@dataclass(frozen=True)
class FitWarning:
    """One condition that makes a fit's numbers meaningless: a code of :data:`CODES` and a
    one-line message that names the numbers and what to change. ``label``: the explained label
    it concerns (``None``: the whole fit)."""

    code: str
    message: str
    label: int | None = None

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "label": self.label}

    @classmethod
    def from_dict(cls, d: dict) -> FitWarning:
        label = d.get("label")
        return cls(code=str(d["code"]), message=str(d["message"]),
                   label=None if label is None else int(label))


@dataclass
class LabelQuality:
    """One explained label's fit: in-sample and held-out R^2 (``None``: not available, with the
    reason in ``heldout_note``) and the largest |surrogate weight|."""

    insample_r2: float | None
    heldout_r2: float | None
    heldout_note: str | None
    max_abs_weight: float

    def heldout_text(self, digits: int = 3) -> str:
        """``0.834`` or ``n/a (too few samples)``."""
        if self.heldout_r2 is None:
            return f"n/a ({self.heldout_note or 'not computed'})"
        return f"{self.heldout_r2:.{digits}f}"


@dataclass
class FitQuality:
    """The diagnostics of one explanation's fit (``metadata.fit_quality`` in its JSON) and the
    warnings they raised (``metadata.fit_warnings``)."""

    n_samples: int
    n_features: int
    effective_samples: float
    labels: dict[int, LabelQuality]
    warnings: list[FitWarning] = field(default_factory=list)
    heldout_method: str = HELDOUT_METHOD
    heldout_folds: int = HELDOUT_FOLDS
    thresholds: dict = field(default_factory=lambda: dict(THRESHOLDS))

    @property
    def effective_samples_per_feature(self) -> float:
        return self.effective_samples / max(1, self.n_features)

    def as_dict(self) -> dict:
        """``metadata.fit_quality`` (the warnings go to ``metadata.fit_warnings``)."""
        return {"n_samples": int(self.n_samples), "n_features": int(self.n_features),
                "effective_samples": float(self.effective_samples),
                "effective_samples_per_feature": float(self.effective_samples_per_feature),
                "heldout_method": self.heldout_method, "heldout_folds": int(self.heldout_folds),
                "labels": {str(label): {"insample_r2": q.insample_r2,
                                        "heldout_r2": q.heldout_r2,
                                        "heldout_note": q.heldout_note,
                                        "max_abs_weight": q.max_abs_weight}
                           for label, q in self.labels.items()},
                "thresholds": dict(self.thresholds)}

    @classmethod
    def from_dict(cls, d: dict, warnings: list[dict] | None = None) -> FitQuality:
        labels = {int(k): LabelQuality(insample_r2=v.get("insample_r2"),
                                       heldout_r2=v.get("heldout_r2"),
                                       heldout_note=v.get("heldout_note"),
                                       max_abs_weight=float(v.get("max_abs_weight", 0.0)))
                  for k, v in d.get("labels", {}).items()}
        return cls(n_samples=int(d["n_samples"]), n_features=int(d["n_features"]),
                   effective_samples=float(d["effective_samples"]), labels=labels,
                   warnings=[FitWarning.from_dict(w) for w in warnings or []],
                   heldout_method=d.get("heldout_method", HELDOUT_METHOD),
                   heldout_folds=int(d.get("heldout_folds", HELDOUT_FOLDS)),
                   thresholds=dict(d.get("thresholds", THRESHOLDS)))


def _finite(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def null_r2(n_features: int, effective_samples: float) -> float:
    """``F / (n - 1)``, capped at 1: the expected in-sample R^2 of a least-squares fit of ``F``
    features to pure noise on ``n`` (effective) samples."""
    if effective_samples <= 1:
        return 1.0
    return min(1.0, n_features / (effective_samples - 1.0))


def fit_warnings(song_id: str, n_samples: int, n_features: int, effective_samples: float,
                 labels: dict[int, LabelQuality], label_names: dict[int, str], *,
                 kernel_width: float | None = None, distance_scale: float | None = None,
                 ) -> list[FitWarning]:
    """The conditions of the module docstring that hold for this fit, one warning each."""
    n, f, ess = int(n_samples), int(n_features), float(effective_samples)
    where = f"song {song_id}"
    out: list[FitWarning] = []
    r2 = {lb: q.insample_r2 for lb, q in labels.items()}
    shown = next((v for v in r2.values() if v is not None), None)
    r2_text = "n/a" if shown is None else f"{shown:.3f}"
    per_feature = int(np.ceil(MIN_SAMPLES_PER_FEATURE * f))
    if f >= n:
        out.append(FitWarning("features_ge_samples", (
            f"{where}: {f} features but only {n} samples: the surrogate has a weight per sample "
            f"and fits any prediction, so its in-sample R^2 ({r2_text}) means nothing; raise "
            f"explainer.num_samples to at least {per_feature} "
            f"({MIN_SAMPLES_PER_FEATURE:g} per feature) or perturb fewer features (fewer "
            "explainer.temporal_segments or lyric units, or one explainer.modality)")))
    collapsed = ess < MIN_KERNEL_EFFECTIVE_SAMPLES and ess < MIN_KERNEL_SHARE * n
    if collapsed:
        kernel = ("" if kernel_width is None else
                  f" (kernel_width {kernel_width:g} on distances scaled by "
                  f"{1.0 if distance_scale is None else distance_scale:g})")
        out.append(FitWarning("kernel_collapsed", (
            f"{where}: the kernel leaves almost no weight: {ess:.1f} effective samples of {n}"
            f"{kernel}, so the surrogate is fitted to the original and at most a few masks "
            f"near it and its in-sample R^2 ({r2_text}) means nothing; raise "
            "explainer.kernel_width (the default 0.25 keeps ~94% of the samples) or lower "
            "explainer.distance_scale")))
    if f < n and not collapsed and ess < MIN_SAMPLES_PER_FEATURE * f:
        share = ess / max(1, n)
        needed = int(np.ceil(MIN_SAMPLES_PER_FEATURE * f / share)) if share > 0 else per_feature
        kernel_too = (f" or explainer.kernel_width (the kernel keeps {100 * share:.0f}% of "
                      "the samples)" if share < 0.5 else "")
        out.append(FitWarning("few_effective_samples", (
            f"{where}: {ess:.1f} effective samples (of {n}) for {f} features, fewer than "
            f"{MIN_SAMPLES_PER_FEATURE:g} per feature: noise alone would reach an in-sample R^2 "
            f"of about {null_r2(f, ess):.2f}, so the R^2 of {r2_text} says little; raise "
            f"explainer.num_samples to at least {needed}{kernel_too}")))
    for label, q in labels.items():
        if q.max_abs_weight < ZERO_WEIGHT:
            name = label_names.get(label, str(label))
            why = ("the kernel gave the fit nothing to learn from: raise explainer.kernel_width"
                   if collapsed else
                   "no perturbation moved the surrogate: check that the classifier reads its "
                   "inputs, or raise explainer.num_samples")
            out.append(FitWarning("zero_weights", (
                f"{where}: every surrogate weight for '{name}' is ~0 (largest |w| = "
                f"{q.max_abs_weight:.1e} < {ZERO_WEIGHT:g}): the explanation ranks nothing and "
                f"its R^2 is no evidence of fidelity; {why}"), label=int(label)))
    return out


def fold_assignment(n_rows: int, seed: int, fixed_rows: int = 1, paired: bool = False,
                    folds: int = HELDOUT_FOLDS) -> np.ndarray | None:
    """The fold (``0..folds-1``) of every row, ``-1`` for the ``fixed_rows`` leading rows that
    every training fold keeps; ``None`` when fewer than :data:`MIN_HELDOUT_ROWS` rows are left
    to hold out. ``paired``: rows ``2i, 2i + 1`` after the fixed ones share a fold."""
    fixed = min(int(fixed_rows), int(n_rows))
    rest = int(n_rows) - fixed
    if rest < max(MIN_HELDOUT_ROWS, 2 * int(folds)):
        return None
    group = np.arange(rest) // 2 if paired else np.arange(rest)
    n_groups = int(group[-1]) + 1
    ss = np.random.SeedSequence(int(seed), spawn_key=HELDOUT_SPAWN_KEY)
    order = np.random.Generator(np.random.PCG64(ss)).permutation(n_groups)
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    fold_of_group[order] = np.arange(n_groups) % int(folds)
    out = np.full(int(n_rows), -1, dtype=np.int64)
    out[fixed:] = fold_of_group[group]
    return out


def weighted_r2(y: np.ndarray, yhat: np.ndarray, w: np.ndarray) -> tuple[float | None, str | None]:
    """``1 - sum w (y - yhat)^2 / sum w (y - ybar_w)^2``, or ``(None, why)`` when it means
    nothing (no weight, or no variation of ``y`` under the weights)."""
    y, yhat, w = (np.asarray(a, dtype=np.float64) for a in (y, yhat, w))
    total_w = float(w.sum())
    if not total_w > 0:
        return None, "the kernel leaves no weight on the held-out samples"
    mean = float(np.sum(w * y) / total_w)
    total = float(np.sum(w * (y - mean) ** 2))
    if not total > 1e-24 * max(1.0, total_w):
        return None, "the classifier's output does not vary over the held-out samples"
    return _finite(1.0 - float(np.sum(w * (y - yhat) ** 2)) / total), None


def cross_validated_r2(masks: np.ndarray, values: np.ndarray, sample_weights: np.ndarray,
                       fit: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]],
                       fold_of: np.ndarray | None) -> tuple[float | None, str | None]:
    """Held-out R^2 of the surrogate ``fit(masks, rows) -> (intercept, weights)``: refit without
    each fold, predict it, and score the out-of-fold predictions together, weighted by
    ``sample_weights`` (the kernel's). ``values``: the target the surrogate fits, ``(rows,)``;
    ``rows`` handed to ``fit`` are row indices (so it can pick any per-row data). Returns
    ``(r2, None)`` or ``(None, why not)``."""
    if fold_of is None:
        return None, "too few samples"
    masks = np.asarray(masks)
    pred = np.zeros(masks.shape[0], dtype=np.float64)
    held = fold_of >= 0
    for k in range(int(fold_of.max()) + 1):
        test = fold_of == k
        train = np.flatnonzero(~test)  # ascending: row 0 (the original) stays first
        intercept, weights = fit(masks[train], train)
        pred[test] = float(intercept) + masks[test].astype(np.float64) @ np.asarray(
            weights, dtype=np.float64)
    return weighted_r2(np.asarray(values)[held], pred[held], np.asarray(sample_weights)[held])


def assess_fit(song_id: str, fit: FitParams, masks: np.ndarray, probs: np.ndarray,
               labels: list[int], fits: dict[int, LabelFit], effective_samples: float,
               chosen: dict[int, str] | None, class_names: list[str]) -> FitQuality:
    """The fit's diagnostics and warnings (:mod:`musiclime.core.fit_quality`): features against
    samples and effective samples, a collapsed kernel, all-zero weights, and per label the
    held-out R^2 of the configured surrogate by K-fold cross-validation on these ``masks`` and
    ``probs`` (no classifier call), on the scale it was fitted on (``chosen``, for
    ``target=auto``). Deterministic for ``fit.draw.seed``."""
    sample_weights = fit.make_kernel()(cosine_distance(masks))
    sampler = fit.draw.make_sampler()
    fold_of = fold_assignment(masks.shape[0], fit.draw.seed,
                              fixed_rows=getattr(sampler, "fixed_rows", 1),
                              paired=bool(getattr(sampler, "paired", False)))
    per_label = {}
    for label in labels:
        scale = chosen[label] if chosen else fit.target
        fold_fit = fit if scale == fit.target else replace(fit, target=scale)

        def refit(rows_masks, rows, fold_fit=fold_fit, label=label):
            fits_, _, _ = surrogate_fits(fold_fit, rows_masks, probs[rows], [label])
            return fits_[label].intercept, fits_[label].weights

        r2, note = cross_validated_r2(masks, target_values(scale, probs[:, label]),
                                      sample_weights, refit, fold_of)
        weights = np.asarray(fits[label].weights, dtype=np.float64)
        score = float(fits[label].score)
        per_label[label] = LabelQuality(
            insample_r2=score if np.isfinite(score) else None, heldout_r2=r2, heldout_note=note,
            max_abs_weight=float(np.max(np.abs(weights))) if weights.size else 0.0)
    names = {label: class_names[label] if label < len(class_names) else str(label)
             for label in labels}
    found = fit_warnings(song_id, masks.shape[0], masks.shape[1], effective_samples, per_label,
                         names, kernel_width=fit.kernel_width,
                         distance_scale=fit.distance_scale)
    return FitQuality(n_samples=int(masks.shape[0]), n_features=int(masks.shape[1]),
                      effective_samples=float(effective_samples), labels=per_label,
                      warnings=found)
