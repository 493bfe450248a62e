"""The quantizer family: int32 accumulator -> low-bit activation, as combinational units.

* :class:`QuantShift`: ``q = clamp(round((acc + bias) / 2**shift))``, the shift-and-round
  operation of Geng et al., "Dataflow-based Joint Quantization for Deep Neural
  Networks" (DCC 2019) (optionally fused with the bias add and a ReLU).
* :class:`QuantFixedPoint`: gemmlowp/TFLite integer requantization
  ``q = clamp(zp + MultiplyByQuantizedMultiplier(acc, m0, shift))``.
* :class:`QuantFloat`: the float-scale pipeline ``q = clamp(rint(f32(f32(acc) * scale)) + zp)``.

All three are combinational (``latency`` 0). They share two building blocks:
:func:`round_shift` (a rounding arithmetic right shift, static or runtime shift amount, four
rounding modes) and :func:`clamp` (saturation to a constant range). The golden models are in
``golden/quant.py``; each unit is bit-exact with its golden function for every input.
"""

from __future__ import annotations

import operator

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qrtl.golden.formats import get_format
from qrtl.golden.quant import (INT32_MAX, INT32_MIN, M0_WIDTH_MAX, M0_WIDTH_MIN, ROUNDINGS,
                               SCALE_FMTS, VARIANTS, out_range)

from .errors import reject

__all__ = ["QuantShift", "QuantFixedPoint", "QuantFloat", "round_shift", "clamp",
           "shift_port_width"]


def shift_port_width(in_width: int) -> int:
    """Bits of the runtime ``shift`` port of quant_shift: just enough for ``in_width - 1``."""
    return max(1, (in_width - 1).bit_length())


