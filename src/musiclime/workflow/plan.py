"""From Hydra configs to the files Snakemake must build.

A *point* is one resolved configuration (one sweep point). Each stage's output path encodes
exactly the parameters that stage depends on, as ``name~value`` path parts:

===========  ==================================================================  ==============
stage        path                                                                depends on
===========  ==================================================================  ==============
decode       decode/<dataset>/sr~R/<song>.npz                                    dataset, rate
separate     separate/<dataset>/sep~<name>-<weights hash>/sr~R/<song>.npz        separator
segment      segment/<separate key>/sr~R/seg~10,res~keep,unit~line/<song>.npz    segmentation
masks        masks/<segment key>/mod~both,seed~0,n~N,ex~1/<song>.npy             masks
predict      predict/<masks key>/model~<name>-<hash>,bs~0,dd~1/<song>.npz        model, batch
fit          fit/<predict key>/n~1000,kw~0.25,ds~1,.../<song>/explanation.json   LIME settings
aggregate    aggregate/<fit key>/summary.json                                    the point
track        track/<point id>.json                                               the point
===========  ==================================================================  ==============

so a kernel-width sweep shares everything up to ``predict``, separation runs once per (song,
separator), and points that differ only in ``num_samples`` share one prediction run of the
largest ``num_samples`` (masks have the prefix property) and fit on prefixes of it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..config import build_classifier, compose, explainer_config, metric_settings
from ..dataset import load_dataset
from ..errors import ConfigError

log = logging.getLogger(__name__)


def expand_overrides(overrides: list[str], sweep_preset: dict | None = None) -> list[list[str]]:
    """Hydra multirun semantics: the cartesian product of every ``key=a,b,c`` sweep override.

    ``sweep_preset`` (``workflow.sweep`` of a ``sweep=`` preset) adds ``key: "a,b,c"`` axes;
    an axis given on the command line wins over the preset's axis of the same key.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed = parser.parse_overrides(list(overrides))
    axes: dict[str, list[str]] = {}
    for key, values in (sweep_preset or {}).items():
        if isinstance(values, (list, tuple)):
            values = ",".join(str(v) for v in values)
        for o in parser.parse_overrides([f"{key}={values}"]):
            axes[o.get_key_element()] = _axis(o)
    for o in parsed:
        axes[o.get_key_element()] = _axis(o)
    keys = list(axes)
    return [[f"{k}={v}" for k, v in zip(keys, combo, strict=True)]
            for combo in itertools.product(*(axes[k] for k in keys))]


def _axis(o) -> list[str]:
    if o.is_sweep_override():
        return list(o.sweep_string_iterator())
    return [o.get_value_element_as_str()]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (list, tuple)):
        return "-".join(_fmt(x) for x in v)
    if v is None:
        return "none"
    return str(v).replace("/", "-").replace(",", "-").replace(" ", "")


def _short_hash(obj: Any, n: int = 8) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def _container(node) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


@dataclass
class Point:
    """One resolved configuration and its stage keys."""

    point_id: str
    overrides: list[str]
    config: dict
    keys: dict[str, str] = field(default_factory=dict)
    songs: list[str] = field(default_factory=list)


