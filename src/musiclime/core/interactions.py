"""Pairwise (order-2) feature interactions of one explanation, estimated with shapiq.

The game: the players are the explanation's mask columns (:class:`MaskLayout`: audio columns,
then lyric units); a coalition ``S`` is the mask row that keeps the features in ``S`` and removes
the others; its value ``v(S)`` is the classifier's probability of the explained label for that
input (never another label's, never a logit). An order-2 interaction index assigns each pair
``{i, j}`` a number that, for a game that is exactly pairwise,
``v(z) = b + sum_i a_i z_i + sum_{i<j} g_ij z_i z_j``, equals ``g_ij`` (the Moebius coefficient,
Harsanyi 1963): what the two do together beyond what each does alone.

The estimators (:data:`ESTIMATORS`) are shapiq's (Muschalik et al., "shapiq: Shapley
Interactions for Machine Learning", NeurIPS 2024):

- ``regression_fsii``: Faithful Shapley Interaction index by weighted least squares
  (Tsai, Yeh & Ravikumar, "Faith-Shap", JMLR 2023); ``RegressionFSII``. The default: it
  recovers an exactly pairwise game once the budget exceeds its ``1 + F + F(F-1)/2`` unknowns.
- ``kernel_shapiq``: k-SII by KernelSHAP-IQ (Fumagalli et al., ICML 2024); ``KernelSHAPIQ``.
- ``svarmiq``: k-SII by stratified Monte Carlo (Kolpaczki et al., AISTATS 2024); ``SVARMIQ``.

Each draws its coalitions from a sampler seeded with ``seed`` *before* it sees any value, in one
call, so the same ``(estimator, budget, seed, F)`` asks for the same rows whatever the game's
values (``tests/test_interactions.py`` checks it). That is what lets musiclime split the work
like the rest of the explanation: the predict stage runs each estimator once in *record* mode
(:func:`record_interaction_rows`): rows already among the explanation's predicted masks are
looked up (key: the packed row bytes), the others are predicted, batched, and stored as
:class:`InteractionRows` beside the predictions, never among the mask rows. The fit stage reruns
the estimator per explained label in *replay* mode (:func:`estimate_interactions`), where every
row comes from those two caches and a missing one is an error, not a prediction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .masks import MaskLayout

log = logging.getLogger(__name__)

#: ``explainer.interactions``: shapiq approximator class and its interaction index, per name
ESTIMATORS = {
    "regression_fsii": ("RegressionFSII", "FSII"),
    "kernel_shapiq": ("KernelSHAPIQ", "k-SII"),
    "svarmiq": ("SVARMIQ", "k-SII"),
}
#: ``explainer.interactions=none``: no interactions (nothing predicted, nothing recorded)
NONE = "none"
#: the kinds of a pair, by the modalities of its two features
KINDS = ("audio×audio", "audio×lyrics", "lyrics×lyrics")


@dataclass(frozen=True)
class InteractionParams:
    """Which pairwise interactions an explanation estimates (``explainer.interactions``,
    ``interaction_budget``, ``interaction_top_k``; the seed is the explanation's)."""

    estimator: str = NONE
    budget: int = 2000  # classifier rows the estimator may draw (found or predicted)
    top_k: int = 10  # pairs recorded per label, by |value|
    seed: int = 0

    def __post_init__(self):
        names = ", ".join([NONE, *ESTIMATORS])
        if self.estimator != NONE and self.estimator not in ESTIMATORS:
            raise ConfigError(f"explainer.interactions={self.estimator!r}: must be one of {names}")
        if not _is_int(self.budget) or self.budget < 2:
            raise ConfigError(f"explainer.interaction_budget={self.budget!r}: must be an "
                              "integer >= 2")
        if not _is_int(self.top_k) or self.top_k < 1:
            raise ConfigError(f"explainer.interaction_top_k={self.top_k!r}: must be an "
                              "integer >= 1")
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"explainer.seed={self.seed!r}: must be a non-negative integer")

    @property
    def enabled(self) -> bool:
        return self.estimator != NONE

    def record(self) -> dict:
        return {"estimator": self.estimator, "budget": int(self.budget),
                "top_k": int(self.top_k), "seed": int(self.seed)}


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


