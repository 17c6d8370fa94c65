"""Planted-evidence recovery: does the explanation point at the evidence we know is there?

Source: the "controlled synthetic evidence" evaluation of explanation methods (ground-truth
feature recovery, e.g. Yang & Kim, "Benchmarking Attribution Methods with Relative Feature
Importance", 2019; Arras, Osman & Samek, "CLEVR-XAI", Information Fusion 2022), here with the
demo corpus's planted evidence (``*.evidence.json``) or any annotation in the same format::

    {"label": "ai",
     "audio":  [{"stem": "other", "start": 1.2, "end": 3.5}, ...],         # seconds
     "lyrics": [{"unit_index": 1, "text": "...", "start": ..., "end": ...}, ...],
     "line_spans": [{"unit_index": 0, "text": "..."}, ...]}                 # optional

``unit_index`` indexes the song's *line* units (:class:`musiclime.core.lyrics.LineUnits`).

Mapping annotations to features (ground truth):

- **audio**: feature ``stem_Tt`` (segment ``[a, b)`` seconds) is evidence when the evidence spans
  of that stem cover at least ``min_overlap`` (default 0.5) **of the segment** (the union of the
  stem's spans, so overlapping spans are not counted twice), **or** when at least
  ``min_overlap`` **of one span** lies inside the segment. Both comparisons are inclusive
  (``>=``, with a 1e-9 s tolerance). So a long span marks every segment it mostly covers, a short
  span marks the segment that holds most of it (a span split 50/50 marks both), and a span that
  only grazes a segment does not mark it. A zero-length span marks the segment holding it.
- **lyrics, line units**: the line unit whose ``unit_index`` is listed.
- **lyrics, word units**: the words (lower-cased ``\\w+`` tokens, as
  :class:`musiclime.core.lyrics.WordUnits`) of the evidence lines that occur in no other line.

Scores: the explanation's weights for the evidence's label (``label`` in the annotation): that
label's fit when the explanation has one; for two classes whose probabilities sum to one the
other label's weights negated (the surrogates are exact mirror images); else the explained
label's weights.

Reported, separately for audio, lyrics and combined (all perturbed features):

- ``precision_at_k``: the fraction of evidence features among the top ``k`` by score
  (descending; ``k`` clipped to the modality's feature count); at most ``min(k, positives)/k``;
- ``normalized_precision_at_k``: the evidence hits in the top ``k`` over the most there can
  be, ``min(k, positives)`` (1: as many as possible, even when a modality has fewer than ``k``
  evidence features, such as 3 evidence lines for ``k = 5``);
- ``auroc``: ``sklearn.metrics.roc_auc_score`` of the scores against the binary ground truth
  (1: every evidence feature outranks every other one; 0.5: chance, or constant scores);
- ``positives``: the number of evidence features among the perturbed ones.

Both are NaN where the modality was not perturbed or has no evidence (or nothing else).
Direction: **higher is better**.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from ..core.features import FeatureTable
from ..core.lyrics import LineUnits, LyricsUnits

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+", re.UNICODE)
_EPS = 1e-9
KINDS = ("audio", "lyrics", "combined")


def load_evidence(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def segment_is_evidence(seg_start: float, seg_end: float, spans: Iterable[tuple[float, float]],
                        min_overlap: float = 0.5) -> bool:
    """The overlap rule (module docstring) for one segment and one stem's spans (seconds)."""
    spans = [(float(s), float(e)) for s, e in spans]
    seg_len = seg_end - seg_start
    for s, e in spans:
        if e < s:
            raise ValueError(f"evidence span ends before it starts: {s}..{e}")
        if e == s:  # a point marks the segment holding it
            if seg_start <= s < seg_end:
                return True
            continue
        if _overlap(s, e, seg_start, seg_end) >= min_overlap * (e - s) - _EPS:
            return True
    covered = sum(_overlap(s, e, seg_start, seg_end) for s, e in _union(spans) if e > s)
    return seg_len > 0 and covered > 0 and covered >= min_overlap * seg_len - _EPS


def audio_evidence(table: FeatureTable, spans: Iterable[dict],
                   min_overlap: float = 0.5) -> set[int]:
    """Feature indices of the audio features marked by ``[{stem, start, end}]`` spans."""
    if not 0 < min_overlap <= 1:
        raise ValueError(f"min_overlap must be in (0, 1], got {min_overlap}")
    by_stem: dict[str, list[tuple[float, float]]] = {}
    for span in spans:
        by_stem.setdefault(str(span["stem"]), []).append((float(span["start"]),
                                                          float(span["end"])))
    unknown = set(by_stem) - set(table.stems)
    if unknown:
        log.warning("evidence names stems %s that are not features of this song (stems: %s); "
                    "they are ignored", sorted(unknown), table.stems)
    out = set()
    for f in table.features:
        if f.kind == "audio" and f.stem in by_stem and segment_is_evidence(
                float(f.start), float(f.end), by_stem[f.stem], min_overlap):
            out.add(f.index)
    return out


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def lyrics_evidence(table: FeatureTable, evidence: dict,
                    lyrics: LyricsUnits | str | None = None) -> set[int]:
    """Feature indices of the lyric units marked by the evidence lines (module docstring)."""
    entries = list(evidence.get("lyrics") or [])
    if not entries:
        return set()
    wanted = {int(e["unit_index"]) for e in entries}
    feats = [f for f in table.features if f.kind == "lyrics"]
    if table.lyrics_unit == "line":
        out = set()
        for f in feats:
            if f.unit_index in wanted:
                out.add(f.index)
        texts = {int(e["unit_index"]): e.get("text") for e in entries}
        for f in feats:
            t = texts.get(f.unit_index)
            if f.index in out and t is not None and t.strip() != f.name.strip():
                log.warning("evidence line %d reads %r but the song's line unit is %r",
                            f.unit_index, t, f.name)
        missing = wanted - {f.unit_index for f in feats}
        if missing:
            log.warning("evidence names line units %s that the song does not have",
                        sorted(missing))
        return out
    # word units: the words of evidence lines that no other line has
    text = lyrics.text if isinstance(lyrics, LyricsUnits) else lyrics
    if text is not None:
        lines = LineUnits(text).units
    elif evidence.get("line_spans"):
        spans = sorted(evidence["line_spans"], key=lambda s: int(s["unit_index"]))
        lines = [str(s["text"]) for s in spans]
    else:
        raise ValueError("word-unit evidence needs the song's lyrics (or 'line_spans' in the "
                         "evidence) to tell evidence words from words of other lines")
    ev_words: set[str] = set()
    for e in entries:
        i = int(e["unit_index"])
        ev_words |= _words(lines[i] if 0 <= i < len(lines) else str(e.get("text", "")))
    other = set()
    for i, line in enumerate(lines):
        if i not in wanted:
            other |= _words(line)
    keep = ev_words - other
    return {f.index for f in feats if f.name.lower() in keep}


