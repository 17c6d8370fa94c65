"""``musiclime run``: compose with Hydra, plan, open the MLflow parent run, run Snakemake."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..config import repo_root
from ..errors import DiskFullError, MusicLimeError
from ..io import layout
from ..io.fileio import read_json, write_json
from ..models.identity import file_digest, short_hash
from ..tracking.log import roll_up
from ..tracking.provenance import lock_path
from ..tracking.store import (
    FAST_FAIL_ENV,
    code_version,
    end_run,
    ensure_experiment,
    is_local_store,
    kill_stale_runs,
    open_parent_run,
    probe,
    source_tags,
    tracking_uri,
    ui_command,
)
from .plan import SHORT_NAMES, plan_from_overrides
from .recovery import disk_full_line, failed_songs, invocation_lock
from .specs import Invocation, Plan, TrackingSettings

log = logging.getLogger(__name__)

#: what Snakemake prints when every requested output is up to date
NOTHING_TO_DO = "Nothing to be done"
_PROGRESS = re.compile(r"^(\d+) of (\d+) steps \((\d+)%\) done")


def resolve_profile(profile: str) -> Path:
    """A Snakemake profile: a folder, or the name of one in ``workflow/profiles/``."""
    path = Path(profile).expanduser()
    if not path.is_dir():
        path = repo_root() / "workflow" / "profiles" / profile
    if not (path / "config.yaml").is_file():
        known = sorted(d.name for d in (repo_root() / "workflow" / "profiles").iterdir())
        raise MusicLimeError(f"--profile {profile}: no Snakemake profile there (a folder with "
                             f"config.yaml); the project's profiles are {', '.join(known)}")
    return path.resolve()


def snakemake_command(plan_path: Path, results_root: Path, cores: int, dry_run: bool = False,
                      extra: list[str] | None = None, profile: str | None = None) -> list[str]:
    """The Snakemake command for a written plan. With a ``profile`` (e.g. ``slurm``), its
    executor and resources apply; without one, jobs run here on ``cores`` cores."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo_root() / "Snakefile"),
           "--directory", str(results_root), "--configfile", str(plan_path)]
    cmd += ["--profile", str(resolve_profile(profile))] if profile else ["--cores", str(cores)]
    cmd += ["--resources", "mlflow=1", "--keep-going", "--rerun-incomplete"]
    return cmd + (["--dry-run"] if dry_run else []) + list(extra or [])


def write_plan(plan: Plan, prefix: str = "plan") -> Path:
    data = plan.to_dict()
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return write_json(Path(plan.results_root) / "plans" / f"{prefix}-{digest[:12]}.json", data)


def open_tracking(plan: Plan, overrides: list[str], multirun: bool) -> Invocation:
    """Create the store (atomically), mark runs of dead invocations KILLED and open the
    sweep's parent run; or, when the tracking store does not answer, leave tracking pending."""
    import torch

    gpu = 1 if torch.cuda.is_available() else 0
    if not plan.tracking.enabled:
        return Invocation(gpu=gpu, track=False)
    root = Path(plan.results_root)
    uri = tracking_uri(plan.tracking, root)
    problem = probe(uri)
    if problem:
        return Invocation(tracking_uri=uri, gpu=gpu, track=False, tracking_problem=problem)
    exp_id = ensure_experiment(uri, plan.tracking.experiment, root)
    kill_stale_runs(uri, exp_id, root)
    lock = lock_path()
    tags = {"musiclime.code_version": code_version(), "musiclime.n_points": str(len(plan.points)),
            "musiclime.overrides": " ".join(overrides) or "(defaults)",
            "musiclime.multirun": str(bool(multirun)), **source_tags(),
            "musiclime.lock_hash": file_digest(lock) if lock else
            "none (not installed from a lock)"}
    parent = open_parent_run(uri, exp_id, root, short_hash(sorted(plan.points), 16),
                             sweep_name(plan), tags)
    if lock:  # the lock itself, once per sweep (each child run carries its hash)
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=uri).log_artifact(parent, str(lock), "environment")
    return Invocation(parent_run_id=parent, tracking_uri=uri, experiment_id=exp_id, gpu=gpu)


