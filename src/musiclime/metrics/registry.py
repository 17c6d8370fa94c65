"""The metric registry: every key the evaluate stage writes, with its direction and label.

One :class:`MetricInfo` per metric family (Quantus-style metric contract): the key pattern(s)
the family writes, which direction is better (``"higher"``, ``"lower"``, or ``"none"`` for
baselines, counts and bookkeeping such as ``metrics_classifier_rows``), a short human label
and a one-line description. Tables and trackers read directions and labels here instead of
parsing metric names; ``docs/metrics.md`` is :func:`markdown_table` (regenerate it with
``python -m musiclime.metrics.registry > docs/metrics.md``).

Key patterns use placeholders: ``{k}`` (an integer), ``{kind}`` (``audio``, ``lyrics`` or
``combined``), ``{curve}`` (``deletion`` or ``insertion``), ``{stat}`` (``mean`` or ``std``) and
``{which}`` (``min``, ``mean`` or ``max``). Labels may use the same placeholders, and
``{evidence}``: ``evidence`` for ``combined``, else the kind (``evidence P@5``, ``audio P@5``).

>>> direction("deletion_auc"), label("evidence_precision_at_5_audio")
('lower', 'audio P@5')
>>> parse_evidence_key("evidence_precision_at_5_lyrics")
(5, 'lyrics')

Stages: ``evaluate`` keys come from :func:`~musiclime.metrics.evaluate.evaluate_explanation`;
``sanity`` keys too, but only with ``metrics.sanity=true`` and a torch classifier (the cascading
randomisation of :mod:`musiclime.metrics.sanity`); ``workflow`` keys are added to its output by
the workflow's evaluate stage; ``fit`` keys are read from the explanation itself (the tracker
logs them next to the metrics, per song).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

DIRECTIONS = ("higher", "lower", "none")
_PLACEHOLDERS = {
    "k": r"\d+",
    "kind": r"audio|lyrics|combined",
    "curve": r"deletion|insertion",
    "stat": r"mean|std",
    "which": r"min|mean|max",
}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _compile(pattern: str) -> re.Pattern:
    parts, pos = [], 0
    for m in _PLACEHOLDER.finditer(pattern):
        parts.append(re.escape(pattern[pos:m.start()]))
        parts.append(f"(?P<{m.group(1)}>{_PLACEHOLDERS[m.group(1)]})")
        pos = m.end()
    parts.append(re.escape(pattern[pos:]))
    return re.compile("".join(parts))


@dataclass(frozen=True)
class MetricInfo:
    """One metric family: the keys it writes and how to read them."""

    name: str  # family name, e.g. "evidence_precision"
    keys: tuple[str, ...]  # key patterns, e.g. ("evidence_precision_at_{k}_{kind}",)
    direction: str  # "higher" | "lower" | "none" (a baseline, a count, bookkeeping)
    label: str  # short label for tables, with the keys' placeholders: "{evidence} P@{k}"
    description: str  # one line: what the number is
    source: str  # the module that computes it
    stage: str = "evaluate"  # evaluate | sanity | workflow | fit (module docstring)
    _regexes: tuple[re.Pattern, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"{self.name}: direction must be one of {DIRECTIONS}")
        object.__setattr__(self, "_regexes", tuple(_compile(k) for k in self.keys))

    def match(self, key: str) -> dict[str, str] | None:
        """The placeholder values of ``key`` if it is one of this family's keys, else None."""
        for regex in self._regexes:
            m = regex.fullmatch(key)
            if m:
                return m.groupdict()
        return None

    def key(self, **params) -> str:
        """The family's (first) key with its placeholders filled in:
        ``metric("evidence_normalized_precision").key(k=5, kind="audio")``."""
        return self.keys[0].format(**{k: str(v) for k, v in params.items()})

    def label_for(self, params: dict[str, str]) -> str:
        values = dict(params)
        if "kind" in values:
            values["evidence"] = "evidence" if values["kind"] == "combined" else values["kind"]
        return self.label.format(**values)


_EV = "musiclime.metrics.evidence"
_DEL = "musiclime.metrics.deletion"
_SUF = "musiclime.metrics.sufficiency"
_FID = "musiclime.metrics.fidelity"
_STAB = "musiclime.metrics.stability"
_EVAL = "musiclime.metrics.evaluate"
_LOC = "musiclime.metrics.localisation"
_SAN = "musiclime.metrics.sanity"

METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("deletion_auc", ("deletion_auc",), "lower", "deletion AUC",
               "AUC of P(label) as the top-ranked features are switched off (x = share removed)",
               _DEL),
    MetricInfo("insertion_auc", ("insertion_auc",), "higher", "insertion AUC",
               "AUC of P(label) as the top-ranked features are switched on from all-off", _DEL),
    MetricInfo("curve_random_auc", ("{curve}_random_auc_{stat}",), "none",
               "{curve} AUC random {stat}",
               "mean / std of the same AUC over R random orderings (the baseline)", _DEL),
    MetricInfo("deletion_ratio", ("deletion_ratio",), "lower", "deletion / random",
               "deletion_auc / deletion_random_auc_mean (< 1 beats random)", _DEL),
    MetricInfo("insertion_ratio", ("insertion_ratio",), "higher", "insertion / random",
               "insertion_auc / insertion_random_auc_mean (> 1 beats random)", _DEL),
    MetricInfo("sufficiency", ("sufficiency_top{k}",), "higher", "P top-{k}",
               "P(label) with only the top-k features on", _SUF),
    MetricInfo("sufficiency_survives", ("sufficiency_top{k}_survives",), "higher",
               "survives top-{k}", "1 if the label is still the strict argmax with only the top-k "
               "features on", _SUF),
    MetricInfo("sufficiency_random", ("sufficiency_random_top{k}",), "none", "P random-{k}",
               "mean P(label) with only a random k-subset on, over R subsets (the baseline)",
               _SUF),
    MetricInfo("sufficiency_random_survives", ("sufficiency_random_top{k}_survives",), "none",
               "survives random-{k}",
               "share of R random k-subsets that keep the label the argmax (the baseline)", _SUF),
    MetricInfo("evidence_precision", ("evidence_precision_at_{k}_{kind}",), "higher",
               "{evidence} P@{k}", "share of planted-evidence features among the top k "
               "(at most min(k, positives) / k)", _EV),
    MetricInfo("evidence_normalized_precision", ("evidence_normalized_precision_at_{k}_{kind}",),
               "higher", "{evidence} nP@{k}",
               "evidence hits in the top k / min(k, evidence features) (1 = the best possible)",
               _EV),
    MetricInfo("evidence_auroc", ("evidence_auroc_{kind}",), "higher", "{evidence} AUROC",
               "AUROC of the weights against the planted evidence (0.5 = chance)", _EV),
    MetricInfo("evidence_positives", ("evidence_positives_{kind}",), "none",
               "evidence features ({kind})", "planted-evidence features among the perturbed ones",
               _EV),
    MetricInfo("localisation_auc", ("localisation_auc",), "higher", "localisation AUC",
               "ROC AUC of the weights over every stem x 100 ms frame against the annotated "
               "evidence spans (Bolanos et al. 2025; 0.5 = chance)", _LOC),
    MetricInfo("localisation_auc_time", ("localisation_auc_time",), "higher",
               "time localisation AUC", "the same over 100 ms frames, any stem (a frame's "
               "relevance is its largest stem weight)", _LOC),
    MetricInfo("localisation_pointing", ("localisation_pointing",), "higher", "pointing game",
               "1 if the top audio feature overlaps an evidence span of its stem, else 0", _LOC),
    MetricInfo("decoy_in_top", ("decoy_in_top{k}",), "lower", "decoy in top-{k}",
               "1 if a decoy (an annotated event the classifier ignores) is among the top k, "
               "else 0; over songs, the rate", "musiclime.metrics.cues"),
    MetricInfo("pair_in_top", ("pair_in_top{k}",), "higher", "pair in top-{k}",
               "share of the annotated interacting pairs with both halves among the top k",
               "musiclime.metrics.cues"),
    MetricInfo("interaction_pair_in_top", ("interaction_pair_in_top{k}",), "higher",
               "pair in top-{k} interactions",
               "share of the annotated interacting pairs found among the top k pairwise "
               "interactions (explainer.interactions)", "musiclime.metrics.cues"),
    MetricInfo("insample_r2", ("insample_r2",), "higher", "R^2 in-sample",
               "the surrogate's kernel-weighted R^2 on its own samples (optimistic)", _FID),
    MetricInfo("heldout_r2", ("heldout_r2",), "higher", "R^2 held-out",
               "R^2 of the surrogate against the classifier on fresh Bernoulli(0.5) masks", _FID),
    MetricInfo("heldout_weighted_r2", ("heldout_weighted_r2",), "higher",
               "weighted R^2 held-out", "the same, weighted by the explanation's kernel "
               "(NaN for a kernel without a width)", _FID),
    MetricInfo("stability_uk", ("stability_uk_top{k}",), "lower", "U_{k}",
               "distinct features in the top-k sets of S mask seeds (k: all agree .. S*k)",
               _STAB),
    MetricInfo("stability_jaccard", ("stability_jaccard_top{k}",), "higher", "Jaccard top-{k}",
               "mean pairwise Jaccard overlap of the S top-k sets", _STAB),
    MetricInfo("stability_spearman", ("stability_spearman",), "higher", "Spearman",
               "mean pairwise Spearman correlation of the S weight vectors", _STAB),
    MetricInfo("stability_runs", ("stability_runs",), "none", "stability runs",
               "S, the explanations compared by the stability metrics", _STAB),
    MetricInfo("complexity_entropy", ("complexity_entropy",), "lower", "entropy",
               "entropy (nats) of the normalised absolute weights: lower = more concentrated",
               "musiclime.metrics.complexity"),
    MetricInfo("complexity_entropy_normalized", ("complexity_entropy_normalized",), "lower",
               "entropy / ln F", "complexity_entropy / ln F, in [0, 1]",
               "musiclime.metrics.complexity"),
    MetricInfo("sanity_spearman", ("sanity_spearman_depth{k}",), "lower",
               "Spearman, {k} layers random",
               "Spearman correlation of the weights with the original explanation's after the "
               "classifier's top k layers are re-initialised (k = 0: the original, 1)", _SAN,
               stage="sanity"),
    MetricInfo("sanity_spearman_abs", ("sanity_spearman_abs_depth{k}",), "lower",
               "Spearman abs(w), {k} layers random",
               "the same for the absolute weights (a method can keep the magnitudes' order while "
               "the signs change)", _SAN, stage="sanity"),
    MetricInfo("sanity_jaccard", ("sanity_jaccard_top5_depth{k}",), "lower",
               "Jaccard top-5, {k} layers random",
               "overlap of the top-5 features with the original explanation's after k layers "
               "are re-initialised", _SAN, stage="sanity"),
    MetricInfo("sanity_spearman_final", ("sanity_spearman_final",), "lower",
               "Spearman, all layers random",
               "Spearman correlation with the original explanation once every layer is "
               "re-initialised: near 0 passes Adebayo et al.'s sanity check", _SAN,
               stage="sanity"),
    MetricInfo("sanity_spearman_abs_final", ("sanity_spearman_abs_final",), "lower",
               "Spearman abs(w), all layers random",
               "the same for the absolute weights", _SAN, stage="sanity"),
    MetricInfo("sanity_layer_count", ("sanity_layer_count",), "none", "randomisable layers",
               "L, the classifier's layers the cascade re-initialises (the last depth)", _SAN,
               stage="sanity"),
    MetricInfo("metrics_bookkeeping", ("metrics_label", "metrics_classifier_rows", "metrics_s"),
               "none", "evaluate bookkeeping",
               "the label evaluated, mask rows sent to the classifier, seconds taken", _EVAL),
    MetricInfo("evaluate_stage_bookkeeping",
               ("time_evaluate_s", "metrics_batch_rows", "metrics_batch_members",
                "metrics_batch_s"), "none", "evaluate job bookkeeping",
               "seconds of this evaluation, and the rows, members and seconds of its batch job",
               "musiclime.workflow.stages", stage="workflow"),
    MetricInfo("surrogate_r2", ("surrogate_r2",), "higher", "R^2 in-sample",
               "the fit's weighted R^2 for the predicted label (insample_r2 of the explanation; "
               "optimistic: read it with surrogate_heldout_r2)",
               "musiclime.core.surrogate", stage="fit"),
    MetricInfo("surrogate_heldout_r2", ("surrogate_heldout_r2",), "higher",
               "R^2 held-out (fit CV)",
               "the fit's weighted R^2 for the predicted label on the rows held out by a 5-fold "
               "cross-validation of the masks already predicted (no classifier call; NaN when "
               "too few samples)", "musiclime.core.fit_quality", stage="fit"),
    MetricInfo("fit_warning_count", ("fit_warning_count",), "lower", "fit warnings",
               "conditions that make the fit's numbers meaningless (features >= samples, a "
               "collapsed kernel, effective samples < 2 per feature, all-zero weights)",
               "musiclime.core.fit_quality", stage="fit"),
    MetricInfo("songs_with_fit_warnings", ("songs_with_fit_warnings",), "lower",
               "songs with fit warnings",
               "run-level: the configuration's songs with at least one fit warning (the tag "
               "musiclime.fit_warnings names them and their codes)",
               "musiclime.tracking.log", stage="fit"),
    MetricInfo("kernel_weight", ("kernel_weight_{which}",), "none", "kernel w {which}",
               "smallest / mean / largest kernel weight of the fit (all ~1: a flat kernel)",
               "musiclime.core.surrogate", stage="fit"),
    MetricInfo("kernel_effective_samples", ("kernel_effective_samples",), "none",
               "effective samples", "(sum w)^2 / sum w^2: how many samples the fit really uses",
               "musiclime.core.surrogate", stage="fit"),
    MetricInfo("auto_calls", ("auto_calls",), "lower", "auto calls",
               "num_samples=auto: the classifier calls (mask rows) it predicted before it stopped",
               "musiclime.core.adaptive", stage="fit"),
    MetricInfo("auto_stability", ("auto_stability",), "higher", "auto stability",
               "num_samples=auto: bootstrap estimate of the top-k Jaccard where it stopped",
               "musiclime.core.adaptive", stage="fit"),
    MetricInfo("auto_reached", ("auto_reached",), "higher", "auto reached",
               "num_samples=auto: 1 when the stability target was reached within the budget",
               "musiclime.core.adaptive", stage="fit"),
    MetricInfo("topk_stability_mean", ("topk_stability_mean",), "higher", "P(stays in top-5)",
               "mean over the predicted label's top-5 features of the probability that each "
               "stays in the top-5 under resampling (parametric bootstrap of the fit; no "
               "classifier call; optimistic for features tied with many others)",
               "musiclime.core.uncertainty", stage="fit"),
    MetricInfo("top5_intervals_crossing_zero", ("top5_intervals_crossing_zero",), "lower",
               "top-5 intervals crossing 0",
               "how many of the predicted label's top-5 features have a nominal 90% interval "
               "that holds 0: weights not told apart from no effect",
               "musiclime.core.uncertainty", stage="fit"),
    MetricInfo("modality_share_audio", ("modality_share_audio",), "none", "audio share",
               "MM-SHAP share of the audio, |phi_audio| / (|phi_audio| + |phi_lyrics|), of the "
               "exact 2-player game audio x lyrics for the predicted label's probability (4 "
               "classifier rows; NaN when neither modality moves it); lyrics share = 1 - this",
               "musiclime.core.modality", stage="fit"),
    MetricInfo("modality_shapley", ("modality_shapley_audio", "modality_shapley_lyrics"),
               "none", "modality Shapley value",
               "exact Shapley value of the audio (lyrics) in the 2-player game audio x lyrics "
               "for the predicted label's probability; the two add up to v(all) - v(none)",
               "musiclime.core.modality", stage="fit"),
    MetricInfo("modality_interaction", ("modality_interaction",), "none",
               "audio x lyrics interaction",
               "v(audio+lyrics) - v(audio) - v(lyrics) + v(none) for the predicted label's "
               "probability: what only the two modalities together do (> 0: synergy)",
               "musiclime.core.modality", stage="fit"),
    MetricInfo("modality_share_interaction", ("modality_share_interaction",), "none",
               "interaction share",
               "|interaction| / (|audio alone| + |lyrics alone| + |interaction|): the part of "
               "the modality game only both modalities together carry (NaN when nothing moves)",
               "musiclime.core.modality", stage="fit"),
)