def round_shift(m: Module, t, s, rounding: str, name: str):
    """``round(t / 2**s)`` of a signed value ``t``, as a signed Amaranth value.

    ``s`` is a Python int (static shift: slicing only) or an unsigned Amaranth value
    (runtime shift: one arithmetic barrel shifter plus a sticky mask). With
    ``q = floor(t / 2**s)``, ``g`` the first discarded bit and ``st`` the OR of the others,
    the result is ``q + up`` where ``up`` is ``0`` (``floor``), ``g`` (``half_up``),
    ``g & (st | q[0])`` (``half_even``) or ``g & (st | t >= 0)`` (``half_away``): the same
    rule as the golden :func:`golden.quant.round_shift`. The increment is done after the
    shift, on the kept bits only, so no adder spans the discarded bits.
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding={rounding!r} is not one of {', '.join(ROUNDINGS)}")
    t = t.as_signed()
    w = len(t)
    if isinstance(s, int):
        if s == 0:
            return t
        if s >= w:  # everything is discarded: q and g are the sign, st the bits below s-1
            q = Mux(t[w - 1], Const(-1, signed(2)), Const(0, signed(2)))
            g = t[w - 1]
            st = t.any() if s > w else t[:w - 1].any()
        else:
            q = t[s:].as_signed()
            g = t[s - 1]
            st = t[:s - 1].any() if s > 1 else Const(0, 1)
    else:
        # One arithmetic shift of 2t gives both q (its bits 1..) and g (its bit 0).
        v = Signal(signed(w + 1), name=f"{name}_v")
        m.d.comb += v.eq(Cat(Const(0, 1), t).as_signed() >> s)
        q = v[1:].as_signed()
        g = v[0]
        # Sticky: t masked to its bits 0..s-2. The mask spans w+1 bits so that for s > w
        # it covers t's sign bit (the bits above it are copies of the sign).
        ones = Const((1 << (w + 1)) - 1, w + 1)
        low = Signal(w + 1, name=f"{name}_mask")
        m.d.comb += low.eq(~(ones << s))
        st = (Cat(t, t[w - 1]) & (low >> 1)).any()
    if rounding == "floor":
        return q
    if rounding == "half_up":
        up = g
    elif rounding == "half_even":
        up = g & (st | q[0])
    else:
        up = g & (st | ~t[w - 1])
    r = Signal(signed(len(q) + 1), name=f"{name}_r")
    m.d.comb += r.eq(q + up)
    return r


def clamp(m: Module, v, lo: int, hi: int, name: str):
    """``min(max(v, lo), hi)`` of a signed value against constant bounds (saturation)."""
    w = max(Const(lo).shape().width, Const(hi).shape().width, 2) + 1
    out = Signal(signed(w), name=name)
    m.d.comb += out.eq(Mux(v > hi, hi, Mux(v < lo, lo, v)))
    return out


def _check_out(comp, out_width, signed_out):
    out_width = operator.index(out_width)
    if not 2 <= out_width <= 16:
        reject(comp, f"out_width={out_width} is out of range (allowed 2..16)")
    return out_width, bool(signed_out)


def _out_shape(out_width: int, signed_out: bool):
    return signed(out_width) if signed_out else unsigned(out_width)


class QuantShift(wiring.Component):
    """Shift-and-round quantizer: ``q = clamp(round((acc + bias) / 2**shift), qmin, qmax)``.

    ``t = acc + bias`` is computed in ``in_width + 1`` bits (no overflow); ``round`` is
    :func:`round_shift` with ``rounding``; ``[qmin, qmax]`` is the ``out_width``-bit range
    (signed iff ``signed_out``), with ``qmin = 0`` under ``relu``. Combinational.

    Parameters
    ----------
    in_width : int
        Accumulator width, 8..48.
    out_width : int
        Output width, 2..16, at most ``in_width``.
    signed_out : bool
        Two's complement output (else unsigned).
    shift : int
        Static right shift, ``0..in_width-1`` (ignored when ``runtime_shift``).
    runtime_shift : bool
        Take the shift from the ``shift`` input port instead (``ceil(log2(in_width))``
        bits). Every port value gives the exact result, including values above
        ``in_width - 1`` that a port of that width can hold (e.g. 48..63 for in_width=48).
    rounding : str
        ``half_up`` (``floor(t / 2**s + 1/2)``), ``half_even``, ``half_away`` (ties away from
        zero) or ``floor``.
    bias : bool
        Add the ``bias`` input before rounding (the fused "unified module").
    relu : bool
        Lower clamp at 0.

    Members
    -------
    acc : In(signed(in_width))
    bias : In(signed(in_width)), only if ``bias``
    shift : In(unsigned(shift_port_width(in_width))), only if ``runtime_shift``
    q : Out(out_width), signed iff ``signed_out``; combinational (latency 0).
    """

    def __init__(self, in_width: int = 32, out_width: int = 8, signed_out: bool = True,
                 shift: int = 8, runtime_shift: bool = False, rounding: str = "half_up",
                 bias: bool = False, relu: bool = False):
        in_width, shift = operator.index(in_width), operator.index(shift)
        if not 8 <= in_width <= 48:
            reject(self, f"in_width={in_width} is out of range (allowed 8..48)")
        out_width, signed_out = _check_out(self, out_width, signed_out)
        if out_width > in_width:
            reject(self, f"out_width={out_width} exceeds in_width={in_width}")
        if not runtime_shift and not 0 <= shift <= in_width - 1:
            reject(self, f"shift={shift} is out of range (allowed 0..{in_width - 1})")
        if rounding not in ROUNDINGS:
            reject(self, f"rounding={rounding!r} is not valid (allowed: {', '.join(ROUNDINGS)})")
        self.in_width, self.out_width, self.signed_out = in_width, out_width, signed_out
        self.static_shift, self.runtime_shift = shift, bool(runtime_shift)
        self.rounding, self.has_bias, self.relu = rounding, bool(bias), bool(relu)
        members = {"acc": In(signed(in_width))}
        if self.has_bias:
            members["bias"] = In(signed(in_width))
        if self.runtime_shift:
            members["shift"] = In(unsigned(shift_port_width(in_width)))
        members["q"] = Out(_out_shape(out_width, signed_out))
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Clock cycles from inputs to output: 0 (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        t = Signal(signed(self.in_width + 1 if self.has_bias else self.in_width))
        m.d.comb += t.eq(self.acc + self.bias if self.has_bias else self.acc)
        s = self.shift if self.runtime_shift else self.static_shift
        r = round_shift(m, t, s, self.rounding, "rs")
        lo, hi = out_range(self.out_width, self.signed_out, self.relu)
        m.d.comb += self.q.eq(clamp(m, r, lo, hi, "qc"))
        return m


class QuantFixedPoint(wiring.Component):
    """Integer requantization of gemmlowp / TensorFlow Lite:
    ``q = clamp(zp + MultiplyByQuantizedMultiplier(acc, m0, shift), qmin, qmax)``.

    ``variant="double"``: ``RoundingDivideByPOT(SRDHM(sat32(acc << max(shift, 0)), m0),
    max(-shift, 0))`` (the SRDHM product ``acc * m0 / 2**31`` rounds ties toward +inf and
    saturates ``INT32_MIN * INT32_MIN`` to ``INT32_MAX``; the divide rounds ties away from
    zero; the left shift saturates to int32). ``variant="single"``: ``acc * m0 / 2**(31 -
    shift)`` rounded once, ties toward +inf, kept exact. See
    :func:`golden.quant.multiply_by_quantized_multiplier`. Combinational.

    Parameters
    ----------
    out_width : int
        Output width, 2..16.
    signed_out : bool
        Two's complement output (else unsigned).
    variant : str
        ``double`` (gemmlowp, TFLite's default build) or ``single`` (TFLITE_SINGLE_ROUNDING).
    m0_width : int
        Bits of the multiplier, 16..32 (32: TFLite's int32 ``m0``, bit-exact). A narrower
        ``m0`` port is the Q0.(m0_width-1) multiplier, i.e. the int32 ``m0 * 2**(32 -
        m0_width)``: the product is ``acc * m0`` (32 x m0_width bits), its constant-zero low
        bits are wiring, and the rest of the datapath is unchanged (see
        :func:`golden.quant.quant_fixedpoint`; :func:`golden.quant.reduce_multiplier` makes
        such an ``m0`` from TFLite's).

    Members
    -------
    acc : In(signed(32))
    m0 : In(signed(m0_width))
        The quantized multiplier (Q0.(m0_width-1); Q0.31 by default).
    shift : In(signed(6))
        TFLite's exponent, > 0 left, < 0 right; -31..30 in TFLite, -32 and 31 exact too.
    zp : In(signed(out_width + 1))
        Zero point.
    q : Out(out_width), signed iff ``signed_out``; combinational (latency 0).
    """

    def __init__(self, out_width: int = 8, signed_out: bool = True, variant: str = "double",
                 m0_width: int = 32):
        out_width, signed_out = _check_out(self, out_width, signed_out)
        if variant not in VARIANTS:
            reject(self, f"variant={variant!r} is not valid (allowed: {', '.join(VARIANTS)})")
        m0_width = operator.index(m0_width)
        if not M0_WIDTH_MIN <= m0_width <= M0_WIDTH_MAX:
            reject(self, f"m0_width={m0_width} is out of range (allowed {M0_WIDTH_MIN}..{M0_WIDTH_MAX})")
        self.out_width, self.signed_out, self.variant = out_width, signed_out, variant
        self.m0_width = m0_width
        super().__init__({
            "acc": In(signed(32)), "m0": In(signed(m0_width)), "shift": In(signed(6)),
            "zp": In(signed(out_width + 1)), "q": Out(_out_shape(out_width, signed_out)),
        })

    @property
    def latency(self) -> int:
        """Clock cycles from inputs to output: 0 (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        r = Signal(signed(66))
        if self.variant == "double":
            left = Signal(5)
            right = Signal(6)
            m.d.comb += [left.eq(Mux(self.shift > 0, self.shift, 0)),
                         right.eq(Mux(self.shift < 0, -self.shift, 0))]
            shifted = Signal(signed(63))
            m.d.comb += shifted.eq(self.acc << left)
            xs = clamp(m, shifted, INT32_MIN, INT32_MAX, "xs")
            prod = self._product(m, xs)
            # SRDHM = floor((ab + 2**30) / 2**31): a rounding shift by 31, ties to +inf.
            high = round_shift(m, prod, 31, "half_up", "hm")
            hsat = Signal(signed(32))
            overflow = (xs == INT32_MIN) & (self.m0 == -(1 << (self.m0_width - 1)))
            m.d.comb += hsat.eq(Mux(overflow, INT32_MAX, high[:32].as_signed()))
            m.d.comb += r.eq(round_shift(m, hsat, right, "half_away", "dp"))
        else:
            total = Signal(6)
            m.d.comb += total.eq(31 - self.shift)  # 0..63 for shift codes -32..31
            prod = self._product(m, self.acc)
            m.d.comb += r.eq(round_shift(m, prod, total, "half_up", "sr"))
        lo, hi = out_range(self.out_width, self.signed_out)
        m.d.comb += self.q.eq(clamp(m, r + self.zp, lo, hi, "qc"))
        return m

    def _product(self, m: Module, x):
        """``x * m0 * 2**(32 - m0_width)`` as a signed 64-bit value: a 32 x m0_width-bit
        multiplier, the scaling by the power of two only wiring."""
        prod = Signal(signed(64))
        if self.m0_width == 32:
            m.d.comb += prod.eq(x * self.m0)
        else:
            narrow = Signal(signed(32 + self.m0_width))
            m.d.comb += narrow.eq(x * self.m0)
            m.d.comb += prod.eq(Cat(Const(0, 32 - self.m0_width), narrow).as_signed())
        return prod


def _leading_zeros(m: Module, v, name: str):
    """Count of leading zero bits of unsigned ``v`` (``len(v)`` when ``v == 0``)."""
    n = len(v)
    lz = Signal(range(n + 1), name=name)
    m.d.comb += lz.eq(n)
    for i in range(n):  # the highest set bit is assigned last, so it wins
        with m.If(v[i]):
            m.d.comb += lz.eq(n - 1 - i)
    return lz


class QuantFloat(wiring.Component):
    """Float-scale quantizer: ``q = clamp(rint(F(F(acc) * scale)) + zp, qmin, qmax)``, ``F``
    rounding to ``scale_fmt`` (binary32 by default).

    Stages: int32 -> ``scale_fmt`` (round to nearest even; beyond its range +-Inf),
    multiply by ``scale`` (round to nearest even), round to the nearest integer (ties to
    even), add ``zp``, clamp. Bit-exact with :func:`golden.quant.quant_float`, whose IEEE
    semantics keep subnormals; NaN products (NaN scale, Inf x 0) give ``r = 0``, infinite
    products saturate.

    The hardware exploits the integer output without changing any result: ``|F(acc)| <=
    2**31``, so with binary32 or bfloat16 a subnormal scale makes ``|p| < 2**-95`` and
    ``r = 0`` (fp16's subnormal scales, up to ``2**-14``, do matter and are normalised); a
    product below the format's normal range also rounds to ``r = 0``; and once ``|p| >=
    2**(out_width+1)`` the clamp saturates whatever ``zp`` is (``|zp| <= 2**out_width``), so
    the product is normalised and rounded like a normal number and the integer conversion
    only spans ``out_width + 2`` bits. Combinational.

    Parameters
    ----------
    out_width : int
        Output width, 2..16.
    signed_out : bool
        Two's complement output (else unsigned).
    scale_fmt : str
        ``fp32`` (IEEE binary32, the default), ``fp16`` (binary16) or ``bf16`` (bfloat16),
        from the formats table (:data:`golden.formats.FORMATS`): the format of the scale
        port, of the converted accumulator and of the product.

    Members
    -------
    acc : In(signed(32))
    scale : In(width of scale_fmt)
        IEEE bit pattern in ``scale_fmt`` (32 or 16 bits).
    zp : In(signed(out_width + 1))
        Zero point.
    q : Out(out_width), signed iff ``signed_out``; combinational (latency 0).
    """

    def __init__(self, out_width: int = 8, signed_out: bool = True, scale_fmt: str = "fp32"):
        out_width, signed_out = _check_out(self, out_width, signed_out)
        if scale_fmt not in SCALE_FMTS:
            reject(self, f"scale_fmt={scale_fmt!r} is not valid (allowed: {', '.join(SCALE_FMTS)})")
        self.out_width, self.signed_out, self.scale_fmt = out_width, signed_out, scale_fmt
        super().__init__({
            "acc": In(signed(32)), "scale": In(get_format(scale_fmt).width),
            "zp": In(signed(out_width + 1)),
            "q": Out(_out_shape(out_width, signed_out)),
        })

    @property
    def latency(self) -> int:
        """Clock cycles from inputs to output: 0 (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        n = self.out_width
        f = get_format(self.scale_fmt)
        P, E, mb = f.precision, f.ebits, f.mbits
        # 1. f = F(acc), RNE: sign/magnitude, normalise, round to P bits.
        neg = self.acc[31]
        mag = Signal(32)
        m.d.comb += mag.eq(Mux(neg, -self.acc, self.acc))
        lz = _leading_zeros(m, mag, "lz")
        norm = Signal(32)
        m.d.comb += norm.eq(mag << lz)
        fr = round_shift(m, Cat(norm, Const(0, 1)), 32 - P, "half_even", "fr")  # P+1 bits + sign
        fcarry = fr[P]
        mf = Signal(P)                                   # significand, leading one at bit P-1
        m.d.comb += mf.eq(Mux(fcarry, 1 << (P - 1), fr[:P]))
        fzero = mag == 0
        f_inf = None
        if f.emax < 32:                                  # fp16: |acc| >= 65520 is +-Inf
            f_inf = Signal(name="f_inf")
            m.d.comb += f_inf.eq(31 - lz + fcarry > f.emax)
        # 2. scale fields.
        ss, es, fs = self.scale[E + mb], self.scale[mb:mb + E], self.scale[:mb]
        all1 = (1 << E) - 1
        s_nan = (es == all1) & fs.any()
        s_inf = (es == all1) & ~fs.any()
        if f.emin <= -32:
            s_small = es == 0                            # zero or subnormal: r = 0 (see doc)
            s_zero = s_small
            ms = Cat(fs, Const(1, 1))
            es_eff = es
        else:                                            # subnormal scales matter: normalise
            raw = Signal(P)
            m.d.comb += raw.eq(Cat(fs, es.any()))
            lzs = _leading_zeros(m, raw, "lzs")
            ms = Signal(P)
            m.d.comb += ms.eq(raw << lzs)
            s_zero = ~raw.any()
            s_small = s_zero
            es_eff = Signal(signed(E + 2))
            m.d.comb += es_eff.eq(Mux(es.any(), es, 1) - lzs)
        # 3. p = F(f * scale): PxP product, normalise by one bit, round to P bits.
        prod = Signal(2 * P)
        m.d.comb += prod.eq(mf * ms)
        top = prod[2 * P - 1]
        pn = Signal(2 * P)
        m.d.comb += pn.eq(Mux(top, prod, prod << 1))     # leading one at bit 2P-1
        pr = round_shift(m, Cat(pn, Const(0, 1)), P, "half_even", "pr")
        pcarry = pr[P]
        mp = Signal(P)
        m.d.comb += mp.eq(Mux(pcarry, 1 << (P - 1), pr[:P]))
        # p = mp * 2**(ep - (P-1)), ep = (31 - lz + fcarry) + (es - bias) + top + pcarry
        # (Amaranth subtraction is signed, so no intermediate wraps).
        ep = Signal(signed(11))
        m.d.comb += ep.eq(31 - lz + fcarry + es_eff - f.bias + top + pcarry)
        # 4. r = rint(p), saturated at 2**(n+1) (and at the format's Inf): for -1 <= ep <=
        #    hi_ep the integer is (mp << k) >> (P - 1 + k - ep), rounded half to even, with
        #    k zero bits appended when the format has fewer fraction bits than n (bf16).
        hi_ep = min(n, f.emax)
        k = max(0, hi_ep - (P - 1))
        sh = Signal(range(P + k + 1))
        m.d.comb += sh.eq(P - 1 + k - ep)
        mpk = Cat(Const(0, k), mp) if k else mp
        ri = round_shift(m, Cat(mpk, Const(0, 1)), sh, "half_even", "ri")
        sat = 1 << (n + 1)
        rmag = Signal(n + 3)
        nan = s_nan | (s_inf & fzero)
        inf = s_inf
        if f_inf is not None:
            nan = nan | (f_inf & s_zero)
            inf = inf | f_inf
        with m.If(nan):
            m.d.comb += rmag.eq(0)
        with m.Elif(inf):
            m.d.comb += rmag.eq(sat)
        with m.Elif(fzero | s_small | (ep < -1)):
            m.d.comb += rmag.eq(0)
        with m.Elif(ep > hi_ep):
            m.d.comb += rmag.eq(sat)
        with m.Else():
            m.d.comb += rmag.eq(ri)
        r = Signal(signed(n + 4))
        m.d.comb += r.eq(Mux(neg ^ ss, -rmag, rmag))
        # 5. q = clamp(r + zp).
        lo, hi = out_range(n, self.signed_out)
        m.d.comb += self.q.eq(clamp(m, r + self.zp, lo, hi, "qc"))
        return m
