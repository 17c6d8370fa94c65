"""MLflow tracking: one run per configuration (sweep point), nested under one parent run per
``musiclime run`` invocation.

The default store is embedded: SQLite at ``<results_root>/mlflow.db`` with artifacts in
``<results_root>/mlartifacts``; ``MLFLOW_TRACKING_URI`` (or ``tracking.uri``) sends everything to
an ``mlflow server`` instead. The store and experiment are created once, before any parallel
job starts (concurrent first creation of a SQLite store races), and the workflow runs tracking
jobs one at a time (Snakemake resource ``mlflow=1``).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import logging
import math
import os
import subprocess
import time
from pathlib import Path
from statistics import mean, pstdev

from .. import __version__
from ..explanation import Explanation
from ..fileio import read_json

log = logging.getLogger(__name__)


def tracking_uri(tracking, results_root: str | Path) -> str:
    """``MLFLOW_TRACKING_URI``, else ``tracking.uri``, else the results root's SQLite store.
    ``tracking`` is a :class:`~.specs.TrackingSettings` (or ``None``)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if getattr(tracking, "uri", None):
        return str(tracking.uri)
    return f"sqlite:///{Path(results_root).resolve() / 'mlflow.db'}"


def is_local_store(uri: str) -> bool:
    return uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri


def ui_command(uri: str, results_root: str | Path) -> str:
    if is_local_store(uri):
        art = Path(results_root).resolve() / "mlartifacts"
        return f"mlflow ui --backend-store-uri {uri} --default-artifact-root {art}"
    return f"open {uri} in a browser"


