"""Normalization statistics unit ``bn_norm``: mean, ``1/sigma`` (L2 / L1 / L-inf) and the
normalized outputs, in int8 / int16 fixed point or fp16 (Hoffer et al., "Norm matters",
NeurIPS 2018).

The arithmetic is defined, bit for bit, by :mod:`qrtl.golden.norm` (module docstring). The
hardware blocks here are combinational functions adding logic to a ``Module``:

* :func:`recip_div` -- restoring division of a constant by a signal (quotient, remainder);
* :func:`isqrt` -- restoring digit-by-digit integer square root (root, inexact flag);
* :func:`fp_round`, :func:`fp_add`, :func:`fp_mul`, :func:`fp_scale`, :func:`fp_sqrt`,
  :func:`fp_recip` -- fp16 operations on :mod:`qrtl.hw.fp8`'s ``unpack`` / ``multiply`` /
  ``lzc`` / ``shr_sticky``, one rounding each, bit-exact with ``round_pack`` / ``add_round``
  but without their multiplexed shifters (see :func:`fp_round` for why).
"""

from __future__ import annotations

import operator

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qrtl.golden.formats import get_format
from qrtl.golden.norm import (M_MAX, M_MIN, NORM_FORMATS, NORMS, RECIP_BITS, SQRT_SHIFT,
                              elem_width, fp16_constants, inv_constant, inv_frac_bits,
                              inv_width, y_frac_bits)

from .errors import reject
from .fp8 import EXP, Operand, lzc, multiply, shr_sticky, unpack

__all__ = ["BnNorm", "recip_div", "isqrt", "fp_round", "fp_round_exact", "fp_add", "fp_mul",
           "fp_scale", "fp_sqrt", "fp_recip"]

FP16 = get_format("fp16")


# --- integer blocks --------------------------------------------------------------------------

def recip_div(m: Module, num: int, den, name: str):
    """``(q, r) = divmod(num, den)`` for a constant ``num >= 0`` and an unsigned signal ``den``
    (restoring division, one compare-subtract row per quotient bit, MSB first).
    ``den = 0`` gives meaningless values (callers override that case)."""
    wd = len(den)
    nq = max(1, num.bit_length())
    q = Signal(nq, name=f"{name}_q")
    rem = Const(0, wd)
    bits = []
    for i in reversed(range(nq)):
        cur = Signal(wd + 1, name=f"{name}_c{i}")
        m.d.comb += cur.eq(Cat(Const((num >> i) & 1, 1), rem))
        ge = Signal(name=f"{name}_ge{i}")
        m.d.comb += ge.eq(cur >= den)
        nrem = Signal(wd, name=f"{name}_r{i}")
        m.d.comb += nrem.eq(Mux(ge, cur - den, cur))
        rem = nrem
        bits.append(ge)
    m.d.comb += q.eq(Cat(*reversed(bits)))
    return q, rem


def isqrt(m: Module, x, name: str):
    """``(r, inexact)``: ``r = floor(sqrt(x))`` of an unsigned signal, ``inexact = r^2 != x``
    (restoring digit-by-digit square root, two radicand bits per row, MSB first)."""
    w = len(x) + (len(x) & 1)
    n = w // 2
    xx = Cat(x, Const(0, w - len(x)))
    rem = Const(0, 1)
    root = Const(0, 1)
    for i in reversed(range(n)):
        cur = Signal(n + 3, name=f"{name}_c{i}")
        m.d.comb += cur.eq(Cat(xx[2 * i:2 * i + 2], rem))
        trial = Signal(n + 2, name=f"{name}_t{i}")
        m.d.comb += trial.eq(Cat(Const(1, 2), root))
        ge = Signal(name=f"{name}_ge{i}")
        m.d.comb += ge.eq(cur >= trial)
        nrem = Signal(n + 2, name=f"{name}_r{i}")   # rem <= 2 root < 2^(n+1)
        m.d.comb += nrem.eq(Mux(ge, cur - trial, cur))
        nroot = Signal(n - i, name=f"{name}_q{i}")
        m.d.comb += nroot.eq(Cat(ge, root))
        rem, root = nrem, nroot
    r = Signal(n, name=f"{name}_root")
    inexact = Signal(name=f"{name}_inexact")
    m.d.comb += [r.eq(root), inexact.eq(rem.any())]
    return r, inexact


