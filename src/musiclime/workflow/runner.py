"""``musiclime run``: compose with Hydra, plan, open the MLflow parent run, run Snakemake."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..config import repo_root
from ..errors import DISK_FULL, DiskFullError, MusicLimeError, OutputError, describe_os_error
from ..io.fileio import ensure_writable_dir, is_disk_full, write_json
from ..models.identity import file_digest, short_hash
from . import layout
from .plan import plan_from_overrides
from .provenance import lock_path
from .specs import Invocation, Plan, TrackingSettings
from .stages import ERROR_PREFIX
from .tracking import (
    FAST_FAIL_ENV,
    code_version,
    end_run,
    ensure_experiment,
    is_local_store,
    kill_stale_runs,
    open_parent_run,
    probe,
    roll_up,
    source_tags,
    tracking_uri,
    ui_command,
)

log = logging.getLogger(__name__)


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
    if profile:
        cmd += ["--profile", str(resolve_profile(profile))]
    else:
        cmd += ["--cores", str(cores)]
    cmd += ["--resources", "mlflow=1", "--keep-going", "--rerun-incomplete"]
    if dry_run:
        cmd.append("--dry-run")
    return cmd + list(extra or [])


def write_plan(plan: Plan, prefix: str = "plan") -> Path:
    data = plan.to_dict()
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return write_json(Path(plan.results_root) / "plans" / f"{prefix}-{digest[:12]}.json", data)


class Holder:
    """This invocation's record in ``<root>/.musiclime.lock``: who holds the root and, once
    known, its Snakemake log and driver PID; the next invocation reads it to clean up after this
    one if it dies."""

    def __init__(self, fh):
        self._fh = fh
        self.fields = {"PID": f"{os.getpid()} on {socket.gethostname()}, started "
                              f"{time.strftime('%Y-%m-%d %H:%M:%S')}"}
        self._write()

    def note(self, **fields: object) -> None:
        """Record ``snakemake_log=...`` or ``snakemake_pid=...``."""
        self.fields.update({k.replace("_", " "): str(v) for k, v in fields.items()})
        self._write()

    def _write(self) -> None:
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write("".join(f"{k}{' ' if k == 'PID' else ': '}{v}\n"
                               for k, v in self.fields.items()))
        self._fh.flush()


def _previous_holder(text: str) -> dict:
    """The record a dead invocation left: pid, host, snakemake log, snakemake pid (if any)."""
    m = re.search(r"^PID (\d+) on (\S+?),", text, flags=re.M)
    log_ = re.search(r"^snakemake log: (.+)$", text, flags=re.M)
    smk = re.search(r"^snakemake PID: (\d+)$", text, flags=re.M)
    return {"pid": int(m.group(1)) if m else None, "host": m.group(2) if m else None,
            "log": Path(log_.group(1)) if log_ else None,
            "snakemake_pid": int(smk.group(1)) if smk else None}


def _runs_snakemake_in(pid: int, results_root: Path) -> bool:
    """Whether process ``pid`` (on this host) is a Snakemake driver working in the root."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"snakemake" in a for a in argv) and os.fsencode(str(results_root)) in argv


