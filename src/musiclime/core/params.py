"""One frozen parameter type per stage, validated once, where it is made.

:class:`ExplainerConfig` is the user's flat view (the ``explainer`` config group, and
``ExplainerConfig(num_samples=...)`` in Python); it is the composition of the stage types
and hands each stage its own: ``econf.segment`` (:class:`SegmentParams`), ``econf.masks``
(:class:`MaskParams`), ``econf.predict`` (:class:`PredictParams`) and ``econf.fit``
(:class:`FitParams`). Every library step takes its inputs and its own parameters, nothing else;
the workflow's specs (:mod:`musiclime.workflow.specs`) hold these same types.

``num_samples`` means one thing per type: :attr:`MaskParams.max_samples` is the most rows a
draw makes (a sweep's largest count, or ``auto_budget``); :attr:`FitParams.num_samples` is
the prefix fitted (``None``: ``num_samples=auto``, every row predicted).

Strategies (sampler, estimator, target, kernel) are given as a registry name (``"paired"``),
a Hydra node with ``_target_`` (``{"_target_": "mypkg.MySampler", "k": 3}``), or, from
Python, any object that follows the protocol (:class:`musiclime.core.samplers.Sampler`,
:class:`musiclime.core.estimators.Estimator`, :class:`musiclime.core.targets.Target`,
:class:`musiclime.core.surrogate.Kernel`). The name or the node is what cache keys and
explanations record; :func:`strategy` builds the object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import ConfigError
from .factorization import RESIDUAL_MODES
from .interactions import InteractionParams
from .lyrics import LYRICS_UNITS
from .masks import MODALITIES
from .samplers import draws_uniform_masks
from .surrogate import FEATURE_SELECTIONS

#: the settings of pairwise interactions (recorded in an explanation only when it estimates them)
INTERACTION_KEYS = ("interactions", "interaction_budget", "interaction_top_k")
#: ``explainer.num_samples=auto``
AUTO = "auto"
#: the settings of num_samples=auto (recorded in an explanation only when it used them)
AUTO_KEYS = ("auto_budget", "auto_target", "auto_block", "auto_top_k", "auto_bootstrap")


def stage(params, kind: type, name: str):
    """``params`` if a ``kind``, else that stage of an :class:`ExplainerConfig` (a whole config)."""
    if isinstance(params, kind):
        return params
    if isinstance(params, ExplainerConfig):
        return getattr(params, name)
    raise TypeError(f"expected {kind.__name__} or ExplainerConfig, got {type(params).__name__}")


def _bad(key: str, value, why: str):
    raise ConfigError(f"explainer.{key}={value!r}: {why}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _registry(kind: str) -> Mapping:
    if kind == "sampler":
        from .samplers import SAMPLERS
        return SAMPLERS
    if kind == "estimator":
        from .estimators import ESTIMATORS
        return ESTIMATORS
    from .targets import TARGETS
    return dict.fromkeys(TARGETS)


def _check_strategy(kind: str, spec) -> None:
    """A strategy is a registry name, a Hydra node whose ``_target_`` can be imported, or an
    object (from Python)."""
    if isinstance(spec, str):
        names = _registry(kind)
        if spec not in names:
            order = names if kind != "estimator" else sorted(names)
            _bad(kind, spec, f"must be one of {', '.join(order)}, or a node with _target_")
    elif isinstance(spec, Mapping):
        target = spec.get("_target_")
        if not isinstance(target, str) or not target:
            _bad(kind, dict(spec), "a node needs a _target_ naming a class, e.g. "
                 f"{{_target_: mypkg.My{kind.capitalize()}}}")
        from hydra.utils import get_object

        try:
            get_object(target)
        except Exception as exc:  # noqa: BLE001 (Hydra raises several kinds)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"explainer.{kind}._target_={target!r}: cannot be imported "
                              f"({first}); give a class importable from the Python path or a "
                              "--config-dir") from None
    elif spec is None or not callable(spec):
        _bad(kind, spec, "must be a name, a node with _target_, or a callable object")


def strategy(kind: str, spec):
    """The object a strategy spec names: a registry entry, an instantiated Hydra node, or
    the object itself."""
    if isinstance(spec, str):
        if kind == "target":
            return spec  # a name: musiclime.core.targets.transform applies it
        return _registry(kind)[spec]
    if isinstance(spec, Mapping):
        from hydra.utils import instantiate

        try:
            return instantiate(dict(spec), _convert_="all")
        except Exception as exc:  # noqa: BLE001
            cause = exc.__cause__ or exc
            raise ConfigError(f"explainer.{kind}._target_={spec.get('_target_')!r}: "
                              f"{str(cause).strip().splitlines()[0]}") from None
    return spec


def strategy_name(spec) -> Any:
    """What records a strategy: its name, its Hydra node, or an object's class path."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        return dict(spec)
    cls = type(spec)
    return f"{cls.__module__}.{cls.__qualname__}"