class Planner:
    """Builds the Snakemake plan for a list of points (configurations)."""

    def __init__(self, results_root: str | Path):
        self.results_root = Path(results_root).resolve()
        self.stages: dict[str, dict[str, dict]] = {s: {} for s in (
            "decode", "separate", "segment", "masks", "predict", "fit", "evaluate", "aggregate",
            "track", "fit_batch", "evaluate_batch")}
        self.datasets: dict[str, dict[str, dict]] = {}
        self.points: list[Point] = []
        self._model_rates: dict[str, tuple[int, list[str]]] = {}

    # --- per-point derivation -----------------------------------------------------------------
    def _model_info(self, cfg: DictConfig) -> tuple[str, int, list[str]]:
        mcfg = _container(cfg.model)
        key = _short_hash(mcfg)
        if key not in self._model_rates:
            clf = build_classifier(cfg)
            self._model_rates[key] = (int(clf.sample_rate), list(clf.class_names))
        rate, names = self._model_rates[key]
        return f"{mcfg['name']}-{key[:6]}", rate, names

    def _separator_info(self, cfg: DictConfig, working_rate: int) -> tuple[str, int, dict]:
        scfg = _container(cfg.separator)
        from ..config import build_separator

        sep = build_separator(cfg)
        if getattr(sep, "identity", "oracle") == "oracle":
            return "oracle", working_rate, scfg
        return f"{scfg['name']}-{sep.identity[:8]}", int(sep.sample_rate), scfg

    def add_point(self, overrides: list[str], cfg: DictConfig) -> Point:
        econf = explainer_config(cfg)
        resolved = _container(cfg)
        point_id = "p-" + _short_hash({k: v for k, v in resolved.items()
                                       if k not in ("tracking", "workflow", "hydra")})
        if any(p.point_id == point_id for p in self.points):
            return next(p for p in self.points if p.point_id == point_id)
        dcfg = _container(cfg.dataset)
        dataset = _fmt(dcfg["name"])
        entries = load_dataset(dcfg["manifest"], dcfg.get("split"), dcfg.get("limit"))
        if not entries:
            raise ConfigError(f"dataset {dcfg['name']}: no songs in {dcfg['manifest']} "
                              f"(split={dcfg.get('split')})")
        songs = self.datasets.setdefault(dataset, {})
        for e in entries:
            songs[e.song_id] = {
                "audio": str(Path(e.audio_path).resolve()),
                "lyrics": str(Path(e.lyrics_path).resolve()) if e.lyrics_path else "",
                "stems_dir": str(Path(e.stems_dir).resolve()) if e.stems_dir else "",
                "evidence": str(Path(e.evidence_path).resolve()) if e.evidence_path else "",
                "label": e.label or "", "split": e.split or ""}
        model_key, model_rate, class_names = self._model_info(cfg)
        rate = int(cfg.working_sample_rate or model_rate)
        if rate != model_rate:
            raise ConfigError(f"working_sample_rate={rate} differs from the classifier's rate "
                              f"{model_rate} Hz; leave it null so audio is composed at the "
                              "classifier's rate")
        sep_key, sep_rate, scfg = self._separator_info(cfg, rate)

        seg = (f"seg~{_fmt(econf.segment_boundaries)}s" if econf.segment_boundaries
               else f"seg~{econf.temporal_segments}")
        keys = {}
        keys["decode"] = f"{dataset}/sr~{rate}"
        keys["decode_sep"] = f"{dataset}/sr~{sep_rate}"
        keys["separate"] = f"{dataset}/sep~{sep_key}/sr~{sep_rate}"
        keys["segment"] = (f"{keys['separate']}/sr~{rate}/"
                           f"{seg},res~{econf.residual},unit~{econf.lyrics_unit}")
        masks_group = (f"{keys['segment']}/mod~{econf.modality},seed~{econf.seed},"
                       f"ex~{_fmt(econf.exhaustive)}")
        keys["masks_group"] = masks_group
        keys["predict_suffix"] = (f"model~{model_key},bs~{econf.batch_size},"
                                  f"dd~{_fmt(econf.deduplicate)}"
                                  + (",amp~1" if econf.mixed_precision else ""))
        labels = "pred" if econf.labels is None else _fmt(econf.labels)
        keys["fit_suffix"] = (f"n~{econf.num_samples},kw~{_fmt(econf.kernel_width)},"
                              f"ds~{_fmt(econf.distance_scale)},fs~{econf.feature_selection},"
                              f"lab~{labels},ra~{_fmt(econf.ridge_alpha)},nf~{econf.num_features},"
                              f"lk~{econf.listen_top_k}")
        self.stages["decode"].setdefault(keys["decode"], {"dataset": dataset,
                                                          "sample_rate": rate})
        self.stages["decode"].setdefault(keys["decode_sep"], {"dataset": dataset,
                                                              "sample_rate": sep_rate})
        self.stages["separate"].setdefault(keys["separate"], {
            "dataset": dataset, "decode": keys["decode_sep"], "separator": scfg,
            "sample_rate": sep_rate})
        self.stages["segment"].setdefault(keys["segment"], {
            "dataset": dataset, "decode": keys["decode"], "separate": keys["separate"],
            "sample_rate": rate, "temporal_segments": econf.temporal_segments,
            "segment_boundaries": econf.segment_boundaries, "residual": econf.residual,
            "lyrics_unit": econf.lyrics_unit})
        metrics = metric_settings(cfg)
        if metrics is not None:
            mdict = metrics.as_dict()
            keys["evaluate_suffix"] = f"met~{_short_hash(mdict)}"
        point = Point(point_id=point_id, overrides=list(overrides), config=resolved, keys=keys,
                      songs=[e.song_id for e in entries])
        point.config["_model"] = {"key": model_key, "sample_rate": model_rate,
                                  "class_names": class_names}
        point.config["_explainer"] = econf.as_dict()
        point.config["_metrics"] = None if metrics is None else metrics.as_dict()
        self.points.append(point)
        return point

    # --- finalisation: num_samples sharing ------------------------------------------------------
    def finalize(self, tracking: dict | None = None, batch: bool = True) -> dict:
        """Resolve masks/predict keys (largest num_samples per group) and return the plan.

        With ``batch``, the fit keys that share one prediction run (a kernel-width or
        num_samples sweep) become one *fit batch*, and their evaluate keys with the same metric
        settings one *evaluate batch*: a single job per song fits (or evaluates) them all, so a
        120-point sweep costs a few jobs per song instead of hundreds of process start-ups, and
        the evaluate batch predicts every metric mask shared between its members (held-out masks,
        random orderings, stability reruns) once. Outputs and their paths are the same as
        without batching; :meth:`_batches` lists the members.
        """
        n_max: dict[str, int] = {}
        for p in self.points:
            g = p.keys["masks_group"]
            n_max[g] = max(n_max.get(g, 0), int(p.config["_explainer"]["num_samples"]))
        for p in self.points:
            e = p.config["_explainer"]
            g = p.keys["masks_group"]
            p.keys["masks"] = f"{g},n~{n_max[g]}"
            p.keys["predict"] = f"{p.keys['masks']}/{p.keys['predict_suffix']}"
            p.keys["fit"] = f"{p.keys['predict']}/{p.keys['fit_suffix']}"
            dataset = self.stages["segment"][p.keys["segment"]]["dataset"]
            self.stages["masks"].setdefault(p.keys["masks"], {
                "dataset": dataset, "segment": p.keys["segment"], "modality": e["modality"],
                "num_samples": n_max[g], "seed": e["seed"], "exhaustive": e["exhaustive"]})
            self.stages["predict"].setdefault(p.keys["predict"], {
                "dataset": dataset, "segment": p.keys["segment"], "masks": p.keys["masks"],
                "model": {k: v for k, v in p.config["model"].items()},
                "batch_size": e["batch_size"], "deduplicate": e["deduplicate"],
                "mixed_precision": e["mixed_precision"], "modality": e["modality"]})
            self.stages["fit"].setdefault(p.keys["fit"], {
                "dataset": dataset, "segment": p.keys["segment"], "masks": p.keys["masks"],
                "predict": p.keys["predict"], "explainer": e,
                "class_names": p.config["_model"]["class_names"]})
            if p.config["_metrics"] is not None:
                p.keys["evaluate"] = f"{p.keys['fit']}/{p.keys['evaluate_suffix']}"
                self.stages["evaluate"].setdefault(p.keys["evaluate"], {
                    "dataset": dataset, "segment": p.keys["segment"], "fit": p.keys["fit"],
                    "model": dict(p.config["model"]), "explainer": e,
                    "metrics": p.config["_metrics"]})
            self.stages["aggregate"].setdefault(p.keys["fit"], {
                "dataset": dataset, "songs": p.songs})
            self.stages["track"][p.point_id] = {
                "fit": p.keys["fit"], "evaluate": p.keys.get("evaluate"), "dataset": dataset,
                "songs": p.songs,
                "overrides": p.overrides}
        if batch:
            self._batches()
        plan = {
            "results_root": str(self.results_root),
            "datasets": self.datasets,
            "stages": self.stages,
            "points": {p.point_id: {"keys": p.keys, "overrides": p.overrides,
                                    "config": p.config, "songs": p.songs}
                       for p in self.points},
            "tracking": tracking or {"enabled": False},
        }
        return plan


    def _batches(self) -> None:
        """Group fit keys by prediction run, evaluate keys by (prediction run, metrics)."""
        fits: dict[str, list[str]] = {}
        for key, spec in self.stages["fit"].items():
            fits.setdefault(spec["predict"], []).append(key)
        for predict_key, members in fits.items():
            if len(members) < 2:
                continue
            members = sorted(members)
            self.stages["fit_batch"]["fb_" + _short_hash(members, 12)] = {
                "predict": predict_key, "members": members}
        evals: dict[tuple[str, str], list[str]] = {}
        for key, spec in self.stages["evaluate"].items():
            predict_key = self.stages["fit"][spec["fit"]]["predict"]
            evals.setdefault((predict_key, _short_hash(spec["metrics"])), []).append(key)
        for (predict_key, _), members in evals.items():
            if len(members) < 2:
                continue
            members = sorted(members)
            self.stages["evaluate_batch"]["eb_" + _short_hash(members, 12)] = {
                "predict": predict_key, "members": members}


def plan_from_overrides(overrides: list[str], multirun: bool = False,
                        tracking_parent: str | None = None) -> tuple[dict, list[list[str]]]:
    """Compose every point of a (multi)run and return ``(plan, point overrides)``."""
    base = compose([o for o in overrides if not _is_sweep(o)] if multirun else overrides)
    preset = _container(base.get("workflow", {}) or {}).get("sweep") if "workflow" in base else None
    if multirun or preset:
        point_overrides = expand_overrides(overrides, preset)
    else:
        point_overrides = [list(overrides)]
    planner = Planner(base.results_root)
    for ov in point_overrides:
        planner.add_point(ov, compose(ov))
    tracking = _container(base.tracking)
    tracking["parent_run_id"] = tracking_parent
    workflow = _container(base.get("workflow", {}) or {}) if "workflow" in base else {}
    batch = bool(workflow.get("batch", True))
    return planner.finalize(tracking, batch=batch), point_overrides


def _is_sweep(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return any(o.is_sweep_override()
               for o in OverridesParser.create().parse_overrides([override]))
