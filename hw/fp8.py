"""FP8 arithmetic units: exact multiplier, fused multiply-accumulate, chunked dot product.

The three units are assembled from the same sub-blocks (functions that add logic to a
``Module`` and return signals), so unpacking, leading-zero counting, alignment with sticky,
rounding and packing exist once:

* :func:`unpack` -- code -> :class:`Operand` (sign, integer significand, LSB exponent, flags)
* :func:`multiply` -- exact product of two operands
* :func:`lzc` -- leading-zero count (priority encoder)
* :func:`shr_sticky` -- right shift with the shifted-out bits ORed into bit 0
* :func:`round_pack` -- normalise, round (RNE or stochastic), detect overflow, pack a code
* :func:`add_round` -- fused ``round(x + y)`` of two operands of any formats
* :func:`pack_exact` -- pack a value known to be representable (the multiplier's output)
* :func:`align_fixed` -- an exact operand as a signed fixed-point integer (``mx_dot``)

Formats are :class:`golden.formats.FPFormat` (the same objects the golden models use) and the
rounding rules are those of :mod:`golden.fp8` (module docstring), bit for bit.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qrtl.golden.formats import ACC_FORMATS, ELEMENT_FORMATS, FP8_FORMATS, FPFormat, IntFormat, ScaleFormat, get_format

from .errors import reject

__all__ = ["Operand", "unpack", "multiply", "lzc", "shr_sticky", "round_pack", "add_round",
           "pack_exact", "align_fixed", "Fp8Mul", "Fp8Mac", "Fp8Dot", "EXP", "MAC_STAGES"]

#: Width of every internal (signed) exponent: binary32's range plus alignment fits easily.
EXP = 12
#: Pipeline cut points of :class:`Fp8Mac`, enabled in this order by ``pipeline = 1, 2, 3``.
MAC_STAGES = ("out", "mul", "add")


@dataclass
class Operand:
    """A value ``(-1)^sign * sig * 2^exp`` with NaN/Inf flags (``sig = 0``: zero, or special)."""

    sign: object
    sig: object
    exp: object
    nan: object
    inf: object


def _sig(name, width, signed_=False):
    return Signal(signed(width) if signed_ else width, name=name)


def unpack(m: Module, code, fmt: FPFormat, name: str) -> Operand:
    """Split a code of ``fmt`` into sign, significand (hidden bit restored), exponent, flags.

    An :class:`~qrtl.golden.formats.IntFormat` code (the MX INT8 element) becomes sign,
    magnitude (``width`` bits: ``-2^(width-1)`` has magnitude ``2^(width-1)``) and the
    constant exponent ``scale_exp``; a :class:`~qrtl.golden.formats.ScaleFormat` code
    (E8M0) sign 0, significand 1 (0 for NaN) and exponent ``E - bias``, as
    :func:`qrtl.golden.fp8.unpack` does.
    """
    f = fmt
    if isinstance(f, ScaleFormat):
        nan = _sig(f"{name}_nan", 1)
        exp = _sig(f"{name}_exp", EXP, True)
        m.d.comb += [nan.eq(code == f.nan_code), exp.eq(code - f.bias)]
        return Operand(Const(0, 1), ~nan, exp, nan, Const(0, 1))
    if isinstance(f, IntFormat):
        sign = code[f.width - 1]
        sig = _sig(f"{name}_sig", f.width)
        exp = _sig(f"{name}_exp", EXP, True)
        m.d.comb += [sig.eq(Mux(sign, -code, code)[:f.width]), exp.eq(f.scale_exp)]
        return Operand(sign, sig, exp, Const(0, 1), Const(0, 1))
    mb = f.mbits
    e, man = code[mb:mb + f.ebits], code[:mb]
    all1 = (1 << f.ebits) - 1
    nan, inf = _sig(f"{name}_nan", 1), _sig(f"{name}_inf", 1)
    if f.nan == "ieee":
        m.d.comb += [nan.eq((e == all1) & man.any()), inf.eq((e == all1) & ~man.any())]
    elif f.nan == "none":
        m.d.comb += [nan.eq(0), inf.eq(0)]
    else:
        m.d.comb += [nan.eq((e == all1) & (man == (1 << mb) - 1)), inf.eq(0)]
    sig = _sig(f"{name}_sig", mb + 1)
    exp = _sig(f"{name}_exp", EXP, True)
    m.d.comb += [
        sig.eq(Mux(nan | inf, 0, Cat(man, e.any()))),
        exp.eq(Mux(e.any(), e, 1) - (f.bias + mb)),
    ]
    return Operand(code[f.width - 1], sig, exp, nan, inf)


def multiply(m: Module, x: Operand, y: Operand, name: str) -> Operand:
    """Exact product: significands multiplied, exponents added; ``Inf * 0`` is NaN."""
    xz, yz = ~x.sig.any() & ~x.nan & ~x.inf, ~y.sig.any() & ~y.nan & ~y.inf
    sig = _sig(f"{name}_sig", len(x.sig) + len(y.sig))
    exp = _sig(f"{name}_exp", EXP, True)
    sign, nan, inf = _sig(f"{name}_sign", 1), _sig(f"{name}_nan", 1), _sig(f"{name}_inf", 1)
    m.d.comb += [
        sig.eq(x.sig * y.sig), exp.eq(x.exp + y.exp), sign.eq(x.sign ^ y.sign),
        nan.eq(x.nan | y.nan | (x.inf & yz) | (xz & y.inf)),
        inf.eq((x.inf | y.inf) & ~nan),
    ]
    return Operand(sign, sig, exp, nan, inf)


def lzc(m: Module, x, name: str):
    """Number of leading zeros of ``x`` (``len(x)`` when ``x == 0``).

    A log-depth tree: ``x`` is padded below with a one (so the count never exceeds
    ``len(x)``) and zeros to a power of two ``P``; each node of two halves ``(zh, ch)``,
    ``(zl, cl)`` (all-zero flag, count) gives ``zh & zl`` and
    ``zh ? 2^k + cl : ch``, i.e. ``Cat(cl, 1)`` or ``Cat(ch, 0)``.
    """
    w = len(x)
    size = 2
    while size < w + 1:
        size *= 2
    v = Cat(Const(0, size - w - 1), Const(1, 1), x)

    def node(bits):
        if len(bits) == 2:
            return ~(bits[0] | bits[1]), ~bits[1]
        half = len(bits) // 2
        zl, cl = node(bits[:half])
        zh, ch = node(bits[half:])
        return zh & zl, Mux(zh, Cat(cl, Const(1, 1)), Cat(ch, Const(0, 1)))

    n = Signal(range(w + 1), name=f"{name}_lz")
    m.d.comb += n.eq(node(v)[1])
    return n


def shr_sticky(m: Module, x, amount, name: str):
    """``(x >> amount) | (bits shifted out != 0)``: the sticky bit jammed into bit 0.

    ``amount`` is unsigned; amounts of ``len(x)`` or more leave only the sticky bit.
    """
    w = len(x)
    ab = max(1, w.bit_length())
    amt = _sig(f"{name}_amt", ab)
    m.d.comb += amt.eq(Mux(amount >= w, w, amount))
    out = _sig(f"{name}_out", w)
    lost = (x & ~(Const((1 << w) - 1, w) << amt)[:w]).any()
    m.d.comb += out.eq((x >> amt) | lost)
    return out


def round_pack(m: Module, sign, mag, g, f: FPFormat, rounding: str, rnd, rbits: int,
               saturate: bool, name: str):
    """Code of ``(-1)^sign * mag * 2^g`` rounded to ``f``, without NaN/Inf inputs.

    ``q = max(floor(log2 mag) + g, emin) - mbits`` is the quantum exponent; ``sh = q - g``
    bits are discarded (left shift when negative). RNE uses guard and sticky; stochastic
    compares the first ``rbits`` discarded bits with ``rnd`` (round up iff they are greater).
    Overflow gives ``+-max`` (``saturate``), ``+-Inf``, or NaN for a format without Inf.
    """
    w, mb, p = len(mag), f.mbits, f.precision
    lz = lzc(m, mag, name)
    e, q, sh = (_sig(f"{name}_{s}", EXP, True) for s in ("e", "q", "sh"))
    m.d.comb += [e.eq(g + (w - 1) - lz), q.eq(Mux(e < f.emin, f.emin, e) - mb), sh.eq(q - g)]
    kept = _sig(f"{name}_kept", p)
    up = _sig(f"{name}_up", 1)
    # Left (exact) when sh <= 0: the result has at most p bits, so at most p - 1 places.
    lamt = _sig(f"{name}_lamt", max(1, p.bit_length()))
    m.d.comb += lamt.eq(Mux(sh < -p, p, -sh))
    kept_l = (mag << lamt)[:p]
    # Right with k extra fraction bits below the kept ones.
    k = rbits if rounding == "stochastic" else 1
    ext = Cat(Const(0, k), mag)
    we = len(ext)
    ramt = _sig(f"{name}_ramt", max(1, we.bit_length()))
    m.d.comb += ramt.eq(Mux(sh > we, we, sh))
    t = _sig(f"{name}_t", we)
    m.d.comb += t.eq(ext >> ramt)
    if rounding == "stochastic":
        rup = t[:k] > rnd
    else:
        below = (ext & ~(Const((1 << we) - 1, we) << ramt)[:we]).any()
        rup = t[0] & (below | t[k])
    m.d.comb += [kept.eq(Mux(sh > 0, t[k:k + p], kept_l)), up.eq((sh > 0) & rup)]
    k2 = _sig(f"{name}_k2", p + 1)
    m.d.comb += k2.eq(kept + up)
    carry, normal = k2[p], k2[mb] | k2[p]
    ef = _sig(f"{name}_ef", EXP, True)
    m.d.comb += ef.eq(q + (mb + f.bias) + carry)
    mant = k2[:mb]
    over = normal & ((ef > f.max_field) | ((ef == f.max_field) & (mant > f.max_mant)))
    code = _sig(f"{name}_code", f.width)
    finite = Cat(mant, Mux(normal, ef[:f.ebits], 0), sign)
    if saturate:
        ovf = Const(f.max_code, f.width - 1)
        m.d.comb += code.eq(Mux(over, Cat(ovf, sign), finite))
    elif f.has_inf:
        m.d.comb += code.eq(Mux(over, Cat(Const(f.inf_code, f.width - 1), sign), finite))
    else:
        m.d.comb += code.eq(Mux(over, f.nan_code, finite))
    return code


def align_fixed(m: Module, x: Operand, lsb: int, width: int, max_shift: int, name: str):
    """``x`` as a signed ``width``-bit fixed-point integer with LSB weight ``2^lsb``:
    ``(-1)^sign * (sig << (exp - lsb))``, exact. The caller guarantees ``0 <= exp - lsb <=
    max_shift`` and that the value fits (NaN/Inf operands have ``sig = 0``, giving 0)."""
    amt = _sig(f"{name}_amt", max(1, max_shift.bit_length()))
    mag = _sig(f"{name}_mag", width)
    out = _sig(f"{name}_fx", width, True)
    m.d.comb += [amt.eq((x.exp - lsb)[:len(amt)]), mag.eq(x.sig << amt),
                 out.eq(Mux(x.sign, -mag, mag))]
    return out


def _normalise(m: Module, x: Operand, width: int, name: str):
    """``(nsig, e)``: ``x.sig`` shifted so its MSB is bit ``width - 1``, and its MSB exponent."""
    lz = lzc(m, x.sig, name)
    pad = width - len(x.sig)
    n = _sig(f"{name}_n", width)
    e = _sig(f"{name}_e", EXP, True)
    m.d.comb += [n.eq((x.sig << lz)[:len(x.sig)] << pad),
                 e.eq(x.exp + (len(x.sig) - 1) - lz)]
    return n, e


def _register(m: Module, values, on: bool, name: str):
    """The same values, through one clocked register stage when ``on``."""
    if not on:
        return values
    out = []
    for i, v in enumerate(values):
        r = Signal.like(v, name=f"{name}_r{i}") if isinstance(v, Signal) else Signal(len(v), name=f"{name}_r{i}")
        m.d.sync += r.eq(v)
        out.append(r)
    return out


def add_round(m: Module, x: Operand, y: Operand, f: FPFormat, rounding: str = "rne", rnd=None,
              rbits: int = 16, saturate: bool = False, name: str = "add", cut: bool = False):
    """Code of ``round(x + y)`` in ``f``: exact alignment in a window, one rounding.

    Window of ``W = max(px, py, p_out + k) + 3`` bits (``k = rbits`` for stochastic, 1 for
    RNE): the larger operand's MSB at bit ``W - 1``, the other shifted right with the
    shifted-out bits jammed into bit 0 (:func:`shr_sticky`). The jammed and the exact sums
    lie in the same open interval ``(2j, 2j + 2)`` and, when anything is shifted out, the sum
    keeps its MSB at bit ``W - 2`` or above, so rounding discards at least ``k + 2`` bits and
    sees the exact guard/sticky or first ``rbits`` bits. ``cut`` registers the aligned sum
    (a pipeline stage before normalisation and rounding).
    """
    p = max(len(x.sig), len(y.sig))
    k = rbits if rounding == "stochastic" else 1
    w = max(p, f.precision + k) + 3
    nx, ex = _normalise(m, x, p, f"{name}_x")
    ny, ey = _normalise(m, y, p, f"{name}_y")
    zx, zy = ~x.sig.any(), ~y.sig.any()
    xbig = _sig(f"{name}_xbig", 1)
    m.d.comb += xbig.eq(zy | (~zx & (ex >= ey)))
    nb, ns = Mux(xbig, nx, ny), Mux(xbig, ny, nx)
    eb, es = Mux(xbig, ex, ey), Mux(xbig, ey, ex)
    sb, ss = Mux(xbig, x.sign, y.sign), Mux(xbig, y.sign, x.sign)
    d = _sig(f"{name}_d", EXP, True)
    m.d.comb += d.eq(eb - es)
    dist = _sig(f"{name}_dist", max(1, (w + 1).bit_length()))
    m.d.comb += dist.eq(Mux(zx | zy | (d > w), w, d))
    big_w = _sig(f"{name}_bigw", w)
    m.d.comb += big_w.eq(nb << (w - p))
    small_w = shr_sticky(m, (ns << (w - p))[:w], dist, f"{name}_al")
    s = _sig(f"{name}_s", w + 2, True)
    m.d.comb += s.eq(Mux(sb ^ ss, big_w - small_w, big_w + small_w))
    mag = _sig(f"{name}_mag", w + 1)
    rsign = _sig(f"{name}_rsign", 1)
    g = _sig(f"{name}_g", EXP, True)
    m.d.comb += [
        mag.eq(Mux(s < 0, -s, s)),
        rsign.eq(Mux(s == 0, x.sign & y.sign, sb ^ (s < 0))),
        g.eq(eb - (w - 1)),
    ]
    nan = x.nan | y.nan | (x.inf & y.inf & (x.sign != y.sign))
    inf = (x.inf | y.inf) & ~nan
    isign = Mux(x.inf, x.sign, y.sign)
    fl = _sig(f"{name}_fl", 3)
    m.d.comb += fl.eq(Cat(nan, inf, isign))
    vals = [rsign, mag, g, fl] + ([rnd] if rnd is not None else [])
    vals = _register(m, vals, cut, f"{name}_cut")
    rsign, mag, g, fl = vals[:4]
    rnd = vals[4] if rnd is not None else None
    code = round_pack(m, rsign, mag, g, f, rounding, rnd, rbits, saturate, f"{name}_rp")
    out = _sig(f"{name}_out", f.width)
    nan, inf, isign = fl[0], fl[1], fl[2]
    special_inf = Cat(Const(f.inf_code, f.width - 1), isign) if f.has_inf else Const(f.nan_code, f.width)
    m.d.comb += out.eq(Mux(nan | (inf & (not f.has_inf)), f.nan_code,
                           Mux(inf, special_inf, code)))
    return out


def pack_exact(m: Module, x: Operand, f: FPFormat, name: str):
    """Code of ``x`` in ``f`` when ``x`` is known to be a normal value of ``f`` or zero."""
    p = len(x.sig)
    n, e = _normalise(m, x, p, name)
    mant = Cat(Const(0, f.mbits - (p - 1)), n[:p - 1]) if f.mbits >= p - 1 else n[p - 1 - f.mbits:p - 1]
    out = _sig(f"{name}_out", f.width)
    zero = ~x.sig.any()
    ef = (e + f.bias)[:f.ebits]
    finite = Cat(Mux(zero, 0, mant), Mux(zero, 0, ef), x.sign)
    inf = Cat(Const(f.inf_code, f.width - 1), x.sign)
    m.d.comb += out.eq(Mux(x.nan, f.nan_code, Mux(x.inf, inf, finite)))
    return out


def _fmt_arg(obj, value, allowed, what):
    name = value.name if isinstance(value, FPFormat) else str(value)
    if name not in allowed:
        reject(obj, f"{what}={name!r} is not valid (allowed: {', '.join(allowed)})")
    return get_format(name)


class Fp8Mul(wiring.Component):
    """Exact minifloat multiplier: ``p = a * b`` as an IEEE binary32 pattern (no rounding
    needed).

    Parameters
    ----------
    fmt : str
        ``"e4m3"`` (default) or ``"e5m2"`` (OCP FP8), ``"e3m2"``, ``"e2m3"`` (MX FP6) or
        ``"e2m1"`` (MX FP4).

    Members
    -------
    a, b : In(width of fmt)
        Codes of ``fmt`` (8, 6 or 4 bits).
    p : Out(32)
        binary32 code of the exact product; NaN in or ``Inf * 0`` -> ``0x7FC00000``.
        Combinational (latency 0).
    """

    def __init__(self, fmt: str = "e4m3"):
        self.fmt = _fmt_arg(self, fmt, ELEMENT_FORMATS, "fmt")
        w = self.fmt.width
        super().__init__({"a": In(w), "b": In(w), "p": Out(32)})

    @property
    def latency(self) -> int:
        return 0

    def elaborate(self, platform):
        m = Module()
        x, y = unpack(m, self.a, self.fmt, "a"), unpack(m, self.b, self.fmt, "b")
        prod = multiply(m, x, y, "p")
        m.d.comb += self.p.eq(pack_exact(m, prod, get_format("fp32"), "pk"))
        return m


class Fp8Mac(wiring.Component):
    """Fused FP8 multiply-accumulate ``acc_out = round(acc_in + a * b)`` (one rounding).

    Parameters
    ----------
    fmt : str
        Input format: ``"e4m3"`` (default), ``"e5m2"``, ``"e3m2"``, ``"e2m3"`` or ``"e2m1"``.
    acc : str
        Accumulator format: ``"fp16"``, ``"bf16"``, ``"e6m9"`` or ``"fp32"``.
    rounding : str
        ``"rne"`` or ``"stochastic"`` (round up iff the first ``rbits`` discarded bits of the
        exact sum, as an unsigned integer, exceed ``rnd``; lower bits ignored).
    rbits : int
        Width of ``rnd`` (1..32).
    saturate : bool
        Finite overflow gives ``+-max`` instead of ``+-Inf``.
    pipeline : int
        Register stages 0..3, cut in the order of :data:`MAC_STAGES`: outputs, after the
        multiplier, after the aligned addition.

    Members
    -------
    a, b : In(width of fmt)
        Codes of ``fmt``.
    acc_in : In(width of acc)
        Code of ``acc``.
    rnd : In(rbits), only with stochastic rounding
        Uniform random bits.
    acc_out : Out(width of acc)
        ``latency = pipeline`` cycles after the inputs.
    """

    def __init__(self, fmt="e4m3", acc="fp16", rounding="rne", rbits=16, saturate=False,
                 pipeline=0):
        self.fmt = _fmt_arg(self, fmt, ELEMENT_FORMATS, "fmt")
        self.acc = _fmt_arg(self, acc, ACC_FORMATS, "acc")
        if rounding not in ("rne", "stochastic"):
            reject(self, f"rounding={rounding!r} is not valid (allowed: rne, stochastic)")
        rbits, pipeline = operator.index(rbits), operator.index(pipeline)
        if not 1 <= rbits <= 32:
            reject(self, f"rbits={rbits} is out of range (allowed 1..32)")
        if not 0 <= pipeline <= len(MAC_STAGES):
            reject(self, f"pipeline={pipeline} is out of range (allowed 0..{len(MAC_STAGES)})")
        self.rounding, self.rbits, self.saturate, self.pipeline = rounding, rbits, bool(saturate), pipeline
        w = self.fmt.width
        members = {"a": In(w), "b": In(w), "acc_in": In(self.acc.width)}
        if rounding == "stochastic":
            members["rnd"] = In(rbits)
        members["acc_out"] = Out(self.acc.width)
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Clock cycles from inputs to ``acc_out`` (= ``pipeline``)."""
        return self.pipeline

    def _cut(self, stage: str) -> bool:
        return stage in MAC_STAGES[:self.pipeline]

    def elaborate(self, platform):
        m = Module()
        x, y = unpack(m, self.a, self.fmt, "a"), unpack(m, self.b, self.fmt, "b")
        c = unpack(m, self.acc_in, self.acc, "c")
        prod = multiply(m, x, y, "p")
        rnd = self.rnd if self.rounding == "stochastic" else None
        if self._cut("mul"):
            vals = [prod.sign, prod.sig, prod.exp, prod.nan, prod.inf,
                    c.sign, c.sig, c.exp, c.nan, c.inf] + ([rnd] if rnd is not None else [])
            vals = _register(m, vals, True, "mulcut")
            prod, c = Operand(*vals[:5]), Operand(*vals[5:10])
            rnd = vals[10] if rnd is not None else None
        out = add_round(m, prod, c, self.acc, self.rounding, rnd, self.rbits, self.saturate,
                        "mac", cut=self._cut("add"))
        (out,) = _register(m, [out], self._cut("out"), "outcut")
        m.d.comb += self.acc_out.eq(out)
        return m


