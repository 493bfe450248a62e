"""Amaranth hardware units and the unit registry."""

from .errors import QrtlError
from .registry import UNITS, Instance, UnitSpec, all_units, get_unit, instance

__all__ = ["QrtlError", "UNITS", "Instance", "UnitSpec", "all_units", "get_unit", "instance"]
