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
import io
import logging
import math
import os
import shlex
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from statistics import mean, pstdev

from .. import __version__
from ..core.explanation import Explanation
from ..errors import InputError, MusicLimeError, OutputError
from ..io.fileio import read_json

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
        # a command to paste into a shell: results roots may have spaces or quotes
        return (f"mlflow ui --backend-store-uri {shlex.quote(uri)} "
                f"--default-artifact-root {shlex.quote(str(art))}")
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


EXPERIMENT_DESCRIPTION = (
    "MusicLIME explanations of a multimodal (audio + lyrics) music classifier, made by "
    "musiclime. Each parent run is one sweep (`musiclime run -m ...`); each child run is one "
    "configuration, named by its swept values (kw = kernel width, n = num_samples, then the "
    "modality). Metrics are means over the configuration's songs (`<name>_std`: their spread); "
    "per-song values are in the per_song_metrics table; metric names are explained in "
    "docs/metrics.md. Compare children by selecting them and clicking Compare.")


def _ensure_experiment(uri: str, experiment: str, results_root: str | Path) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        location = None
        if is_local_store(uri):
            location = (Path(results_root).resolve() / "mlartifacts").as_uri()
        exp_id = client.create_experiment(experiment, artifact_location=location)
        tags = {}
    else:
        exp_id, tags = exp.experiment_id, exp.tags
    # a model-training experiment (MLflow 3 would otherwise open it in its GenAI mode), with
    # a description of what its runs hold
    if tags.get("mlflow.experimentKind") != "custom_model_development":
        client.set_experiment_tag(exp_id, "mlflow.experimentKind", "custom_model_development")
    if not tags.get("mlflow.note.content"):
        client.set_experiment_tag(exp_id, "mlflow.note.content", EXPERIMENT_DESCRIPTION)
    return exp_id


#: the headline metrics a sweep's parent run rolls up from its children
ROLLUP = ("evidence_precision_at_5_combined", "heldout_r2", "stability_jaccard_top5",
          "samples_per_s", "surrogate_r2", "surrogate_heldout_r2", "kernel_effective_samples",
          "auto_calls", "sanity_spearman_final", "songs_with_fit_warnings")


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
    logged = parent.data.params
    params = [Param(f"sweep/{k}", ",".join(str(v) for v in values)[:6000])
              for k, values in axes.items() if f"sweep/{k}" not in logged]
    client.log_batch(parent_run_id, metrics=[Metric(k, v, now, 0) for k, v in out.items()],
                     params=params)
    client.set_tag(parent_run_id, "musiclime.sweep_axes", ", ".join(axes) or "(none)")
    return out


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


def relocate(results_root: str | Path) -> dict[str, int]:
    """Point a moved or copied results folder's embedded MLflow store at its new place.

    The SQLite store records absolute artifact locations (MLflow's file store needs them), so
    a copied results folder would still read and write the original's artifacts. This
    rewrites the experiment's artifact location, every run's artifact URI and the runs'
    ``musiclime.results_root`` tags from the old folder to ``results_root``. Returns how many
    rows changed per table. Stage outputs need nothing: their paths are relative.

    It holds the root's invocation lock (no ``musiclime run`` may write the store meanwhile),
    refuses a store that is a symbolic link (it would rewrite another results root's store to
    point here) and a folder without ``mlartifacts/``, and turns SQLite's errors (read-only,
    corrupt, locked) into one line that names the file.
    """
    from .runner import invocation_lock

    root = Path(results_root).expanduser().resolve()
    db = root / "mlflow.db"
    if db.is_symlink():
        target = os.path.realpath(db)
        raise InputError(
            f"{db} is a symbolic link to {target}: relocating it would rewrite that other "
            f"store to point at {root}. Copy the store instead (cp --remove-destination "
            f"{target} {db}) and run relocate again")
    if not db.is_file():
        raise FileNotFoundError(f"{db} does not exist: relocate needs a results folder with an "
                                "embedded MLflow store (a server's store does not move)")
    if not (root / "mlartifacts").is_dir():
        raise InputError(
            f"{root} has {db.name} but no mlartifacts/ folder beside it: relocate needs a whole "
            "results folder, copied with its times (cp -a OLD NEW, rsync -a OLD/ NEW/)")
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(invocation_lock(root, "relocate"))
        except OutputError as exc:
            raise OutputError(f"{exc} (relocate rewrites {db} in place, so the results folder "
                              "must be writable)") from exc
        try:
            return _rewrite_locations(db, root)
        except sqlite3.Error as exc:
            raise _store_error(exc, db) from exc