def _valid_boundaries(b) -> bool:
    """Null-equivalent (empty), or >= 2 strictly increasing non-negative numbers."""
    if isinstance(b, (str, bytes)) or not isinstance(b, Sequence):
        return False
    if len(b) == 0:
        return True
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in b):
        return False
    return len(b) >= 2 and b[0] >= 0 and all(y > x for x, y in zip(b, b[1:], strict=False))


@dataclass(frozen=True)
class SegmentParams:
    """How a song becomes features (:func:`musiclime.core.explainer.factorize`)."""

    temporal_segments: int = 10
    segment_boundaries: list | None = None
    residual: str = "keep"
    lyrics_unit: str = "line"

    def __post_init__(self):
        if not self.segment_boundaries and (
                not _is_int(self.temporal_segments) or self.temporal_segments < 1):
            _bad("temporal_segments", self.temporal_segments, "must be an integer >= 1")
        if self.segment_boundaries is not None and not _valid_boundaries(
                self.segment_boundaries):
            _bad("segment_boundaries", self.segment_boundaries,
                 "must be null or a list of at least two increasing times in seconds >= 0, "
                 "e.g. [0, 5, 12]")
        if self.lyrics_unit not in LYRICS_UNITS:
            _bad("lyrics_unit", self.lyrics_unit, f"must be one of {', '.join(LYRICS_UNITS)}")
        if self.residual not in RESIDUAL_MODES:
            _bad("residual", self.residual, f"must be one of {', '.join(RESIDUAL_MODES)}")


@dataclass(frozen=True)
class MaskParams:
    """Which masks are drawn (:func:`musiclime.core.explainer.make_masks`): ``max_samples`` rows
    (the prefix property: a smaller count fits on the first rows)."""

    modality: str = "both"
    max_samples: int = 1000
    seed: int = 0
    exhaustive: bool = True
    sampler: Any = "bernoulli"

    def __post_init__(self):
        if self.modality not in MODALITIES:
            _bad("modality", self.modality, f"must be one of {', '.join(MODALITIES)}")
        if not _is_int(self.max_samples) or self.max_samples < 2:
            _bad("num_samples", self.max_samples, 'must be an integer >= 2, or "auto"')
        if not _is_int(self.seed) or self.seed < 0:
            _bad("seed", self.seed, "must be a non-negative integer")
        _check_strategy("sampler", self.sampler)

    def make_sampler(self):
        """The sampler object, with this ``exhaustive`` where it has that setting."""
        sampler = strategy("sampler", self.sampler)
        if (isinstance(self.sampler, str) and hasattr(sampler, "exhaustive")
                and sampler.exhaustive != self.exhaustive):
            sampler = replace(sampler, exhaustive=self.exhaustive)
        return sampler


@dataclass(frozen=True)
class PredictParams:
    """How masks are predicted (:func:`musiclime.core.inference.predict_masks`)."""

    batch_size: int = 0
    deduplicate: bool = True
    mixed_precision: bool = False

    def __post_init__(self):
        if not _is_int(self.batch_size) or self.batch_size < 0:
            _bad("batch_size", self.batch_size, "must be an integer >= 0 (0 = automatic)")


