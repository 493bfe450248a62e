"""Integer multiply-accumulate: the integer baseline FP8 MACs are compared against."""

from __future__ import annotations

import operator

from amaranth import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .errors import reject

__all__ = ["IntMac"]


class IntMac(wiring.Component):
    """``acc_out = (acc_in + a * b) mod 2**acc_width`` (combinational).

    The product ``a * b`` is formed at full width (``a_width + b_width`` bits) and added to
    ``acc_in``; the sum is then truncated to ``acc_width`` bits, i.e. it wraps modulo
    ``2**acc_width`` (two's complement when ``signed``), exactly as an int32 accumulator of a
    TFLite/gemmlowp kernel does. Nothing saturates.

    Parameters
    ----------
    a_width, b_width : int
        Operand widths, 2..32.
    acc_width : int
        Accumulator width, 2..64.
    signed : bool
        All three operands and the result are two's complement (else unsigned).

    Members
    -------
    a : In(signed(a_width)) or In(a_width)
        Activation.
    b : In(signed(b_width)) or In(b_width)
        Weight.
    acc_in : In(signed(acc_width)) or In(acc_width)
        Running sum.
    acc_out : Out(signed(acc_width)) or Out(acc_width)
        ``acc_in + a * b`` wrapped to ``acc_width`` bits; latency 0 (combinational).
    """

    def __init__(self, a_width: int = 8, b_width: int = 8, acc_width: int = 32,
                 signed_: bool = True):
        a_width, b_width, acc_width = (operator.index(a_width), operator.index(b_width),
                                       operator.index(acc_width))
        for name, v, lo, hi in (("a_width", a_width, 2, 32), ("b_width", b_width, 2, 32),
                                ("acc_width", acc_width, 2, 64)):
            if not lo <= v <= hi:
                reject(self, f"{name}={v} is out of range (allowed {lo}..{hi})")
        self.a_width, self.b_width, self.acc_width = a_width, b_width, acc_width
        self.signed = bool(signed_)
        shape = signed if self.signed else unsigned
        super().__init__({"a": In(shape(a_width)), "b": In(shape(b_width)),
                          "acc_in": In(shape(acc_width)), "acc_out": Out(shape(acc_width))})

    @property
    def latency(self) -> int:
        """Clock cycles from inputs to outputs (0: combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        # The product is exact (Amaranth widens a*b to a_width+b_width bits); .eq truncates
        # the sum to acc_width bits, which is the documented wrap-around.
        m.d.comb += self.acc_out.eq(self.acc_in + self.a * self.b)
        return m