def _store_error(exc: Exception, db: Path) -> MusicLimeError:
    """One line for a SQLite error of the store ``db``: what is wrong and what to do."""
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        return OutputError(f"cannot rewrite {db}: the store is read-only ({text}); make it "
                           f"writable (chmod u+w {db}) and run relocate again")
    if "locked" in text or "busy" in text:
        return MusicLimeError(f"{db} is locked by another process (an mlflow ui or server, a "
                              f"run): stop it and run relocate again ({text})")
    return InputError(f"{db} is not a readable MLflow store ({text}); copy it again from the "
                      "original results folder (cp -a) and run relocate again")


def _rewrite_locations(db: Path, root: Path) -> dict[str, int]:
    new_prefix = (root / "mlartifacts").as_uri()
    con = sqlite3.connect(db)
    try:
        found = [loc for (loc,) in con.execute("SELECT artifact_location FROM experiments")
                 if loc and loc.startswith("file://") and loc.rstrip("/").endswith("/mlartifacts")]
        olds = sorted({loc.rstrip("/") for loc in found} - {new_prefix})
        counts = {"experiments": 0, "runs": 0, "tags": 0}
        host = socket.gethostname()
        for old in olds:
            old_root = Path(old[len("file://"):]).parent
            counts["experiments"] += con.execute(
                "UPDATE experiments SET artifact_location = ? WHERE artifact_location = ?",
                (new_prefix, old)).rowcount
            counts["runs"] += con.execute(
                "UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                "WHERE substr(artifact_uri, 1, ?) = ?",
                (new_prefix, len(old) + 1, len(old), old)).rowcount
            counts["tags"] += con.execute(
                "UPDATE tags SET value = ? WHERE key = 'musiclime.results_root' AND value = ?",
                (f"{host}:{root}", f"{host}:{old_root}")).rowcount
        con.commit()
    finally:
        con.close()
    return counts


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
    quality = exp.fit_quality
    if quality is not None:  # the fit's held-out R^2 beside the in-sample one, and its warnings
        held = quality.labels[label].heldout_r2 if label in quality.labels else None
        m["surrogate_heldout_r2"] = float("nan") if held is None else float(held)
        m["fit_warning_count"] = float(len(quality.warnings))
    auto = exp.params.get("auto")
    if isinstance(auto, dict):  # num_samples=auto: the calls it chose and how stable they were
        m["auto_calls"] = float(auto["calls"])
        m["auto_stability"] = float(auto["stability"])
        m["auto_reached"] = float(bool(auto["reached"]))
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

    from ..metrics.sanity import sanity_plot_path
    from .files import load_record
    from .layout import aggregate_dir, path
    from .provenance import environment_record, log_dataset, log_environment, song_table

    root = plan.results_root
    experiment_id = ensure_experiment(uri, plan.tracking.experiment, root)
    songs = point.songs
    sources = [plan.song(point.dataset, sid) for sid in songs]
    dataset_rows = song_table(sources)
    tags = {"musiclime.point_id": point.point_id, "musiclime.code_version": code_version(),
            "musiclime.io.dataset": point.dataset,
            "musiclime.classifier_code": str(point.model_identity.get("code", "")),
            "musiclime.overrides": " ".join(point.overrides) or "(defaults)",
            "musiclime.results_root": _root_tag(root), **source_tags()}
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
    explanations = explanation_files(plan, point)
    metric_files = {}
    if point.evaluate_batch:
        ev = plan.evaluate[point.evaluate_batch]
        metric_files = {sid: load_record(Path(root) / path(
            "evaluate_record", key=ev.predict, batch=point.evaluate_batch, song=sid)
        ).files[point.evaluate] for sid in songs}
    rows, compute_s, devices = [], 0.0, set()
    fit_warned: dict[str, list[str]] = {}
    for src in sources:
        exp = Explanation.load(Path(root) / explanations[src.song_id])
        devices.add(str(exp.params.get("device", "cpu")))
        if exp.fit_warnings:
            fit_warned[src.song_id] = list(dict.fromkeys(w.code for w in exp.fit_warnings))
        row = {"song_id": src.song_id, "label": src.label or "",
               "predicted": exp.label_name(exp.predicted_label), **song_metrics(exp)}
        compute_s += sum(float(exp.timings.get(k, 0.0))
                         for k in ("separate_s", "predict_total_s", "fit_s"))
        if metric_files:
            found = read_json(Path(root) / metric_files[src.song_id])
            row.update({k: v for k, v in found.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)})
            compute_s += float(found.get("time_evaluate_s", 0.0))
            add_normalized_precision(row, exp)
        rows.append(row)
    # the run spans the computation of its configuration, not the seconds spent logging it
    summary = Path(root) / aggregate_dir(point.fit) / "summary.json"
    end_ms = int(summary.stat().st_mtime * 1000)
    start_ms = end_ms - int(compute_s * 1000)
    run = client.create_run(experiment_id, run_name=point.name or point.point_id,
                            start_time=start_ms, tags=tags)
    rid = run.info.run_id
    try:
        log_environment(client, rid, environment_record(devices))
        digest = log_dataset(client, rid, point.config["dataset"]["name"],
                             point.config["dataset"]["manifest"], dataset_rows)
        client.set_tag(rid, "musiclime.dataset_fingerprint", digest)
        # the exact override list (the overrides tag joins them with spaces)
        client.log_dict(rid, {"overrides": list(point.overrides)}, "config/overrides.json")
        params = flatten(point.config)
        params["n_songs"] = str(len(songs))
        # the kernel and distance the fit used, as it recorded them; the formula with this
        # run's numbers is a tag, so the param is the same in every run of a sweep (Compare
        # then charts the axes that differ: explainer.kernel_width, not a formula string)
        kernel = Explanation.load(Path(root) / explanations[songs[0]]).kernel
        params["explainer.kernel_formula"] = KERNEL_FORMULA
        params["explainer.distance"] = str(kernel.get("distance"))
        client.set_tag(rid, "musiclime.kernel", str(kernel.get("formula")))
        items = sorted(params.items())
        for i in range(0, len(items), 100):
            client.log_batch(rid, params=[Param(k[:250], v[:6000]) for k, v in items[i:i + 100]])

        metrics = [Metric(k, v, end_ms, 0) for k, v in run_metrics(rows).items()]
        metrics.append(Metric("compute_s", compute_s, end_ms, 0))
        # which songs' fits mean nothing, and why (filter: tags.`musiclime.fit_warnings` !=
        # 'none'); the messages are in each song's explanation.json and page
        client.set_tag(rid, "musiclime.fit_warnings", fit_warnings_tag(fit_warned))
        metrics.append(Metric("songs_with_fit_warnings", float(len(fit_warned)), end_ms, 0))
        for i in range(0, len(metrics), 500):
            client.log_batch(rid, metrics=metrics[i:i + 500])
        # per-song values are a table, not steps of a metric
        client.log_table(rid, data=_columns(rows), artifact_file="per_song_metrics.json")
        buf = io.StringIO()
        fields = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        client.log_text(rid, buf.getvalue(), "per_song_metrics.csv")
        client.log_artifact(rid, str(config_path), "config")
        _log_files(client, rid, Path(root) / aggregate_dir(point.fit), "global")
        for mpath in metric_files.values():
            client.log_artifact(rid, str(Path(root) / mpath), "metrics")
            cascade = sanity_plot_path(Path(root) / mpath)  # metrics.sanity=true's figure
            if cascade.is_file():
                client.log_artifact(rid, str(cascade), "metrics")
        for sid, epath in explanations.items():
            _log_files(client, rid, (Path(root) / epath).parent, f"songs/{sid}")
        if point.failed:
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(["song_id", "reason"])
            writer.writerows(sorted(point.failed.items()))
            client.log_text(rid, buf.getvalue(), "failed_songs.csv")
        client.set_terminated(rid, "FINISHED", end_time=end_ms)
    except BaseException:
        client.set_terminated(rid, "FAILED")
        raise
    for old in earlier:  # one run per point: the recomputed run replaces the earlier ones
        client.set_tag(old, "musiclime.superseded_by", rid)
        client.delete_run(old)
    log.info("logged %s as MLflow run %s (%s)", point.point_id, rid, uri)
    return rid


