"""Output register ranks around any unit: the generic ``pipeline`` parameter.

Every registered unit without a ``pipeline`` parameter of its own gets one
(:func:`qrtl.hw.registry.register`): ``pipeline = K`` puts ``K`` reset-less register ranks
on the unit's outputs, so the outputs follow the inputs ``K`` cycles later (``latency``
grows by ``K``). That is the RTL a designer writes and verifies; it is what Verilator
checks bit-exactly. When a combinational unit is costed (:mod:`qrtl.reports.cost`), its
netlist is cut into ``K`` stages instead (:mod:`qrtl.reports.retime`): all ranks but the
last (which keeps the outputs registered) move into the logic, where they balance the
stage delays, and the cut netlist is checked against the golden model again by gate-level
simulation. A unit that is clocked already keeps the ranks on its outputs.
"""

from __future__ import annotations

from amaranth import Signal
from amaranth.hdl import Module
from amaranth.lib import wiring

__all__ = ["OutputRegisters", "MAX_STAGES"]

#: Largest ``pipeline`` value of the generic parameter.
MAX_STAGES = 8


class OutputRegisters(wiring.Component):
    """``inner`` with ``stages`` reset-less register ranks on each of its outputs.

    Same signature (ports) as ``inner``; ``latency = inner.latency + stages``.
    """

    def __init__(self, inner: wiring.Component, stages: int):
        self.inner, self.stages = inner, int(stages)
        super().__init__(inner.signature)

    @property
    def latency(self) -> int:
        return int(getattr(self.inner, "latency", 0)) + self.stages

    @property
    def clocked(self) -> bool:
        return self.stages > 0 or bool(getattr(self.inner, "clocked", False))

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        for name, member in self.signature.members.items():
            if member.flow == wiring.In:
                m.d.comb += getattr(inner, name).eq(getattr(self, name))
                continue
            value = getattr(inner, name)
            for k in range(self.stages):
                reg = Signal.like(value, reset_less=True, name=f"{name}_stage{k + 1}")
                m.d.sync += reg.eq(value)
                value = reg
            m.d.comb += getattr(self, name).eq(value)
        return m