def slurm_jobs_of(log_file: Path, results_root: Path) -> list[str]:
    """Queued or running SLURM jobs that the Snakemake runs logged in ``log_file`` submitted
    in ``results_root``: their job name is a run's ``SLURM run ID`` (the executor names every
    job after its run) and their working directory is the root. Empty without ``squeue``."""
    if not shutil.which("squeue") or not log_file.is_file():
        return []
    with open(log_file, errors="replace") as fh:
        runs = {m.group(1) for line in fh if (m := re.match(r"SLURM run ID: (\S+)", line))}
    if not runs:
        return []
    try:
        queue = subprocess.run(["squeue", "--me", "--noheader", "--format=%i|%j|%Z"],
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("could not list this results root's SLURM jobs (squeue: %s)", exc)
        return []
    if queue.returncode != 0:
        log.warning("could not list this results root's SLURM jobs: %s",
                    (queue.stderr.strip().splitlines() or ["squeue failed"])[-1])
        return []
    root = results_root.resolve()
    jobs = []
    for line in queue.stdout.splitlines():
        job, name, workdir = (line.split("|", 2) + ["", ""])[:3]
        if name in runs and workdir and Path(workdir).resolve() == root:
            jobs.append(job)
    return jobs


def cancel_orphaned_jobs(results_root: Path, previous: dict) -> list[str]:
    """Cancel the SLURM jobs a dead invocation left queued or running in the root (its driver
    was killed: they would go on writing there); print which. Only for a driver that ran on
    this host and is gone: one on another host is reported, not cancelled."""
    if previous["log"] is None:
        return []
    jobs = slurm_jobs_of(previous["log"], results_root)
    if not jobs:
        return []
    if previous["host"] != socket.gethostname():
        print(f"musiclime: SLURM job(s) {' '.join(jobs)} of an interrupted run on "
              f"{previous['host']} still work in {results_root}; if its driver is gone there, "
              f"cancel them: scancel {' '.join(jobs)}", flush=True)
        return []
    proc = subprocess.run(["scancel", *jobs], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise MusicLimeError(f"could not cancel SLURM job(s) {' '.join(jobs)} that an interrupted "
                             f"run left in {results_root}: {proc.stderr.strip()}")
    print(f"musiclime: cancelled SLURM job(s) {' '.join(jobs)} that the interrupted run "
          f"(PID {previous['pid']}) left in {results_root}", flush=True)
    deadline = time.time() + 60  # let them end before their outputs are computed again
    while time.time() < deadline and set(jobs) & set(slurm_jobs_of(previous["log"],
                                                                   results_root)):
        time.sleep(1)
    return jobs


@contextlib.contextmanager
def invocation_lock(results_root: Path, what: str = "results_root"):
    """Hold the results root for this invocation (``<root>/.musiclime.lock``, an flock the
    kernel releases when the process dies, however it dies). A live concurrent invocation gets
    a clear error naming its PID. What a dead one left is cleaned up: the SLURM jobs it still
    had queued or running in this root are cancelled (:func:`cancel_orphaned_jobs`) and its
    Snakemake lock is cleared; unless its Snakemake driver still runs here (an error says so).
    Yields the :class:`Holder` record. A root that cannot be written (read-only, immutable,
    under a file) is an :class:`~musiclime.errors.OutputError` naming ``what`` chose it."""
    ensure_writable_dir(results_root, what)
    path = results_root / ".musiclime.lock"
    try:
        fh = open(path, "a+")  # noqa: SIM115 (held for the whole invocation)
    except OSError as exc:  # the root is writable but its lock file is not
        raise OutputError(f"{what}: {describe_os_error(exc)}") from exc
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = (fh.read().strip().splitlines() or ["unknown"])[0]
        fh.close()
        raise MusicLimeError(
            f"another musiclime run is using {results_root} ({holder}); wait for it to "
            "finish, or stop it, then run again") from None
    try:
        fh.seek(0)
        previous = _previous_holder(fh.read())
        smk_pid = previous["snakemake_pid"]
        if (smk_pid and previous["host"] == socket.gethostname()
                and _runs_snakemake_in(smk_pid, results_root)):
            raise MusicLimeError(
                f"the Snakemake driver (PID {smk_pid}) of an interrupted musiclime run still "
                f"works in {results_root}; wait for it to end, or stop it (kill {smk_pid}), "
                "then run again")
        holder = Holder(fh)
        cancel_orphaned_jobs(results_root, previous)
        stale = list((results_root / ".snakemake" / "locks").glob("*.lock"))
        for lock in stale:  # no live musiclime run holds this root: these are a dead one's
            lock.unlink(missing_ok=True)
        if stale:
            log.warning("removed the Snakemake lock of an interrupted run in %s", results_root)
        yield holder
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


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
    tags = {"musiclime.code_version": code_version(), "musiclime.n_points": str(len(plan.points)),
            "musiclime.overrides": " ".join(overrides) or "(defaults)",
            "musiclime.multirun": str(bool(multirun)), **source_tags()}
    lock = lock_path()
    tags["musiclime.lock_hash"] = file_digest(lock) if lock else "none (not installed from a lock)"
    parent = open_parent_run(uri, exp_id, root, short_hash(sorted(plan.points), 16),
                             sweep_name(plan), tags)
    if lock:  # the lock itself, once per sweep (each child run carries its hash)
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=uri).log_artifact(parent, str(lock), "environment")
    return Invocation(parent_run_id=parent, tracking_uri=uri, experiment_id=exp_id, gpu=gpu)


def sweep_name(plan: Plan, limit: int = 40) -> str:
    """The parent run's name: what the sweep varies, ``sweep kw=0.1,1 n=500,1000``; a single
    configuration is named like its run."""
    from .plan import SHORT_NAMES

    points = list(plan.points.values())
    axes: dict[str, list[str]] = {}
    for p in points:
        for k, v in p.axes.items():
            text = layout.fmt(v)
            if text not in axes.setdefault(k, []):
                axes[k].append(text)
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
    if profile and plan.tracking.enabled:
        uri = tracking_uri(plan.tracking, root)
        if is_local_store(uri):
            log.warning("--profile %s with a SQLite tracking store (%s): tracking jobs run on "
                        "the submit host here, but a SQLite file on shared storage is not safe "
                        "for writers on several machines; set MLFLOW_TRACKING_URI to an mlflow "
                        "server", profile, uri)
    t0 = time.time()
    if plan.tracking.enabled:
        import mlflow  # noqa: F401  (it sets its loggers' level when imported)

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # store creation chatter
    with invocation_lock(root) as holder:
        plan.invocation = open_tracking(plan, overrides, multirun)
        env = {**os.environ, **FAST_FAIL_ENV}
        smk_log = root / "logs" / "snakemake" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
        smk_log.parent.mkdir(parents=True, exist_ok=True)
        holder.note(snakemake_log=smk_log)
        print(f"musiclime: {plan_counts(plan)}; snakemake log: {smk_log}", flush=True)
        plan.invocation = replace(plan.invocation, phase="songs")
        cmd = snakemake_command(write_plan(plan), root, cores, extra=extra, profile=profile)
        idle: list[set[str]] = [set(), set()]  # per pass: did Snakemake find nothing to do?
        rc_songs = run_snakemake(cmd, env, smk_log, "explaining songs",
                                 started=lambda pid: holder.note(snakemake_PID=pid),
                                 seen=idle[0])
        failed = failed_songs(plan)
        full = disk_full_line(plan, failed)
        if full:  # not the songs' fault: say so once, record nothing as failed
            if plan.invocation.parent_run_id:
                with contextlib.suppress(Exception):  # the store may be on the full disk
                    end_run(plan.invocation.tracking_uri, plan.invocation.parent_run_id, False)
            raise DiskFullError(f"{full} (snakemake log: {smk_log})")
        for pid, point in plan.points.items():
            new = {s: failed[point.dataset][s] for s in point.songs
                   if s in failed.get(point.dataset, {})}
            if new:
                plan.points[pid] = replace(point, songs=[s for s in point.songs if s not in new],
                                           failed={**point.failed, **new})
                spec = plan.aggregate[point.fit]
                plan.aggregate[point.fit] = replace(spec, songs=plan.points[pid].songs)
        plan.invocation = replace(plan.invocation, phase="all")
        rc = run_snakemake(snakemake_command(write_plan(plan), root, cores, extra=extra,
                                             profile=profile), env,
                           smk_log, "global tables and tracking",
                           started=lambda pid: holder.note(snakemake_PID=pid), seen=idle[1])
        inv = plan.invocation
        any_failed = any(p.failed for p in plan.points.values())
        if inv.parent_run_id:
            axes = {k: sorted({str(p.axes[k]) for p in plan.points.values() if k in p.axes})
                    for k in sorted({k for p in plan.points.values() for k in p.axes})}
            try:
                roll_up(inv.tracking_uri, inv.parent_run_id, axes)
            except Exception as exc:  # a recorder's hiccup must not fail the computation
                log.warning("could not roll up the sweep's metrics on its parent run: %s", exc)
            end_run(inv.tracking_uri, inv.parent_run_id, ok=rc == 0 and not any_failed)
    print_summary(plan, rc, time.time() - t0, smk_log)
    if rc == 0 == rc_songs and all(NOTHING_TO_DO in s for s in idle):
        print(f"nothing to do: every output of {len(plan.points)} configuration(s) is up to "
              f"date in {root}" + (" and tracked" if inv.parent_run_id else "")
              + "; nothing was recomputed or logged again")
    if rc == 0 and (rc_songs != 0 or any_failed):
        rc = 1
    return rc


def plan_counts(plan: Plan) -> str:
    """What the run is about to do, counted as its summary table counts it (songs ok + failed
    per configuration): ``3 configuration(s) x 3 song(s) = 9 song explanation(s), 1 song set
    aside (listed at the end)``."""
    points = list(plan.points.values())
    per_point = [len(p.songs) + len(p.failed) for p in points]
    total = sum(per_point)
    songs = {(p.dataset, s) for p in points for s in [*p.songs, *p.failed]}
    aside = {(p.dataset, s) for p in points for s in p.failed}
    if len(set(per_point)) == 1:
        text = (f"{len(points)} configuration(s) x {per_point[0]} song(s) = {total} song "
                "explanation(s)")
    else:
        text = (f"{len(points)} configuration(s), {total} song explanation(s) of {len(songs)} "
                "song(s)")
    if aside:
        text += f", {len(aside)} song(s) set aside (listed at the end)"
    return text


_PROGRESS = re.compile(r"^(\d+) of (\d+) steps \((\d+)%\) done")


#: what Snakemake prints when every requested output is up to date
NOTHING_TO_DO = "Nothing to be done"


def run_snakemake(cmd: list[str], env: dict, log_file: Path, what: str,
                  started: Callable[[int], None] | None = None,
                  seen: set[str] | None = None) -> int:
    """Run Snakemake with its output appended to ``log_file``; show one progress line.
    ``started`` gets the driver's PID as soon as it runs; ``seen`` gets :data:`NOTHING_TO_DO`
    when Snakemake found nothing to do."""
    tty = sys.stderr.isatty()
    shown = -1
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
                if seen is not None and line.startswith(NOTHING_TO_DO):
                    seen.add(NOTHING_TO_DO)
                m = _PROGRESS.match(line)
                if not m:
                    continue
                done, total, pct = (int(x) for x in m.groups())
                if tty:
                    print(f"\r  {what}: {done}/{total} jobs ({pct}%)", end="", file=sys.stderr,
                          flush=True)
                elif pct // 50 > shown:
                    shown = pct // 50
                    print(f"  {what}: {done}/{total} jobs ({pct}%)", file=sys.stderr, flush=True)
        except BaseException as exc:  # Ctrl-C, or the log cannot be written (a full disk)
            stop_snakemake(proc, fh, "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt)
                           else f"stopped: {type(exc).__name__}: {exc}")
            if isinstance(exc, OSError) and exc.filename is None:  # name the log
                raise OSError(exc.errno, exc.strerror, str(log_file)) from exc
            raise
        rc = proc.wait()
    if tty and shown == -1:
        print(file=sys.stderr)
    return rc


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


def disk_full_line(plan: Plan, failed: dict[str, dict[str, str]]) -> str | None:
    """When the songs that failed failed for a full disk (their error says so, or the results
    root's file system has no room left): one line that says so, names where and what to do,
    instead of blaming each song. None otherwise."""
    root = Path(plan.results_root)
    reasons = [r for songs in failed.values() for r in songs.values()]
    if not reasons:
        return None
    named = [r for r in reasons if DISK_FULL in r or "No space left on device" in r]
    if not named and not is_disk_full(OSError(), root):
        return None
    example = next((m.group(1) for r in named if (m := re.search(rf"{DISK_FULL} (\S+):", r))),
                   None)
    example = root / example if example else root  # jobs name paths inside the root
    return (f"{DISK_FULL} {example}: the disk of {root} filled up ({len(reasons)} song job(s) "
            "stopped); free space there (or use another results_root) and rerun the same "
            "command: everything finished is kept and only what is missing is computed")


def failed_songs(plan: Plan) -> dict[str, dict[str, str]]:
    """dataset -> song -> one-line reason, for every song whose explanation or metrics of some
    point are missing after the song pass (read from the failing job's log)."""
    out: dict[str, dict[str, str]] = {}
    for point in plan.points.values():
        for song in point.songs:
            if song in out.get(point.dataset, {}):
                continue
            chain = song_chain(plan, point, song)
            if all(Path(path).exists() for _, path, _ in chain):
                continue
            reason = "not computed: an earlier job was interrupted (rerun to continue)"
            for stage, path, log_file in chain:
                if not Path(path).exists() and Path(log_file).is_file():
                    line = _error_line(Path(log_file))
                    reason = f"{stage}: {line or 'failed'} (log: {log_file})"
                    break
            out.setdefault(point.dataset, {})[song] = reason
    return out


def song_chain(plan: Plan, point, song: str) -> list[tuple[str, str, str]]:
    """``(stage, output, log)`` of every job one song goes through for one point, in order
    (paths relative to the results root, absolute here)."""
    root = Path(plan.results_root)
    pred = plan.predict[point.predict]
    seg = plan.segment[pred.segment]
    sep = plan.separate[seg.separate]
    steps = [("decode", layout.path("decode", key=sep.decode, song=song),
              layout.log_path("decode", key=sep.decode, song=song)),
             ("decode", layout.path("decode", key=seg.decode, song=song),
              layout.log_path("decode", key=seg.decode, song=song)),
             ("separate", layout.path("separate", key=seg.separate, song=song),
              layout.log_path("separate", key=seg.separate, song=song)),
             ("segment", layout.path("segment", key=pred.segment, song=song),
              layout.log_path("segment", key=pred.segment, song=song)),
             ("masks", layout.path("masks", key=pred.masks, song=song),
              layout.log_path("masks", key=pred.masks, song=song)),
             ("predict", layout.path("predict", key=point.predict, song=song),
              layout.log_path("predict", key=point.predict, song=song)),
             ("fit", layout.path("fit_record", key=point.predict, batch=point.fit_batch,
                                 song=song),
              layout.log_path("fit", key=point.predict, batch=point.fit_batch, song=song))]
    if point.evaluate_batch:
        steps.append(("evaluate", layout.path("evaluate_record", key=point.predict,
                                              batch=point.evaluate_batch, song=song),
                      layout.log_path("evaluate", key=point.predict, batch=point.evaluate_batch,
                                      song=song)))
    return [(stage, str(root / out), str(root / lg)) for stage, out, lg in steps]


def _error_line(log_file: Path) -> str | None:
    lines = [ln for ln in log_file.read_text(errors="replace").splitlines()
             if ln.startswith(ERROR_PREFIX)]
    return lines[-1][len(ERROR_PREFIX):].strip() if lines else None


def point_row(plan: Plan, point) -> dict:
    """The console's numbers of one configuration, read from its result files."""
    from ..io.fileio import read_json

    root = Path(plan.results_root)
    values: dict[str, list[float]] = {"p5": [], "r2": [], "ess": [], "s": []}
    fit_warned = 0
    for song in point.songs:
        fit_rec = root / layout.path("fit_record", key=point.predict, batch=point.fit_batch,
                                     song=song)
        if not fit_rec.is_file():
            continue
        exp = read_json(root / read_json(fit_rec)["files"][point.fit])
        meta = exp["metadata"]
        fit_warned += bool(meta.get("fit_warnings"))
        values["ess"].append(meta["kernel"]["effective_samples"])
        values["s"].append(sum(float(meta["timings"].get(k, 0.0))
                               for k in ("separate_s", "predict_total_s", "fit_s")))
        if point.evaluate_batch:
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
        cols = list(rows[0])
        widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
        print("\n" + "  ".join(c.ljust(widths[c]) for c in cols))
        for r in rows:
            print("  ".join(r[c].ljust(widths[c]) for c in cols))
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