def evidence_features(table: FeatureTable, evidence: dict, min_overlap: float = 0.5,
                      lyrics: LyricsUnits | str | None = None) -> set[int]:
    """All evidence feature indices (audio and lyrics) of one song."""
    return (audio_evidence(table, evidence.get("audio") or [], min_overlap)
            | lyrics_evidence(table, evidence, lyrics))


def precision_at_k(scores: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Fraction of evidence among the top ``k`` by score (ties: earlier column first)."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=bool)
    if scores.size == 0 or not truth.any():
        return float("nan")
    k = min(int(k), scores.size)
    order = np.argsort(-scores, kind="stable")
    return float(truth[order[:k]].mean())


def normalized_precision(precision: float, positives: float, k: int, n_features: int | None = None
                         ) -> float:
    """``precision_at_k`` rescaled so that 1 is the best any ranking can do: hits over
    ``min(k, positives)`` (with ``k`` clipped to ``n_features`` when given)."""
    if not (np.isfinite(precision) and np.isfinite(positives)) or positives <= 0:
        return float("nan")
    k = min(int(k), int(n_features)) if n_features else int(k)
    return float(precision * k / min(k, positives))


def auroc(scores: np.ndarray, truth: np.ndarray) -> float:
    truth = np.asarray(truth, dtype=bool)
    if truth.size == 0 or truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth.astype(int), np.asarray(scores, dtype=np.float64)))


def evidence_recovery(scores: np.ndarray, truth: np.ndarray, kinds: Iterable[str],
                      k: int = 5) -> dict[str, float]:
    """``precision_at_k``, ``auroc`` and ``positives`` per modality and combined.

    ``scores``, ``truth`` and ``kinds`` (``audio``/``lyrics``) are per mask column.
    """
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=bool)
    kinds = np.asarray(list(kinds))
    out: dict[str, float] = {}
    for kind in KINDS:
        sel = np.ones(scores.size, dtype=bool) if kind == "combined" else kinds == kind
        out[f"precision_at_{k}_{kind}"] = precision_at_k(scores[sel], truth[sel], k)
        out[f"normalized_precision_at_{k}_{kind}"] = normalized_precision(
            out[f"precision_at_{k}_{kind}"], float(truth[sel].sum()), k, int(sel.sum()))
        out[f"auroc_{kind}"] = auroc(scores[sel], truth[sel])
        out[f"positives_{kind}"] = float(truth[sel].sum())
    return out


def evidence_scores(exp, evidence_label: str | int | None = None,
                    label: int | None = None) -> np.ndarray:
    """Per-column scores for the evidence's label (module docstring)."""
    explained = exp.predicted_label if label is None else int(label)
    target = None
    if evidence_label is not None:
        if isinstance(evidence_label, str) and evidence_label in exp.class_names:
            target = exp.class_names.index(evidence_label)
        elif isinstance(evidence_label, (int, np.integer)):
            target = int(evidence_label)
    if target is None or target == explained and explained in exp.fits:
        return np.asarray(exp.fits[explained].weights, dtype=np.float64)
    if target in exp.fits:
        return np.asarray(exp.fits[target].weights, dtype=np.float64)
    if len(exp.class_names) == 2 and (1 - target) in exp.fits:
        return -np.asarray(exp.fits[1 - target].weights, dtype=np.float64)
    log.warning("%s: no surrogate for the evidence's label %r; scoring with label %d",
                exp.song_id, evidence_label, explained)
    return np.asarray(exp.fits[explained].weights, dtype=np.float64)


def explanation_evidence(exp, evidence: dict, k: int = 5, min_overlap: float = 0.5,
                         lyrics: LyricsUnits | str | None = None,
                         label: int | None = None) -> dict[str, float]:
    """:func:`evidence_recovery` of one explanation against its song's evidence annotation."""
    positives = evidence_features(exp.features, evidence, min_overlap, lyrics)
    columns = [int(c) for c in exp.columns]
    truth = np.array([c in positives for c in columns], dtype=bool)
    kinds = [exp.features[c].kind for c in columns]
    scores = evidence_scores(exp, evidence.get("label"), label)
    return evidence_recovery(scores, truth, kinds, k)