def sweep_name(plan: Plan, limit: int = 40) -> str:
    """The parent run's name: what the sweep varies, ``sweep kw=0.1,1 n=500,1000``; a single
    configuration is named like its run."""
    points = list(plan.points.values())
    axes: dict[str, list[str]] = {}
    for p in points:
        for k, v in p.axes.items():
            if layout.fmt(v) not in axes.setdefault(k, []):
                axes[k].append(layout.fmt(v))
    if not axes:
        return points[0].name if len(points) == 1 else "sweep"
    parts = []
    for k, values in axes.items():
        short = SHORT_NAMES.get(k, k.rpartition(".")[2])
        parts.append(f"{short}={','.join(values)}" if short else ",".join(values))
    name = "sweep " + " ".join(parts)
    return name if len(name) <= limit else name[: limit - 3] + "..."


def run_workflow(overrides: list[str], multirun: bool = False, cores: int = 2,
                 dry_run: bool = False, extra: list[str] | None = None,
                 profile: str | None = None) -> int:
    """Plan, then run Snakemake in two passes: every song's explanation (a song that fails
    fails alone), then each configuration's global tables and MLflow run from the songs that
    succeeded. Snakemake's own output goes to ``<root>/logs/snakemake/``; the console gets a
    progress line and, at the end, one row per configuration. Returns non-zero when any song
    or job failed."""
    plan, _ = plan_from_overrides(list(overrides), multirun=multirun)
    root = Path(plan.results_root)
    if dry_run:
        plan.invocation = Invocation(track=plan.tracking.enabled)
        return subprocess.call(snakemake_command(write_plan(plan), root, cores, True, extra,
                                                 profile))
    uri = tracking_uri(plan.tracking, root)
    if profile and plan.tracking.enabled and is_local_store(uri):
        log.warning("--profile %s with a SQLite tracking store (%s): tracking jobs run on the "
                    "submit host here, but a SQLite file on shared storage is not safe for "
                    "writers on several machines; set MLFLOW_TRACKING_URI to an mlflow server",
                    profile, uri)
    t0 = time.time()
    if plan.tracking.enabled:
        import mlflow  # noqa: F401  (it sets its loggers' level when imported)

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # store creation chatter
    with invocation_lock(root) as holder:
        plan.invocation = open_tracking(plan, overrides, multirun)
        smk_log = root / "logs" / "snakemake" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
        smk_log.parent.mkdir(parents=True, exist_ok=True)
        holder.note(snakemake_log=smk_log)
        print(f"musiclime: {plan_counts(plan)}; snakemake log: {smk_log}", flush=True)

        def snakemake_pass(phase: str, what: str) -> tuple[int, bool]:
            plan.invocation = replace(plan.invocation, phase=phase)
            cmd = snakemake_command(write_plan(plan), root, cores, extra=extra, profile=profile)
            return run_snakemake(cmd, {**os.environ, **FAST_FAIL_ENV}, smk_log, what,
                                 started=lambda pid: holder.note(snakemake_PID=pid))

        rc_songs, idle_songs = snakemake_pass("songs", "explaining songs")
        failed = failed_songs(plan)
        full = disk_full_line(plan, failed)
        if full:  # not the songs' fault: say so once, record nothing as failed
            if plan.invocation.parent_run_id:
                with contextlib.suppress(Exception):  # the store may be on the full disk
                    end_run(plan.invocation.tracking_uri, plan.invocation.parent_run_id, False)
            raise DiskFullError(f"{full} (snakemake log: {smk_log})")
        set_aside(plan, failed)
        rc, idle = snakemake_pass("all", "global tables and tracking")
        any_failed = any(p.failed for p in plan.points.values())
        if plan.invocation.parent_run_id:
            finish_parent_run(plan, ok=rc == 0 and not any_failed)
    print_summary(plan, rc, time.time() - t0, smk_log)
    if rc == 0 == rc_songs and idle_songs and idle:
        print(f"nothing to do: every output of {len(plan.points)} configuration(s) is up to "
              f"date in {root}" + (" and tracked" if plan.invocation.parent_run_id else "")
              + "; nothing was recomputed or logged again")
    return 1 if rc == 0 and (rc_songs != 0 or any_failed) else rc


