"""Every registry entry, and the look-ups that need them.

Importing this module fills :data:`qrtl.hw.registry.UNITS` (and the networks' operand
streams into :data:`qrtl.hw.registry.STREAMS`). One module per family (``hw/reg_*.py``),
each with one :func:`qrtl.hw.registry.register` call per unit tying the hardware class
(``hw/``) to its golden model (``golden/``) and its stimulus. Nothing else in the suite
needs editing to generate, simulate, cost and report a new unit: add the import here.

Units from other packages (plug-ins) arrive through the entry-point group ``qrtl.units``:
each entry point names a :class:`~qrtl.hw.registry.UnitSpec`, or a function returning one
or several. They are loaded once, on the first look-up (:func:`all_units`,
:func:`get_unit`), after the built-in units, and marked with their distribution's name
(``UnitSpec.source``). A plug-in that cannot be loaded (import error, wrong type, a name
already taken) is skipped with a one-line warning on stderr naming it.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Mapping

from qrtl.golden.errors import QrtlError
from qrtl.golden.nets.streams import STREAM_TABLE
from qrtl.golden.schemes import NORMAL_STREAMS

# the order is the order of `qrtl list` and of the report's tables
from . import reg_xnor  # noqa: F401
from . import reg_abc  # noqa: F401
from . import reg_ternary  # noqa: F401
from . import reg_quant  # noqa: F401
from . import reg_intmac  # noqa: F401
from . import reg_fp8  # noqa: F401
from . import reg_mx  # noqa: F401
from . import reg_norm  # noqa: F401
from .registry import UNITS, Unit, UnitSpec, make_unit, register, register_stream

__all__ = ["get_unit", "all_units", "configure", "load_plugins", "PLUGIN_GROUP"]

#: The entry-point group through which other packages register units.
PLUGIN_GROUP = "qrtl.units"

# The real operand streams of the digits networks, as named stimuli of the units above
# (qrtl/golden/nets/streams.py; computed lazily, only when a stream is asked for).
# N(0, 1) operands in each MAC unit's number format (qrtl/golden/schemes.py): the data of
# the MX accuracy study, for energy per MAC.
for _unit, _name, _fn, _doc in STREAM_TABLE + NORMAL_STREAMS:
    register_stream(_unit, _name, _fn, _doc)


_plugins_loaded = False


def _plugin_specs(obj) -> list:
    """What an entry point resolved to, as a list of specs (TypeError if it is not a spec,
    a function returning specs, or a list of specs)."""
    if callable(obj) and not isinstance(obj, UnitSpec):
        obj = obj()
    specs = [obj] if isinstance(obj, UnitSpec) else obj
    if not isinstance(specs, (list, tuple)) or not specs or \
            not all(isinstance(s, UnitSpec) for s in specs):
        raise TypeError(f"it gave {type(obj).__name__}, not a UnitSpec or a list of them")
    return list(specs)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def load_plugins() -> None:
    """Register the units of every ``qrtl.units`` entry point (once per process; later
    calls do nothing), in the order of (distribution, entry-point name). A unit whose name
    is taken, or an entry point that fails, is skipped with a one-line warning on stderr."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True  # before loading: a plug-in that looks units up does not recurse
    from importlib.metadata import entry_points

    def dist_name(ep) -> str:
        return ep.dist.name if ep.dist is not None else "an unknown distribution"

    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: (dist_name(e), e.name)):
        where = f"plug-in {ep.name!r} ({ep.value}) of {dist_name(ep)}"
        try:
            specs = _plugin_specs(ep.load())
        except Exception as exc:  # a broken plug-in must not take the suite down with it
            print(f"qrtl: warning: {where} skipped: {_one_line(exc)}", file=sys.stderr)
            continue
        for spec in specs:
            if spec.name in UNITS:
                print(f"qrtl: warning: {where} skipped unit {spec.name!r}: the name is taken "
                      f"by a unit of {UNITS[spec.name].source}", file=sys.stderr)
                continue
            register(replace(spec, source=dist_name(ep)))


def get_unit(name: str) -> UnitSpec:
    """The spec of unit ``name``; a one-line error listing the units otherwise."""
    load_plugins()
    try:
        return UNITS[name]
    except (KeyError, TypeError):
        raise QrtlError(f"unknown unit {name!r} (units: {', '.join(UNITS)})") from None


def all_units() -> list[UnitSpec]:
    """Every registered unit, in registration order (built-in units, then plug-ins)."""
    load_plugins()
    return list(UNITS.values())


def configure(unit: str | UnitSpec, given: Mapping[str, object] | None = None) -> Unit:
    """Resolve parameters and build the hardware of one unit configuration.

    Unknown units or parameters and out-of-range values raise :class:`QrtlError`.
    """
    spec = unit if isinstance(unit, UnitSpec) else get_unit(unit)
    return make_unit(spec, given)
