"""What the surrogate fits: the classifier's probabilities, or their log-odds.

``explainer.target`` is a fit-stage choice (the predictions are stored as probabilities, so a
sweep over targets predicts once):

- ``probability``: ``y = p_c(z)``, LIME's practice (Ribeiro et al., KDD 2016) and today's
  default.
- ``logit``: ``y = log(p_c(z) / (1 - p_c(z)))``, the log-odds of the explained class ``c``. A
  classifier that ends in a sigmoid or softmax adds its evidence up on this scale (a fusion
  head adds audio and lyrics logits), and its probability saturates: near ``p = 1`` a feature
  that moves the logit by 3 moves the probability by 0.001, so a linear surrogate of ``p`` sees
  mostly noise and ranks features unstably. Fitting the logit is what shap's
  ``KernelExplainer(link="logit")`` does (Lundberg & Lee, NeurIPS 2017, Sec. 4 "model output
  in log-odds space"); for a two-class softmax ``log(p_c / (1 - p_c))`` is exactly the difference
  of the two classes' logits.

Probabilities are clipped to ``[EPS, 1 - EPS]`` before the log (``EPS = 1e-7``, about the float32
resolution of a softmax output near 1), so a row the classifier is certain about gives a large,
finite log-odds (``±16.1``).

``auto`` fits both and keeps, per explained label, the one with the higher weighted R^2 of the
surrogate: the scale on which the classifier is locally most linear (on the demo corpus: the
logit for the songs it is sure are human, whose probability sits near 1 whatever is removed,
and the probability for the ``ai`` songs, whose planted evidence switches it between 0 and 1).
The explanation records the choice in ``params["target_chosen"]``.

The surrogate's intercept, weights, ``local_pred`` and R^2 are on the target's scale; so are the
held-out fidelity metrics (:mod:`musiclime.metrics.fidelity` transforms the classifier's output
the same way). The explanation records the target in ``params["target"]``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Target(Protocol):
    """``target(probs) -> y``: the scale the surrogate fits, elementwise on the classifier's
    probabilities ``p`` (any shape). LIME (Ribeiro et al., KDD 2016) fits ``y = p``; shap's
    ``link="logit"`` (Lundberg & Lee, NeurIPS 2017) fits ``y = log(p / (1 - p))``. A name of
    :data:`TARGETS` stands for the built-in ones; ``explainer.target`` names them, and
    ``MusicLIME(..., target=obj)`` takes any object like this."""

    def __call__(self, probs: np.ndarray) -> np.ndarray: ...

EPS = 1e-7


def probability(probs: np.ndarray) -> np.ndarray:
    """``y = p``."""
    return np.asarray(probs, dtype=np.float64)


def logit(probs: np.ndarray) -> np.ndarray:
    """``y = log(p / (1 - p))`` with ``p`` clipped to ``[EPS, 1 - EPS]``."""
    p = np.clip(np.asarray(probs, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


#: the scales a surrogate can be fitted on
FIXED_TARGETS = ("probability", "logit")
#: ``explainer.target`` values: a scale, or ``auto`` (per label, the scale the surrogate fits
#: best, by weighted R^2; :func:`musiclime.core.fitting.surrogate_fits`)
TARGETS = (*FIXED_TARGETS, "auto")
_TRANSFORMS = {"probability": probability, "logit": logit}


def transform(target: str, probs: np.ndarray) -> np.ndarray:
    """``probs`` (any shape) on the scale ``target`` names (one of :data:`FIXED_TARGETS`)."""
    try:
        return _TRANSFORMS[target](probs)
    except KeyError:
        raise ValueError(f"unknown target {target!r}; scales are {list(FIXED_TARGETS)}"
                         ) from None


def fitted_target(params: dict, label: int) -> str:
    """The scale an explanation's surrogate for ``label`` was fitted on (its
    ``params["target"]``, or with ``target=auto`` the one ``params["target_chosen"]`` names)."""
    chosen = params.get("target_chosen") or {}
    return chosen.get(str(int(label)), params.get("target", "probability"))
