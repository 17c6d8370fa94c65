"""Typed stage specs: what the planner hands each Snakemake job, parsed in one place.

The planner (:mod:`.plan`) builds one spec per stage key; a rule passes ``spec.to_dict()`` as
its ``params.spec`` (so Snakemake re-runs a job exactly when its slice of the configuration
changes), and the job's script turns it back with ``<Spec>.from_dict``. A spec holds only what
its stage's output depends on, plus the keys of the stages it reads from.

:class:`Plan` is the whole plan: the specs of every stage, the songs, the points (sweep
configurations) and the tracking settings. It is the Snakemake config file that
``musiclime run`` writes to ``<results_root>/plans/``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the heavy modules are imported only by the stages that need them
    from ..core.explainer import ExplainerConfig
    from ..metrics import MetricSettings


def _plain(obj) -> Any:
    return asdict(obj) if hasattr(obj, "__dataclass_fields__") else obj


def _explainer(d: dict) -> ExplainerConfig:
    from ..core.explainer import ExplainerConfig

    return ExplainerConfig(**d)


class _Spec:
    """``to_dict``/``from_dict`` for specs whose fields are plain values."""

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict):
        return cls(**d)


@dataclass(frozen=True)
class SongSource(_Spec):
    """One song's input files (absolute paths) and labels, from the dataset."""

    song_id: str
    audio: str
    lyrics: str | None = None
    stems_dir: str | None = None
    evidence: str | None = None
    label: str | None = None
    split: str | None = None

    def info(self) -> dict:
        """What an explanation records about its song."""
        return {k: v for k, v in (("label", self.label), ("split", self.split),
                                  ("audio", self.audio), ("lyrics", self.lyrics),
                                  ("evidence", self.evidence)) if v}


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
    temporal_segments: int
    segment_boundaries: list | None
    residual: str
    lyrics_unit: str

    def explainer(self) -> ExplainerConfig:
        """An explainer config with these segmentation settings (what ``factorize`` reads)."""
        return _explainer({"temporal_segments": self.temporal_segments,
                           "segment_boundaries": self.segment_boundaries,
                           "residual": self.residual, "lyrics_unit": self.lyrics_unit})


@dataclass(frozen=True)
class MasksSpec(_Spec):
    dataset: str
    segment: str
    modality: str
    num_samples: int  # the largest count any point of this prediction run fits
    seed: int
    exhaustive: bool
    sampler: str = "bernoulli"

    def explainer(self) -> ExplainerConfig:
        return _explainer({"modality": self.modality, "seed": self.seed,
                           "exhaustive": self.exhaustive, "num_samples": self.num_samples,
                           "sampler": self.sampler})


@dataclass(frozen=True)
class PredictSpec(_Spec):
    dataset: str
    segment: str
    masks: str
    model: dict  # the Hydra node
    model_identity: str
    modality: str
    batch_size: int
    deduplicate: bool
    mixed_precision: bool
    # num_samples=auto: the point's whole explainer config (its surrogate decides when to stop,
    # musiclime.adaptive); None: predict every mask row
    auto: dict | None = None

    def explainer(self) -> ExplainerConfig:
        if self.auto is not None:
            return _explainer(self.auto)
        return _explainer({"modality": self.modality, "batch_size": self.batch_size,
                           "deduplicate": self.deduplicate,
                           "mixed_precision": self.mixed_precision})


@dataclass
class FitMember:
    key: str  # the fit key: one configuration's explanations
    explainer: ExplainerConfig

    def to_dict(self) -> dict:
        return {"key": self.key, "explainer": self.explainer.as_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> FitMember:
        return cls(key=d["key"], explainer=_explainer(d["explainer"]))


@dataclass
class FitSpec:
    """One fit job per song: every configuration fitted on one prediction run."""

    dataset: str
    segment: str
    masks: str
    predict: str
    members: list[FitMember]
    shared_scale: bool = True  # one heatmap colour scale for all members (workflow.shared_scale)

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "segment": self.segment, "masks": self.masks,
                "predict": self.predict, "members": [m.to_dict() for m in self.members],
                "shared_scale": self.shared_scale}

    @classmethod
    def from_dict(cls, d: dict) -> FitSpec:
        return cls(**{**d, "members": [FitMember.from_dict(m) for m in d["members"]]})


@dataclass
class EvaluateMember:
    key: str  # the evaluate key
    fit: str  # the fit key of the explanation it evaluates
    explainer: ExplainerConfig

    def to_dict(self) -> dict:
        return {"key": self.key, "fit": self.fit, "explainer": self.explainer.as_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> EvaluateMember:
        return cls(key=d["key"], fit=d["fit"], explainer=_explainer(d["explainer"]))


@dataclass
class EvaluateSpec:
    """One evaluate job per song: the quality metrics of every explanation of one fit job
    that shares these metric settings (one classifier and one prediction cache serve all)."""

    dataset: str
    segment: str
    predict: str
    fit_batch: str  # the fit job whose explanations are evaluated
    model: dict
    metrics: MetricSettings
    members: list[EvaluateMember]

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "segment": self.segment, "predict": self.predict,
                "fit_batch": self.fit_batch, "model": self.model,
                "metrics": self.metrics.as_dict(),
                "members": [m.to_dict() for m in self.members]}

    @classmethod
    def from_dict(cls, d: dict) -> EvaluateSpec:
        from ..metrics import MetricSettings

        return cls(**{**d, "metrics": MetricSettings(**d["metrics"]),
                      "members": [EvaluateMember.from_dict(m) for m in d["members"]]})


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
    songs: dict[str, dict[str, SongSource]]  # dataset key -> song id -> source
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

    _TABLES = {"decode": DecodeSpec, "separate": SeparateSpec, "segment": SegmentSpec,
               "masks": MasksSpec, "predict": PredictSpec, "fit": FitSpec,
               "evaluate": EvaluateSpec, "aggregate": AggregateSpec, "points": PointSpec}

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"results_root": self.results_root,
                             "songs": {ds: {sid: s.to_dict() for sid, s in songs.items()}
                                       for ds, songs in self.songs.items()}}
        for name in self._TABLES:
            d[name] = {k: spec.to_dict() for k, spec in getattr(self, name).items()}
        d["tracking"] = self.tracking.to_dict()
        d["invocation"] = self.invocation.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        tables = {name: {k: spec_cls.from_dict(v) for k, v in d.get(name, {}).items()}
                  for name, spec_cls in cls._TABLES.items()}
        return cls(results_root=d["results_root"],
                   songs={ds: {sid: SongSource.from_dict(s) for sid, s in songs.items()}
                          for ds, songs in d.get("songs", {}).items()},
                   tracking=TrackingSettings.from_dict(d.get("tracking", {"enabled": False})),
                   invocation=Invocation.from_dict(d.get("invocation", {})), **tables)

    # --- lookups the rules need --------------------------------------------------------------
    def song(self, dataset: str, song_id: str) -> SongSource:
        return self.songs[dataset][song_id]

    def fit_batch_of(self, fit_key: str) -> str:
        for batch, spec in self.fit.items():
            if any(m.key == fit_key for m in spec.members):
                return batch
        raise KeyError(fit_key)
