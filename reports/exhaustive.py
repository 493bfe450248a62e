"""The record of exhaustive verification runs (``qrtl sim UNIT --exhaustive --record FILE``).

An exhaustive run checks every input vector of one configuration on Verilator against the
golden model; the big ones (``fp8_mac``, 2^32 vectors) take minutes, so they are run once
per change of the unit and recorded: one CSV row per run (unit, parameters, vectors,
mismatches, seconds, processes, date, commit). The committed record is
``reports/data/exhaustive.csv``; the report's verification table lists its rows.
"""

from __future__ import annotations

import csv
import datetime
import subprocess
from pathlib import Path

from qrtl.golden.errors import QrtlError

__all__ = ["EXHAUSTIVE_CSV", "COLUMNS", "source_commit", "record", "recorded"]

#: The committed record (read-only here: the CLI appends to a file named on its command line).
EXHAUSTIVE_CSV = Path(__file__).resolve().parent / "data" / "exhaustive.csv"
#: The source checkout (for the commit; absent in an installed wheel).
PROJECT = Path(__file__).resolve().parent.parent
COLUMNS = ("unit", "params", "module", "vectors", "mismatches", "seconds", "vectors_per_s",
           "jobs", "date", "commit")


def source_commit() -> str:
    """Short commit of the qrtl checkout, marked when it has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(PROJECT), "status", "--porcelain"],
                               capture_output=True, text=True).stdout.strip()
        return commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def record(path, result, jobs: int, commit: str | None = None) -> dict:
    """Append one row for ``result`` (a :class:`qrtl.sim.runner.RunResult` of an
    exhaustive run on ``jobs`` processes) to the CSV at ``path`` (header if new); returns
    the row. The date is UTC; ``seconds`` is the slowest process's testbench time;
    ``commit``: :func:`source_commit` taken when the run started (default: now)."""
    path = Path(path)
    row = {"unit": result.unit,
           "params": " ".join(f"{k}={v}" for k, v in result.params.items()),
           "module": result.module, "vectors": result.vectors, "mismatches": result.mismatches,
           "seconds": round(result.seconds, 1), "vectors_per_s": round(result.vectors_per_s),
           "jobs": jobs,
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "commit": commit or source_commit()}
    try:
        new = not path.exists() or path.stat().st_size == 0
        with open(path, "a", newline="") as fh:
            w = csv.DictWriter(fh, COLUMNS)
            if new:
                w.writeheader()
            w.writerow(row)
    except OSError as exc:
        raise QrtlError(f"cannot record the run in {str(path)!r} ({exc.strerror or exc})") from None
    return row


def recorded(path=EXHAUSTIVE_CSV) -> list[dict]:
    """The rows of a record (none if the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
