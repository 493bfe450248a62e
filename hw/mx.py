"""The OCP MX dot product ``mx_dot``, built from the FP8 family's blocks (:mod:`hw.fp8`).

Per element pair: :func:`~qrtl.hw.fp8.unpack` both codes, :func:`~qrtl.hw.fp8.multiply`
them exactly, :func:`~qrtl.hw.fp8.align_fixed` the product into the exact fixed-point
accumulator; a balanced adder tree sums the ``k`` terms; the sum, scaled by the two E8M0
scales (an exponent offset), is rounded once to binary32 by :func:`~qrtl.hw.fp8.round_pack`.
The maths, the accumulator width and the special cases are those of :mod:`qrtl.golden.mx`.
"""

from __future__ import annotations

import operator

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qrtl.golden.errors import QrtlError
from qrtl.golden.formats import FPFormat, get_format
from qrtl.golden.mx import acc_width, check_mx_params, element_lsb, scale_bits

from .errors import reject
from .fp8 import EXP, Operand, add_round, align_fixed, multiply, round_pack, unpack

__all__ = ["MxDot", "MxDotGeneral", "block_value"]

_FP32 = get_format("fp32")


def _max_shift(f) -> int:
    """Largest ``exp - lsb`` of an unpacked element (its special codes included)."""
    return (1 << f.ebits) - 2 if isinstance(f, FPFormat) else 0


class MxDot(wiring.Component):
    """MX block dot product ``result = X(sa) * X(sb) * sum_i a_i * b_i`` (binary32), with
    ``X(s) = 2^(s-127)`` for E8M0 scales (or the E4M3 value, NVFP4).

    The sum is exact in a ``W``-bit two's complement accumulator
    (:func:`qrtl.golden.mx.acc_width`), multiplied by the exact scale product and rounded
    once to nearest even; special values as :mod:`qrtl.golden.mx` says (NaN scale -> NaN).
    Combinational: the whole block in one pass (latency 0).

    Parameters
    ----------
    fmt_a, fmt_b : str
        Element formats of the two blocks: ``e2m1``, ``e2m3``, ``e3m2``, ``e4m3``, ``e5m2``
        or ``mxint8`` (default ``e4m3``; ``fmt_b=None`` takes ``fmt_a``).
    k : int
        Elements per block, a power of two 1..64 (default 32, the MX block size).
    scale : str
        ``"e8m0"`` (MX, default) or ``"e4m3"`` (NVFP4: with ``fmt_a="e2m1"``, ``k=16``).

    Members
    -------
    a : In(k * width of fmt_a)
        Element codes, element ``i`` in bits ``i*w .. i*w + w - 1``.
    b : In(k * width of fmt_b)
        Likewise.
    sa, sb : In(8)
        Scale codes of the two blocks.
    result : Out(32)
        binary32 code of the dot product.
    """

    def __init__(self, fmt_a="e4m3", fmt_b=None, k=32, scale="e8m0"):
        fmt_b = fmt_a if fmt_b is None else fmt_b
        try:
            k = operator.index(k)
            self.fmt_a, self.fmt_b = check_mx_params(fmt_a, fmt_b, k, scale)
        except (QrtlError, TypeError) as e:
            reject(self, str(e))
        self.k, self.scale = k, get_format(scale)
        super().__init__(self._members())

    def _members(self) -> dict:
        k, wa, wb = self.k, self.fmt_a.width, self.fmt_b.width
        return {"a": In(k * wa), "b": In(k * wb), "sa": In(8), "sb": In(8), "result": Out(32)}

    @property
    def acc_width(self) -> int:
        """Width of the exact accumulator (two's complement bits)."""
        return acc_width(self.fmt_a, self.fmt_b, self.k)

    @property
    def latency(self) -> int:
        return 0

    def elaborate(self, platform):
        m = Module()
        v = block_value(m, self)
        code = round_pack(m, v.sign, v.sig, v.exp, _FP32, "rne", None, 16, False, "rp")
        inf = Cat(Const(0, 23), Const(0xFF, 8), v.sign)
        m.d.comb += self.result.eq(Mux(v.nan, _FP32.nan_code, Mux(v.inf, inf, code)))
        return m