def set_aside(plan: Plan, failed: dict[str, dict[str, str]]) -> None:
    """Move the songs that failed the song pass from each point's songs (and its global
    aggregate's) to its ``failed`` reasons."""
    for pid, point in plan.points.items():
        new = {s: failed[point.dataset][s] for s in point.songs
               if s in failed.get(point.dataset, {})}
        if new:
            plan.points[pid] = replace(point, songs=[s for s in point.songs if s not in new],
                                       failed={**point.failed, **new})
            spec = plan.aggregate[point.fit]
            plan.aggregate[point.fit] = replace(spec, songs=plan.points[pid].songs)


def finish_parent_run(plan: Plan, ok: bool) -> None:
    """Roll the children's numbers up onto the sweep's parent run and end it."""
    inv, points = plan.invocation, plan.points.values()
    axes = {k: sorted({str(p.axes[k]) for p in points if k in p.axes})
            for k in sorted({k for p in points for k in p.axes})}
    try:
        roll_up(inv.tracking_uri, inv.parent_run_id, axes)
    except Exception as exc:  # a recorder's hiccup must not fail the computation
        log.warning("could not roll up the sweep's metrics on its parent run: %s", exc)
    end_run(inv.tracking_uri, inv.parent_run_id, ok=ok)


def plan_counts(plan: Plan) -> str:
    """What the run is about to do, counted as its summary table counts it (songs ok + failed
    per configuration): ``3 configuration(s) x 3 song(s) = 9 song explanation(s), 1 song set
    aside (listed at the end)``."""
    points = list(plan.points.values())
    per_point = [len(p.songs) + len(p.failed) for p in points]
    songs = {(p.dataset, s) for p in points for s in [*p.songs, *p.failed]}
    aside = {(p.dataset, s) for p in points for s in p.failed}
    if len(set(per_point)) == 1:
        text = (f"{len(points)} configuration(s) x {per_point[0]} song(s) = {sum(per_point)} "
                "song explanation(s)")
    else:
        text = (f"{len(points)} configuration(s), {sum(per_point)} song explanation(s) of "
                f"{len(songs)} song(s)")
    return text + (f", {len(aside)} song(s) set aside (listed at the end)" if aside else "")


