"""Typed stage specs: what the planner hands each Snakemake job, parsed in one place.

The planner (:mod:`.plan`) builds one spec per stage key; a rule passes ``spec.to_dict()`` as
its ``params.spec`` (so Snakemake re-runs a job exactly when its slice of the configuration
changes), and the job's script turns it back with ``<Spec>.from_dict``. A spec holds only what
its stage's output depends on, plus the keys of the stages it reads from.

:class:`Plan` is the whole plan: the specs of every stage, the songs, the points (sweep
configurations) and the tracking settings; its songs are the dataset's
:class:`~musiclime.io.dataset.SongRecord` records (absolute paths), serialised field by field
like the specs. It is the Snakemake config file that ``musiclime run`` writes to
``<results_root>/plans/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.interactions import InteractionParams
from ..core.params import FitParams, MaskParams, PredictParams, SegmentParams
from ..io.dataset import SongRecord
from ..io.plain import from_plain, to_plain

if TYPE_CHECKING:  # the heavy modules are imported only by the stages that need them
    from ..core.params import ExplainerConfig
    from ..metrics import MetricSettings


def _names(cls, d: dict) -> dict:
    """The names the specs' annotations use that this module does not import (see
    :func:`~musiclime.io.plain.from_plain`); the metrics package only for an evaluate spec."""
    from ..core.params import ExplainerConfig

    names: dict[str, Any] = {"ExplainerConfig": ExplainerConfig}
    if cls is EvaluateSpec or (cls is Plan and d.get("evaluate")):
        from ..metrics import MetricSettings

        names["MetricSettings"] = MetricSettings
    return names


class _Spec:
    """``to_dict``/``from_dict`` from the dataclass fields (:mod:`musiclime.io.plain`): a new
    field needs no serialiser code."""

    def to_dict(self) -> dict:
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: dict):
        return from_plain(cls, d, _names(cls, d))


@dataclass(frozen=True)
class DecodeSpec(_Spec):
    dataset: str
    sample_rate: int


@dataclass(frozen=True)
class SeparateSpec(_Spec):
    dataset: str
    decode: str  # key of the decode at the separator's rate
    separator: dict  # the Hydra node (``_target_`` and arguments)
    identity: str  # name-<weights hash>
    sample_rate: int  # the separator's rate


@dataclass(frozen=True)
class SegmentSpec(_Spec):
    dataset: str
    decode: str  # key of the decode at the working rate
    separate: str
    sample_rate: int  # the working (classifier's) rate
    stems_rate: int  # the separator's rate
    params: SegmentParams


@dataclass(frozen=True)
class MasksSpec(_Spec):
    dataset: str
    segment: str
    params: MaskParams  # max_samples: the largest count any point of this prediction run fits


@dataclass(frozen=True)
class PredictSpec(_Spec):
    dataset: str
    segment: str
    masks: str
    model: dict  # the Hydra node
    model_identity: str
    modality: str  # the masks' (their layout)
    params: PredictParams
    # num_samples=auto: the point's surrogate (and its auto settings) decides when to stop
    # (musiclime.core.adaptive); None: predict every mask row
    auto: FitParams | None = None
    interactions: list[InteractionParams] = field(default_factory=list)  # its fits' (union)


@dataclass
class FitMember(_Spec):
    key: str  # the fit key: one configuration's explanations
    params: FitParams
    interactions: InteractionParams | None = None  # pairwise interactions to estimate


@dataclass
class FitSpec(_Spec):
    """One fit job per song: every configuration fitted on one prediction run. The members
    share the segmentation and the prediction settings (the explanations record them)."""

    dataset: str
    segment: str
    masks: str
    predict: str
    segmentation: SegmentParams
    prediction: PredictParams
    members: list[FitMember]
    shared_scale: bool = True  # one heatmap colour scale for all members (workflow.shared_scale)


@dataclass
class EvaluateMember(_Spec):
    key: str  # the evaluate key
    fit: str  # the fit key of the explanation it evaluates
    explainer: ExplainerConfig


@dataclass
class EvaluateSpec(_Spec):
    """One evaluate job per song: the quality metrics of every explanation of one fit job
    that shares these metric settings (one classifier and one prediction cache serve all)."""

    dataset: str
    segment: str
    predict: str
    fit_batch: str  # the fit job whose explanations are evaluated
    model: dict
    metrics: MetricSettings
    members: list[EvaluateMember]


@dataclass(frozen=True)
class AggregateSpec(_Spec):
    dataset: str
    predict: str
    fit_batch: str  # the fit job that wrote these explanations
    songs: list


@dataclass(frozen=True)
class PointSpec(_Spec):
    """One configuration (sweep point)."""

    point_id: str
    overrides: list
    config: dict  # the resolved Hydra config
    dataset: str
    songs: list
    predict: str
    fit: str
    fit_batch: str
    evaluate: str | None = None
    evaluate_batch: str | None = None
    model_identity: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)  # song id -> one-line reason (not in ``songs``)
    name: str = ""  # short and distinct within its sweep, from the swept values: kw=0.1 n=1000
    axes: dict = field(default_factory=dict)  # swept key -> this point's value


@dataclass(frozen=True)
class TrackingSettings(_Spec):
    enabled: bool = True
    uri: str | None = None
    experiment: str = "musiclime"


@dataclass(frozen=True)
class Invocation(_Spec):
    """What one ``musiclime run`` adds to a plan; never part of a job's params, so it does
    not decide whether a job re-runs."""

    parent_run_id: str | None = None
    tracking_uri: str | None = None
    experiment_id: str | None = None
    gpu: int = 0
    track: bool = True  # False: tracking is off, or pending (the store did not answer)
    tracking_problem: str | None = None
    phase: str = "all"  # "songs": only every song's explanations and metrics; "all": and the rest


@dataclass
class Plan:
    results_root: str
    songs: dict[str, dict[str, SongRecord]]  # dataset key -> song id -> record
    decode: dict[str, DecodeSpec]
    separate: dict[str, SeparateSpec]
    segment: dict[str, SegmentSpec]
    masks: dict[str, MasksSpec]
    predict: dict[str, PredictSpec]
    fit: dict[str, FitSpec]  # fit job id -> spec
    evaluate: dict[str, EvaluateSpec]  # evaluate job id -> spec
    aggregate: dict[str, AggregateSpec]  # fit key -> spec
    points: dict[str, PointSpec]
    tracking: TrackingSettings
    invocation: Invocation = field(default_factory=Invocation)

    def to_dict(self) -> dict:
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        tables = ("songs", "decode", "separate", "segment", "masks", "predict", "fit",
                  "evaluate", "aggregate", "points")
        d = {**{name: {} for name in tables}, "tracking": {"enabled": False}, **d}
        return from_plain(cls, d, _names(cls, d))

    # --- lookups the rules need --------------------------------------------------------------
    def song(self, dataset: str, song_id: str) -> SongRecord:
        return self.songs[dataset][song_id]
