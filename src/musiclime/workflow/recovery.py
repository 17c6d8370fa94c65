"""What lets a rerun pick up after anything: the results root's invocation lock (and what a
dead holder left behind: its Snakemake lock, its queued SLURM jobs), relocating a copied
results root, and finding out which songs failed, and why, after the song pass."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from ..errors import DISK_FULL, ERROR_PREFIX, MusicLimeError, OutputError, describe_os_error
from ..io import layout
from ..io.fileio import ensure_writable_dir, is_disk_full
from ..tracking.store import relocatable_store, rewrite_locations

log = logging.getLogger(__name__)


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
        """Record ``snakemake_log=...`` or ``snakemake_PID=...``."""
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
    try:
        fh = open(results_root / ".musiclime.lock", "a+")  # noqa: SIM115 (held throughout)
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


def relocate(results_root: str | Path) -> dict[str, int]:
    """Point a moved or copied results folder's embedded MLflow store at its new place.

    The SQLite store records absolute artifact locations (MLflow's file store needs them), so
    a copied results folder would still read and write the original's artifacts; this rewrites
    them (:func:`~musiclime.tracking.store.rewrite_locations`) while holding the root's
    invocation lock, so no ``musiclime run`` writes the store meanwhile. Returns how many rows
    changed per table. Stage outputs need nothing: their paths are relative."""
    root = Path(results_root).expanduser().resolve()
    db = relocatable_store(root)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(invocation_lock(root, "relocate"))
        except OutputError as exc:
            raise OutputError(f"{exc} (relocate rewrites {db} in place, so the results folder "
                              "must be writable)") from exc
        return rewrite_locations(db, root)


# --- which songs failed after the song pass, and why --------------------------------------------
def failed_songs(plan) -> dict[str, dict[str, str]]:
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


def song_chain(plan, point, song: str) -> list[tuple[str, str, str]]:
    """``(stage, output, log)`` of every job one song goes through for one point, in order
    (absolute paths)."""
    pred = plan.predict[point.predict]
    seg = plan.segment[pred.segment]
    sep = plan.separate[seg.separate]
    steps = [("decode", "decode", {"key": sep.decode}), ("decode", "decode", {"key": seg.decode}),
             ("separate", "separate", {"key": seg.separate}),
             ("segment", "segment", {"key": pred.segment}), ("masks", "masks", {"key": pred.masks}),
             ("predict", "predict", {"key": point.predict}),
             ("fit", "fit_record", {"key": point.predict, "batch": point.fit_batch})]
    if point.evaluate_batch:
        steps.append(("evaluate", "evaluate_record",
                      {"key": point.predict, "batch": point.evaluate_batch}))
    root = Path(plan.results_root)
    return [(stage, str(root / layout.path(out, song=song, **wc)),
             str(root / layout.log_path(stage, song=song, **wc))) for stage, out, wc in steps]


def _error_line(log_file: Path) -> str | None:
    lines = [ln for ln in log_file.read_text(errors="replace").splitlines()
             if ln.startswith(ERROR_PREFIX)]
    return lines[-1][len(ERROR_PREFIX):].strip() if lines else None


def disk_full_line(plan, failed: dict[str, dict[str, str]]) -> str | None:
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