@dataclass(frozen=True)
class AutoParams:
    """``num_samples=auto`` (:mod:`musiclime.core.adaptive`): predict in blocks of ``block`` until
    the bootstrap top-``top_k`` Jaccard reaches ``target``, or ``budget`` samples."""

    budget: int = 4096
    target: float = 0.8
    block: int = 128
    top_k: int = 5
    bootstrap: int = 16

    def __post_init__(self):
        if not _is_int(self.budget) or self.budget < 2:
            _bad("auto_budget", self.budget, "must be an integer >= 2")
        if not (isinstance(self.target, (int, float)) and 0 < self.target <= 1):
            _bad("auto_target", self.target, "must be a top-k Jaccard in (0, 1]")
        if not _is_int(self.block) or self.block < 2:
            _bad("auto_block", self.block, "must be an integer >= 2")
        if not _is_int(self.top_k) or self.top_k < 1:
            _bad("auto_top_k", self.top_k, "must be an integer >= 1")
        if not _is_int(self.bootstrap) or self.bootstrap < 2:
            _bad("auto_bootstrap", self.bootstrap, "must be an integer >= 2")


@dataclass(frozen=True)
class FitParams:
    """How the surrogate is fitted (:func:`musiclime.core.explainer.fit_explanation`).

    ``num_samples``: the prefix of the prediction run fitted (``None`` with ``auto``: every
    row predicted). ``draw``: the masks' parameters (the estimator and the held-out folds read
    the sampler and the seed). ``kernel``: ``None`` for lime's
    ``ExponentialKernel(kernel_width, distance_scale)``, or a kernel object."""

    draw: MaskParams = field(default_factory=MaskParams)
    num_samples: int | None = 1000
    kernel_width: float = 0.25
    distance_scale: float = 1.0
    feature_selection: str = "none"
    num_features: int = 10
    ridge_alpha: float = 1.0
    estimator: Any = "lime_ridge"
    target: Any = "probability"
    labels: Any = None
    listen_top_k: int = 3
    auto: AutoParams | None = None
    kernel: Any = None

    def __post_init__(self):
        if self.num_samples is None and self.auto is None:
            raise ConfigError("FitParams: num_samples=None needs auto settings (AutoParams)")
        if self.num_samples is not None and (not _is_int(self.num_samples)
                                             or self.num_samples < 2):
            _bad("num_samples", self.num_samples, 'must be an integer >= 2, or "auto"')
        if not (isinstance(self.kernel_width, (int, float)) and self.kernel_width > 0):
            _bad("kernel_width", self.kernel_width, "must be a number > 0")
        if not (isinstance(self.distance_scale, (int, float)) and self.distance_scale > 0):
            _bad("distance_scale", self.distance_scale, "must be a number > 0")
        if self.feature_selection not in FEATURE_SELECTIONS:
            _bad("feature_selection", self.feature_selection,
                 f"must be one of {', '.join(FEATURE_SELECTIONS)}")
        _check_strategy("estimator", self.estimator)
        if self.estimator == "banzhaf" and not draws_uniform_masks(self.draw.make_sampler()):
            _bad("estimator", "banzhaf", f"needs uniform masks, which sampler {self.draw.sampler!r}"
                 " does not draw: use bernoulli, paired, orthogonal or plackett_burman[_foldover]")
        _check_strategy("target", self.target)
        if self.kernel is not None and not callable(self.kernel):
            _bad("kernel", self.kernel, "must be callable: kernel(distances) -> weights")

    @property
    def is_auto(self) -> bool:
        return self.num_samples is None

    def make_kernel(self):
        """The kernel object: :attr:`kernel`, or lime's exponential kernel."""
        if self.kernel is not None:
            return self.kernel
        from .surrogate import ExponentialKernel

        return ExponentialKernel(self.kernel_width, self.distance_scale)