@dataclass(frozen=True)
class InteractionRows:
    """The rows the estimators asked for that the explanation's masks do not hold: ``masks``
    ``(rows, columns)`` uint8 in the explanation's layout, ``probs`` ``(rows, classes)``."""

    masks: np.ndarray
    probs: np.ndarray

    def __post_init__(self):
        masks = np.asarray(self.masks, dtype=np.uint8)
        probs = np.asarray(self.probs, dtype=np.float64)
        if masks.ndim != 2 or probs.ndim != 2 or masks.shape[0] != probs.shape[0]:
            raise ValueError(f"interaction rows: masks {masks.shape} and probs {probs.shape} "
                             "must be 2-D with one probability row per mask row")
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "probs", probs)

    @classmethod
    def empty(cls, n_columns: int, n_classes: int) -> InteractionRows:
        return cls(np.zeros((0, n_columns), np.uint8), np.zeros((0, n_classes)))


def row_key(row: np.ndarray) -> bytes:
    """The cache key of a mask row: its bits, packed."""
    return np.packbits(np.asarray(row, dtype=bool)).tobytes()


class MissingRowError(KeyError):
    """A replayed estimator asked for a row the predict stage did not record."""


class CachedGame:
    """A shapiq game over the explanation's cached rows (see the module docstring).

    ``known``: ``(masks, probs)`` pairs looked up first (the explanation's masks and their
    predictions, then stored :class:`InteractionRows`); ``predict_rows``: given, *record* mode
    (missing rows are predicted in one batch per call and kept); ``None``, *replay* mode (a
    missing row raises :class:`MissingRowError`). ``label``: the probability column returned.
    ``reusable``: how many of the ``known`` pairs count as the explanation's own rows (the
    first ones); the rest count as rows predicted for the game."""

    def __init__(self, known: Sequence[tuple[np.ndarray, np.ndarray]], label: int,
                 predict_rows: Callable[[np.ndarray], np.ndarray] | None = None,
                 reusable: int = 1):
        self.label, self.predict_rows = int(label), predict_rows
        self._index: dict[bytes, tuple[int, int]] = {}
        self._sources: list[np.ndarray] = []
        for s, (masks, probs) in enumerate(known):
            self._sources.append(np.asarray(probs, dtype=np.float64))
            for r, row in enumerate(np.asarray(masks)):
                self._index.setdefault(row_key(row), (s, r))
        self.reusable = int(reusable)
        self.used: set[bytes] = set()  # distinct rows the estimator asked for
        self.new_masks: list[np.ndarray] = []
        self.new_probs: list[np.ndarray] = []

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        rows = np.asarray(coalitions, dtype=bool).astype(np.uint8)
        keys = [row_key(r) for r in rows]
        missing = list(dict.fromkeys(k for k in keys if k not in self._index))
        if missing and self.predict_rows is None:
            raise MissingRowError(f"{len(missing)} of the {len(keys)} rows the interaction "
                                  "estimator asked for were not recorded by the predict stage "
                                  "(its estimator, budget or seed differ from this fit's)")
        if missing:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            batch = rows[[first[k] for k in missing]]
            probs = np.asarray(self.predict_rows(batch), dtype=np.float64)
            self._sources.append(probs)
            self.new_masks.append(batch)
            self.new_probs.append(probs)
            for r, k in enumerate(missing):
                self._index[k] = (len(self._sources) - 1, r)
        self.used.update(keys)
        return np.array([self._sources[s][r, self.label]
                         for s, r in (self._index[k] for k in keys)], dtype=np.float64)

    @property
    def rows_reused(self) -> int:
        """Distinct rows served from the explanation's own masks."""
        return sum(self._index[k][0] < self.reusable for k in self.used)

    @property
    def rows_predicted(self) -> int:
        """Distinct rows the game needed beyond the explanation's masks."""
        return len(self.used) - self.rows_reused

    def recorded(self, n_columns: int, n_classes: int) -> InteractionRows:
        """The rows predicted in record mode."""
        if not self.new_masks:
            return InteractionRows.empty(n_columns, n_classes)
        return InteractionRows(np.concatenate(self.new_masks), np.concatenate(self.new_probs))


