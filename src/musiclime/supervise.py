"""A process that dies by a signal, reported in one line.

A crash in native code (libsndfile's Vorbis encoder, a torch kernel) or a SIGKILL from the
kernel's out-of-memory killer ends a process before Python can say anything: ``musiclime
explain`` exited 139 with no message, and a workflow job left an empty log, so the run's
summary said only ``fit: failed``. Here the work runs in a forked child while the parent only
waits; when the child dies by a signal the parent says how, in one line::

    killed by SIGSEGV in soundfile.py:1322 (_cdata_io), called from musiclime/audio.py:97
    (encode_audio)
    out of memory (SIGKILL from the kernel's OOM killer)

The place comes from the child's own Python stack, which :mod:`faulthandler` writes into the
log at the fatal signal (:func:`watch`); "out of memory" from the OOM-kill counter of this
process's memory cgroup (v2 ``memory.events``, v1 ``memory.oom_control``), read before and
after the child ran. A SIGKILL the counter does not explain is reported as such.

``os.fork`` and not a new interpreter: the child has everything the parent imported and
parsed, costs nothing to start, and its exit status is the parent's to read. It is forked
before torch or any other threaded library is imported.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ERROR_PREFIX, one_line

#: exit status of a child whose work raised something nobody handled (as Python exits)
UNHANDLED_EXIT = 1

_FATAL_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT}
_FRAME = re.compile(r'^\s+File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)')

#: in a supervised child: the write end of the pipe that tells the parent where the log is
_to_parent: int | None = None
#: in the parent: child pid -> (read end of its pipe, OOM-kill count before it started)
_children: dict[int, tuple[int, int | None]] = {}


@dataclass(frozen=True)
class Outcome:
    """How a supervised child ended: ``exit_code`` is what the parent should exit with
    (``128 + signal`` when killed, as a shell reports it) and ``death`` says in one line what
    killed it (``None`` when it exited by itself)."""

    exit_code: int
    death: str | None = None
    log: Path | None = None


def can_supervise() -> bool:
    return hasattr(os, "fork") and sys.platform.startswith("linux")


def fork() -> int:
    """Fork a supervised child: returns 0 in the child, the child's pid in the parent (which
    must then call :func:`wait`). The child must end through :func:`exit_child`."""
    global _to_parent
    for stream in (sys.stdout, sys.stderr):  # or buffered text would be written twice
        with contextlib.suppress(Exception):
            stream.flush()
    read_end, write_end = os.pipe()
    before = oom_kill_count()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _to_parent = write_end
        _die_with_parent(parent)
        return 0
    os.close(write_end)
    _children[pid] = (read_end, before)
    return pid


def wait(pid: int, log_file: str | os.PathLike | None = None) -> Outcome:
    """Wait for the child ``pid``; SIGTERM and SIGHUP sent to this process are passed on to it
    (SIGINT from a terminal reaches it anyway, so this process ignores it)."""
    read_end, before = _children.pop(pid)

    def forward(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    handled = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    previous = {s: signal.signal(s, signal.SIG_IGN if s == signal.SIGINT else forward)
                for s in handled}
    try:
        _, status = os.waitpid(pid, 0)  # retried after a forwarded signal (PEP 475)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    told = _read_available(read_end).decode(errors="replace").strip().splitlines()
    if told:
        log_file = told[-1]
    log_path = Path(log_file) if log_file else None
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        return Outcome(128 + signum, describe_death(signum, log_path, before), log_path)
    return Outcome(os.waitstatus_to_exitcode(status), None, log_path)


def _read_available(fd: int) -> bytes:
    """What the child wrote into its pipe, without waiting: a process the child started may
    still hold the pipe's write end open."""
    os.set_blocking(fd, False)
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    return b"".join(chunks)