def _rne_shift(m: Module, v, s: int, width: int, name: str):
    """Signed ``v / 2^s`` rounded half to even (``s >= 1``), as a signed ``width``-bit signal
    wide enough not to wrap."""
    q = Signal(signed(width), name=f"{name}_q")
    m.d.comb += q.eq(v >> s)
    r = v[:s]
    half = 1 << (s - 1)
    up = (r > half) | ((r == half) & q[0])
    out = Signal(signed(width), name=f"{name}_rne")
    m.d.comb += out.eq(q + up)
    return out


# --- fp16 blocks --------------------------------------------------------------------------------

def _sel(c, a, b):
    """``c ? a : b`` as AND-OR logic (equal widths), not a multiplexer: the special-case
    selects below stay out of Yosys ``share``'s activation patterns (see :func:`fp_round`)."""
    w = len(a)
    return (a & c.replicate(w)) | (b & (~c).replicate(w))


def fp_round(m: Module, sign, mag, g, f, name: str, saturate: bool = False):
    """Code of ``(-1)^sign * mag * 2^g`` rounded to nearest even in ``f`` (no NaN/Inf in):
    the rounding of :func:`qrtl.golden.fp8.round_pack`, bit for bit.

    The same result as :func:`qrtl.hw.fp8.round_pack`, built so that Yosys's ``share`` pass
    finds nothing to merge: ``mag`` is normalised (:func:`~qrtl.hw.fp8.lzc`, a left shift
    whose result is always used), then shifted right into the subnormal range with a sticky
    bit (:func:`~qrtl.hw.fp8.shr_sticky`), and the special cases are selected by AND-OR logic
    (:func:`_sel`), so no shifter or multiplier reaches the outputs only through multiplexer
    data inputs. Built from ``round_pack`` / ``add_round`` (whose shifters do), the dozens
    of fp16 operations of this unit gave ``share`` 99 (m = 4) to 170 (m = 8) candidate cells
    to compare pairwise by SAT, and synthesis ran for over an hour; now it finds none.
    """
    p, mb = f.precision, f.mbits
    pad = max(0, p + 2 - len(mag))
    mag = Cat(Const(0, pad), mag) if pad else mag
    w = len(mag)
    lz = lzc(m, mag, f"{name}_lz")
    nm = Signal(w, name=f"{name}_nm")
    m.d.comb += nm.eq(mag << lz)
    e = Signal(signed(EXP), name=f"{name}_e")
    m.d.comb += e.eq(g - pad + (w - 1) - lz)        # exponent of the MSB
    under = Signal(signed(EXP), name=f"{name}_under")
    m.d.comb += under.eq(f.emin - e)
    rs = Signal(range(w + 3), name=f"{name}_rs")
    m.d.comb += rs.eq(Mux(under <= 0, 0, Mux(under > w + 2, w + 2, under)))
    t = shr_sticky(m, Cat(Const(0, 2), nm), rs, f"{name}_al")   # w + 2 bits
    top = w + 2
    kept = t[top - p:top]
    guard = t[top - p - 1]
    sticky = t[:top - p - 1].any()
    k2 = Signal(p + 1, name=f"{name}_k2")
    m.d.comb += k2.eq(kept + (guard & (sticky | kept[0])))
    carry, normal = k2[p], k2[mb] | k2[p]
    ef = Signal(signed(EXP), name=f"{name}_ef")
    m.d.comb += ef.eq(Mux(under > 0, f.emin, e) + f.bias + carry)
    mant = k2[:mb]
    over = normal & ((ef > f.max_field) | ((ef == f.max_field) & (mant > f.max_mant)))
    finite = Cat(mant, ef[:f.ebits] & normal.replicate(f.ebits), sign)
    big = Const(f.max_code if saturate else f.inf_code, f.width - 1)
    code = Signal(f.width, name=f"{name}_code")
    m.d.comb += code.eq(_sel(over, Cat(big, sign), finite))
    return code