def ensure_experiment(uri: str, experiment: str, results_root: str | Path) -> str:
    """Create (once) the store and the experiment; return its id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        return exp.experiment_id
    location = None
    if is_local_store(uri):
        location = (Path(results_root).resolve() / "mlartifacts").as_uri()
    return client.create_experiment(experiment, artifact_location=location)


def code_version() -> str:
    root = Path(__file__).resolve().parents[3]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{__version__}+{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def dataset_fingerprint(songs: list) -> str:
    """Hash of the songs' ids, sizes and first/last 64 KiB of audio and lyrics
    (``songs``: :class:`~.specs.SongSource`)."""
    h = hashlib.sha256()
    for song in sorted(songs, key=lambda s: s.song_id):
        h.update(song.song_id.encode())
        for path in (song.audio, song.lyrics):
            if not path or not Path(path).is_file():
                continue
            size = Path(path).stat().st_size
            h.update(str(size).encode())
            with open(path, "rb") as fh:
                h.update(fh.read(65536))
                if size > 65536:
                    fh.seek(max(0, size - 65536))
                    h.update(fh.read())
    return h.hexdigest()[:16]


def start_parent_run(uri: str, experiment_id: str, name: str, tags: dict) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    return run.info.run_id


def end_run(uri: str, run_id: str, ok: bool = True) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=uri).set_terminated(run_id, "FINISHED" if ok else "FAILED")


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = "null" if v is None else str(v)
    return out


#: per-song values logged as mean/std metrics (name -> how to read it from an explanation)
def song_metrics(exp: Explanation) -> dict[str, float]:
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
    for k, v in exp.timings.items():
        if isinstance(v, (int, float)):
            m[f"time_{k}" if not k.endswith("per_s") else k] = float(v)
    return m


def add_normalized_precision(row: dict, exp: Explanation) -> None:
    """Fill in ``evidence_normalized_precision_at_{k}_{kind}`` for evaluate outputs written
    before the evaluate stage reported it (same formula: ``metrics.normalized_precision``)."""
    from ..metrics.evidence import normalized_precision
    from ..metrics.registry import metric, parse_evidence_key

    kinds = [exp.features[int(c)].kind for c in exp.columns]
    for key in list(row):
        parsed = parse_evidence_key(key)
        if parsed is None:
            continue
        k, kind = parsed
        target = metric("evidence_normalized_precision").key(k=k, kind=kind)
        if target in row:
            continue
        n = len(kinds) if kind == "combined" else sum(x == kind for x in kinds)
        row[target] = normalized_precision(float(row[key]),
                                           float(row.get(f"evidence_positives_{kind}", "nan")),
                                           k, n)


@contextlib.contextmanager
def store_lock(uri: str, results_root: str | Path):
    """Serialise writers of a local SQLite store, however Snakemake was started."""
    if not is_local_store(uri):
        yield
        return
    lock_path = Path(results_root) / ".mlflow.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def log_point(plan, point, config_path: str | Path) -> str:
    """Log one configuration (a :class:`~.specs.PointSpec` of ``plan``) as an MLflow run, a
    child of the invocation's parent run. Paths are read from the layout, relative to the
    results root (the working directory of workflow jobs)."""
    uri = tracking_uri(plan.tracking, plan.results_root)
    with store_lock(uri, plan.results_root):
        return _log_point(plan, point, uri, config_path)


def _log_point(plan, point, uri: str, config_path: str | Path) -> str:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from .files import load_record
    from .layout import aggregate_dir, path

    root = plan.results_root
    experiment_id = ensure_experiment(uri, plan.tracking.experiment, root)
    songs = point.songs
    sources = [plan.song(point.dataset, sid) for sid in songs]
    tags = {"musiclime.point_id": point.point_id, "musiclime.code_version": code_version(),
            "musiclime.dataset": point.dataset,
            "musiclime.dataset_fingerprint": dataset_fingerprint(sources),
            "musiclime.classifier_code": str(point.model_identity.get("code", "")),
            "musiclime.overrides": " ".join(point.overrides) or "(defaults)"}
    if plan.invocation.parent_run_id:
        tags["mlflow.parentRunId"] = plan.invocation.parent_run_id
    client = MlflowClient(tracking_uri=uri)
    run_name = " ".join(point.overrides) or "defaults"
    run = client.create_run(experiment_id, run_name=run_name[:250], tags=tags)
    rid = run.info.run_id
    try:
        params = flatten(point.config)
        params["n_songs"] = str(len(songs))
        explanations = {sid: load_record(path("fit_record", key=point.predict,
                                              batch=point.fit_batch, song=sid)).files[point.fit]
                        for sid in songs}
        # the kernel and distance the fit used, as it recorded them
        kernel = Explanation.load(explanations[songs[0]]).kernel
        params["explainer.kernel_formula"] = str(kernel.get("formula"))
        params["explainer.distance"] = str(kernel.get("distance"))
        items = sorted(params.items())
        for i in range(0, len(items), 100):
            client.log_batch(rid, params=[Param(k[:250], v[:6000]) for k, v in items[i:i + 100]])
        metric_files = {}
        if point.evaluate_batch:
            ev = plan.evaluate[point.evaluate_batch]
            metric_files = {sid: load_record(path("evaluate_record", key=ev.predict,
                                                  batch=point.evaluate_batch, song=sid)
                                             ).files[point.evaluate] for sid in songs}
        rows = []
        for src in sources:
            exp = Explanation.load(explanations[src.song_id])
            row = {"song_id": src.song_id, "label": src.label or "",
                   "predicted": exp.label_name(exp.predicted_label), **song_metrics(exp)}
            if metric_files:
                row.update({k: v for k, v in read_json(metric_files[src.song_id]).items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
                add_normalized_precision(row, exp)
            rows.append(row)

        now = int(time.time() * 1000)
        metrics = []
        numeric = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float))})
        for k in numeric:
            # NaN marks "not applicable" (e.g. no audio evidence in a human song): skip it
            vals = [float(r[k]) for r in rows if k in r and math.isfinite(float(r[k]))]
            if not vals:
                continue
            metrics.append(Metric(f"{k}_mean", mean(vals), now, 0))
            metrics.append(Metric(f"{k}_std", pstdev(vals) if len(vals) > 1 else 0.0, now, 0))
        for step, r in enumerate(rows):
            for k in ("surrogate_r2", "kernel_weight_min", "kernel_weight_max"):
                metrics.append(Metric(f"song/{k}", float(r[k]), now, step))
        labelled = [r for r in rows if r["label"]]
        if labelled:
            acc = mean(1.0 if r["label"] == r["predicted"] else 0.0 for r in labelled)
            metrics.append(Metric("classifier_accuracy", acc, now, 0))
        for i in range(0, len(metrics), 500):
            client.log_batch(rid, metrics=metrics[i:i + 500])
        buf = io.StringIO()
        fields = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        client.log_text(rid, buf.getvalue(), "per_song_metrics.csv")
        client.log_artifact(rid, str(config_path), "config")
        client.log_artifacts(rid, aggregate_dir(point.fit), "global")
        for mpath in metric_files.values():
            client.log_artifact(rid, mpath, "metrics")
        for sid, epath in explanations.items():
            client.log_artifacts(rid, str(Path(epath).parent), f"songs/{sid}")
        client.set_terminated(rid, "FINISHED")
    except BaseException:
        client.set_terminated(rid, "FAILED")
        raise
    log.info("logged %s as MLflow run %s (%s)", point.point_id, rid, uri)
    return rid
