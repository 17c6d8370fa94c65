"""Logging runs: one configuration (a sweep point) as a child run (:func:`log_point`), and
the sweep's headline numbers on its parent run (:func:`roll_up`).

A point's files are found through the results layout (:mod:`musiclime.io.layout`), relative to
the results root; ``plan`` and ``point`` are the workflow's plan and point specs (read, never
imported: tracking sits below the workflow)."""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from pathlib import Path
from statistics import mean, pstdev

from ..core.explanation import Explanation
from ..io import layout
from ..io.fileio import read_json
from ..models.identity import file_digest
from .provenance import (
    environment_record,
    lock_path,
    log_dataset,
    log_environment,
    song_table,
)
from .store import (
    code_version,
    end_run,
    ensure_experiment,
    kill_stale_runs,
    open_parent_run,
    root_tag,
    source_tags,
    store_lock,
    tracking_uri,
)

log = logging.getLogger(__name__)

#: the headline metrics a sweep's parent run rolls up from its children
ROLLUP = ("evidence_precision_at_5_combined", "localisation_auc", "heldout_r2", "stability_jaccard_top5",
          "samples_per_s", "surrogate_r2", "surrogate_heldout_r2", "kernel_effective_samples",
          "auto_calls", "sanity_spearman_final", "songs_with_fit_warnings")

#: the kernel in terms of the run's params (the explanation records it with the numbers)
KERNEL_FORMULA = ("w = sqrt(exp(-(explainer.distance_scale * d)^2 / explainer.kernel_width^2)),"
                  " d = the mask's distance to the all-ones mask")


def open_sweep(uri: str, experiment: str, root: Path, sweep_id: str, name: str,
               tags: dict[str, str]) -> tuple[str, str]:
    """Create the store (atomically), mark the runs of dead invocations KILLED and open (or
    reopen) the sweep's parent run, tagged with the code, its source and the lock's hash (the
    lock itself is logged once per sweep; each child run carries its hash). Returns
    ``(parent run id, experiment id)``."""
    exp_id = ensure_experiment(uri, experiment, root)
    kill_stale_runs(uri, exp_id, root)
    lock = lock_path()
    tags = {"musiclime.code_version": code_version(), **tags, **source_tags(),
            "musiclime.lock_hash": file_digest(lock) if lock else
            "none (not installed from a lock)"}
    parent = open_parent_run(uri, exp_id, root, sweep_id, name, tags)
    if lock:
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=uri).log_artifact(parent, str(lock), "environment")
    return parent, exp_id


def finish_sweep(uri: str, parent_run_id: str, ok: bool, axes: dict[str, list]) -> None:
    """Roll the children's numbers up onto the sweep's parent run (:func:`roll_up`) and end
    it; a recorder's hiccup in the roll-up must not fail the computation."""
    try:
        roll_up(uri, parent_run_id, axes)
    except Exception as exc:
        log.warning("could not roll up the sweep's metrics on its parent run: %s", exc)
    end_run(uri, parent_run_id, ok=ok)


def roll_up(uri: str, parent_run_id: str, axes: dict[str, list]) -> dict[str, float]:
    """Log on a sweep's parent run its axes (params ``sweep/<key>``: the values swept) and,
    for each headline metric its children have, the best (in the metric's better direction)
    and the mean: ``best/heldout_r2``, ``mean/heldout_r2``."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from ..metrics.registry import direction

    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'", max_results=5000)
    out: dict[str, float] = {}
    for key in ROLLUP:
        values = [r.data.metrics[key] for r in children if key in r.data.metrics
                  and math.isfinite(r.data.metrics[key])]
        if not values:
            continue
        try:
            lower = direction(key) == "lower"
        except KeyError:
            lower = False
        out[f"best/{key}"] = min(values) if lower else max(values)
        out[f"mean/{key}"] = mean(values)
    out["configurations"] = float(len(children))
    now = int(time.time() * 1000)
    params = [Param(f"sweep/{k}", ",".join(str(v) for v in values)[:6000])
              for k, values in axes.items() if f"sweep/{k}" not in parent.data.params]
    client.log_batch(parent_run_id, metrics=[Metric(k, v, now, 0) for k, v in out.items()],
                     params=params)
    client.set_tag(parent_run_id, "musiclime.sweep_axes", ", ".join(axes) or "(none)")
    return out


def _member_file(root: Path, record: str, member: str) -> str:
    """The file a fit or evaluate job's record lists for one point (results-relative)."""
    return read_json(root / record)["files"][member]