def block_value(m: Module, unit) -> Operand:
    """The exact ``X(sa) * X(sb) * sum_i a_i * b_i`` of ``unit``'s ports (``a``, ``b``,
    ``sa``, ``sb``; its ``fmt_a``, ``fmt_b``, ``k``, ``scale``) as an :class:`Operand`:
    magnitude, LSB exponent, the result's sign (the infinity's when ``inf``), flags."""
    fa, fb, k = unit.fmt_a, unit.fmt_b, unit.k
    w = acc_width(fa, fb, k)
    wa, wb = fa.width, fb.width
    lsb = element_lsb(fa) + element_lsb(fb)
    shift = _max_shift(fa) + _max_shift(fb)
    terms, prods = [], []
    for i in range(k):
        x = unpack(m, unit.a[i * wa:(i + 1) * wa], fa, f"a{i}")
        y = unpack(m, unit.b[i * wb:(i + 1) * wb], fb, f"b{i}")
        p = multiply(m, x, y, f"p{i}")
        prods.append(p)
        terms.append(align_fixed(m, p, lsb, w, shift, f"t{i}"))
    level = 0
    while len(terms) > 1:  # balanced adder tree, every node W bits (the total fits)
        nxt = []
        for j in range(0, len(terms), 2):
            s = Signal(signed(w), name=f"sum{level}_{j // 2}")
            m.d.comb += s.eq(terms[j] + terms[j + 1])
            nxt.append(s)
        terms, level = nxt, level + 1
    total = terms[0]
    # the block scale X(A) * X(B): the same unpack and exact multiply as the elements
    x = multiply(m, unpack(m, unit.sa, unit.scale, "sa"), unpack(m, unit.sb, unit.scale, "sb"), "x")
    mag = Signal(w - 1 + scale_bits(unit.scale), name="mag")
    sign = Signal(name="sign")
    g = Signal(signed(EXP), name="g")
    nan, inf = Signal(name="nan"), Signal(name="inf")
    all_negzero = Cat(*[p.sign & ~p.sig.any() & ~p.nan & ~p.inf for p in prods]).all()
    pinf = Cat(*[p.inf & ~p.sign for p in prods]).any()
    ninf = Cat(*[p.inf & p.sign for p in prods]).any()
    m.d.comb += [
        mag.eq(Mux(total < 0, -total, total)[:w - 1] * x.sig),
        nan.eq(Cat(*[p.nan for p in prods]).any() | (pinf & ninf) | x.nan | ((pinf | ninf) & ~x.sig.any())),
        inf.eq((pinf | ninf) & ~nan),
        sign.eq(Mux(inf, ninf, Mux(total == 0, all_negzero, total < 0)) ^ x.sign),
        g.eq(x.exp + lsb),
    ]
    return Operand(sign, mag, g, nan, inf)


class MxDotGeneral(MxDot):
    """MX ``DotGeneral``: the :class:`MxDot` of one block pair per valid cycle, each added
    exactly to a binary32 accumulator with one rounding (``acc = round(acc + Dot_exact)``,
    the FP8 family's fused :func:`~qrtl.hw.fp8.add_round`); on ``last`` the sum is the
    result and the accumulator restarts at ``+0``. Golden model:
    :func:`qrtl.golden.mx.mx_dot_general_stream`.

    Parameters
    ----------
    fmt_a, fmt_b, k, scale
        As :class:`MxDot`.

    Members
    -------
    valid : In(1)
        This cycle carries a block pair.
    last : In(1)
        Its block is the last of the dot product (ignored when ``valid = 0``).
    a, b, sa, sb
        As :class:`MxDot`.
    result : Out(32)
        The latest binary32 result (``+0`` after reset), held until the next one.
    result_valid : Out(1)
        High for the one cycle in which a new ``result`` appears (one clock after ``last``).
    """

    def _members(self) -> dict:
        return {"valid": In(1), "last": In(1), **super()._members(), "result_valid": Out(1)}

    @property
    def latency(self) -> int:
        """Clock cycles from a ``last`` input to its ``result`` (registered outputs)."""
        return 1

    @property
    def clocked(self) -> bool:
        return True

    def elaborate(self, platform):
        m = Module()
        v = block_value(m, self)
        acc = Signal(32, name="acc")
        s = add_round(m, v, unpack(m, acc, _FP32, "acc"), _FP32, name="accadd")
        m.d.sync += self.result_valid.eq(self.valid & self.last)
        with m.If(self.valid):
            m.d.sync += acc.eq(Mux(self.last, 0, s))
            with m.If(self.last):
                m.d.sync += self.result.eq(s)
        return m
