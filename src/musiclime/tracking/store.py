"""The tracking store: its URI, creating it (atomically) and its experiment, probing a
server, the sweep's parent run, runs a dead invocation left RUNNING, and rewriting a moved
results root's embedded store (``musiclime relocate``)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shlex
import socket
import sqlite3
import subprocess
from pathlib import Path

from .. import __version__
from ..config import repo_root
from ..errors import InputError, MusicLimeError, OutputError

log = logging.getLogger(__name__)

#: MLflow's HTTP client retries for minutes by default; a recorder should give up in seconds
FAST_FAIL_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}

EXPERIMENT_DESCRIPTION = (
    "MusicLIME explanations of a multimodal (audio + lyrics) music classifier, made by "
    "musiclime. Each parent run is one sweep (`musiclime run -m ...`); each child run is one "
    "configuration, named by its swept values (kw = kernel width, n = num_samples, then the "
    "modality). Metrics are means over the configuration's songs (`<name>_std`: their spread); "
    "per-song values are in the per_song_metrics table; metric names are explained in "
    "docs/metrics.md. Compare children by selecting them and clicking Compare.")


def tracking_uri(tracking, results_root: str | Path) -> str:
    """``MLFLOW_TRACKING_URI``, else ``tracking.uri``, else the results root's SQLite store.
    ``tracking`` is the plan's tracking settings (or anything without a ``uri``)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if getattr(tracking, "uri", None):
        return str(tracking.uri)
    return f"sqlite:///{Path(results_root).resolve() / 'mlflow.db'}"


def is_local_store(uri: str) -> bool:
    return uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (``sqlite:////abs`` or ``sqlite:///rel``)."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def ui_command(uri: str, results_root: str | Path) -> str:
    if is_local_store(uri):
        art = Path(results_root).resolve() / "mlartifacts"
        # a command to paste into a shell: results roots may have spaces or quotes
        return (f"mlflow ui --backend-store-uri {shlex.quote(uri)} "
                f"--default-artifact-root {shlex.quote(str(art))}")
    return f"open {uri} in a browser"


def where_runs(uri: str, results_root: str | Path, parent_run_id: str,
               experiment_id: str) -> list[str]:
    """Where a sweep's runs are: the command that opens the UI, and the runs table's URL."""
    # MLflow 3's UI opens an experiment in its GenAI view unless told otherwise
    base = "http://127.0.0.1:5000" if is_local_store(uri) else uri.rstrip("/")
    return [f"MLflow: {ui_command(uri, results_root)}  (parent run {parent_run_id})",
            f"  runs: {base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"]


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


def create_store(uri: str, experiment: str, results_root: str | Path) -> None:
    """Create a local SQLite store atomically: migrate it in a temp file beside the target,
    then hard-link it into place (which fails if another process made it first) and drop the
    temp name. A store that exists is left alone. No-op for a server."""
    db = sqlite_path(uri)
    if db is None or db.exists():
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(f".{db.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        _ensure_experiment(f"sqlite:///{tmp}", experiment, results_root)
        with contextlib.suppress(FileExistsError):  # another process won the race
            os.link(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_experiment(uri: str, experiment: str, results_root: str | Path) -> str:
    """Create (once) the store and the experiment; return its id."""
    create_store(uri, experiment, results_root)
    return _ensure_experiment(uri, experiment, results_root)


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


def code_version() -> str:
    root = repo_root()
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{__version__}+{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def source_tags() -> dict[str, str]:
    """MLflow's source tags: what ran, from which commit."""
    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": "musiclime run"}
    version = code_version()
    if "+" in version:
        tags["mlflow.source.git.commit"] = version.split("+", 1)[1].replace(".dirty", "")
    return tags


def root_tag(results_root: str | Path) -> str:
    """The ``musiclime.results_root`` tag: which results root (on which host) a run is of."""
    return f"{socket.gethostname()}:{Path(results_root).resolve()}"


def kill_stale_runs(uri: str, experiment_id: str, results_root: str | Path) -> list[str]:
    """Mark KILLED every run of this results root that is still RUNNING. Call it while holding
    the results root's invocation lock: then no live invocation is writing those runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [experiment_id], filter_string=f"attributes.status = 'RUNNING' and "
        f"tags.`musiclime.results_root` = '{root_tag(results_root)}'", max_results=5000)
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
    tags = {**tags, "musiclime.sweep_id": sweep_id, "musiclime.results_root": root_tag(
        results_root)}
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`musiclime.sweep_id` = '{sweep_id}' and "
        f"tags.`musiclime.results_root` = '{tags['musiclime.results_root']}'", max_results=1,
        order_by=["attributes.start_time DESC"])
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


# --- musiclime relocate: the MLflow side --------------------------------------------------------
def relocatable_store(root: Path) -> Path:
    """The embedded store ``root/mlflow.db`` that :func:`rewrite_locations` may rewrite. It
    refuses a store that is a symbolic link (that would rewrite another results root's store to
    point here) and a folder without ``mlartifacts/``."""
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
    return db


def rewrite_locations(db: Path, root: Path) -> dict[str, int]:
    """Rewrite the experiment's artifact location, every run's artifact URI and the runs'
    ``musiclime.results_root`` tags from the store's old folder to ``root``; how many rows
    changed per table. SQLite's errors (read-only, corrupt, locked) become one line."""
    new_prefix = (root / "mlartifacts").as_uri()
    try:
        con = sqlite3.connect(db)
        try:
            found = [loc for (loc,) in con.execute("SELECT artifact_location FROM experiments")
                     if loc and loc.startswith("file://")
                     and loc.rstrip("/").endswith("/mlartifacts")]
            counts = {"experiments": 0, "runs": 0, "tags": 0}
            host = socket.gethostname()
            for old in sorted({loc.rstrip("/") for loc in found} - {new_prefix}):
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
    except sqlite3.Error as exc:
        raise _store_error(exc, db) from exc
    return counts


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
