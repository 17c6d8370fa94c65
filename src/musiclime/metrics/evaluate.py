"""All explanation-quality metrics of one song, as one flat ``dict[str, float]``.

:func:`evaluate_explanation` re-predicts perturbed versions of the song with the classifier
(through :class:`~musiclime.metrics.predictor.MaskPredictor`: batched, streaming, every distinct
mask predicted once across all metrics) and returns:

===============================================  =========================================  ======
key                                              what                                       better
===============================================  =========================================  ======
``deletion_auc`` / ``insertion_auc``             AUC of P(label) vs fraction of top          low /
                                                 features removed / inserted (x in [0, 1])   high
``{deletion,insertion}_random_auc_mean|_std``    the same for ``R`` random orderings
``deletion_ratio`` / ``insertion_ratio``         auc / random_auc_mean                      <1 / >1
``sufficiency_top{k}``                           P(label) with only the top-k features on   high
``sufficiency_top{k}_survives``                  1 if the label is still the argmax          high
``sufficiency_random_top{k}[_survives]``         mean over ``R`` random k-subsets
``evidence_precision_at_{k}_{audio,lyrics,       fraction of planted evidence in the top k  high
combined}``
``evidence_normalized_precision_at_{k}_*``       hits / min(k, evidence features)           high
``evidence_auroc_{audio,lyrics,combined}``       AUROC of weights vs planted evidence       high
``evidence_positives_{audio,lyrics,combined}``   evidence features among perturbed ones
``insample_r2``                                  the fit's own weighted R^2                 high
``heldout_r2`` / ``heldout_weighted_r2``         surrogate R^2 on fresh masks               high
``stability_uk_top{k}``                          distinct features in S top-k sets (k..Sk)  low
``stability_jaccard_top{k}``                     mean pairwise Jaccard of top-k sets        high
``stability_spearman``                           mean pairwise Spearman of weight vectors   high
``complexity_entropy[_normalized]``              entropy of normalised abs weights          low
``sanity_spearman[_abs]_depth{d}``               Spearman of the (absolute) weights with    low
                                                 the original's, top d layers randomised
``sanity_jaccard_top5_depth{d}``                 top-5 Jaccard vs the original, the same    low
``sanity_spearman[_abs]_final``                  the same with every layer randomised       ~0
``sanity_layer_count``                           the classifier's randomisable layers
``metrics_label``, ``metrics_classifier_rows``,  the label evaluated, mask rows sent to the
``metrics_s``                                    classifier, seconds taken
===============================================  =========================================  ======

Evidence keys appear only when an evidence annotation is given (NaN where it has no positives
for a modality); stability keys only when ``stability_seeds >= 2``; sanity keys (Adebayo et
al.'s cascading randomisation, :mod:`musiclime.metrics.sanity`) only when ``sanity`` is on.
Every key's family, better direction and label are in :mod:`musiclime.metrics.registry`
(``docs/metrics.md``).

Classifier cost per song, in mask rows (one forward pass each), with ``F`` perturbed features
and the defaults (``R = 10`` random orderings/subsets, 20 curve points, ks (1, 3, 5, 10), 200
held-out masks, ``S = 3``):

- deletion + insertion: ``2 * (R + 1) * points`` masks, at most ``2 * (R + 1) * (points - 2) + 2
  = 398`` distinct (all-on and all-off are shared; fewer when ``F + 1 < 20``);
- sufficiency: ``len(ks) * (R + 1) = 44``;
- held-out fidelity: ``200``;
- stability: ``(S - 1) * num_samples`` (the given explanation is reused as the first run; the
  reruns repeat it with mask seeds ``seed + 1 .. seed + S - 1``), i.e. 2000 at num_samples=1000.

- sanity: ``num_samples`` per cascade step, ``L`` steps for a classifier with ``L``
  randomisable layers (10 for the demo classifier), ``sanity_layers`` steps when that is > 0.

So about ``640`` rows without stability (under two thirds of one default explanation) and
``640 + 2 * num_samples`` with it; ``metrics_classifier_rows`` reports the exact count (cached
duplicates excluded, the sanity refits included). Set ``stability_seeds=0`` to skip the costly
part; sanity is off unless asked for.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.explainer import ExplainerConfig, Song, fit_explanation, make_masks
from ..core.explanation import Explanation
from .complexity import complexity
from .cues import cue_metrics
from .deletion import deletion_insertion
from .evidence import explanation_evidence, load_evidence
from .fidelity import explanation_fidelity
from .localisation import localisation
from .predictor import MaskPredictor
from .rerun import check_song, config_from_explanation
from .sanity import sanity_cascade, torch_module
from .stability import explanation_stability
from .sufficiency import sufficiency

log = logging.getLogger(__name__)

#: explainer settings that shape the surrogate: stability reruns take them from the explanation

@dataclass
class MetricSettings:
    """Metric settings of :func:`evaluate_explanation` (the ``metrics`` config group is
    :class:`MetricsConfig`, these fields plus ``enabled``).

    Classifier rows per song: about ``2 * R * curve_points`` (deletion + insertion)
    ``+ R * len(sufficiency_ks) + heldout_masks``, plus ``(stability_seeds - 1) * num_samples``
    when stability is on, plus ``num_samples`` per cascade step when sanity is on (module
    docstring).
    """

    random_orderings: int = 10  # R: random orderings (curves) and random k-subsets (sufficiency)
    curve_points: int = 20  # points per deletion/insertion curve (k from 0 to F)
    sufficiency_ks: Any = (1, 3, 5, 10)  # top-k sizes of the sufficiency check
    precision_k: int = 5  # k of planted-evidence precision@k
    min_overlap: float = 0.5  # share of a segment (or span) that makes it evidence
    heldout_masks: int = 200  # fresh masks for the surrogate's held-out R^2
    stability_seeds: int = 3  # S runs in all (the given one + S-1 reruns); < 2 skips stability
    stability_ks: Any = (3, 5)  # top-k sizes of the stability metrics
    seed: int = 0  # seed of the random orderings, k-subsets, held-out masks, sanity re-inits
    label: Any = None  # None: the explanation's predicted label; else a class index
    # Adebayo et al.'s sanity check (metrics.sanity): explain again as the classifier's layers
    # are re-initialised from the output down; needs a torch classifier
    sanity: bool = False
    sanity_layers: int = 0  # cascade steps: 0 = one per layer; N > 0 = N evenly spaced steps

    def __post_init__(self):
        self.sufficiency_ks = tuple(int(k) for k in self.sufficiency_ks)
        self.stability_ks = tuple(int(k) for k in self.stability_ks)
        if self.random_orderings < 0:
            raise ValueError("random_orderings must be >= 0")
        if self.curve_points < 2:
            raise ValueError("curve_points must be >= 2")
        if self.precision_k < 1:
            raise ValueError("precision_k must be >= 1")
        if self.heldout_masks < 2:
            raise ValueError("heldout_masks must be >= 2")
        if not 0 < self.min_overlap <= 1:
            raise ValueError("min_overlap must be in (0, 1]")
        if not isinstance(self.sanity, bool):
            raise ValueError("sanity must be true or false")
        if isinstance(self.sanity_layers, bool) or not isinstance(self.sanity_layers, int) \
                or self.sanity_layers < 0:
            raise ValueError("sanity_layers must be an integer >= 0 (0 = every layer)")

    def as_dict(self) -> dict:
        """The settings as plain values. The sanity fields appear only when sanity is on: off,
        they change no metric, and leaving them out keeps the evaluate stage's cache keys (a
        hash of this dict) of results computed before they existed."""
        d = dataclasses.asdict(self)
        d["sufficiency_ks"] = list(self.sufficiency_ks)
        d["stability_ks"] = list(self.stability_ks)
        if not self.sanity:
            del d["sanity"], d["sanity_layers"]
        return d


@dataclass
class MetricsConfig(MetricSettings):
    """Schema of the ``metrics`` config group (``config/metrics/default.yaml``): the fields of
    :class:`MetricSettings`, with stability off by default, plus ``enabled``."""

    # stability reruns the explainer S - 1 times (2 * num_samples rows per song at S = 3), so
    # the pipeline leaves it off unless asked (the paper preset sets 3)
    stability_seeds: int = 0
    enabled: bool = True  # false: no evaluate stage


def evaluate_explanation(exp: Explanation, song: Song, classifier,
                         config: ExplainerConfig | None = None,
                         evidence: dict | str | os.PathLike | None = None,
                         settings: MetricSettings | None = None, *,
                         predictor: MaskPredictor | None = None,
                         explain: Callable[[int], Explanation] | None = None,
                         ) -> dict[str, float]:
    """Run every metric for one song; returns a flat ``{name: float}`` (module docstring).

    Parameters
    ----------
    exp: the explanation to evaluate (of ``song``, by ``classifier``).
    song: the factorized song (the same segmentation and lyrics unit as ``exp``).
    classifier: the classifier (or a seed-style ``predict_fn``) that was explained.
    config: explainer settings for batch size / deduplication and the stability reruns;
        default: those recorded in ``exp``. Surrogate settings always come from ``exp``.
    evidence: the song's evidence annotation (dict or path to ``*.evidence.json``).
    predictor: a ready ``predict(masks)`` callable (default: a :class:`MaskPredictor`).
    explain: ``explain(seed) -> Explanation`` for the stability reruns (default: re-fit with
        the explanation's settings and another mask seed, predicting through ``predictor``).
    """
    t0 = time.perf_counter()
    settings = settings or MetricSettings()
    label = exp.predicted_label if settings.label is None else int(settings.label)
    if label not in exp.fits:
        raise ValueError(f"{exp.song_id}: the explanation has no surrogate for label {label} "
                         f"(it explains {exp.labels}); explain it with labels=[{label}]")
    cfg = config_from_explanation(exp, config, label)
    if settings.sanity:
        torch_module(classifier)  # no torch network: say so before the other metrics run
    if predictor is None:
        check_song(exp, song)
        predictor = MaskPredictor(song, classifier, exp.modality, batch_size=cfg.batch_size,
                                  deduplicate=cfg.deduplicate, class_names=exp.class_names)
    rows_before = getattr(predictor, "rows_predicted", 0)
    fit = exp.fits[label]
    seed = int(settings.seed)
    out: dict[str, float] = {"metrics_label": float(label)}

    out.update(_perturbation_curves(fit.weights, predictor, label, settings))
    if evidence is not None:
        out.update(_evidence_metrics(exp, song, evidence, label, settings))
    out.update(explanation_fidelity(exp, predictor, label, n_masks=settings.heldout_masks,
                                    seed=seed))
    if settings.stability_seeds >= 2:
        out.update(_stability_metrics(exp, explain or _refit_explainer(exp, song, cfg, predictor),
                                      int(cfg.seed), label, settings))

    out.update({f"complexity_{k}": v for k, v in complexity(fit.weights).items()})

    sanity_rows = 0
    if settings.sanity:
        sanity = sanity_cascade(exp, song, classifier, cfg, label=label,
                                layers=settings.sanity_layers, seed=seed)
        out.update({f"sanity_{k}": v for k, v in sanity.as_dict().items()})
        sanity_rows = sanity.classifier_rows

    out["metrics_classifier_rows"] = float(getattr(predictor, "rows_predicted", 0) - rows_before
                                           + sanity_rows)
    out["metrics_s"] = time.perf_counter() - t0
    return {k: float(v) for k, v in out.items()}


def evaluate_together(explanations: list[tuple[Explanation, ExplainerConfig]], song: Song,
                      classifier, settings: MetricSettings, evidence=None) -> list[dict]:
    """The metrics of several explanations of one song (``(explanation, the config that made
    it)`` each: a sweep's configurations): one classifier and one
    :class:`~musiclime.metrics.predictor.MaskPredictor` serve them all, so a mask several
    explanations need is predicted once. ``metrics_classifier_rows`` of one counts the rows it
    added; ``metrics_batch_rows`` is the total, ``metrics_batch_s`` the total time."""
    t0 = time.perf_counter()
    predictor = None
    results = []
    for exp, cfg in explanations:
        t1 = time.perf_counter()
        if predictor is None:
            check_song(exp, song)
            predictor = MaskPredictor(song, classifier, exp.modality, batch_size=cfg.batch_size,
                                      deduplicate=cfg.deduplicate, class_names=exp.class_names)
        metrics = evaluate_explanation(exp, song, classifier, cfg, evidence=evidence,
                                       settings=settings, predictor=predictor)
        metrics["time_evaluate_s"] = time.perf_counter() - t1
        results.append(metrics)
    for metrics in results:
        metrics["metrics_batch_rows"] = float(predictor.rows_predicted)
        metrics["metrics_batch_members"] = float(len(results))
        metrics["metrics_batch_s"] = time.perf_counter() - t0
    return results


def _perturbation_curves(weights, predictor, label: int,
                         settings: MetricSettings) -> dict[str, float]:
    """Deletion and insertion curves and sufficiency of the top features, against random ones."""
    out: dict[str, float] = {}
    seed = int(settings.seed)
    curves = deletion_insertion(weights, predictor, label, points=settings.curve_points,
                                random_orderings=settings.random_orderings, seed=seed)
    for mode, res in curves.items():
        out.update({f"{mode}_{k}": v for k, v in res.as_dict().items()})
    suff = sufficiency(weights, predictor, label, ks=settings.sufficiency_ks,
                       random_subsets=settings.random_orderings, seed=seed)
    for k, r in suff.items():
        out[f"sufficiency_top{k}"] = r.prob
        out[f"sufficiency_top{k}_survives"] = r.survives
        out[f"sufficiency_random_top{k}"] = r.random_prob
        out[f"sufficiency_random_top{k}_survives"] = r.random_survives
    return out


def _evidence_metrics(exp: Explanation, song: Song, evidence: dict | str | os.PathLike,
                      label: int, settings: MetricSettings) -> dict[str, float]:
    """Agreement of the top features with the song's evidence annotation."""
    if not isinstance(evidence, dict):
        evidence = load_evidence(evidence)
    found = explanation_evidence(exp, evidence, k=settings.precision_k,
                                 min_overlap=settings.min_overlap, lyrics=song.lyrics,
                                 label=label)
    return {**{f"evidence_{k}": v for k, v in found.items()},
            **localisation(exp, evidence, label),
            **cue_metrics(exp, evidence, settings.precision_k, settings.min_overlap, label)}


def _stability_metrics(exp: Explanation, explain: Callable[[int], Explanation], first_seed: int,
                       label: int, settings: MetricSettings) -> dict[str, float]:
    """Agreement of ``exp`` with re-explanations under the next mask seeds."""
    runs = [exp] + [explain(first_seed + i) for i in range(1, int(settings.stability_seeds))]
    stab = explanation_stability(runs, ks=settings.stability_ks, label=label)
    return {**{f"stability_{k}": v for k, v in stab.as_dict().items()},
            "stability_runs": float(stab.n_runs)}


def _refit_explainer(exp: Explanation, song: Song, cfg: ExplainerConfig,
                     predict) -> Callable[[int], Explanation]:
    """``explain(seed)``: the explanation's own pipeline with another mask seed, predicting
    through ``predict`` (so rows shared with the metrics are not predicted twice)."""
    table = exp.features

    def explain(seed: int) -> Explanation:
        run_cfg = dataclasses.replace(cfg, seed=int(seed))
        masks, layout = make_masks(table, run_cfg)
        probs = predict(masks)
        return fit_explanation(exp.song_id, table, layout, masks, probs, exp.class_names,
                               run_cfg)

    return explain
