"""musiclime.supervise: a child that dies by a signal is named in one line by its parent.

Real forks and real signals: a read of address 0 through ctypes (a genuine SIGSEGV in native
code), a SIGKILL, a MemoryError-free clean exit. The end-to-end versions (a crashing classifier
under `musiclime run` and `musiclime explain`) are in test_faults.py.
"""

from __future__ import annotations

import ctypes
import signal

import pytest

from musiclime import supervise

pytestmark = pytest.mark.skipif(not supervise.can_supervise(), reason="needs os.fork (Linux)")


def crash_here():
    ctypes.string_at(0)  # native read of address 0: SIGSEGV


def test_a_clean_exit_passes_its_code_through():
    outcome = supervise.run(lambda: 3)
    assert outcome == supervise.Outcome(3, None, None)


def test_a_segfault_is_named_with_the_place_and_the_stack_is_in_the_log(tmp_path):
    log_file = tmp_path / "job.log"

    def work() -> int:
        with open(log_file, "w") as fh, supervise.watch(fh, log_file):
            crash_here()
        return 0

    outcome = supervise.run(work)
    assert outcome.exit_code == 128 + signal.SIGSEGV
    assert outcome.log == log_file.resolve()  # the child told the parent where its log is
    line = crash_here.__code__.co_firstlineno + 1
    # the innermost frame (ctypes's), then the innermost one of our own code
    assert outcome.death.startswith("killed by SIGSEGV in ctypes/__init__.py:"), outcome.death
    assert outcome.death.endswith(f"(string_at), called from test_supervise.py:{line} "
                                  "(crash_here)"), outcome.death
    text = log_file.read_text()
    assert "Fatal Python error: Segmentation fault" in text and "crash_here" in text


def test_sigkill_is_named_and_an_oom_kill_is_called_out_of_memory():
    outcome = supervise.run(lambda: signal.raise_signal(signal.SIGKILL))
    assert outcome.exit_code == 128 + signal.SIGKILL
    assert outcome.death.startswith("killed by SIGKILL (by the kernel's out-of-memory killer")
    count = supervise.oom_kill_count()
    if count is None:
        pytest.skip("no readable memory cgroup OOM-kill counter here")
    # the OOM killer counted a kill since the child started: that SIGKILL was the OOM killer
    assert supervise.describe_death(signal.SIGKILL, None, count - 1) == (
        "out of memory (SIGKILL from the kernel's OOM killer)")
    assert supervise.describe_death(signal.SIGKILL, None, count).startswith("killed by SIGKILL")


def test_an_unhandled_exception_in_the_child_exits_1_with_its_traceback(capfd):
    def work() -> int:
        raise RuntimeError("boom in the child")

    outcome = supervise.run(work)
    assert outcome == supervise.Outcome(1, None, None)
    assert "RuntimeError: boom in the child" in capfd.readouterr().err


def test_a_memory_error_reads_out_of_memory_in_one_line():
    from musiclime.errors import ConfigError, one_line

    with pytest.raises(MemoryError) as info:
        bytearray(2 ** 62)
    assert one_line(info.value) == "out of memory (MemoryError)"
    assert one_line(MemoryError("Unable to allocate 4.00 EiB\nfor an array")) == (
        "out of memory (MemoryError: Unable to allocate 4.00 EiB for an array)")
    assert one_line(ConfigError("bad value x")) == "bad value x"
    assert one_line(KeyError("k")) == "KeyError: 'k'"
