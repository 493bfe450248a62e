"""Every registry entry, and the look-ups that need them.

Importing this module fills :data:`qrtl.hw.registry.UNITS` (and the networks' operand
streams into :data:`qrtl.hw.registry.STREAMS`). One module per family (``hw/reg_*.py``),
each with one :func:`qrtl.hw.registry.register` call per unit tying the hardware class
(``hw/``) to its golden model (``golden/``) and its stimulus. Nothing else in the suite
needs editing to generate, simulate, cost and report a new unit: add the import here.
"""

from __future__ import annotations

from typing import Mapping

from qrtl.golden.errors import QrtlError
from qrtl.golden.nets.streams import STREAM_TABLE

# the order is the order of `qrtl list` and of the report's tables
from . import reg_xnor  # noqa: F401
from . import reg_abc  # noqa: F401
from . import reg_ternary  # noqa: F401
from . import reg_quant  # noqa: F401
from . import reg_intmac  # noqa: F401
from . import reg_fp8  # noqa: F401
from . import reg_norm  # noqa: F401
from .registry import UNITS, Unit, UnitSpec, make_unit, register_stream

__all__ = ["get_unit", "all_units", "configure"]

# The real operand streams of the digits networks, as named stimuli of the units above
# (qrtl/golden/nets/streams.py; computed lazily, only when a stream is asked for).
for _unit, _name, _fn, _doc in STREAM_TABLE:
    register_stream(_unit, _name, _fn, _doc)


def get_unit(name: str) -> UnitSpec:
    """The spec of unit ``name``; a one-line error listing the units otherwise."""
    try:
        return UNITS[name]
    except (KeyError, TypeError):
        raise QrtlError(f"unknown unit {name!r} (units: {', '.join(UNITS)})") from None


def all_units() -> list[UnitSpec]:
    """Every registered unit, in registration order."""
    return list(UNITS.values())


def configure(unit: str | UnitSpec, given: Mapping[str, object] | None = None) -> Unit:
    """Resolve parameters and build the hardware of one unit configuration.

    Unknown units or parameters and out-of-range values raise :class:`QrtlError`.
    """
    spec = unit if isinstance(unit, UnitSpec) else get_unit(unit)
    return make_unit(spec, given)
