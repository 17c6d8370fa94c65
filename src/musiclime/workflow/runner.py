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
from ..io.fileio import write_json
from ..models.identity import short_hash
from ..report import console
from ..supervise import run_logged
from ..tracking.log import finish_sweep, open_sweep
from ..tracking.names import sweep_name
from ..tracking.store import (
    FAST_FAIL_ENV,
    end_run,
    is_local_store,
    probe,
    tracking_uri,
    where_runs,
)
from .plan import plan_from_overrides
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
    parent, exp_id = open_sweep(
        uri, plan.tracking.experiment, root, short_hash(sorted(plan.points), 16),
        sweep_name([p.axes for p in plan.points.values()],
                   next((p.name for p in plan.points.values()), "sweep")),
        {"musiclime.n_points": str(len(plan.points)),
         "musiclime.overrides": " ".join(overrides) or "(defaults)",
         "musiclime.multirun": str(bool(multirun))})
    return Invocation(parent_run_id=parent, tracking_uri=uri, experiment_id=exp_id, gpu=gpu)


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
        print(f"musiclime: {console.plan_counts(list(plan.points.values()))}; snakemake log: "
              f"{smk_log}", flush=True)

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
            inv, points = plan.invocation, plan.points.values()
            finish_sweep(inv.tracking_uri, inv.parent_run_id, ok=rc == 0 and not any_failed,
                         axes={k: sorted({str(p.axes[k]) for p in points if k in p.axes})
                               for k in sorted({k for p in points for k in p.axes})})
    inv = plan.invocation
    console.print_summary(root, list(plan.points.values()), rc, time.time() - t0, smk_log,
                          where_runs(inv.tracking_uri, root, inv.parent_run_id,
                                     inv.experiment_id) if inv.parent_run_id else [],
                          inv.tracking_problem)
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


def run_snakemake(cmd: list[str], env: dict, log_file: Path, what: str,
                  started: Callable[[int], None] | None = None) -> tuple[int, bool]:
    """Run Snakemake with its output appended to ``log_file`` (:func:`~musiclime.supervise.
    run_logged`); show its progress on one line (a terminal) or at 0, 50 and 100 % (a log).
    Returns its exit status and whether it found nothing to do."""
    tty = sys.stderr.isatty()
    start, end = ("\r", "") if tty else ("", "\n")  # a terminal: one line, rewritten
    state = {"shown": -1, "idle": False}

    def on_line(line: str) -> None:
        state["idle"] = state["idle"] or line.startswith(NOTHING_TO_DO)
        m = _PROGRESS.match(line)
        if m and (tty or int(m.group(3)) // 50 > state["shown"]):
            state["shown"] = int(m.group(3)) // 50
            print(f"{start}  {what}: {m.group(1)}/{m.group(2)} jobs ({m.group(3)}%)", end=end,
                  file=sys.stderr, flush=True)

    rc = run_logged(cmd, env, log_file, on_line, started)
    if tty and state["shown"] >= 0:
        print(file=sys.stderr)
    return rc, state["idle"]


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