def exit_child(code: int) -> None:
    """End a supervised child: flush what it printed and leave without running the parent's
    exit handlers a second time."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(code)


def run(work: Callable[[], int], log_file: str | os.PathLike | None = None) -> Outcome:
    """Run ``work()`` (which returns an exit code) in a supervised child; the parent's
    :class:`Outcome`. An exception ``work`` does not handle is printed as Python prints it and
    the child exits 1 (130 for Ctrl-C)."""
    pid = fork()
    if pid == 0:
        code = UNHANDLED_EXIT
        try:
            code = int(work() or 0)
        except SystemExit as exc:  # as the interpreter would end on it
            if isinstance(exc.code, int) or exc.code is None:
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except KeyboardInterrupt:
            code = 128 + signal.SIGINT
        except BaseException:
            traceback.print_exc()
        exit_child(code)
    return wait(pid, log_file)


@contextlib.contextmanager
def watch(stream, path: str | os.PathLike | None = None):
    """While the block runs, a fatal signal writes this process's Python stack into ``stream``
    (an open log file, at ``path``), and a supervising parent learns where that log is."""
    if _to_parent is not None and path is not None:
        with contextlib.suppress(OSError):
            os.write(_to_parent, f"{Path(path).resolve()}\n".encode())
    was_enabled = faulthandler.is_enabled()
    faulthandler.enable(file=stream, all_threads=True)
    try:
        yield
    finally:
        faulthandler.disable()  # the log closes after this block: never write to a stale fd
        if was_enabled:
            with contextlib.suppress(Exception):
                faulthandler.enable(file=sys.__stderr__, all_threads=True)


@contextlib.contextmanager
def logged_job(log_path: str | os.PathLike | None, what: str,
               setup: Callable[[], None] | None = None):
    """Run a workflow job's body with its logging in ``log_path`` (stderr without one), after
    ``setup()``; an exception is logged with its traceback as ``what`` and ends with one
    ``musiclime: error:`` line.

    The body runs in a forked child and this process only waits for it: when the child dies
    by a signal (a native crash, the out-of-memory killer) this process appends the one line
    that says so (``killed by SIGSEGV in ...``, ``out of memory ...``) to the log and exits
    with the child's status, without running the body itself. So a run's summary names the
    signal instead of an empty log's "failed"."""
    child = False
    if can_supervise():
        pid = fork()
        if pid:
            outcome = wait(pid, log_path)
            if outcome.death:
                line = f"{ERROR_PREFIX} {outcome.death}"
                if log_path:
                    with open(log_path, "a") as fh:
                        fh.write(f"\n{line}\n")
                print(line, file=sys.stderr, flush=True)
            raise SystemExit(outcome.exit_code)  # the body ran in the child
        child = True
    stream = open(log_path, "w") if log_path else sys.stderr  # noqa: SIM115
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    code = 0
    try:
        with watch(stream, log_path):
            if setup:
                setup()
            with contextlib.redirect_stderr(stream):
                yield
    except Exception as exc:
        code = 1
        logging.getLogger("musiclime.workflow").exception("%s", what)
        print(f"{ERROR_PREFIX} {one_line(exc)}", file=stream, flush=True)
        if not child:
            raise
    finally:
        root.removeHandler(handler)
        if stream is not sys.stderr:
            stream.close()
    if child:
        exit_child(code)