def settings_record(segment: SegmentParams | None, predict: PredictParams | None,
                    fit: FitParams) -> dict:
    """The configuration an explanation records: the flat ``explainer`` keys (without
    ``num_samples`` and ``modality``, which it records on its own; the ``auto_*`` keys only
    with ``num_samples=auto``); strategies as their name, node or class path. A stage given
    as ``None`` is not recorded."""
    draw, auto = fit.draw, fit.auto
    flat: dict[str, Any] = {"kernel_width": fit.kernel_width,
                            "distance_scale": fit.distance_scale}
    if segment is not None:
        flat.update(temporal_segments=segment.temporal_segments,
                    segment_boundaries=(None if segment.segment_boundaries is None
                                        else [float(x) for x in segment.segment_boundaries]),
                    lyrics_unit=segment.lyrics_unit, residual=segment.residual)
    flat.update({"seed": draw.seed,
        "labels": None if fit.labels is None else list(fit.labels),
        "feature_selection": fit.feature_selection, "num_features": fit.num_features,
        "ridge_alpha": fit.ridge_alpha, "estimator": strategy_name(fit.estimator),
        "target": strategy_name(fit.target), "sampler": strategy_name(draw.sampler)})
    if auto is not None:
        flat.update(auto_budget=auto.budget, auto_target=auto.target, auto_block=auto.block,
                    auto_top_k=auto.top_k, auto_bootstrap=auto.bootstrap)
    if predict is not None:
        flat["batch_size"] = predict.batch_size
    flat["exhaustive"] = draw.exhaustive
    if predict is not None:
        flat.update(deduplicate=predict.deduplicate, mixed_precision=predict.mixed_precision)
    flat["listen_top_k"] = fit.listen_top_k
    if fit.kernel is not None:
        flat["kernel"] = strategy_name(fit.kernel)
    return flat