class Fp8Dot(wiring.Component):
    """Clocked chunk-based FP8 dot-product engine (one dot product per ``last``).

    Each valid cycle takes ``lanes`` products. They enter the chunk accumulator ``c``
    (format ``acc``) one after the other, lane 0 first, each by a fused MAC
    (``c = round(c + a_i * b_i)``, RNE or stochastic with ``rnd`` lane ``i``). When
    ``chunk`` products have entered ``c``, or on ``last``, ``o = round_rne(o + c)`` (format
    ``outer``) and ``c = +0``. On ``last``, ``o`` is the result and restarts at ``+0``.
    ``valid = 0`` leaves every register unchanged (except ``result_valid``, which drops).

    Parameters
    ----------
    fmt, acc, outer : str
        Input, chunk-accumulator and outer-accumulator formats.
    chunk : int
        Products per chunk, a multiple of ``lanes`` (1..65536).
    lanes : int
        Products per cycle, 1..8.
    rounding, rbits : str, int
        Rounding of the chunk accumulator (the outer adder always rounds to nearest even).

    Members
    -------
    valid : In(1)
        This cycle carries ``lanes`` products.
    last : In(1)
        This is the final cycle of the dot product (ignored when ``valid = 0``).
    a, b : In(8 * lanes)
        Codes of ``fmt``, lane ``i`` in bits ``8i .. 8i+7``.
    rnd : In(rbits * lanes), only with stochastic rounding
        Random bits, lane ``i`` in bits ``rbits*i ..``.
    result : Out(width of outer)
        The latest dot product (``+0`` after reset); held until the next one.
    result_valid : Out(1)
        High for the one cycle in which a new ``result`` appears (one clock after ``last``).
    """

    def __init__(self, fmt="e4m3", acc="fp16", chunk=64, outer="fp32", lanes=1, rounding="rne",
                 rbits=16):
        self.fmt = _fmt_arg(self, fmt, FP8_FORMATS, "fmt")
        self.acc = _fmt_arg(self, acc, ACC_FORMATS, "acc")
        self.outer = _fmt_arg(self, outer, ACC_FORMATS, "outer")
        chunk, lanes, rbits = operator.index(chunk), operator.index(lanes), operator.index(rbits)
        if not 1 <= lanes <= 8:
            reject(self, f"lanes={lanes} is out of range (allowed 1..8)")
        if not 1 <= chunk <= 65536 or chunk % lanes:
            reject(self, f"chunk={chunk} must be a multiple of lanes={lanes} in 1..65536")
        if rounding not in ("rne", "stochastic"):
            reject(self, f"rounding={rounding!r} is not valid (allowed: rne, stochastic)")
        if not 1 <= rbits <= 32:
            reject(self, f"rbits={rbits} is out of range (allowed 1..32)")
        self.chunk, self.lanes, self.rounding, self.rbits = chunk, lanes, rounding, rbits
        members = {"valid": In(1), "last": In(1), "a": In(8 * lanes), "b": In(8 * lanes)}
        if rounding == "stochastic":
            members["rnd"] = In(rbits * lanes)
        members["result"] = Out(self.outer.width)
        members["result_valid"] = Out(1)
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Clock cycles from a ``last`` input to its ``result`` (registered outputs)."""
        return 1

    @property
    def clocked(self) -> bool:
        return True

    def elaborate(self, platform):
        m = Module()
        c = Signal(self.acc.width)
        o = Signal(self.outer.width)
        count = Signal(range(self.chunk + 1))
        cur = c
        for i in range(self.lanes):
            x = unpack(m, self.a[8 * i:8 * i + 8], self.fmt, f"a{i}")
            y = unpack(m, self.b[8 * i:8 * i + 8], self.fmt, f"b{i}")
            acc = unpack(m, cur, self.acc, f"c{i}")
            rnd = self.rnd[self.rbits * i:self.rbits * (i + 1)] if self.rounding == "stochastic" else None
            prod = multiply(m, x, y, f"p{i}")
            cur = add_round(m, prod, acc, self.acc, self.rounding, rnd, self.rbits, False, f"mac{i}")
        oc = unpack(m, cur, self.acc, "oc")
        oo = unpack(m, o, self.outer, "oo")
        o1 = add_round(m, oc, oo, self.outer, "rne", None, 16, False, "outer")
        nxt = Signal(range(self.chunk + self.lanes + 1))
        m.d.comb += nxt.eq(count + self.lanes)
        flush = self.last | (nxt == self.chunk)
        m.d.sync += self.result_valid.eq(self.valid & self.last)
        with m.If(self.valid):
            with m.If(flush):
                m.d.sync += [c.eq(0), count.eq(0), o.eq(Mux(self.last, 0, o1))]
            with m.Else():
                m.d.sync += [c.eq(cur), count.eq(nxt)]
            with m.If(self.last):
                m.d.sync += self.result.eq(o1)
        return m
