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

__all__ = ["MxDot", "MxDotGeneral", "block_value", "element_terms", "scaled_value"]

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


class _Terms:
    """The exact partial sum of some element pairs and what the special cases need:
    ``total`` (W-bit two's complement, units of ``2^(lsbA + lsbB)``), and over those pairs
    ``nan`` (a NaN product), ``pinf`` / ``ninf`` (an infinite product of that sign) and
    ``negzero`` (every product is -0)."""

    def __init__(self, total, nan, pinf, ninf, negzero):
        self.total, self.nan, self.pinf, self.ninf, self.negzero = total, nan, pinf, ninf, negzero


def element_terms(m: Module, unit, n: int) -> _Terms:
    """:class:`_Terms` of the ``n`` element pairs on ``unit``'s ``a`` and ``b`` ports: each
    pair unpacked, multiplied exactly and aligned into the block's exact accumulator width
    (:func:`qrtl.golden.mx.acc_width` of ``unit.k``), summed by a balanced adder tree."""
    fa, fb = unit.fmt_a, unit.fmt_b
    w = acc_width(fa, fb, unit.k)
    wa, wb = fa.width, fb.width
    lsb = element_lsb(fa) + element_lsb(fb)
    shift = _max_shift(fa) + _max_shift(fb)
    terms, prods = [], []
    for i in range(n):
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
    return _Terms(terms[0], Cat(*[p.nan for p in prods]).any(),
                  Cat(*[p.inf & ~p.sign for p in prods]).any(),
                  Cat(*[p.inf & p.sign for p in prods]).any(),
                  Cat(*[p.sign & ~p.sig.any() & ~p.nan & ~p.inf for p in prods]).all())


def scaled_value(m: Module, unit, t: _Terms) -> Operand:
    """The exact ``X(sa) * X(sb) * total`` of a whole block's :class:`_Terms` as an
    :class:`Operand`: magnitude, LSB exponent, the result's sign (the infinity's when
    ``inf``), and the special cases of :mod:`qrtl.golden.mx`."""
    w = acc_width(unit.fmt_a, unit.fmt_b, unit.k)
    lsb = element_lsb(unit.fmt_a) + element_lsb(unit.fmt_b)
    # the block scale X(A) * X(B): the same unpack and exact multiply as the elements
    x = multiply(m, unpack(m, unit.sa, unit.scale, "sa"), unpack(m, unit.sb, unit.scale, "sb"), "x")
    mag = Signal(w - 1 + scale_bits(unit.scale), name="mag")
    sign = Signal(name="sign")
    g = Signal(signed(EXP), name="g")
    nan, inf = Signal(name="nan"), Signal(name="inf")
    total = t.total
    m.d.comb += [
        mag.eq(Mux(total < 0, -total, total)[:w - 1] * x.sig),
        nan.eq(t.nan | (t.pinf & t.ninf) | x.nan | ((t.pinf | t.ninf) & ~x.sig.any())),
        inf.eq((t.pinf | t.ninf) & ~nan),
        sign.eq(Mux(inf, t.ninf, Mux(total == 0, t.negzero, total < 0)) ^ x.sign),
        g.eq(x.exp + lsb),
    ]
    return Operand(sign, mag, g, nan, inf)


def block_value(m: Module, unit) -> Operand:
    """The exact ``X(sa) * X(sb) * sum_i a_i * b_i`` of a whole block on ``unit``'s ports
    (:func:`element_terms` of all ``k`` pairs, then :func:`scaled_value`)."""
    return scaled_value(m, unit, element_terms(m, unit, unit.k))