def fp_round_exact(m: Module, x: Operand, f, name: str, saturate: bool = False):
    """Code of the exact value ``x`` rounded (RNE) to ``f``; NaN -> canonical NaN, Inf kept."""
    code = fp_round(m, x.sign, x.sig, x.exp, f, name, saturate)
    out = Signal(f.width, name=f"{name}_out")
    inf = Cat(Const(f.inf_code, f.width - 1), x.sign)
    m.d.comb += out.eq(_sel(x.nan, Const(f.nan_code, f.width), _sel(x.inf, inf, code)))
    return out


def fp_add(m: Module, x: Operand, y: Operand, f, name: str):
    """Code of ``round(x + y)`` (RNE) of two operands unpacked from ``f`` codes: the result
    of :func:`qrtl.hw.fp8.add_round` (and :func:`qrtl.golden.fp8.fp_add`), bit for bit.

    The larger magnitude (compared as ``(exp, sig)``: unpacked codes keep that order, zero
    and subnormals included) sits with its MSB at the top of a window of
    ``precision + 4`` bits; the other is shifted right with a sticky bit, the two are added
    or subtracted and :func:`fp_round` rounds once (the window argument of ``add_round``).
    Written here, not taken from ``add_round``, for the reason given in :func:`fp_round`.
    """
    p = f.precision
    W = p + 4
    xbig = Signal(name=f"{name}_xbig")
    m.d.comb += xbig.eq((x.exp > y.exp) | ((x.exp == y.exp) & (x.sig >= y.sig)))
    sb, ss = Mux(xbig, x.sign, y.sign), Mux(xbig, y.sign, x.sign)
    big = Signal(p, name=f"{name}_big")
    small = Signal(p, name=f"{name}_small")
    eb = Signal(signed(EXP), name=f"{name}_eb")
    d = Signal(signed(EXP), name=f"{name}_d")
    m.d.comb += [big.eq(Mux(xbig, x.sig, y.sig)), small.eq(Mux(xbig, y.sig, x.sig)),
                 eb.eq(Mux(xbig, x.exp, y.exp)), d.eq(Mux(xbig, x.exp - y.exp, y.exp - x.exp))]
    dist = Signal(range(W + 1), name=f"{name}_dist")
    m.d.comb += dist.eq(Mux(d > W, W, d))
    small_w = shr_sticky(m, Cat(Const(0, W - p), small), dist, f"{name}_al")
    big_w = Cat(Const(0, W - p), big)
    s = Signal(W + 1, name=f"{name}_s")
    sub = sb ^ ss   # big - small as big + ~small + 1, without a multiplexer (see _sel)
    t = Signal(W + 1, name=f"{name}_t")
    m.d.comb += [t.eq(big_w + (small_w ^ sub.replicate(W)) + sub),
                 s.eq(Cat(t[:W], t[W] & ~sub))]
    rsign = Signal(name=f"{name}_rsign")
    m.d.comb += rsign.eq(Mux(s.any(), sb, x.sign & y.sign))
    g = Signal(signed(EXP), name=f"{name}_g")
    m.d.comb += g.eq(eb - (W - p))
    code = fp_round(m, rsign, s, g, f, name)
    nan = x.nan | y.nan | (x.inf & y.inf & (x.sign != y.sign))
    inf = (x.inf | y.inf) & ~nan
    isign = Mux(x.inf, x.sign, y.sign)
    out = Signal(f.width, name=f"{name}_out")
    m.d.comb += out.eq(_sel(nan, Const(f.nan_code, f.width),
                            _sel(inf, Cat(Const(f.inf_code, f.width - 1), isign), code)))
    return out


def fp_mul(m: Module, a: Operand, b: Operand, f, name: str):
    """Code of ``round(a * b)`` (exact product, one rounding)."""
    return fp_round_exact(m, multiply(m, a, b, f"{name}_p"), f, name)


