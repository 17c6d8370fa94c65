"""Explanation-quality metrics: faithfulness, evidence recovery, fidelity, stability, complexity.

One metric per module, each saying which direction is better and where it comes from:

- :mod:`.deletion` — deletion (lower AUC better) and insertion (higher AUC better) curves
  against random orderings (Petsiuk et al., RISE, 2018);
- :mod:`.sufficiency` — does the label survive with only the top-k features (higher better;
  the audioLIME authors' check);
- :mod:`.evidence` — precision@k and AUROC against planted evidence (higher better);
- :mod:`.fidelity` — in-sample and held-out R^2 of the surrogate (higher better);
- :mod:`.stability` — U_k (lower better), Jaccard and Spearman across mask seeds (higher
  better; LEMONS);
- :mod:`.complexity` — entropy of the normalised absolute weights (lower = simpler; Bhatt et
  al., 2020);
- :mod:`.sanity` — rank correlation with the original explanation as a torch classifier's
  layers are re-initialised from the output down (falling towards 0 passes; Adebayo et al.,
  "Sanity Checks for Saliency Maps", 2018); off unless ``sanity`` is set.

:func:`evaluate_explanation` runs them all for one song and returns a flat ``dict[str, float]``;
:mod:`.registry` declares every key it writes, with its better direction and a label.
"""

from .complexity import complexity, weight_entropy
from .deletion import (
    CurveResult,
    curve_auc,
    curve_ks,
    curve_masks,
    deletion_curve,
    deletion_insertion,
    insertion_curve,
)
from .evaluate import (
    MetricsConfig,
    MetricSettings,
    config_from_explanation,
    evaluate_explanation,
)
from .evidence import (
    audio_evidence,
    auroc,
    evidence_features,
    evidence_recovery,
    evidence_scores,
    explanation_evidence,
    load_evidence,
    lyrics_evidence,
    normalized_precision,
    precision_at_k,
    segment_is_evidence,
)
from .fidelity import explanation_fidelity, heldout_fidelity, heldout_masks, surrogate_predict
from .predictor import MaskPredictor, ranking
from .registry import MetricInfo, all_metrics, metric_for_key, parse_evidence_key
from .sanity import (
    SanityResult,
    randomisable_layers,
    sanity_cascade,
)
from .stability import (
    StabilityResult,
    explanation_stability,
    jaccard,
    repeat_explanations,
    weight_stability,
)
from .sufficiency import SufficiencyResult, sufficiency

__all__ = [
    "CurveResult", "MaskPredictor", "MetricInfo", "MetricSettings", "MetricsConfig",
    "SanityResult", "StabilityResult", "SufficiencyResult", "all_metrics", "audio_evidence",
    "auroc", "complexity",
    "config_from_explanation", "curve_auc", "curve_ks", "curve_masks", "deletion_curve",
    "deletion_insertion", "evaluate_explanation", "evidence_features", "evidence_recovery",
    "evidence_scores", "explanation_evidence", "explanation_fidelity", "explanation_stability",
    "heldout_fidelity", "heldout_masks", "insertion_curve", "jaccard", "load_evidence",
    "lyrics_evidence", "metric_for_key", "normalized_precision", "parse_evidence_key",
    "precision_at_k", "randomisable_layers", "ranking",
    "repeat_explanations", "sanity_cascade", "segment_is_evidence", "sufficiency",
    "surrogate_predict", "weight_entropy", "weight_stability",
]
