"""Amaranth hardware units and the unit registry (imports :mod:`qrtl.golden` only)."""

from qrtl.golden.errors import QrtlError

from .registry import STREAMS, UNITS, Unit, UnitSpec, register, register_stream
from .units import all_units, configure, get_unit

__all__ = ["QrtlError", "UNITS", "STREAMS", "Unit", "UnitSpec", "register", "register_stream",
           "all_units", "get_unit", "configure"]