def explanation_files(plan, point) -> dict[str, str]:
    """``{song id: explanation JSON path relative to the results root}`` of a point."""
    root = Path(plan.results_root)
    return {sid: _member_file(root, layout.path("fit_record", key=point.predict,
                                                batch=point.fit_batch, song=sid), point.fit)
            for sid in point.songs}


def metric_files(plan, point) -> dict[str, str]:
    """``{song id: metrics JSON path relative to the results root}`` (none without metrics)."""
    if not point.evaluate_batch:
        return {}
    root, key = Path(plan.results_root), plan.evaluate[point.evaluate_batch].predict
    return {sid: _member_file(root, layout.path("evaluate_record", key=key,
                                                batch=point.evaluate_batch, song=sid),
                              point.evaluate)
            for sid in point.songs}


def log_point(plan, point, config_path: str | Path) -> str:
    """Log one configuration (a point of ``plan``) as an MLflow run, a child of the
    invocation's parent run; return its id. The run spans the computation of its songs (not
    the seconds spent logging it); the runs it supersedes are deleted (soft)."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(plan.tracking, plan.results_root)
    root = Path(plan.results_root)
    with store_lock(uri, root):
        experiment_id = ensure_experiment(uri, plan.tracking.experiment, root)
        client = MlflowClient(tracking_uri=uri)
        tags = _point_tags(plan, point)
        earlier = [r.info.run_id for r in client.search_runs(
            [experiment_id], filter_string=f"tags.`musiclime.point_id` = '{point.point_id}' "
            f"and tags.`musiclime.results_root` = '{tags['musiclime.results_root']}'",
            max_results=1000)]
        if earlier:
            tags["musiclime.supersedes"] = ", ".join(earlier)
        files = {"explanations": explanation_files(plan, point),
                 "metrics": metric_files(plan, point)}
        rows, compute_s, devices, fit_warned = _song_rows(plan, point, files)
        end_ms = int((root / layout.path("summary", key=point.fit)).stat().st_mtime * 1000)
        rid = client.create_run(experiment_id, run_name=point.name or point.point_id,
                                start_time=end_ms - int(compute_s * 1000), tags=tags).info.run_id
        try:
            _log_provenance(client, rid, plan, point, devices)
            _log_params(client, rid, point, root / files["explanations"][point.songs[0]])
            _log_metrics(client, rid, rows, compute_s, fit_warned, end_ms)
            _log_artifacts(client, rid, root, point, files, rows, config_path)
            client.set_terminated(rid, "FINISHED", end_time=end_ms)
        except BaseException:
            client.set_terminated(rid, "FAILED")
            raise
        for old in earlier:  # one run per point: the recomputed run replaces the earlier ones
            client.set_tag(old, "musiclime.superseded_by", rid)
            client.delete_run(old)
    log.info("logged %s as MLflow run %s (%s)", point.point_id, rid, uri)
    return rid


def _point_tags(plan, point) -> dict[str, str]:
    tags = {"musiclime.point_id": point.point_id, "musiclime.code_version": code_version(),
            "musiclime.io.dataset": point.dataset,
            "musiclime.classifier_code": str(point.model_identity.get("code", "")),
            "musiclime.overrides": " ".join(point.overrides) or "(defaults)",
            "musiclime.results_root": root_tag(plan.results_root), **source_tags()}
    if point.failed:
        tags["musiclime.failed_songs"] = ", ".join(sorted(point.failed))[:5000]
    if plan.invocation.parent_run_id:
        tags["mlflow.parentRunId"] = plan.invocation.parent_run_id
    return tags


def _song_rows(plan, point, files: dict) -> tuple[list[dict], float, set[str], dict]:
    """Per song: its metrics row; and the point's compute seconds, devices, fit warnings."""
    root = Path(plan.results_root)
    rows, compute_s, devices = [], 0.0, set()
    fit_warned: dict[str, list[str]] = {}
    for sid in point.songs:
        src = plan.song(point.dataset, sid)
        exp = Explanation.load(root / files["explanations"][sid])
        devices.add(str(exp.params.get("device", "cpu")))
        if exp.fit_warnings:
            fit_warned[sid] = list(dict.fromkeys(w.code for w in exp.fit_warnings))
        row = {"song_id": sid, "label": src.label or "",
               "predicted": exp.label_name(exp.predicted_label), **song_metrics(exp)}
        compute_s += sum(float(exp.timings.get(k, 0.0))
                         for k in ("separate_s", "predict_total_s", "fit_s"))
        if files["metrics"]:
            found = read_json(root / files["metrics"][sid])
            row.update({k: v for k, v in found.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)})
            compute_s += float(found.get("time_evaluate_s", 0.0))
        rows.append(row)
    return rows, compute_s, devices, fit_warned