class MxDotGeneral(MxDot):
    """MX ``DotGeneral``: the :class:`MxDot` of one block pair per ``k / lanes`` valid
    cycles, each block's exact value added to a binary32 accumulator with one rounding
    (``acc = round(acc + Dot_exact)``, the FP8 family's fused :func:`~qrtl.hw.fp8.add_round`);
    on ``last`` the sum is the result and the accumulator restarts at ``+0``. With
    ``lanes < k`` a block arrives in chunks of ``lanes`` element pairs (element 0 first),
    summed exactly in a W-bit register; the scales and ``last`` are taken with the final
    chunk. Golden model: :func:`qrtl.golden.mx.mx_dot_general_stream`.

    Parameters
    ----------
    fmt_a, fmt_b, k, scale
        As :class:`MxDot`.
    lanes : int
        Element pairs per cycle: a power of two dividing ``k`` (default ``k``: a whole
        block per cycle).

    Members
    -------
    valid : In(1)
        This cycle carries a chunk (a block pair when ``lanes = k``).
    last : In(1)
        Its block is the last of the dot product (read on a block's final chunk only).
    a, b : In(lanes * element width)
        Element codes of the chunk, element ``i`` in bits ``i*w .. i*w + w - 1``.
    sa, sb : In(8)
        Scale codes of the block (read on its final chunk only).
    result : Out(32)
        The latest binary32 result (``+0`` after reset), held until the next one.
    result_valid : Out(1)
        High for the one cycle in which a new ``result`` appears (one clock after the
        final chunk of a ``last`` block).
    """

    def __init__(self, fmt_a="e4m3", fmt_b=None, k=32, scale="e8m0", lanes=None):
        try:
            k = operator.index(k)
            check_mx_params(fmt_a, fmt_a if fmt_b is None else fmt_b, k, scale)
            lanes = operator.index(k if lanes is None else lanes)
        except (QrtlError, TypeError) as e:
            reject(self, str(e))
        if not 1 <= lanes <= k or k % lanes or lanes & (lanes - 1):
            reject(self, f"lanes={lanes} is not valid (allowed: a power of two dividing k={k})")
        self.lanes = lanes
        super().__init__(fmt_a, fmt_b, k, scale)

    def _members(self) -> dict:
        n, wa, wb = self.lanes, self.fmt_a.width, self.fmt_b.width
        return {"valid": In(1), "last": In(1), "a": In(n * wa), "b": In(n * wb), "sa": In(8),
                "sb": In(8), "result": Out(32), "result_valid": Out(1)}

    @property
    def latency(self) -> int:
        """Clock cycles from a block's final chunk with ``last`` to its ``result``."""
        return 1

    @property
    def clocked(self) -> bool:
        return True

    def elaborate(self, platform):
        m = Module()
        t = element_terms(m, self, self.lanes)
        final = Signal(name="final")
        chunks = self.k // self.lanes
        if chunks == 1:
            m.d.comb += final.eq(1)
        else:
            # the partial sum and flags of the block's earlier chunks
            w = acc_width(self.fmt_a, self.fmt_b, self.k)
            cnt = Signal(range(chunks), name="chunk")
            part = Signal(signed(w), name="part")
            f_nan, f_pinf, f_ninf = Signal(name="part_nan"), Signal(name="part_pinf"), Signal(name="part_ninf")
            f_negzero = Signal(name="part_negzero")
            first = Signal(name="first")
            m.d.comb += [final.eq(cnt == chunks - 1), first.eq(cnt == 0)]
            acc_t = _Terms(Signal(signed(w), name="block_total"), Signal(name="block_nan"),
                           Signal(name="block_pinf"), Signal(name="block_ninf"),
                           Signal(name="block_negzero"))
            m.d.comb += [
                acc_t.total.eq(Mux(first, 0, part) + t.total),
                acc_t.nan.eq(~first & f_nan | t.nan),
                acc_t.pinf.eq(~first & f_pinf | t.pinf),
                acc_t.ninf.eq(~first & f_ninf | t.ninf),
                acc_t.negzero.eq((first | f_negzero) & t.negzero),
            ]
            with m.If(self.valid):
                m.d.sync += [cnt.eq(Mux(final, 0, cnt + 1)), part.eq(acc_t.total),
                             f_nan.eq(acc_t.nan), f_pinf.eq(acc_t.pinf), f_ninf.eq(acc_t.ninf),
                             f_negzero.eq(acc_t.negzero)]
            t = acc_t
        v = scaled_value(m, self, t)
        acc = Signal(32, name="acc")
        s = add_round(m, v, unpack(m, acc, _FP32, "acc"), _FP32, name="accadd")
        done = self.valid & final
        m.d.sync += self.result_valid.eq(done & self.last)
        with m.If(done):
            m.d.sync += acc.eq(Mux(self.last, 0, s))
            with m.If(self.last):
                m.d.sync += self.result.eq(s)
        return m