def fp_scale(m: Module, a: Operand, k: int, f, name: str):
    """Code of ``round(a * 2^-k)``."""
    e = Signal(signed(EXP), name=f"{name}_e")
    m.d.comb += e.eq(a.exp - k)
    return fp_round_exact(m, Operand(a.sign, a.sig, e, a.nan, a.inf), f, name)


def fp_sqrt(m: Module, a: Operand, f, name: str):
    """Code of the correctly rounded ``sqrt(a)`` (:func:`qrtl.golden.norm.fp_sqrt`)."""
    p = len(a.sig)
    x = Signal(p + 2 * SQRT_SHIFT + 1, name=f"{name}_x")
    m.d.comb += x.eq(Mux(a.exp[0], a.sig << (2 * SQRT_SHIFT + 1), a.sig << (2 * SQRT_SHIFT)))
    r, inexact = isqrt(m, x, f"{name}_sq")
    g = Signal(signed(EXP), name=f"{name}_g")
    m.d.comb += g.eq((a.exp >> 1) - (SQRT_SHIFT + 1))
    code = fp_round(m, a.sign, Cat(inexact, r), g, f, name)
    nan = a.nan | (a.sign & (a.sig.any() | a.inf))
    out = Signal(f.width, name=f"{name}_out")
    m.d.comb += out.eq(_sel(nan, Const(f.nan_code, f.width),
                            _sel(a.inf, Const(f.inf_code, f.width), code)))
    return out


def fp_recip(m: Module, a: Operand, f, name: str):
    """Code of ``1 / a`` correctly rounded, saturating (:func:`qrtl.golden.norm.fp_recip`)."""
    sig = Signal(len(a.sig), name=f"{name}_den")
    m.d.comb += sig.eq(Mux(a.sig.any(), a.sig, 1))
    q, r = recip_div(m, 1 << RECIP_BITS, sig, f"{name}_div")
    g = Signal(signed(EXP), name=f"{name}_g")
    m.d.comb += g.eq(-a.exp - (RECIP_BITS + 1))
    code = fp_round(m, a.sign, Cat(r.any(), q), g, f, name, saturate=True)
    zero = ~a.sig.any() & ~a.nan & ~a.inf
    out = Signal(f.width, name=f"{name}_out")
    m.d.comb += out.eq(_sel(a.nan, Const(f.nan_code, f.width),
                            _sel(a.inf, Cat(Const(0, f.width - 1), a.sign),
                                 _sel(zero, Cat(Const(f.max_code, f.width - 1), a.sign), code))))
    return out


def _negate(x: Operand) -> Operand:
    return Operand(~x.sign, x.sig, x.exp, x.nan, x.inf)


# --- the unit ---------------------------------------------------------------------------------

