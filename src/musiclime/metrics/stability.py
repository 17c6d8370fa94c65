"""Stability: how much does an explanation change when only the mask seed changes?

Source: the stability protocol of LEMONS (Melchiorre, Haunschmid, Schedl & Widmer, "LEMONS:
Listenable Explanations for Music recOmmeNder Systems", ECIR 2021 demo, github.com/CPJKU/LEMONS,
built on audioLIME): explain the same input ``S`` times with different random perturbations and
count the distinct components among the ``S`` top-``k`` sets. Jaccard overlap of top-k sets and
rank correlation of weights are the usual companions (Jaccard: Zafar & Khan, "DLIME", 2019;
seed-to-seed LIME stability in general: Visani et al., "Statistical stability indices for LIME",
J. Operational Research Society 2022).

For ``S`` explanations of the same song and label, with top-``k`` = the ``k`` features of largest
weight (signed, descending, as the other metrics; ties keep column order):

- ``U_k`` = ``|union of the S top-k sets|``; ``k <= U_k <= S*k``; ``k`` when every run agrees.
  **Lower is better.**
- ``jaccard``: mean over pairs of runs of ``|A & B| / |A | B|`` of their top-k sets (1 when
  identical, 0 when disjoint). **Higher is better.**
- ``spearman``: mean over pairs of runs of ``scipy.stats.spearmanr`` of the full weight vectors
  (NaN when a vector is constant). **Higher is better.**

Cost: ``S - 1`` further explanations of ``num_samples`` masks each when the given explanation is
reused as the first run (:func:`repeat_explanations`), ``S * num_samples`` otherwise.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import spearmanr

from .predictor import ranking


@dataclass
class StabilityResult:
    n_runs: int
    uk: dict[int, float] = field(default_factory=dict)
    jaccard: dict[int, float] = field(default_factory=dict)
    spearman: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        out = {f"uk_top{k}": v for k, v in self.uk.items()}
        out.update({f"jaccard_top{k}": v for k, v in self.jaccard.items()})
        out["spearman"] = self.spearman
        return out


def top_k_set(weights: np.ndarray, k: int) -> frozenset[int]:
    return frozenset(int(i) for i in ranking(weights)[: int(k)])


def jaccard(a: frozenset, b: frozenset) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def weight_stability(weight_vectors: Sequence[np.ndarray],
                     ks: Sequence[int] = (3, 5)) -> StabilityResult:
    """Stability of ``S`` weight vectors over the same columns (see module docstring)."""
    vecs = [np.asarray(w, dtype=np.float64) for w in weight_vectors]
    if len(vecs) < 2:
        raise ValueError(f"stability needs at least 2 runs, got {len(vecs)}")
    if len({v.shape for v in vecs}) != 1:
        raise ValueError("the runs explain different feature columns")
    n = vecs[0].size
    res = StabilityResult(n_runs=len(vecs))
    pairs = list(itertools.combinations(range(len(vecs)), 2))
    for k in ks:
        kk = min(int(k), n)
        sets = [top_k_set(v, kk) for v in vecs]
        res.uk[int(k)] = float(len(frozenset().union(*sets)))
        res.jaccard[int(k)] = float(np.mean([jaccard(sets[i], sets[j]) for i, j in pairs]))
    rhos = []
    for i, j in pairs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input: spearmanr warns and returns NaN
            rho = spearmanr(vecs[i], vecs[j]).statistic if n > 1 else float("nan")
        rhos.append(float(rho))
    res.spearman = float(np.mean(rhos)) if not np.any(np.isnan(rhos)) else float("nan")
    return res


def explanation_stability(explanations: Sequence, ks: Sequence[int] = (3, 5),
                          label: int | None = None) -> StabilityResult:
    """Stability of ``S`` explanations of one song (label: the first one's predicted label)."""
    if not explanations:
        raise ValueError("no explanations")
    label = explanations[0].predicted_label if label is None else int(label)
    cols = list(explanations[0].columns)
    for e in explanations[1:]:
        if list(e.columns) != cols:
            raise ValueError("the explanations perturb different features (modality differs?)")
    return weight_stability([e.fits[label].weights for e in explanations], ks)


def repeat_explanations(explain: Callable[[int], object], seeds: Sequence[int],
                        first=None) -> list:
    """``[first] + [explain(seed) for seed in seeds]`` (``first`` omitted when ``None``)."""
    runs = [first] if first is not None else []
    runs.extend(explain(int(s)) for s in seeds)
    return runs
