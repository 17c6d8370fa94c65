"""MLflow tracking: one run per configuration (sweep point), nested under one parent run per
sweep.

The default store is embedded: SQLite at ``<results_root>/mlflow.db`` with artifacts in
``<results_root>/mlartifacts``; ``MLFLOW_TRACKING_URI`` (or ``tracking.uri``) sends everything to
an ``mlflow server`` instead. The workflow runs tracking jobs one at a time (Snakemake resource
``mlflow=1`` plus a file lock).

Tracking is a recorder, never a gate:

- the SQLite store is created atomically (:func:`create_store`: built and migrated in a temp
  file, then linked into place), before any job runs, so a kill -9 during its creation leaves
  no half-migrated store and two first runs cannot race inside MLflow's schema migration;
- a server is probed in seconds (:func:`probe`); when it is unreachable the computation goes
  on and tracking is pending until the next ``musiclime run`` (or ``musiclime track``);
- a sweep has one parent run (keyed by its points, :func:`open_parent_run`), reused by reruns;
  runs left RUNNING by a dead invocation are marked KILLED at the next start
  (:func:`kill_stale_runs`);
- a point has one child run: a track job that re-runs because its point was recomputed logs a
  new run and deletes (soft, restorable in MLflow) the runs it supersedes, tagging the new one
  ``musiclime.supersedes``. A rerun that recomputed nothing runs no track job.
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
import socket
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


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (``sqlite:////abs`` or ``sqlite:///rel``)."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def create_store(uri: str, experiment: str, results_root: str | Path) -> None:
    """Create a local SQLite store atomically: migrate it in a temp file beside the target,
    then hard-link it into place (which fails if another process made it first) and drop the
    temp name. A store that exists is left alone. No-op for a server."""
    db = _sqlite_path(uri)
    if db is None or db.exists():
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(f".{db.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        _ensure_experiment(f"sqlite:///{tmp}", experiment, results_root)
        try:
            os.link(tmp, db)
        except FileExistsError:
            pass  # another process won the race with a complete store of its own
    finally:
        tmp.unlink(missing_ok=True)


def probe(uri: str, timeout: float = 5.0) -> str | None:
    """None when the tracking store answers; else why not (one line). Servers are asked for
    ``/health`` with a short timeout; a local store always answers."""
    if is_local_store(uri):
        return None
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
            if resp.status >= 400:
                return f"{uri} answered HTTP {resp.status}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{uri} is unreachable ({getattr(exc, 'reason', exc)})"
    return None


#: MLflow's HTTP client retries for minutes by default; a recorder should give up in seconds
FAST_FAIL_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def ensure_experiment(uri: str, experiment: str, results_root: str | Path) -> str:
    """Create (once) the store and the experiment; return its id."""
    create_store(uri, experiment, results_root)
    return _ensure_experiment(uri, experiment, results_root)


def _ensure_experiment(uri: str, experiment: str, results_root: str | Path) -> str:
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


def _root_tag(results_root: str | Path) -> str:
    return f"{socket.gethostname()}:{Path(results_root).resolve()}"


def kill_stale_runs(uri: str, experiment_id: str, results_root: str | Path) -> list[str]:
    """Mark KILLED every run of this results root that is still RUNNING. Call it while holding
    the results root's invocation lock: then no live invocation is writing those runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [experiment_id], filter_string=f"attributes.status = 'RUNNING' and "
        f"tags.`musiclime.results_root` = '{_root_tag(results_root)}'", max_results=5000)
    for run in runs:
        client.set_terminated(run.info.run_id, "KILLED")
    if runs:
        log.warning("marked %d run(s) left RUNNING by a dead invocation as KILLED", len(runs))
    return [r.info.run_id for r in runs]


def open_parent_run(uri: str, experiment_id: str, results_root: str | Path, sweep_id: str,
                    name: str, tags: dict) -> str:
    """The sweep's parent run: the existing one for these points and results root (set
    RUNNING again), or a new one."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    root_tag = _root_tag(results_root)
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`musiclime.sweep_id` = '{sweep_id}' and "
        f"tags.`musiclime.results_root` = '{root_tag}'", max_results=1,
        order_by=["attributes.start_time DESC"])
    tags = {**tags, "musiclime.sweep_id": sweep_id, "musiclime.results_root": root_tag}
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        for k, v in tags.items():
            client.set_tag(run_id, k, v)
        return run_id
    return client.create_run(experiment_id, run_name=name, tags=tags).info.run_id


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
    tags["musiclime.results_root"] = _root_tag(root)
    if point.failed:
        tags["musiclime.failed_songs"] = ", ".join(sorted(point.failed))[:5000]
    if plan.invocation.parent_run_id:
        tags["mlflow.parentRunId"] = plan.invocation.parent_run_id
    client = MlflowClient(tracking_uri=uri)
    earlier = [r.info.run_id for r in client.search_runs(
        [experiment_id], filter_string=f"tags.`musiclime.point_id` = '{point.point_id}' and "
        f"tags.`musiclime.results_root` = '{tags['musiclime.results_root']}'", max_results=1000)]
    if earlier:
        tags["musiclime.supersedes"] = ", ".join(earlier)
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
        if point.failed:
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(["song_id", "reason"])
            writer.writerows(sorted(point.failed.items()))
            client.log_text(rid, buf.getvalue(), "failed_songs.csv")
        client.set_terminated(rid, "FINISHED")
    except BaseException:
        client.set_terminated(rid, "FAILED")
        raise
    for old in earlier:  # one run per point: the recomputed run replaces the earlier ones
        client.set_tag(old, "musiclime.superseded_by", rid)
        client.delete_run(old)
    log.info("logged %s as MLflow run %s (%s)", point.point_id, rid, uri)
    return rid
