"""Decoys and interacting pairs: does the top of an explanation avoid what the classifier
ignores, and hold both halves of what counts only together?

For corpora whose evidence annotation lists them (the hard corpus, ``musiclime_demo.hard``;
docs/hard_corpus.md): ``decoys`` (loud, salient events the classifier ignores by
construction: audio spans ``{stem, start, end}`` or lyric lines ``{unit_index}``) and
``pairs`` (``{pair: id, ...}``; the ``audio`` and ``lyrics`` evidence entries with that
``pair`` id are its members, each of which counts only with the other). Praher et al.
(ISMIR 2021) plant such regions to show where LIME misses the relevant input.

Features are mapped as the evidence metrics map them (:func:`~musiclime.metrics.evidence.
audio_evidence`, line units by index); the top ``k`` is by the evidence label's score
(:func:`~musiclime.metrics.evidence.evidence_scores`) over every perturbed feature.

- ``decoy_in_top{k}``: 1 when a decoy feature is in the top ``k``, else 0 (over songs: the rate
  of songs whose top ``k`` holds a decoy). Lower is better. NaN without decoys.
- ``pair_in_top{k}``: the share of the song's pairs with every member in the top ``k`` (a
  member is in when one of its features is). Higher is better. NaN without pairs.
- ``interaction_pair_in_top{k}``: where the explanation estimated pairwise interactions
  (``explainer.interactions``, :mod:`musiclime.core.interactions`), the share of the song's
  pairs found as one of its top ``k`` interactions by ``|value|`` (a pair ``{i, j}`` with ``i``
  among one member's features and ``j`` among the other's). Higher is better. NaN without
  pairs or interactions.
"""

from __future__ import annotations

import numpy as np

from .evidence import audio_evidence, evidence_scores


def _features(exp, entries: list[dict], min_overlap: float) -> set[int]:
    """Feature indices of annotation entries: audio spans and lyric line units."""
    spans = [e for e in entries if "stem" in e]
    found = audio_evidence(exp.features, spans, min_overlap) if spans else set()
    if exp.features.lyrics_unit == "line":
        units = {int(e["unit_index"]) for e in entries if "unit_index" in e}
        found |= {f.index for f in exp.features.features
                  if f.kind == "lyrics" and f.unit_index in units}
    return found


def top_k(exp, evidence: dict, k: int, label: int | None = None) -> set[int]:
    """The feature indices of the top ``k`` perturbed features by the evidence label's score."""
    scores = evidence_scores(exp, evidence.get("label"), label)
    order = np.argsort(-scores, kind="stable")[:k]
    return {int(exp.columns[i]) for i in order}


def cue_metrics(exp, evidence: dict, k: int = 5, min_overlap: float = 0.5,
                label: int | None = None) -> dict[str, float]:
    """``decoy_in_top{k}`` and ``pair_in_top{k}`` of one explanation (module docstring)."""
    if not (evidence.get("decoys") or evidence.get("pairs")):
        return {}
    top = top_k(exp, evidence, k, label)
    perturbed = {int(c) for c in exp.columns}
    out = {f"decoy_in_top{k}": float("nan"), f"pair_in_top{k}": float("nan")}
    decoys = _features(exp, list(evidence.get("decoys") or []), min_overlap) & perturbed
    if decoys:
        out[f"decoy_in_top{k}"] = float(bool(decoys & top))
    hits = []
    for pair in evidence.get("pairs") or []:
        members = [e for e in [*(evidence.get("audio") or []), *(evidence.get("lyrics") or [])]
                   if e.get("pair") == pair["pair"]]
        features = [_features(exp, [m], min_overlap) & perturbed for m in members]
        if len(features) >= 2 and all(features):
            hits.append(all(f & top for f in features))
    if hits:
        out[f"pair_in_top{k}"] = float(np.mean(hits))
    out.update(interaction_pair_metrics(exp, evidence, k, min_overlap, label))
    return out


def interaction_pair_metrics(exp, evidence: dict, k: int = 5, min_overlap: float = 0.5,
                             label: int | None = None) -> dict[str, float]:
    """``interaction_pair_in_top{k}`` of one explanation (module docstring); empty without
    interactions."""
    result = getattr(exp, "interactions", None)
    if result is None or not result.pairs or not evidence.get("pairs"):
        return {}
    # the evidence label's pairs where estimated; else the explained label's (with two classes
    # the other label's pairs are the same with the sign flipped, so the top k by |value| too)
    wanted = evidence.get("label")
    order = [exp.class_names.index(wanted) if wanted in exp.class_names else None, label,
             exp.predicted_label, *result.pairs]
    label = next(c for c in order if c is not None and int(c) in result.pairs)
    top = [set(p.features) for p in result.pairs[int(label)][:k]]
    perturbed = {int(c) for c in exp.columns}
    hits = []
    for pair in evidence["pairs"]:
        members = [e for e in [*(evidence.get("audio") or []), *(evidence.get("lyrics") or [])]
                   if e.get("pair") == pair["pair"]]
        features = [_features(exp, [m], min_overlap) & perturbed for m in members]
        if len(features) == 2 and all(features):
            a, b = features
            hits.append(any(len(t) == 2 and len(t & a) and len(t & b) and t <= (a | b)
                            for t in top))
    return {f"interaction_pair_in_top{k}": float(np.mean(hits))} if hits else {}
