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

from qrtl.golden.quant import INT32_MAX, INT32_MIN, ROUNDINGS, VARIANTS, out_range

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

    Members
    -------
    acc : In(signed(32))
    m0 : In(signed(32))
        The quantized multiplier (Q0.31).
    shift : In(signed(6))
        TFLite's exponent, > 0 left, < 0 right; -31..30 in TFLite, -32 and 31 exact too.
    zp : In(signed(out_width + 1))
        Zero point.
    q : Out(out_width), signed iff ``signed_out``; combinational (latency 0).
    """

    def __init__(self, out_width: int = 8, signed_out: bool = True, variant: str = "double"):
        out_width, signed_out = _check_out(self, out_width, signed_out)
        if variant not in VARIANTS:
            reject(self, f"variant={variant!r} is not valid (allowed: {', '.join(VARIANTS)})")
        self.out_width, self.signed_out, self.variant = out_width, signed_out, variant
        super().__init__({
            "acc": In(signed(32)), "m0": In(signed(32)), "shift": In(signed(6)),
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
            prod = Signal(signed(64))
            m.d.comb += prod.eq(xs * self.m0)
            # SRDHM = floor((ab + 2**30) / 2**31): a rounding shift by 31, ties to +inf.
            high = round_shift(m, prod, 31, "half_up", "hm")
            hsat = Signal(signed(32))
            overflow = (xs == INT32_MIN) & (self.m0 == INT32_MIN)
            m.d.comb += hsat.eq(Mux(overflow, INT32_MAX, high[:32].as_signed()))
            m.d.comb += r.eq(round_shift(m, hsat, right, "half_away", "dp"))
        else:
            total = Signal(6)
            m.d.comb += total.eq(31 - self.shift)  # 0..63 for shift codes -32..31
            prod = Signal(signed(64))
            m.d.comb += prod.eq(self.acc * self.m0)
            m.d.comb += r.eq(round_shift(m, prod, total, "half_up", "sr"))
        lo, hi = out_range(self.out_width, self.signed_out)
        m.d.comb += self.q.eq(clamp(m, r + self.zp, lo, hi, "qc"))
        return m


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
    """Float-scale quantizer: ``q = clamp(rint(f32(f32(acc) * scale)) + zp, qmin, qmax)``.

    Stages: int32 -> binary32 (round to nearest even), binary32 multiply by ``scale``
    (round to nearest even), round to the nearest integer (ties to even), add ``zp``,
    clamp. Bit-exact with :func:`golden.quant.quant_float`, whose IEEE semantics keep
    subnormals; NaN products (NaN scale, Inf x 0) give ``r = 0``, infinite products saturate.

    The hardware exploits the integer output without changing any result: ``|f32(acc)| <=
    2**31``, so a subnormal scale makes ``|p| < 2**-95`` and ``r = 0``; a product below
    ``2**-126`` (IEEE subnormal) also rounds to ``r = 0``; and once ``|p| >= 2**(out_width+1)``
    the clamp saturates whatever ``zp`` is (``|zp| <= 2**out_width``), so the product is
    normalised and rounded like a normal number and the integer conversion only spans
    ``out_width + 2`` bits. Combinational.

    Parameters
    ----------
    out_width : int
        Output width, 2..16.
    signed_out : bool
        Two's complement output (else unsigned).

    Members
    -------
    acc : In(signed(32))
    scale : In(32)
        IEEE 754 binary32 bit pattern.
    zp : In(signed(out_width + 1))
        Zero point.
    q : Out(out_width), signed iff ``signed_out``; combinational (latency 0).
    """

    def __init__(self, out_width: int = 8, signed_out: bool = True):
        out_width, signed_out = _check_out(self, out_width, signed_out)
        self.out_width, self.signed_out = out_width, signed_out
        super().__init__({
            "acc": In(signed(32)), "scale": In(32), "zp": In(signed(out_width + 1)),
            "q": Out(_out_shape(out_width, signed_out)),
        })

    @property
    def latency(self) -> int:
        """Clock cycles from inputs to output: 0 (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        n = self.out_width
        # 1. f = float32(acc), RNE: sign/magnitude, normalise, round to 24 bits.
        neg = self.acc[31]
        mag = Signal(32)
        m.d.comb += mag.eq(Mux(neg, -self.acc, self.acc))
        lz = _leading_zeros(m, mag, "lz")
        norm = Signal(32)
        m.d.comb += norm.eq(mag << lz)
        fr = round_shift(m, Cat(norm, Const(0, 1)), 8, "half_even", "fr")  # 25 bits + sign
        fcarry = fr[24]
        mf = Signal(24)                                  # significand, leading one at bit 23
        m.d.comb += mf.eq(Mux(fcarry, 1 << 23, fr[:24]))
        fzero = mag == 0
        # 2. scale fields.
        ss, es, fs = self.scale[31], self.scale[23:31], self.scale[:23]
        s_nan = (es == 255) & fs.any()
        s_inf = (es == 255) & ~fs.any()
        s_small = es == 0                                # zero or subnormal: r = 0 (see doc)
        # 3. p = f32(f * scale): 24x24 product, normalise by one bit, round to 24 bits.
        prod = Signal(48)
        m.d.comb += prod.eq(mf * Cat(fs, Const(1, 1)))
        top = prod[47]
        pn = Signal(48)
        m.d.comb += pn.eq(Mux(top, prod, prod << 1))     # leading one at bit 47
        pr = round_shift(m, Cat(pn, Const(0, 1)), 24, "half_even", "pr")
        pcarry = pr[24]
        mp = Signal(24)
        m.d.comb += mp.eq(Mux(pcarry, 1 << 23, pr[:24]))
        # p = mp * 2**(ep - 23), ep = (31 - lz + fcarry) + (es - 127) + top + pcarry
        # (Amaranth subtraction is signed, so no intermediate wraps).
        ep = Signal(signed(11))
        m.d.comb += ep.eq(31 - lz + fcarry + es - 127 + top + pcarry)
        # 4. r = rint(p), saturated at 2**(n+1): for -1 <= ep <= n the integer is
        #    mp >> (23 - ep), rounded half to even; the shift is 23-n .. 24.
        sh = Signal(5)
        m.d.comb += sh.eq(23 - ep)
        ri = round_shift(m, Cat(mp, Const(0, 1)), sh, "half_even", "ri")
        sat = 1 << (n + 1)
        rmag = Signal(n + 3)
        with m.If(s_nan | (s_inf & fzero)):
            m.d.comb += rmag.eq(0)
        with m.Elif(s_inf):
            m.d.comb += rmag.eq(sat)
        with m.Elif(fzero | s_small | (ep < -1)):
            m.d.comb += rmag.eq(0)
        with m.Elif(ep > n):
            m.d.comb += rmag.eq(sat)
        with m.Else():
            m.d.comb += rmag.eq(ri)
        r = Signal(signed(n + 4))
        m.d.comb += r.eq(Mux(neg ^ ss, -rmag, rmag))
        # 5. q = clamp(r + zp).
        lo, hi = out_range(n, self.signed_out)
        m.d.comb += self.q.eq(clamp(m, r + self.zp, lo, hi, "qc"))
        return m
