"""Localisation against time annotations: does the explanation's importance over time fall
where the annotated evidence is?

Source: Bolaños et al., "Benchmarking Time Localization of Explanations for Audio
Classification Models" (Interspeech 2025, arXiv 2506.04391): a time-resolved relevance is
scored against annotated time spans by ROC AUC at a fixed frame resolution (100 ms); they
find that the usual faithfulness metric can rank methods the opposite way. The pointing game
is Zhang et al., "Top-down Neural Attention by Excitation Backprop" (ECCV 2016): a hit when the
single most relevant place lies on the annotation.

Here an explanation's audio features are stem x time segment, so its relevance at time ``t``
for stem ``s`` is the weight (for the evidence's label, as :func:`~musiclime.metrics.evidence.
evidence_scores` chooses it) of the segment of ``s`` that holds ``t``. A frame of
``resolution`` seconds is evidence when its centre lies in an evidence span of that stem
(``[start, end)``; a zero-length span marks the frame that holds it). Unlike the feature-level
AUROC (:mod:`musiclime.metrics.evidence`), this counts time: a 0.3 s cue inside a 2 s segment
lends the segment's weight to 1.7 s of frames that are not evidence, so segment count and
boundaries matter, and evidence off the segment grid costs what it should.

Reported (NaN without audio features, or without audio evidence, or when every frame is
evidence):

- ``localisation_auc``: ROC AUC over every (stem, frame) of the song;
- ``localisation_auc_time``: stem-agnostic, over frames: a frame's relevance is the largest of
  its stems' weights, and it is evidence when any stem's evidence covers it;
- ``localisation_pointing``: 1 when the highest-weighted audio feature overlaps an evidence
  span of its stem (by at least ``resolution``, or holds a zero-length one), else 0.

Direction: **higher is better** (0.5: chance).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from .evidence import evidence_scores

#: Bolaños et al.'s frame length (seconds)
RESOLUTION_S = 0.1


def audio_grid(exp, scores: np.ndarray, resolution: float = RESOLUTION_S
               ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(stems, centres, relevance)``: the frame centres (seconds) over the song and the
    relevance of each (stem, frame), NaN where no perturbed feature covers it."""
    feats = [(exp.features[c], float(s)) for c, s in zip(exp.columns, scores, strict=True)]
    audio = [(f, s) for f, s in feats if f.kind == "audio"]
    stems = list(dict.fromkeys(f.stem for f, _ in audio))
    end = max((float(f.end) for f, _ in audio), default=0.0)
    centres = (np.arange(int(np.ceil(end / resolution - 1e-9))) + 0.5) * resolution
    relevance = np.full((len(stems), centres.size), np.nan)
    for f, s in audio:
        inside = (centres >= float(f.start)) & (centres < float(f.end))
        relevance[stems.index(f.stem), inside] = s
    return stems, centres, relevance


def evidence_grid(evidence: dict, stems: list[str], centres: np.ndarray,
                  resolution: float = RESOLUTION_S) -> np.ndarray:
    """Whether each (stem, frame) is evidence (module docstring)."""
    truth = np.zeros((len(stems), centres.size), dtype=bool)
    for span in evidence.get("audio") or []:
        if span["stem"] not in stems:
            continue
        start, end = float(span["start"]), float(span["end"])
        row = truth[stems.index(span["stem"])]
        if end > start:
            row |= (centres >= start) & (centres < end)
        else:  # a point: the frame that holds it
            row |= np.abs(centres - start) <= resolution / 2
    return truth


def _auc(relevance: np.ndarray, truth: np.ndarray) -> float:
    known = ~np.isnan(relevance)
    y, x = truth[known], relevance[known]
    if y.size == 0 or y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y.astype(int), x))


def pointing(exp, scores: np.ndarray, evidence: dict, resolution: float = RESOLUTION_S) -> float:
    """The pointing game's hit (1.0) or miss (0.0) for the top audio feature; NaN without one."""
    audio = [(exp.features[c], float(s)) for c, s in zip(exp.columns, scores, strict=True)
             if exp.features[c].kind == "audio"]
    if not audio or not evidence.get("audio"):
        return float("nan")
    top, _ = max(audio, key=lambda fs: fs[1])  # ties: the first column
    for span in evidence["audio"]:
        if span["stem"] != top.stem:
            continue
        start, end = float(span["start"]), float(span["end"])
        overlap = min(end, float(top.end)) - max(start, float(top.start))
        if (end > start and overlap >= min(resolution, end - start) - 1e-9) or (
                end == start and float(top.start) <= start < float(top.end)):
            return 1.0
    return 0.0


def localisation(exp, evidence: dict, label: int | None = None,
                 resolution: float = RESOLUTION_S) -> dict[str, float]:
    """The localisation metrics of one explanation against its song's evidence (module
    docstring)."""
    if resolution <= 0:
        raise ValueError(f"localisation resolution must be > 0 seconds, got {resolution}")
    scores = evidence_scores(exp, evidence.get("label"), label)
    stems, centres, relevance = audio_grid(exp, scores, resolution)
    truth = evidence_grid(evidence, stems, centres, resolution)
    over_time = np.full(centres.size, np.nan)
    if stems:
        best = np.max(np.where(np.isnan(relevance), -np.inf, relevance), axis=0)
        over_time = np.where(np.isinf(best), np.nan, best)
    return {"localisation_auc": _auc(relevance, truth),
            "localisation_auc_time": _auc(over_time, truth.any(axis=0)),
            "localisation_pointing": pointing(exp, scores, evidence, resolution)}