def approximator(params: InteractionParams, n_players: int):
    """shapiq's approximator for ``params`` over ``n_players`` (order 2, seeded)."""
    import shapiq.approximator as approximators

    cls_name, index = ESTIMATORS[params.estimator]
    cls = getattr(approximators, cls_name)
    kwargs = {"n": int(n_players), "max_order": 2, "random_state": int(params.seed)}
    if cls_name != "RegressionFSII":
        kwargs["index"] = index
    return cls(**kwargs)


def game_budget(params: InteractionParams, n_players: int) -> int:
    """The budget the estimator gets: ``params.budget``, at most every one of the ``2**F``
    coalitions."""
    return int(min(params.budget, 2 ** min(n_players, 62)))


def _run(params: InteractionParams, n_players: int, game: CachedGame):
    """One estimate, with BLAS on one thread: shapiq's least-squares solve (thousands of rows by
    ``1 + F + F(F-1)/2`` columns) sums in a thread-count-dependent order, so ``musiclime
    explain`` (every core) and a ``musiclime run`` job (one thread) would differ in the last
    digits (measured: 0.302168298 vs 0.302168867)."""
    import warnings

    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")  # shapiq warns about budgets it finds small or large
        return approximator(params, n_players).approximate(game_budget(params, n_players), game)


def predict_interaction_rows(preds, masks: np.ndarray,
                             predict_rows: Callable[[np.ndarray], np.ndarray],
                             interactions: Sequence[InteractionParams]) -> None:
    """Record the estimators' extra rows into ``preds.interactions`` (a
    :class:`~musiclime.core.inference.Predictions` of ``masks``; nothing where none is
    enabled); ``predict_rows(rows) -> probs`` predicts masks in ``masks``'s layout."""
    wanted = [p for p in interactions if p.enabled]
    if not wanted:
        return
    t0 = time.perf_counter()
    preds.interactions = record_interaction_rows(wanted, masks, preds.probs, predict_rows)
    preds.timings["interaction_rows_s"] = time.perf_counter() - t0
    log.info("interactions: %d rows predicted beyond the %d masks",
             preds.interactions.masks.shape[0], np.asarray(masks).shape[0])


def record_interaction_rows(params: Sequence[InteractionParams], masks: np.ndarray,
                            probs: np.ndarray,
                            predict_rows: Callable[[np.ndarray], np.ndarray]) -> InteractionRows:
    """The predict stage: run every enabled estimator of ``params`` once in record mode over the
    explanation's ``masks`` (predicted as ``probs``) and return the rows it needed that they do
    not hold, predicted by ``predict_rows(masks) -> probs`` (the union over ``params``; each
    row once)."""
    masks, probs = np.asarray(masks, dtype=np.uint8), np.asarray(probs, dtype=np.float64)
    n_columns, n_classes = masks.shape[1], probs.shape[1]
    game = CachedGame([(masks, probs)], label=0, predict_rows=predict_rows)
    for p in dict.fromkeys(params):
        if p.enabled and n_columns >= 2:
            _run(p, n_columns, game)
    return game.recorded(n_columns, n_classes)


@dataclass(frozen=True)
class PairInteraction:
    """One pair's interaction: ``features`` (indices into the song's feature table), its value
    on the probability scale, and its ``kind`` (:data:`KINDS`)."""

    features: tuple[int, int]
    value: float
    kind: str