class BnNorm(wiring.Component):
    """Per-channel normalization of ``m`` values: ``mu``, ``inv_sigma`` and
    ``y_i = (x_i - mu) * inv_sigma``, for ``norm`` = L2, L1 or L-inf (Hoffer et al. 2018).

    The arithmetic, every rounding and the ``sigma = 0`` case are those of
    :mod:`qrtl.golden.norm` (its module docstring is the specification). In short:

    * int8 / int16: ``mu = rne(sum x / m)``; ``inv_sigma`` unsigned fixed point with
      ``F = 2w`` fraction bits, the floor of the exact value (L2: ``isqrt(floor(m 2^(2F) /
      sum d^2))``; L1 / L-inf: ``floor(K / stat)`` with the rounded constant ``K``), all ones
      when ``sigma = 0``; ``y`` signed ``w``-bit with ``w - 4`` fraction bits, RNE, saturated.
      Hardware: an adder tree, squarers (L2) or absolute values, a restoring divider of the
      constant ``K`` (an integer square root after it for L2), ``m`` multipliers.
    * fp16: every step one IEEE binary16 operation rounded to nearest even (pairwise sums,
      :func:`fp_add`, bit-exact with :func:`qrtl.hw.fp8.add_round`; exact products, roots and quotients rounded once),
      ``1/sigma`` saturating at 65504 (also for ``sigma = 0``).

    Parameters
    ----------
    m : int
        Values per channel, a power of two in 2..64.
    fmt : str
        ``"int8"``, ``"int16"`` or ``"fp16"``.
    norm : str
        ``"l2"``, ``"l1"`` or ``"linf"``.

    Members
    -------
    x : In(m * w)
        The ``m`` element codes (``w`` = 8 for int8, else 16), element ``i`` in bits
        ``w*i .. w*i + w - 1`` (two's complement for the integer formats).
    mu : Out(signed(w)) for int formats, Out(16) for fp16
        The mean.
    inv_sigma : Out(inv_width)
        ``1 / sigma``: unsigned fixed point with ``2w`` fraction bits
        (:func:`qrtl.golden.norm.inv_width` bits), or an fp16 code.
    y : Out(m * w)
        The normalized values, element ``i`` in bits ``w*i ..``: signed fixed point with
        ``w - 4`` fraction bits, or fp16 codes.

    Combinational (``latency`` 0); the registry's generic ``pipeline`` parameter adds output
    registers.
    """

    def __init__(self, m: int = 8, fmt: str = "int8", norm: str = "l2"):
        m = operator.index(m)
        if not M_MIN <= m <= M_MAX or m & (m - 1):
            reject(self, f"m={m} is not valid (allowed: a power of two {M_MIN}..{M_MAX})")
        if fmt not in NORM_FORMATS:
            reject(self, f"fmt={fmt!r} is not valid (allowed: {', '.join(NORM_FORMATS)})")
        if norm not in NORMS:
            reject(self, f"norm={norm!r} is not valid (allowed: {', '.join(NORMS)})")
        self.m, self.fmt, self.norm = m, fmt, norm
        self.w = elem_width(fmt)
        self.inv_width = inv_width(m, fmt, norm)
        mu_shape = 16 if fmt == "fp16" else signed(self.w)
        super().__init__({"x": In(m * self.w), "mu": Out(mu_shape),
                          "inv_sigma": Out(self.inv_width), "y": Out(m * self.w)})

    @property
    def latency(self) -> int:
        """Clock cycles from inputs to outputs (0: combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        if self.fmt == "fp16":
            self._fp16(m)
        else:
            self._int(m)
        return m

    # -- integer formats --
    def _int(self, m: Module):
        n, w, norm = self.m, self.w, self.norm
        k = n.bit_length() - 1
        F, FY = inv_frac_bits(self.fmt), y_frac_bits(self.fmt)
        xs = [self.x[w * i:w * (i + 1)].as_signed() for i in range(n)]
        s = Signal(signed(w + k), name="sum")
        m.d.comb += s.eq(sum(xs))
        mu = _rne_shift(m, s, k, w + 1, "mu")
        m.d.comb += self.mu.eq(mu)
        d = []
        for i, x in enumerate(xs):
            di = Signal(signed(w + 1), name=f"d{i}")
            m.d.comb += di.eq(x - mu)
            d.append(di)
        ad = []
        for i, di in enumerate(d):
            a = Signal(w, name=f"ad{i}")   # |d| <= 2^w - 1
            m.d.comb += a.eq(Mux(di < 0, -di, di))
            ad.append(a)
        K = inv_constant(n, self.fmt, norm)
        if norm == "l2":
            sq = []
            for i, a in enumerate(ad):
                q = Signal(2 * w, name=f"sq{i}")
                m.d.comb += q.eq(a * a)
                sq.append(q)
            stat = Signal(2 * w + k, name="stat")
            m.d.comb += stat.eq(sum(sq))
        elif norm == "l1":
            stat = Signal(w + k, name="stat")
            m.d.comb += stat.eq(sum(ad))
        else:
            level = ad
            while len(level) > 1:
                nxt = []
                for j in range(0, len(level), 2):
                    mx = Signal(w, name=f"max{len(level)}_{j}")
                    m.d.comb += mx.eq(Mux(level[j] >= level[j + 1], level[j], level[j + 1]))
                    nxt.append(mx)
                level = nxt
            stat = level[0]
        q, _ = recip_div(m, K, stat, "div")
        if norm == "l2":
            inv, _ = isqrt(m, q, "rt")
        else:
            inv = q
        zero = ~stat.any()
        iw = self.inv_width
        m.d.comb += self.inv_sigma.eq(_sel(zero, Const((1 << iw) - 1, iw), inv))
        invv = Signal(iw, name="inv_mul")
        m.d.comb += invv.eq(inv & (~zero).replicate(iw))
        lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
        ys = []
        for i, di in enumerate(d):
            p = Signal(signed(w + 1 + self.inv_width), name=f"prod{i}")
            m.d.comb += p.eq(di * invv)
            r = _rne_shift(m, p, F - FY, len(p), f"y{i}")
            yi = Signal(signed(w), name=f"y{i}")
            # saturation as AND-OR logic, not a multiplexer on the product: Yosys's `share`
            # pass would otherwise try to merge the m multipliers pairwise (a SAT problem per
            # pair, minutes of synthesis for nothing: they are all active at once)
            under, over = Signal(name=f"y{i}_under"), Signal(name=f"y{i}_over")
            m.d.comb += [under.eq(r < lo), over.eq(r > hi)]
            keep = ~(under | over)
            m.d.comb += yi.eq((r[:w] & keep.replicate(w)) | (Const(lo & ((1 << w) - 1), w) & under.replicate(w))
                              | (Const(hi, w) & over.replicate(w)))
            ys.append(yi)
        m.d.comb += self.y.eq(Cat(*ys))

    # -- fp16 --
    def _fp16(self, m: Module):
        f, n, norm = FP16, self.m, self.norm
        k = n.bit_length() - 1
        codes = [self.x[16 * i:16 * (i + 1)] for i in range(n)]
        xs = [unpack(m, c, f, f"x{i}") for i, c in enumerate(codes)]

        def tree(ops, name):
            level = ops
            depth = 0
            while len(level) > 1:
                nxt = []
                for j in range(0, len(level), 2):
                    c = fp_add(m, level[j], level[j + 1], f, f"{name}{depth}_{j}")
                    nxt.append(unpack(m, c, f, f"{name}{depth}_{j}u"))
                level = nxt
                depth += 1
            return level[0]

        S = tree(xs, "sum")
        mu = fp_scale(m, S, k, f, "mu")
        m.d.comb += self.mu.eq(mu)
        mu_u = _negate(unpack(m, mu, f, "muu"))
        d = []
        for i, x in enumerate(xs):
            c = fp_add(m, x, mu_u, f, f"d{i}")
            d.append((c, unpack(m, c, f, f"d{i}u")))
        if norm == "l2":
            sq = [unpack(m, fp_mul(m, du, du, f, f"sq{i}"), f, f"sq{i}u")
                  for i, (_, du) in enumerate(d)]
            V = unpack(m, fp_scale(m, tree(sq, "ssq"), k, f, "var"), f, "varu")
            sigma = fp_sqrt(m, V, f, "sqrt")
        else:
            mags = [c[:15] for c, _ in d]
            if norm == "l1":
                A = tree([unpack(m, Cat(a, Const(0, 1)), f, f"abs{i}") for i, a in enumerate(mags)],
                         "sabs")
                stat = unpack(m, fp_scale(m, A, k, f, "mabs"), f, "mabsu")
            else:
                level = mags
                while len(level) > 1:
                    nxt = []
                    for j in range(0, len(level), 2):
                        mx = Signal(15, name=f"max{len(level)}_{j}")
                        m.d.comb += mx.eq(Mux(level[j] >= level[j + 1], level[j], level[j + 1]))
                        nxt.append(mx)
                    level = nxt
                stat = unpack(m, Cat(level[0], Const(0, 1)), f, "maxu")
            const = Const(fp16_constants(n)[norm], 16)
            sigma = fp_mul(m, unpack(m, const, f, "cst"), stat, f, "sigma")
        inv = fp_recip(m, unpack(m, sigma, f, "sigmau"), f, "recip")
        m.d.comb += self.inv_sigma.eq(inv)
        inv_u = unpack(m, inv, f, "invu")
        ys = [fp_mul(m, du, inv_u, f, f"y{i}") for i, (_, du) in enumerate(d)]
        m.d.comb += self.y.eq(Cat(*ys))