def _log_provenance(client, rid: str, plan, point, devices: set[str]) -> None:
    log_environment(client, rid, environment_record(devices))
    rows = song_table([plan.song(point.dataset, sid) for sid in point.songs])
    digest = log_dataset(client, rid, point.config["dataset"]["name"],
                         point.config["dataset"]["manifest"], rows)
    client.set_tag(rid, "musiclime.dataset_fingerprint", digest)
    # the exact override list (the overrides tag joins them with spaces)
    client.log_dict(rid, {"overrides": list(point.overrides)}, "config/overrides.json")


def _log_params(client, rid: str, point, first_explanation: Path) -> None:
    from mlflow.entities import Param

    params = flatten(point.config)
    params["n_songs"] = str(len(point.songs))
    # the kernel and distance the fit used, as it recorded them; the formula with this run's
    # numbers is a tag, so the param is the same in every run of a sweep (Compare then charts
    # the axes that differ: explainer.kernel_width, not a formula string)
    kernel = Explanation.load(first_explanation).kernel
    params["explainer.kernel_formula"] = KERNEL_FORMULA
    params["explainer.distance"] = str(kernel.get("distance"))
    client.set_tag(rid, "musiclime.kernel", str(kernel.get("formula")))
    items = sorted(params.items())
    for i in range(0, len(items), 100):
        client.log_batch(rid, params=[Param(k[:250], v[:6000]) for k, v in items[i:i + 100]])


def _log_metrics(client, rid: str, rows: list[dict], compute_s: float, fit_warned: dict,
                 end_ms: int) -> None:
    from mlflow.entities import Metric

    metrics = [Metric(k, v, end_ms, 0) for k, v in run_metrics(rows).items()]
    metrics.append(Metric("compute_s", compute_s, end_ms, 0))
    # which songs' fits mean nothing, and why (filter: tags.`musiclime.fit_warnings` !=
    # 'none'); the messages are in each song's explanation.json and page
    client.set_tag(rid, "musiclime.fit_warnings", fit_warnings_tag(fit_warned))
    metrics.append(Metric("songs_with_fit_warnings", float(len(fit_warned)), end_ms, 0))
    for i in range(0, len(metrics), 500):
        client.log_batch(rid, metrics=metrics[i:i + 500])


def _log_artifacts(client, rid: str, root: Path, point, files: dict, rows: list[dict],
                   config_path: str | Path) -> None:
    from ..metrics.sanity import sanity_plot_path

    # per-song values are a table, not steps of a metric
    fields = list(dict.fromkeys(k for r in rows for k in r))
    client.log_table(rid, data={f: [r.get(f) for r in rows] for f in fields},
                     artifact_file="per_song_metrics.json")
    client.log_text(rid, _csv(rows, fields), "per_song_metrics.csv")
    client.log_artifact(rid, str(config_path), "config")
    _log_files(client, rid, root / layout.aggregate_dir(point.fit), "global")
    for mpath in files["metrics"].values():
        client.log_artifact(rid, str(root / mpath), "metrics")
        cascade = sanity_plot_path(root / mpath)  # metrics.sanity=true's figure
        if cascade.is_file():
            client.log_artifact(rid, str(cascade), "metrics")
    for sid, epath in files["explanations"].items():
        _log_files(client, rid, (root / epath).parent, f"songs/{sid}")
    if point.failed:
        client.log_text(rid, _csv([{"song_id": s, "reason": r}
                                   for s, r in sorted(point.failed.items())],
                                  ["song_id", "reason"]), "failed_songs.csv")