@dataclass
class InteractionResult:
    """Per explained label, its top-``k`` pairs by ``|value|``; and the game's rows."""

    params: InteractionParams
    pairs: dict[int, list[PairInteraction]]
    rows_reused: int = 0
    rows_predicted: int = 0
    #: why the pairs cannot be trusted (logged, and recorded in the explanation's warnings)
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_used(self) -> int:
        return self.rows_reused + self.rows_predicted

    def game_record(self) -> dict:
        """``metadata.interaction_game`` of the explanation's JSON."""
        return {**self.params.record(), "rows_reused": int(self.rows_reused),
                "rows_predicted": int(self.rows_predicted)}


def pair_kind(layout: MaskLayout, i: int, j: int) -> str:
    """The :data:`KINDS` entry of mask columns ``i`` and ``j``."""
    lyrics = sum(c >= layout.n_audio_columns for c in (i, j))
    return KINDS[lyrics]


def top_pairs(values, layout: MaskLayout, top_k: int) -> list[PairInteraction]:
    """The ``top_k`` order-2 entries of shapiq's ``InteractionValues`` by ``|value|`` (ties:
    by column pair), as feature indices of ``layout``."""
    columns = layout.feature_indices()
    found = [(tuple(int(c) for c in key), float(values.values[idx]))
             for key, idx in values.interaction_lookup.items() if len(key) == 2]
    found.sort(key=lambda kv: (-abs(kv[1]), kv[0]))
    return [PairInteraction((int(columns[i]), int(columns[j])), v, pair_kind(layout, i, j))
            for (i, j), v in found[:top_k]]


def estimate_interactions(params: InteractionParams, layout: MaskLayout, masks: np.ndarray,
                          probs: np.ndarray, labels: Sequence[int],
                          rows: InteractionRows | None) -> InteractionResult:
    """The fit stage: replay ``params``'s estimator for each of ``labels`` over the
    explanation's ``masks``/``probs`` (every row predicted, not only the fitted prefix) and the
    predict stage's ``rows``. Raises :class:`MissingRowError` when a row is in neither."""
    probs = np.asarray(probs, dtype=np.float64)
    masks = np.asarray(masks, dtype=np.uint8)[: probs.shape[0]]  # num_samples=auto: predicted rows
    n_columns = layout.n_columns
    if masks.shape[1] != n_columns:
        raise ValueError(f"masks have {masks.shape[1]} columns, the layout {n_columns}")
    known = [(masks, probs)]
    if rows is not None and rows.masks.shape[0]:
        known.append((rows.masks, rows.probs))
    result = InteractionResult(params, {})
    if not params.enabled or n_columns < 2:
        result.pairs = {int(label): [] for label in labels}
        return result
    for label in labels:
        game = CachedGame(known, label=int(label))
        values = _run(params, n_columns, game)
        result.pairs[int(label)] = top_pairs(values, layout, params.top_k)
        result.rows_reused, result.rows_predicted = game.rows_reused, game.rows_predicted
    return result


def fit_interactions(params: InteractionParams | None, layout: MaskLayout, masks: np.ndarray,
                     probs: np.ndarray, labels: Sequence[int], rows: InteractionRows | None,
                     timings: dict, record: dict) -> InteractionResult | None:
    """The fit stage's step: :func:`estimate_interactions` when ``params`` is enabled (its time
    into ``timings``, its settings into the explanation's ``record``), else None."""
    if params is None or not params.enabled:
        return None
    t0 = time.perf_counter()
    result = estimate_interactions(params, layout, masks, probs, labels, rows)
    timings["interactions_s"] = time.perf_counter() - t0
    unknowns = 1 + layout.n_columns + layout.n_columns * (layout.n_columns - 1) // 2
    if game_budget(params, layout.n_columns) < unknowns:
        result.warnings.append(
            f"explainer.interaction_budget={params.budget} is below the {unknowns} unknowns of "
            f"a pairwise game over {layout.n_columns} features: the interactions are not "
            "determined by the rows (on planted games no estimator found the pairs there); "
            f"raise explainer.interaction_budget above {unknowns}")
        log.warning("%s", result.warnings[-1])
    record.update(interactions=params.estimator, interaction_budget=params.budget,
                  interaction_top_k=params.top_k)
    return result
