"""An example qrtl plug-in: ``sat_add``, a saturating signed adder.

Three pieces, as for a built-in unit: the hardware (an Amaranth ``wiring.Component``), the
bit-exact golden model (vectorised NumPy on the integer codes) and the registry entry
(:data:`SAT_ADD`), which ``pyproject.toml`` names in the ``qrtl.units`` entry-point group.
"""

from __future__ import annotations

import operator

import numpy as np
from amaranth import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qrtl.golden.bits import every_input, random_codes
from qrtl.golden.params import IntParam
from qrtl.hw import UnitSpec

__all__ = ["SatAdd", "sat_add", "SAT_ADD"]


def _limits(width: int) -> tuple[int, int]:
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


class SatAdd(wiring.Component):
    """``s = min(max(a + b, -2**(width-1)), 2**(width-1) - 1)``, combinational.

    Members
    -------
    a, b : In(signed(width))
        Operands.
    s : Out(signed(width))
        Their sum, saturated to the operand range; latency 0.
    """

    def __init__(self, width: int = 8):
        width = operator.index(width)
        if not 2 <= width <= 32:
            raise ValueError(f"width={width} is out of range (allowed 2..32)")
        self.width = width
        super().__init__({"a": In(signed(width)), "b": In(signed(width)),
                          "s": Out(signed(width))})

    @property
    def latency(self) -> int:
        return 0

    def elaborate(self, platform):
        m = Module()
        lo, hi = _limits(self.width)
        total = self.a + self.b  # width + 1 bits: never overflows
        with m.If(total > hi):
            m.d.comb += self.s.eq(hi)
        with m.Elif(total < lo):
            m.d.comb += self.s.eq(lo)
        with m.Else():
            m.d.comb += self.s.eq(total)
        return m


def sat_add(a, b, width: int) -> np.ndarray:
    """The golden model: ``clip(a + b, -2**(width-1), 2**(width-1) - 1)`` on int64 codes."""
    lo, hi = _limits(width)
    return np.clip(np.asarray(a, np.int64) + np.asarray(b, np.int64), lo, hi)


SAT_ADD = UnitSpec(
    name="sat_add",
    summary="saturating signed adder s = clip(a + b) to width bits (example plug-in)",
    params=(IntParam("width", 8, 2, 32, "operand and result width"),),
    build=lambda p: SatAdd(p["width"]),
    golden=lambda p, x: {"s": sat_add(x["a"], x["b"], p["width"])},
    stimulus=lambda p, n, rng: {k: random_codes(rng, n, p["width"], True) for k in ("a", "b")},
    # every (a, b) pair while there are at most 2**20 of them
    exhaustive=lambda p: every_input([("a", p["width"], True), ("b", p["width"], True)]),
)
