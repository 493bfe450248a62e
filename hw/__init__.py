"""Amaranth hardware units and the unit registry (imports :mod:`qrtl.golden` only)."""

from qrtl.golden.errors import QrtlError

from .registry import UNITS, Unit, UnitSpec, all_units, configure, get_unit

__all__ = ["QrtlError", "UNITS", "Unit", "UnitSpec", "all_units", "get_unit", "configure"]