_BY_NAME = {m.name: m for m in METRICS}


def all_metrics() -> list[MetricInfo]:
    """Every registered metric family, in table order."""
    return list(METRICS)


def metric(name: str) -> MetricInfo:
    """The family called ``name`` (``"evidence_precision"``); KeyError naming it if unknown."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no metric family {name!r}; known: {', '.join(_BY_NAME)}") from None


def match_key(key: str) -> tuple[MetricInfo, dict[str, str]] | None:
    """``(family, placeholder values)`` of an output key, or None for an unknown key."""
    for info in METRICS:
        params = info.match(key)
        if params is not None:
            return info, params
    return None


def metric_for_key(key: str) -> MetricInfo | None:
    """The family that writes ``key`` (``"stability_uk_top5"`` -> ``stability_uk``), or None."""
    found = match_key(key)
    return found[0] if found else None


def _known(key: str) -> tuple[MetricInfo, dict[str, str]]:
    found = match_key(key)
    if found is None:
        raise KeyError(f"{key!r} is not a registered metric key (musiclime.metrics.registry)")
    return found


def direction(key: str) -> str:
    """``"higher"``, ``"lower"`` or ``"none"`` for an output key; KeyError if unknown."""
    return _known(key)[0].direction


def label(key: str) -> str:
    """The short label of an output key (``"evidence_auroc_combined"`` -> ``"evidence AUROC"``);
    KeyError if unknown."""
    info, params = _known(key)
    return info.label_for(params)


def parse_evidence_key(key: str) -> tuple[int, str] | None:
    """``(k, kind)`` of an ``evidence_precision_at_{k}_{kind}`` key, else None (what the tracker
    needs to fill in ``metric("evidence_normalized_precision").key(k=k, kind=kind)``)."""
    params = _BY_NAME["evidence_precision"].match(key)
    return (int(params["k"]), params["kind"]) if params else None


def markdown_table() -> str:
    """docs/metrics.md: every key pattern with its label, direction and meaning."""
    better = {"higher": "higher", "lower": "lower", "none": "—"}
    intro = (
        "Generated from `musiclime.metrics.registry` (`python -m musiclime.metrics.registry > "
        "docs/metrics.md`); a test checks that it is current. `evaluate` keys are written by "
        "`musiclime.metrics.evaluate_explanation` (one record per song), `sanity` keys by it too "
        "when `metrics.sanity=true` (Adebayo et al. 2018's cascading randomisation of a torch "
        "classifier, `musiclime.metrics.sanity`), `workflow` keys by the workflow's evaluate "
        "stage, `fit` keys are read from the explanation.",
        "In MLflow, a configuration's child run logs each per-song key under its own name as "
        "the mean over the run's songs, and `<key>_std` for the spread over two or more songs; "
        "`classifier_accuracy` (share of labelled songs predicted right) and `compute_s` (the "
        "configuration's compute seconds, which is also the run's duration) are run-level. "
        "Bookkeeping keys (`metrics_*`) stay in the per-song table (`per_song_metrics`). A "
        "sweep's parent run logs `best/<key>` (in the key's better direction) and `mean/<key>` "
        "over its children for the headline keys (evidence_precision_at_5_combined, heldout_r2, "
        "stability_jaccard_top5, samples_per_s, surrogate_r2, surrogate_heldout_r2, "
        "kernel_effective_samples, auto_calls, sanity_spearman_final, songs_with_fit_warnings), "
        "and `configurations`.",
        "Placeholders: `{k}` an integer (`precision_k`, `sufficiency_ks`, `stability_ks`, the "
        "sanity cascade's depth: layers re-initialised from the output down), "
        "`{kind}` `audio` / `lyrics` / `combined`, `{curve}` `deletion` / `insertion`, `{stat}` "
        "`mean` / `std`, `{which}` `min` / `mean` / `max`. Evidence keys appear only with an "
        "evidence annotation, stability keys only with `metrics.stability_seeds >= 2`, sanity keys "
        "only with `metrics.sanity=true`. Better: "
        "which direction is better (— for baselines, counts and bookkeeping).",
    )
    lines = ["# Metric keys", ""]
    for paragraph in intro:
        lines += [textwrap.fill(paragraph, width=100, break_on_hyphens=False), ""]
    lines += ["| key | name | label | better | meaning | stage | computed in |",
              "|---|---|---|---|---|---|---|"]
    for m in METRICS:
        keys = "<br>".join(f"`{k}`" for k in m.keys)
        lines.append(f"| {keys} | `{m.name}` | {m.label} | {better[m.direction]} | "
                     f"{m.description} | {m.stage} | `{m.source}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