@dataclass
class ExplainerConfig:
    """Explainer settings, and the schema of the ``explainer`` config group
    (``config/explainer/default.yaml``). See docs/configuration.md. Each field belongs to one
    stage's parameters (:attr:`segment`, :attr:`masks`, :attr:`predict`, :attr:`fit`), which
    validate it."""

    # perturbed samples per song (row 0 is the original), or "auto": predict in blocks of
    # auto_block until the bootstrap estimate of the top-k stability reaches auto_target, or
    # auto_budget samples (musiclime.core.adaptive)
    num_samples: Any = 1000
    # kernel w = sqrt(exp(-(distance_scale * d)^2 / kernel_width^2)), d = cosine distance to the
    # all-ones mask (surrogate.ExponentialKernel); lime's text explainer: width 25, scale 100
    kernel_width: float = 0.25
    distance_scale: float = 1.0
    modality: str = "both"  # both | audio (lyrics kept whole) | lyrical (audio kept whole)
    temporal_segments: int = 10  # equal segments per stem; the remainder goes to the last one
    segment_boundaries: Any = None  # list of seconds, e.g. [0, 5, 12]; overrides temporal_segments
    lyrics_unit: str = "line"  # line (the reference) | word (the MusicLIME paper's bag of words)
    residual: str = "keep"  # keep (always on) | feature (a 5th stem) | drop (the reference)
    seed: int = 0  # mask seed: same seed and config, same explanation bit for bit
    labels: Any = None  # None: the predicted label; else a list of indices or class names
    feature_selection: str = "none"  # lime's feature selection before the fit; none keeps all
    num_features: int = 10  # features listed in top_features (all weights are always kept)
    ridge_alpha: float = 1.0  # ridge regularisation of the surrogate (lime's default)
    # the surrogate fitted to the predictions (musiclime.core.estimators): lime_ridge (LIME),
    # kernel_shap or leverage_shap (Shapley values), banzhaf (Banzhaf values), or a node
    # {_target_: mypkg.MyEstimator}; a fit-stage choice: a sweep over it predicts once
    estimator: Any = "lime_ridge"
    # what the surrogate fits: probability (LIME's practice) or logit (the log-odds
    # log(p / (1 - p)) of each explained class, where a saturating classifier's evidence adds
    # up; shap's link="logit"); a fit-stage choice (musiclime.core.targets)
    target: str = "probability"
    # which masks are predicted (musiclime.core.samplers): bernoulli (today's), paired, orthogonal,
    # orthogonal_foldover, plackett_burman[_foldover], stratified, kernel, leverage[_stratified]
    # or a node {_target_: mypkg.MySampler}; every built-in one keeps the prefix property
    sampler: Any = "bernoulli"
    auto_budget: int = 4096  # num_samples=auto: at most this many samples
    auto_target: float = 0.8  # num_samples=auto: stop at this bootstrap top-k Jaccard
    auto_block: int = 128  # num_samples=auto: samples predicted between two checks
    auto_top_k: int = 5  # num_samples=auto: k of the top-k stability
    auto_bootstrap: int = 16  # num_samples=auto: bootstrap resamples per check
    batch_size: int = 0  # masks per classifier call; 0: chosen from memory
    exhaustive: bool = True  # enumerate all 2^F masks once when 2^F <= num_samples
    deduplicate: bool = True  # predict each distinct mask once
    mixed_precision: bool = False  # classifier under torch.autocast (fp16 CUDA / bf16 CPU)
    listen_top_k: int = 3  # components in the listenable explanation WAV
    # pairwise (order-2) feature interactions per explained label (musiclime.core.interactions,
    # with shapiq): none, or the estimator: regression_fsii (Faith-SHAP by least squares),
    # kernel_shapiq or svarmiq (k-SII); its rows are predicted beside the masks, never among them
    interactions: str = "none"
    # classifier rows the interaction estimator may draw (rows among the masks are reused); an
    # exactly pairwise game over F features needs more than 1 + F + F(F-1)/2
    interaction_budget: int = 2000
    interaction_top_k: int = 10  # pairs recorded per label, by |interaction|

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Build every stage's parameters once: each validates its own fields (the fit builds
        the masks' parameters too)."""
        self.segment, self.predict, self.fit, self.interaction  # noqa: B018

    @property
    def is_auto(self) -> bool:
        """``num_samples="auto"``: the sample count is chosen per song (:mod:`.adaptive`)."""
        return self.num_samples == AUTO

    @property
    def max_samples(self) -> int:
        """The most samples a song can get: ``num_samples``, or ``auto_budget`` for auto."""
        return int(self.auto_budget) if self.is_auto else self.num_samples

    @property
    def segment(self) -> SegmentParams:
        return SegmentParams(self.temporal_segments, self.segment_boundaries, self.residual,
                             self.lyrics_unit)

    @property
    def masks(self) -> MaskParams:
        if self.num_samples != AUTO and not _is_int(self.num_samples):
            _bad("num_samples", self.num_samples, 'must be an integer >= 2, or "auto"')
        max_samples = self.auto.budget if self.is_auto else self.num_samples
        return MaskParams(self.modality, max_samples, self.seed, self.exhaustive, self.sampler)

    @property
    def predict(self) -> PredictParams:
        return PredictParams(self.batch_size, self.deduplicate, self.mixed_precision)

    @property
    def auto(self) -> AutoParams | None:
        if not self.is_auto:
            return None
        return AutoParams(self.auto_budget, self.auto_target, self.auto_block,
                          self.auto_top_k, self.auto_bootstrap)

    @property
    def fit(self) -> FitParams:
        auto, draw = self.auto, self.masks  # num_samples is checked in masks first
        return FitParams(draw, None if auto else self.num_samples, self.kernel_width,
                         self.distance_scale, self.feature_selection, self.num_features,
                         self.ridge_alpha, self.estimator, self.target, self.labels,
                         self.listen_top_k, auto)

    @property
    def interaction(self) -> InteractionParams:
        """The interactions' parameters (:mod:`musiclime.core.interactions`); the seed is the
        masks' seed."""
        return InteractionParams(self.interactions, self.interaction_budget,
                                 self.interaction_top_k, self.seed)

    def record(self) -> dict:
        """What an explanation records of this configuration (:func:`settings_record`)."""
        return settings_record(self.segment, self.predict, self.fit)

    def as_dict(self) -> dict:
        """Every field; the ``interaction*`` keys only with ``interactions`` set, so that a
        configuration without interactions has the dict (and the hashes made of it) it had
        before they existed."""
        d = asdict(self)
        if self.interactions == "none":
            for key in INTERACTION_KEYS:
                d.pop(key)
        if d["segment_boundaries"] is not None:
            d["segment_boundaries"] = [float(x) for x in d["segment_boundaries"]]
        if d["labels"] is not None:
            d["labels"] = list(d["labels"])
        return d


#: the flat keys, in the order of the ``explainer`` group
EXPLAINER_KEYS = tuple(f.name for f in fields(ExplainerConfig))