def describe_death(signum: int, log_file: Path | None, oom_before: int | None) -> str:
    """One line: what killed the process (and, for a crash, where it was)."""
    if signum == signal.SIGKILL:
        after = oom_kill_count()
        if oom_before is not None and after is not None and after > oom_before:
            return "out of memory (SIGKILL from the kernel's OOM killer)"
        return ("killed by SIGKILL (by the kernel's out-of-memory killer, or by hand; "
                "check free memory)")
    text = f"killed by {_signal_name(signum)}"
    if signum in _FATAL_SIGNALS and log_file is not None:
        where = crash_site(log_file)
        if where:
            text += f" in {where}"
    return text


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def crash_site(log_file: Path) -> str | None:
    """Where faulthandler's dump in ``log_file`` says the crashing thread was: its innermost
    Python frame, and the innermost musiclime frame when that is a different one."""
    try:
        text = Path(log_file).read_text(errors="replace")
    except OSError:
        return None
    start = text.rfind("Fatal Python error:")
    if start < 0:
        return None
    frames = []
    in_current = False
    for line in text[start:].splitlines():
        if line.startswith("Current thread") or line.startswith("Stack (most recent"):
            in_current = True
            continue
        if in_current:
            m = _FRAME.match(line)
            if not m:
                if frames:
                    break
                continue
            frames.append((m["file"], int(m["line"]), m["func"]))
    if not frames:
        return None

    def name(frame) -> str:
        path = Path(frame[0])
        parts = path.parts
        if "musiclime" in parts:
            short = "/".join(parts[len(parts) - 1 - parts[::-1].index("musiclime"):])
        else:  # a package's __init__.py says nothing without its package
            short = "/".join(parts[-2:]) if path.name == "__init__.py" else path.name
        return f"{short}:{frame[1]} ({frame[2]})"

    # the innermost frame of musiclime's or the user's own code (not the standard library's,
    # not an installed package's): the frame the crash is most useful to know about
    own = next((f for f in frames if "musiclime" in Path(f[0]).parts or not _library(f[0])),
               None)
    if own is None or own == frames[0]:
        return name(frames[0])
    return f"{name(frames[0])}, called from {name(own)}"


def _library(path: str) -> bool:
    import sysconfig

    roots = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    resolved = str(Path(path).resolve())
    return any(root and resolved.startswith(str(Path(root).resolve())) for root in roots)


def oom_kill_count() -> int | None:
    """How many processes the kernel's OOM killer has killed in this process's memory cgroup
    (cgroup v2 ``memory.events``, v1 ``memory.oom_control``); ``None`` where neither is
    readable."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        rel = path.lstrip("/")
        if hid == "0" and not controllers:
            candidates += [Path("/sys/fs/cgroup") / rel / "memory.events",
                           Path("/sys/fs/cgroup/memory.events")]
        elif "memory" in controllers.split(","):
            candidates += [Path("/sys/fs/cgroup/memory") / rel / "memory.oom_control",
                           Path("/sys/fs/cgroup/memory/memory.oom_control")]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        m = re.search(r"^oom_kill (\d+)$", text, flags=re.M)
        if m:
            return int(m.group(1))
    return None


def _die_with_parent(parent: int) -> None:
    """Linux: the child gets SIGKILL when its supervising parent dies (a job killed from
    outside must not leave its work running)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except Exception:  # not Linux, or no libc: the child just outlives a killed parent
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(128 + signal.SIGKILL)


def run_logged(cmd: list[str], env: dict, log_file: Path, on_line: Callable[[str], None],
               started: Callable[[int], None] | None = None) -> int:
    """Run ``cmd`` with its output appended to ``log_file`` line by line (the log is how a
    user follows a long run), each line also handed to ``on_line``; ``started`` gets the PID
    as soon as it runs. When this process is interrupted (Ctrl-C) or the log cannot be
    written (a full disk), the command is stopped (:func:`stop_logged`) before the exception
    goes on. Returns its exit status."""
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
                fh.flush()
                on_line(line)
        except BaseException as exc:
            stop_logged(proc, fh, "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt)
                        else f"stopped: {type(exc).__name__}: {exc}")
            if isinstance(exc, OSError) and exc.filename is None:  # name the log
                raise OSError(exc.errno, exc.strerror, str(log_file)) from exc
            raise
        return proc.wait()


def stop_logged(proc: subprocess.Popen, log_fh, why: str, grace_s: float = 60.0) -> None:
    """Let a logged command stop its own children (after Ctrl-C it got the terminal's SIGINT
    too; otherwise it is sent one), keep its last words in the log where that can still be
    written, and return when it has ended (so a rerun finds no live driver)."""
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