def explanation_files(plan, point) -> dict[str, str]:
    """``{song id: explanation JSON path relative to the results root}`` of a point."""
    from .files import load_record
    from .layout import path

    return {sid: load_record(Path(plan.results_root) / path(
        "fit_record", key=point.predict, batch=point.fit_batch, song=sid)).files[point.fit]
        for sid in point.songs}


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


#: the kernel in terms of the run's params (the explanation records it with the numbers)
KERNEL_FORMULA = ("w = sqrt(exp(-(explainer.distance_scale * d)^2 / explainer.kernel_width^2)),"
                  " d = the mask's distance to the all-ones mask")


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


def _columns(rows: list[dict]) -> dict[str, list]:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    return {f: [r.get(f) for r in rows] for f in fields}


def _log_files(client, run_id: str, folder: Path, artifact_path: str) -> None:
    """Log a folder's files, without bookkeeping files (``.snakemake_timestamp``, dot files)."""
    for f in sorted(folder.rglob("*")):
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(folder).parts):
            sub = f.parent.relative_to(folder)
            client.log_artifact(run_id, str(f),
                                artifact_path if str(sub) == "." else f"{artifact_path}/{sub}")


def source_tags() -> dict[str, str]:
    """MLflow's source tags: what ran, from which commit."""
    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": "musiclime run"}
    version = code_version()
    if "+" in version:
        tags["mlflow.source.git.commit"] = version.split("+", 1)[1].replace(".dirty", "")
    return tags
