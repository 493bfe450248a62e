"""Child processes that go down with qrtl.

Every tool qrtl starts (Verilator, make, the simulator, Yosys) runs through :func:`run`, in a
process group of its own, and every pool of worker processes through :func:`pool_map`.
When qrtl stops on an error, Ctrl-C or SIGTERM, the running children's process groups are
killed before the exception goes on; if qrtl is killed outright (SIGKILL), the kernel kills
each direct child (``PR_SET_PDEATHSIG``), so no ``make`` or ``yosys`` keeps running for a
run nobody waits for.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from typing import Callable, Iterable

__all__ = ["run", "pool_map", "die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent dies (Linux; no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


def run(cmd: list, *, check: bool = False, timeout: float | None = None,
        **kwargs) -> subprocess.CompletedProcess:
    """:func:`subprocess.run` in a new process group that is killed (with everything it
    started) if qrtl stops before the command ends, or after ``timeout`` seconds
    (:class:`subprocess.TimeoutExpired` is raised then)."""
    kwargs.setdefault("start_new_session", True)
    kwargs.setdefault("preexec_fn", die_with_parent)
    with subprocess.Popen(cmd, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            _kill_group(proc)
            raise
    res = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check:
        res.check_returncode()
    return res


def _init_worker() -> None:
    die_with_parent()
    # Ctrl-C reaches every process of the terminal's group: the parent handles it and
    # terminates the pool; a worker just stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def pool_map(fn: Callable, items: Iterable, jobs: int, progress=None) -> list:
    """``[fn(x) for x in items]`` on ``jobs`` worker processes (in order; one process runs
    them in this one). ``progress(n)`` is called as results arrive. On any exception or
    interrupt the workers are terminated before it goes on."""
    import multiprocessing

    items = list(items)
    if jobs <= 1 or len(items) <= 1:
        out = []
        for x in items:
            out.append(fn(x))
            if progress is not None:
                progress(1)
        return out
    pool = multiprocessing.get_context("fork").Pool(min(jobs, len(items)), _init_worker)
    try:
        out = []
        for r in pool.imap(fn, items):
            out.append(r)
            if progress is not None:
                progress(1)
        pool.close()
        pool.join()
        return out
    except BaseException:
        pool.terminate()
        pool.join()
        raise
