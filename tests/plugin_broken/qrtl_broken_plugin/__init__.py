"""Broken entry points: a missing module, an object that is no UnitSpec, and a unit whose
name is taken by a built-in unit."""

from dataclasses import replace

NOT_A_SPEC = "a string is not a UnitSpec"


def clash():
    """A copy of a built-in unit under its own name (the built-in unit must win)."""
    from qrtl.hw.units import get_unit
    return [replace(get_unit("int_mac"), summary="an impostor")]
