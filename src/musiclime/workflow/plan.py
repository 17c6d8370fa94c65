"""From Hydra configs to the typed plan Snakemake builds from.

A *point* is one resolved configuration (one sweep point). For each point the planner derives
the key of every stage (:mod:`.layout` builds them) and the stage's spec (:mod:`.specs`): what
that stage's output depends on and nothing else. Points share every stage whose key they share.
Points that differ only in ``num_samples`` share one prediction run of the largest count (masks
have the prefix property). With ``workflow.batch`` (the default), every point fitted on one
prediction run is fitted by one job per song, and evaluated by one job per song and metric
settings; without it each point is a job of its own. Either way the files are the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ..config import (  # noqa: F401 (normalize_overrides: importable here too)
    build_classifier,
    build_separator,
    compose_config,
    expand_overrides,
    explainer_config,
    is_sweep,
    metric_settings,
    normalize_overrides,
    point_config,
    point_id_of,
    to_container,
)
from ..errors import ConfigError
from ..io import layout
from ..io.dataset import SongRecord, checked_songs
from ..io.plain import to_plain
from ..models.identity import (
    classifier_identity,
    dataset_identity,
    fit_part,
    short_hash,
    strategy_key,
)
from ..tracking.names import run_names
from .specs import (
    AggregateSpec,
    DecodeSpec,
    EvaluateMember,
    EvaluateSpec,
    FitMember,
    FitSpec,
    MasksSpec,
    Plan,
    PointSpec,
    PredictSpec,
    SegmentSpec,
    SeparateSpec,
    TrackingSettings,
)

log = logging.getLogger(__name__)


@dataclass
class _Model:
    identity: str  # name-<hash>: the predict key's model part
    detail: dict  # config, weights digests, code fingerprint
    sample_rate: int


@dataclass
class _PointKeys:
    dataset: str
    segment: str
    masks_group: str  # the masks key without its n~ part
    predict_part: str
    fit_part: str
    metrics_hash: str | None


class Planner:
    """Builds the :class:`~.specs.Plan` for a list of points (configurations)."""

    def __init__(self, results_root: str | Path):
        self.results_root = Path(results_root).resolve()
        self.plan = Plan(results_root=str(self.results_root), songs={}, decode={}, separate={},
                         segment={}, masks={}, predict={}, fit={}, evaluate={}, aggregate={},
                         points={}, tracking=TrackingSettings())
        self._models: dict[str, _Model] = {}
        self._separators: dict[str, tuple[str, int]] = {}
        self._dataset_names: dict[str, str] = {}  # dataset key -> manifest
        self._pending: list[tuple[PointSpec, _PointKeys, Any, Any]] = []

    # --- identities ---------------------------------------------------------------------------
    def _model(self, cfg: DictConfig) -> _Model:
        node = to_container(cfg.model)
        memo = short_hash(node, 16)
        if memo not in self._models:
            clf = build_classifier(cfg)
            detail = classifier_identity(node, clf)
            name = layout.fmt(node.get("name", "model"))
            self._models[memo] = _Model(f"{name}-{short_hash(detail)}", detail,
                                        int(clf.sample_rate))
        return self._models[memo]

    def _separator(self, cfg: DictConfig, working_rate: int) -> tuple[str, int, bool]:
        from ..core.explainer import separation_rate

        node = to_container(cfg.separator)
        memo = short_hash([node, working_rate], 16)
        if memo not in self._separators:
            sep = build_separator(cfg)
            identity = getattr(sep, "identity", None) or short_hash(node)
            name = layout.fmt(node.get("name", "separator"))
            ident = name if identity == name else f"{name}-{identity[:8]}"
            self._separators[memo] = (ident, separation_rate(sep, working_rate),
                                      bool(getattr(sep, "uses_stems_dir", False)))
        return self._separators[memo]

    def _dataset(self, cfg: DictConfig, needs_stems: bool
                 ) -> tuple[str, list[SongRecord], dict[str, str]]:
        """The dataset's key, its songs whose inputs are in order, and the others with the
        reason (missing files, an id that cannot name a file): those fail alone."""
        dcfg = to_container(cfg.dataset)
        manifest = str(Path(dcfg["manifest"]).expanduser().resolve())
        key = layout.dataset_key(dcfg["name"], dataset_identity(manifest))
        records, rejected = checked_songs(dcfg["manifest"], dcfg.get("split"), dcfg.get("limit"),
                                          needs_stems, f"dataset {dcfg['name']}")
        songs = self.plan.songs.setdefault(key, {})
        for s in records:
            if s.song_id in songs and songs[s.song_id] != s:
                raise ConfigError(
                    f"dataset.name={dcfg['name']}: song {s.song_id} has different files or "
                    f"labels in two configurations of this run ({songs[s.song_id].audio} and "
                    f"{s.audio}); give each manifest its own dataset.name")
            songs[s.song_id] = s
        return key, records, rejected

    # --- points -------------------------------------------------------------------------------
    def add_point(self, overrides: list[str], cfg: DictConfig) -> PointSpec:
        explainer = explainer_config(cfg)
        resolved = point_config(cfg, explainer)
        point_id = point_id_of(resolved)
        for spec, *_ in self._pending:
            if spec.point_id == point_id:
                return spec
        model = self._model(cfg)
        rate = int(cfg.working_sample_rate or model.sample_rate)
        if rate != model.sample_rate:
            raise ConfigError(f"working_sample_rate={rate} differs from the classifier's rate "
                              f"{model.sample_rate} Hz; leave it null so audio is composed at "
                              "the classifier's rate")
        sep_ident, sep_rate, needs_stems = self._separator(cfg, rate)
        dataset, records, rejected = self._dataset(cfg, needs_stems)

        p = self.plan
        dec_work = layout.decode_key(dataset, rate)
        dec_sep = layout.decode_key(dataset, sep_rate)
        p.decode.setdefault(dec_work, DecodeSpec(dataset, rate))
        p.decode.setdefault(dec_sep, DecodeSpec(dataset, sep_rate))
        sep_key = layout.separate_key(dataset, sep_ident, sep_rate)
        p.separate.setdefault(sep_key, SeparateSpec(dataset, dec_sep, to_container(cfg.separator),
                                                    sep_ident, sep_rate))
        segments = (f"{layout.fmt(explainer.segment_boundaries)}s" if explainer.segment_boundaries
                    else str(explainer.temporal_segments))
        seg_key = layout.segment_key(sep_key, rate, segments, explainer.residual, explainer.lyrics_unit)
        p.segment.setdefault(seg_key, SegmentSpec(dataset, dec_work, sep_key, rate, sep_rate,
                                                  explainer.segment))
        metrics = metric_settings(cfg)
        keys = _PointKeys(
            dataset=dataset, segment=seg_key,
            masks_group=f"{seg_key}|{explainer.modality}|{explainer.seed}|{explainer.exhaustive}|"
                        f"{strategy_key(explainer.sampler)}",
            predict_part=f"{model.identity}|{explainer.batch_size}|{explainer.deduplicate}|"
                         f"{explainer.mixed_precision}",
            fit_part=fit_part(explainer),
            metrics_hash=None if metrics is None else short_hash(metrics.as_dict()))
        # where the results live is not part of what a point is (a results folder can move)
        recorded = [o for o in overrides if not o.lstrip("+~").startswith("results_root=")]
        point = PointSpec(point_id=point_id, overrides=recorded, config=resolved,
                          dataset=dataset, songs=[s.song_id for s in records], predict="",
                          fit="", fit_batch="", model_identity=model.detail, failed=rejected)
        self._pending.append((point, keys, explainer, metrics))
        return point

    # --- finalisation: num_samples sharing and jobs ------------------------------------------------
    def finalize(self, tracking: TrackingSettings, batch: bool = True,
                 shared_scale: bool = True) -> Plan:
        """Resolve the masks/predict keys (the largest num_samples of each prediction run) and
        cut the fit and evaluate jobs."""
        p = self.plan
        p.tracking = tracking
        n_max: dict[str, int] = {}
        union: dict[str, set] = {}  # the interaction estimators whose rows a run predicts
        for _, keys, explainer, _ in self._pending:
            n_max[keys.masks_group] = max(n_max.get(keys.masks_group, 0), explainer.max_samples)
            union.setdefault(keys.masks_group, set()).add(explainer.interaction)
        fit_jobs: dict[str, list[tuple[PointSpec, str, Any, str]]] = {}
        resolved: list[tuple[PointSpec, _PointKeys, Any, Any, str, str]] = []
        for point, keys, explainer, metrics in self._pending:
            n = n_max[keys.masks_group]
            masks_key = layout.masks_key(keys.segment, explainer.modality, explainer.seed,
                                         explainer.exhaustive, n, strategy_key(explainer.sampler))
            model_identity = keys.predict_part.split("|")[0]
            # num_samples=auto: the point's whole config is the stopping rule (its hash: the key)
            auto = explainer.as_dict() if explainer.is_auto else None
            inter = sorted((i for i in union[keys.masks_group] if i.enabled), key=repr)
            pred_key = layout.predict_key(masks_key, model_identity, explainer.batch_size,
                                          explainer.deduplicate, explainer.mixed_precision,
                                          short_hash(auto, 8) if auto else None,
                                          short_hash(to_plain(inter), 8) if inter else None)
            fit_key = layout.fit_key(pred_key, keys.fit_part)
            p.masks.setdefault(masks_key, MasksSpec(keys.dataset, keys.segment,
                                                    replace(explainer.masks, max_samples=n)))
            p.predict.setdefault(pred_key, PredictSpec(
                keys.dataset, keys.segment, masks_key, point.config["model"], model_identity,
                explainer.modality, explainer.predict, explainer.fit if auto else None, inter))
            fit_jobs.setdefault(pred_key if batch else fit_key, []).append(
                (point, fit_key, explainer, pred_key))
            resolved.append((point, keys, explainer, metrics, pred_key, fit_key))

        fit_batch_of: dict[str, str] = {}
        for members in fit_jobs.values():
            unique = {fk: ec for _, fk, ec, _ in members}
            point, explainer, pred_key = members[0][0], members[0][2], members[0][3]
            spec = FitSpec(dataset=point.dataset, segment=p.predict[pred_key].segment,
                           masks=p.predict[pred_key].masks, predict=pred_key,
                           segmentation=explainer.segment, prediction=explainer.predict,
                           members=[FitMember(fk, ec.fit, ec.interaction if ec.interaction.enabled
                                              else None) for fk, ec in sorted(unique.items())],
                           shared_scale=shared_scale)
            job = short_hash(sorted(unique), 12)
            p.fit[job] = spec
            for fk in unique:
                fit_batch_of[fk] = job

        eval_jobs: dict[tuple[str, str], list] = {}
        for point, keys, explainer, metrics, _, fit_key in resolved:
            if metrics is None:
                continue
            group = (fit_batch_of[fit_key] if batch else fit_key, keys.metrics_hash)
            eval_jobs.setdefault(group, []).append((point, fit_key, explainer, metrics))
        eval_batch_of: dict[str, str] = {}
        for members in eval_jobs.values():
            point, fit_key, _, metrics = members[0]
            unique = {layout.evaluate_key(fk, short_hash(m.as_dict())): (fk, ec)
                      for _, fk, ec, m in members}
            pred_key = p.fit[fit_batch_of[fit_key]].predict
            job = short_hash(sorted(unique), 12)
            p.evaluate[job] = EvaluateSpec(
                dataset=point.dataset, segment=p.predict[pred_key].segment, predict=pred_key,
                fit_batch=fit_batch_of[fit_key], model=point.config["model"], metrics=metrics,
                members=[EvaluateMember(ek, *unique[ek]) for ek in sorted(unique)])
            for ek in unique:
                eval_batch_of[ek] = job

        for point, keys, _, metrics, pred_key, fit_key in resolved:
            eval_key = (None if metrics is None
                        else layout.evaluate_key(fit_key, keys.metrics_hash))
            p.aggregate.setdefault(fit_key, AggregateSpec(point.dataset, pred_key,
                                                          fit_batch_of[fit_key], point.songs))
            p.points[point.point_id] = PointSpec(
                **{**point.to_dict(), "predict": pred_key, "fit": fit_key,
                   "fit_batch": fit_batch_of[fit_key], "evaluate": eval_key,
                   "evaluate_batch": eval_batch_of.get(eval_key) if eval_key else None})
        return p


def plan_from_overrides(overrides: list[str], multirun: bool = False
                        ) -> tuple[Plan, list[list[str]]]:
    """Compose every point of a (multi)run and return ``(plan, point overrides)``. Overrides
    are normalised first (:func:`normalize_overrides`): the same configuration written two
    ways is the same point."""
    overrides = normalize_overrides(list(overrides))
    base = compose_config([o for o in overrides if not is_sweep(o)] if multirun else overrides)
    workflow = to_container(base.get("workflow", {}) or {}) if "workflow" in base else {}
    preset = workflow.get("sweep")
    if multirun or preset:
        point_overrides = [normalize_overrides(ov) for ov in expand_overrides(overrides, preset)]
    else:
        point_overrides = [list(overrides)]
    planner = Planner(base.results_root)
    for ov in point_overrides:
        planner.add_point(ov, compose_config(ov))
    tracking = TrackingSettings.from_dict(to_container(base.tracking))
    plan = planner.finalize(tracking, batch=bool(workflow.get("batch", True)),
                            shared_scale=bool(workflow.get("shared_scale", True)))
    name_points(plan)
    return plan, point_overrides


def name_points(plan: Plan, limit: int = 40) -> None:
    """Give every point its short run name and its swept axes (:func:`~musiclime.tracking.
    names.run_names`); the full overrides stay in the point's spec."""
    named = run_names({pid: p.config for pid, p in plan.points.items()}, limit)
    for pid, (name, axes) in named.items():
        plan.points[pid] = replace(plan.points[pid], name=name, axes=axes)
