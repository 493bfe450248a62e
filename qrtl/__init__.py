"""qrtl: generate, verify bit-exactly and cost low-precision neural-network arithmetic units.

The documented API is :data:`__all__`::

    import qrtl
    qrtl.units()                                   # names of every registered unit
    u = qrtl.unit("quant_shift", bias=1, relu=1)   # a validated configuration (qrtl.Unit)
    u.verilog()                                    # its Verilog
    y = u.golden(u.stimulus(1000, seed=0))         # its bit-exact model
    r = qrtl.verify(u, vectors=100_000, seed=0)    # on Verilator: r.mismatches == 0
    c = qrtl.cost(u)                               # area, delay, energy per operation
    v = qrtl.unit_from_verilog("add.v", "add", golden="mymodels:add")  # foreign Verilog,
    qrtl.verify(v); qrtl.cost(v)                   # verified and costed the same way
    df = qrtl.sweep("xnor_popcount", {"n": "16..256"})   # a DataFrame, one row per point
    qrtl.nets.replay("int8", scheme="shift", images=20)

Every error is a :class:`QrtlError` with a one-line message. ``import qrtl`` is cheap: the
layers beneath (``qrtl.golden`` < ``qrtl.hw`` < ``qrtl.sim``, ``qrtl.reports``) are loaded
when a name that needs them is first used.
"""

from __future__ import annotations

import importlib

from .golden.errors import QrtlError

__all__ = ["QrtlError", "Unit", "VerilogUnit", "RunResult", "CostResult", "Replay",
           "units", "unit", "unit_from_verilog", "verify", "cost", "sweep", "report", "nets",
           "__version__"]

#: Where each lazily loaded name lives.
_LAZY = {
    "Unit": "qrtl.api", "RunResult": "qrtl.api", "CostResult": "qrtl.api",
    "Replay": "qrtl.api", "units": "qrtl.api", "unit": "qrtl.api", "verify": "qrtl.api",
    "cost": "qrtl.api", "sweep": "qrtl.api", "report": "qrtl.api", "VerilogUnit": "qrtl.api",
    "unit_from_verilog": "qrtl.api",
}


def __getattr__(name: str):
    if name == "nets":
        return importlib.import_module("qrtl.nets")
    if name == "__version__":
        from importlib.metadata import version
        return version("qrtl")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'qrtl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