def _csv(rows: list[dict], fields: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _log_files(client, run_id: str, folder: Path, artifact_path: str) -> None:
    """Log a folder's files, without bookkeeping files (``.snakemake_timestamp``, dot files)."""
    for f in sorted(folder.rglob("*")):
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(folder).parts):
            sub = f.parent.relative_to(folder)
            client.log_artifact(run_id, str(f),
                                artifact_path if str(sub) == "." else f"{artifact_path}/{sub}")


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = "null" if v is None else str(v)
    return out


def song_metrics(exp: Explanation) -> dict[str, float]:
    """Per-song values logged as mean/std metrics, read from one explanation."""
    label = exp.predicted_label
    m = {
        "surrogate_r2": exp.fits[label].score,
        "local_pred": exp.fits[label].local_pred,
        "prediction_confidence": exp.prediction[label],
        "kernel_weight_min": exp.kernel["weight_min"],
        "kernel_weight_mean": exp.kernel["weight_mean"],
        "kernel_weight_max": exp.kernel["weight_max"],
        "kernel_effective_samples": exp.kernel["effective_samples"],
        "num_samples_used": exp.num_samples,
    }
    quality = exp.fit_quality
    if quality is not None:  # the fit's held-out R^2 beside the in-sample one, and its warnings
        held = quality.labels[label].heldout_r2 if label in quality.labels else None
        m["surrogate_heldout_r2"] = float("nan") if held is None else float(held)
        m["fit_warning_count"] = float(len(quality.warnings))
    top = exp.topk_stability(label)
    if top:  # the weights' uncertainty (musiclime.core.uncertainty), when recorded
        intervals = exp.weight_uncertainty(label)
        m["topk_stability_mean"] = float(mean(top.values()))
        m["top5_intervals_crossing_zero"] = float(sum(
            intervals[f]["interval90"][0] <= 0 <= intervals[f]["interval90"][1] for f in top))
    game = exp.modality_values(label)
    if game is not None:  # the modality game (musiclime.core.modality), when recorded
        m.update(modality_shapley_audio=game.shapley_audio,
                 modality_shapley_lyrics=game.shapley_lyrics,
                 modality_interaction=game.interaction, modality_share_audio=game.share_audio,
                 modality_share_interaction=game.share_interaction)
    auto = exp.params.get("auto")
    if isinstance(auto, dict):  # num_samples=auto: the calls it chose and how stable they were
        m["auto_calls"] = float(auto["calls"])
        m["auto_stability"] = float(auto["stability"])
        m["auto_reached"] = float(bool(auto["reached"]))
    for k, v in exp.timings.items():
        if isinstance(v, (int, float)):
            m[f"time_{k}" if not k.endswith("per_s") else k] = float(v)
    return m


def fit_warnings_tag(warned: dict[str, list[str]], limit: int = 5000) -> str:
    """``song0: features_ge_samples; song2: kernel_collapsed, zero_weights`` (``none`` when no
    song's fit drew a warning), cut to MLflow's tag length with a count of what was left out."""
    if not warned:
        return "none"
    parts = [f"{sid}: {', '.join(codes)}" for sid, codes in sorted(warned.items())]
    text = "; ".join(parts)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    for part in parts:
        tail = f"; ... and {len(parts) - len(kept) - 1} more song(s)"
        if len("; ".join([*kept, part])) + len(tail) > limit:
            break
        kept.append(part)
    return "; ".join(kept) + f"; ... and {len(parts) - len(kept)} more song(s)"


def run_metrics(rows: list[dict]) -> dict[str, float]:
    """A configuration's metrics from its per-song rows: each per-song value's mean under its
    plain name and, over two or more songs, its spread as ``<name>_std``; bookkeeping values
    (``metrics_*``: rows predicted, batch sizes) are left to the per-song table."""
    out: dict[str, float] = {}
    numeric = sorted({k for r in rows for k, v in r.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)})
    for k in numeric:
        if k.startswith("metrics_"):
            continue
        # NaN marks "not applicable" (e.g. no audio evidence in a human song): skip it
        vals = [float(r[k]) for r in rows if k in r and math.isfinite(float(r[k]))]
        if not vals:
            continue
        out[k] = mean(vals)
        if len(vals) > 1:
            out[f"{k}_std"] = pstdev(vals)
    labelled = [r for r in rows if r.get("label")]
    if labelled:
        out["classifier_accuracy"] = mean(1.0 if r["label"] == r["predicted"] else 0.0
                                          for r in labelled)
    return out