def run_snakemake(cmd: list[str], env: dict, log_file: Path, what: str,
                  started: Callable[[int], None] | None = None) -> tuple[int, bool]:
    """Run Snakemake with its output appended to ``log_file``; show its progress on one line
    (a terminal) or at 0, 50 and 100 % (a log). ``started`` gets the driver's PID as soon as
    it runs. Returns its exit status and whether it found nothing to do."""
    tty = sys.stderr.isatty()
    start, end = ("\r", "") if tty else ("", "\n")  # a terminal: one line, rewritten
    shown, idle = -1, False
    with open(log_file, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
        if started:
            started(proc.pid)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                fh.write(line)
                fh.flush()  # the log is how a user (or a test) follows a long run
                idle = idle or line.startswith(NOTHING_TO_DO)
                m = _PROGRESS.match(line)
                if m and (tty or int(m.group(3)) // 50 > shown):
                    shown = int(m.group(3)) // 50
                    print(f"{start}  {what}: {m.group(1)}/{m.group(2)} jobs ({m.group(3)}%)",
                          end=end, file=sys.stderr, flush=True)
        except BaseException as exc:  # Ctrl-C, or the log cannot be written (a full disk)
            stop_snakemake(proc, fh, "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt)
                           else f"stopped: {type(exc).__name__}: {exc}")
            if isinstance(exc, OSError) and exc.filename is None:  # name the log
                raise OSError(exc.errno, exc.strerror, str(log_file)) from exc
            raise
        rc = proc.wait()
    if tty and shown >= 0:
        print(file=sys.stderr)
    return rc, idle


def stop_snakemake(proc: subprocess.Popen, log_fh, why: str, grace_s: float = 60.0) -> None:
    """The console run is ending (Ctrl-C, a log that cannot be written): let the Snakemake
    driver stop its jobs (after Ctrl-C it got the terminal's SIGINT too; otherwise it is sent
    one), keep its last words in the log where that can still be written, and return when it
    has ended, so the next run finds no live driver in the root."""
    import signal

    deadline = time.time() + 5.0
    while proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    with contextlib.suppress(OSError):  # a full disk takes the log's last words
        log_fh.write((out or "") + f"musiclime: {why}\n")
        log_fh.flush()


def point_row(plan: Plan, point) -> dict:
    """The console's numbers of one configuration, read from its result files."""
    root = Path(plan.results_root)
    values: dict[str, list[float]] = {"p5": [], "r2": [], "ess": [], "s": []}
    fit_warned = 0
    for song in point.songs:
        fit_rec = root / layout.path("fit_record", key=point.predict, batch=point.fit_batch,
                                     song=song)
        if not fit_rec.is_file():
            continue
        meta = read_json(root / read_json(fit_rec)["files"][point.fit])["metadata"]
        fit_warned += bool(meta.get("fit_warnings"))
        values["ess"].append(meta["kernel"]["effective_samples"])
        values["s"].append(sum(float(meta["timings"].get(k, 0.0))
                               for k in ("separate_s", "predict_total_s", "fit_s")))
        if not point.evaluate_batch:
            continue
        ev_rec = root / layout.path("evaluate_record", key=point.predict,
                                    batch=point.evaluate_batch, song=song)
        if ev_rec.is_file():
            m = read_json(root / read_json(ev_rec)["files"][point.evaluate])
            values["r2"].append(m.get("heldout_r2", float("nan")))
            values["p5"].append(m.get("evidence_precision_at_5_combined", float("nan")))

    def avg(xs):
        xs = [x for x in xs if isinstance(x, (int, float)) and x == x]
        return f"{sum(xs) / len(xs):.3g}" if xs else "-"

    return {"configuration": point.name or point.point_id,
            "songs ok": str(len(point.songs)), "failed": str(len(point.failed)),
            "evidence P@5": avg(values["p5"]), "R2 held-out": avg(values["r2"]),
            "eff. samples": avg(values["ess"]), "fit warnings": str(fit_warned),
            "compute s": f"{sum(values['s']):.0f}"}


def print_summary(plan: Plan, rc: int, wall_s: float, smk_log: Path) -> None:
    root = Path(plan.results_root)
    inv = plan.invocation
    rows = [point_row(plan, p) for p in plan.points.values()]
    if rows:
        widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in rows[0]}
        print("\n" + "  ".join(c.ljust(w) for c, w in widths.items()))
        for r in rows:
            print("  ".join(r[c].ljust(w) for c, w in widths.items()))
    failed = {s: r for p in plan.points.values() for s, r in p.failed.items()}
    if failed:
        print(f"{len(failed)} song(s) failed:", file=sys.stderr)
        for song, reason in sorted(failed.items()):
            print(f"  {song}: {reason}", file=sys.stderr)
    print(f"done in {wall_s:.0f}s; results: {root} (`musiclime where PATH` explains a path)")
    if inv.parent_run_id:
        print(f"MLflow: {ui_command(inv.tracking_uri, root)}  (parent run {inv.parent_run_id})")
        # MLflow 3's UI opens an experiment in its GenAI view unless told otherwise
        base = "http://127.0.0.1:5000" if is_local_store(inv.tracking_uri) else \
            inv.tracking_uri.rstrip("/")
        print(f"  runs: {base}/#/experiments/{inv.experiment_id}/runs"
              "?workflowType=machine_learning")
    elif inv.tracking_problem:
        print(f"tracking pending: {inv.tracking_problem}. Explanations and global tables are "
              "computed; when the tracking server is back, run the same `musiclime run` "
              "command again (or `musiclime track` with the same overrides) to record them.",
              file=sys.stderr)
    if rc != 0:
        print(f"snakemake exited with {rc}: see {smk_log} and the logs under {root / 'logs'}; "
              "everything finished is kept and a rerun continues where it stopped",
              file=sys.stderr)


def report_workflow(overrides: list[str], multirun: bool = False,
                    out: str | Path | None = None) -> int:
    """Write Snakemake's HTML report for the outputs of a (finished) run or sweep."""
    plan, _ = plan_from_overrides(list(overrides), multirun=multirun)
    plan.tracking = TrackingSettings(enabled=False)
    root = Path(plan.results_root)
    out = Path(out) if out else root / "report.html"
    cmd = snakemake_command(write_plan(plan, "report"), root, 1,
                            extra=["--report", str(out.resolve())])
    rc = subprocess.call(cmd)
    if rc == 0:
        print(f"report: {out}")
    return rc
