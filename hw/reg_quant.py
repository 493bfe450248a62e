"""Registry entries of the quantizer family: ``quant_shift``, ``quant_fixedpoint``,
``quant_float`` (hardware in ``hw/quant.py``, golden models in ``golden/quant.py``)."""

from __future__ import annotations

import numpy as np

from qrtl.golden import quant as gq
from qrtl.golden.bits import random_codes, wrap

from qrtl.golden.errors import QrtlError
from qrtl.golden.formats import get_format
from qrtl.golden.params import ChoiceParam, IntParam
from .quant import QuantFixedPoint, QuantFloat, QuantShift, shift_port_width
from .registry import UnitSpec, register, register_stream

__all__ = ["shift_ties", "shift_corners", "fixedpoint_corners", "float_corners", "SCALE_EDGES"]

I32_EDGES = np.array([gq.INT32_MIN, gq.INT32_MIN + 1, -(1 << 30), -2, -1, 0, 1, 2, 1 << 30,
                      gq.INT32_MAX - 1, gq.INT32_MAX], np.int64)


def _cross(**cols) -> dict:
    """Every combination of the given value lists (a Cartesian product), as port arrays."""
    grids = np.meshgrid(*[np.asarray(v, np.int64) for v in cols.values()], indexing="ij")
    return {k: g.ravel() for k, g in zip(cols, grids)}


def _cat(*parts) -> dict:
    return {k: np.concatenate([np.asarray(p[k], np.int64) for p in parts]) for k in parts[0]}


def _wrap(v, width):
    """Signed values reduced to a ``width``-bit port (zero points beyond a narrow port)."""
    return wrap(np.asarray(v, np.int64), width, True)


# --- quant_shift ---------------------------------------------------------------------

def _shift_golden(p, x):
    shift = x["shift"] if p["runtime_shift"] else p["shift"]
    return {"q": gq.quant_shift(x["acc"], shift, in_width=p["in_width"],
                                out_width=p["out_width"], signed_out=bool(p["signed_out"]),
                                rounding=p["rounding"], bias=x.get("bias") if p["bias"] else None,
                                relu=bool(p["relu"]))}


def _shift_stimulus(p, n, rng):
    x = {"acc": random_codes(rng, n, p["in_width"], True)}
    if p["bias"]:
        x["bias"] = random_codes(rng, n, p["in_width"], True)
    if p["runtime_shift"]:
        x["shift"] = random_codes(rng, n, shift_port_width(p["in_width"]), False)
    return x


def shift_ties(s: int, in_width: int, out_width: int) -> np.ndarray:
    """Values ``t`` that are exact ties at shift ``s`` (``t = k * 2**s + 2**(s-1)``, odd and
    even ``k``) and their neighbours ``t +- 1``, for ``k`` around 0 and around the signed and
    unsigned saturation boundaries of ``out_width``, clipped to ``in_width`` bits."""
    ks = [0, 1, 2, 3, -1, -2, -3]
    for b in ((1 << (out_width - 1)), (1 << out_width)):
        ks += [b - 2, b - 1, b, b + 1, -b - 1, -b, -b + 1]
    k = np.array(ks, np.int64)
    half = (1 << (s - 1)) if s else 0
    t = (k << s) + half
    t = np.concatenate([t, t - 1, t + 1, k << s])
    lo, hi = -(1 << (in_width - 1)), (1 << (in_width - 1)) - 1
    return np.unique(np.clip(t, lo, hi))


def shift_corners(p) -> dict:
    """INT_MIN/MAX, ties at the shift(s) and saturation boundaries, bias overflow edges."""
    w = p["in_width"]
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    shifts = range(1 << shift_port_width(w)) if p["runtime_shift"] else [p["shift"]]
    parts = []
    for s in shifts:
        acc = np.concatenate([shift_ties(min(s, w - 1), w, p["out_width"]), [lo, lo + 1, hi - 1, hi]])
        x = {"acc": acc}
        if p["bias"]:
            # acc + bias both split around the tie points, plus the overflowing extremes
            x = _cross(acc=acc, bias=[0, 1, -1, lo, hi])
        if p["runtime_shift"]:
            x["shift"] = np.full(len(x["acc"]), s, np.int64)
        parts.append(x)
    x = _cat(*parts)
    if p["runtime_shift"]:
        x["shift"] = x["shift"].astype(np.uint64)  # an unsigned port travels as uint64
    return x


def _shift_exhaustive(p):
    """Every input when the input space is at most 2**20 points (e.g. in_width=16 with a
    runtime shift: 2**16 accumulators x 16 shifts)."""
    w = p["in_width"]
    bits = w * (2 if p["bias"] else 1) + (shift_port_width(w) if p["runtime_shift"] else 0)
    if bits > 20:
        return None
    cols = {"acc": np.arange(-(1 << (w - 1)), 1 << (w - 1))}
    if p["bias"]:
        cols["bias"] = cols["acc"]
    if p["runtime_shift"]:
        cols["shift"] = np.arange(1 << shift_port_width(w))
    x = _cross(**cols)
    if "shift" in x:
        x["shift"] = x["shift"].astype(np.uint64)
    return x


def _shift_check(p):
    if p["out_width"] > p["in_width"]:
        raise QrtlError(f"parameter out_width={p['out_width']} exceeds in_width={p['in_width']} "
                        f"(allowed 2..{p['in_width']})")


register(UnitSpec(
    name="quant_shift",
    summary="shift-and-round quantizer q = clamp(round((acc [+ bias]) / 2^shift)), optional ReLU",
    params=(
        IntParam("in_width", 32, 8, 48, "accumulator width"),
        IntParam("out_width", 8, 2, 16, "output width (<= in_width)"),
        IntParam("signed_out", 1, 0, 1, "signed output (else unsigned)"),
        IntParam("shift", 8, 0, lambda r: r["in_width"] - 1,
                 "static right shift (ignored if runtime_shift)"),
        IntParam("runtime_shift", 0, 0, 1, "take the shift from an input port"),
        ChoiceParam("rounding", "half_up", gq.ROUNDINGS,
                    "half_up = floor(t/2^s + 1/2); half_even; half_away (ties away from 0); floor"),
        IntParam("bias", 0, 0, 1, "add a bias input before rounding (fused module)"),
        IntParam("relu", 0, 0, 1, "lower clamp at 0"),
    ),
    build=lambda p: QuantShift(p["in_width"], p["out_width"], bool(p["signed_out"]), p["shift"],
                               bool(p["runtime_shift"]), p["rounding"], bool(p["bias"]),
                               bool(p["relu"])),
    golden=_shift_golden,
    stimulus=_shift_stimulus,
    corners=shift_corners,
    exhaustive=_shift_exhaustive,
    check=_shift_check,
))


# --- quant_fixedpoint -----------------------------------------------------------------

def _zp_edges(p):
    n = p["out_width"]
    return np.array([-(1 << n), -(1 << n) + 1, -1, 0, 1, (1 << (n - 1)) - 1, (1 << n) - 1],
                    np.int64)


def _fixedpoint_golden(p, x):
    return {"q": gq.quant_fixedpoint(x["acc"], x["m0"], x["shift"], x["zp"],
                                     out_width=p["out_width"], signed_out=bool(p["signed_out"]),
                                     variant=p["variant"], m0_width=p["m0_width"])}


def _fixedpoint_stimulus(p, n, rng):
    return {"acc": random_codes(rng, n, 32, True), "m0": random_codes(rng, n, p["m0_width"], True),
            "shift": random_codes(rng, n, 6, True),
            "zp": random_codes(rng, n, p["out_width"] + 1, True)}


def fixedpoint_corners(p) -> dict:
    """INT32 extremes x extreme multipliers x every shift code x extreme zero points; the
    SRDHM ties (``acc * m0 = +-2**30 (mod 2**31)``) and the INT32_MIN x INT32_MIN
    saturation; RoundingDivideByPOT ties at every right shift; the left-shift saturation
    boundary ``+-2**(31 - s)`` at every left shift; outputs at the clamp boundaries.

    With ``m0_width = w < 32`` the multipliers are the same values at ``w`` bits (``m0 >>
    (32 - w)``, so 2**30 becomes 2**(w-2) and still halves), and the SRDHM ties are those
    of the narrow product, ``acc * m0 = +-2**(w-2) (mod 2**(w-1))``."""
    w = p.get("m0_width", 32)
    d = 32 - w
    shifts = np.arange(-32, 32)
    m0s = np.array([gq.INT32_MIN, -(1 << 30), 0, 1 << d, 1 << 30, 1202590843, gq.INT32_MAX],
                   np.int64) >> d
    parts = [_cross(acc=I32_EDGES, m0=m0s, shift=shifts, zp=_zp_edges(p)[[0, 3, 6]])]
    # SRDHM ties: a * b = +-2**(w-2) exactly, and neighbours (b is the w-bit multiplier).
    k = np.arange(0, w - 1)
    a = np.concatenate([1 << k, -(1 << k), (1 << k) + 1, 3 << np.minimum(k, w - 3)])
    b = np.concatenate([1 << (w - 2 - k), 1 << (w - 2 - k), 1 << (w - 2 - k),
                        1 << (w - 2 - np.minimum(k, w - 3))])
    parts.append({"acc": np.concatenate([a, b]), "m0": np.concatenate([b, a]),
                  "shift": np.zeros(2 * len(a), np.int64), "zp": np.zeros(2 * len(a), np.int64)})
    # RoundingDivideByPOT ties: m0 = 2**30 makes SRDHM(x, m0) = x/2 exactly for even x, so
    # x = (2j + 1) * 2**e gives the tie (2j + 1) / 2 at right shift e.
    rows = []
    for e in range(0, 33):
        j = np.array([0, 1, 2, -1, -2, -3, 126, 127, -128, -129, 255], np.int64)
        x = np.clip(((2 * j + 1) << e), gq.INT32_MIN, gq.INT32_MAX)
        x = np.concatenate([x, -x, x + 2, x - 2])
        rows.append(_cross(acc=np.clip(x, gq.INT32_MIN, gq.INT32_MAX), m0=[1 << (w - 2)],
                           shift=[-e], zp=[0, 5]))
    parts += rows
    # Left-shift saturation boundaries.
    for s in range(0, 32):
        b = 1 << (31 - s)
        x = np.clip(np.array([b - 1, b, -b, -b - 1, b + 1, -b + 1]), gq.INT32_MIN, gq.INT32_MAX)
        parts.append(_cross(acc=x, m0=np.array([1 << 30, gq.INT32_MAX, gq.INT32_MIN,
                                                -(1 << 30)]) >> d, shift=[s], zp=[0]))
    # Clamp boundaries: acc * 2**30 / 2**31 = acc / 2 -> outputs around qmin/qmax +- zp.
    lo, hi = gq.out_range(p["out_width"], bool(p["signed_out"]))
    v = np.array([lo - 1, lo, lo + 1, hi - 1, hi, hi + 1], np.int64)
    for zp in _zp_edges(p):
        parts.append(_cross(acc=2 * (v - zp), m0=[1 << (w - 2)], shift=[0], zp=[zp]))
    x = _cat(*parts)
    x["zp"] = _wrap(x["zp"], p["out_width"] + 1)
    return x


register(UnitSpec(
    name="quant_fixedpoint",
    summary="gemmlowp/TFLite requantization q = clamp(zp + MultiplyByQuantizedMultiplier(acc, m0, shift))",
    params=(
        IntParam("out_width", 8, 2, 16, "output width"),
        IntParam("signed_out", 1, 0, 1, "signed output (else unsigned)"),
        ChoiceParam("variant", "double", gq.VARIANTS,
                    "double = gemmlowp SRDHM + RoundingDivideByPOT; single = TFLITE_SINGLE_ROUNDING"),
        IntParam("m0_width", 32, gq.M0_WIDTH_MIN, gq.M0_WIDTH_MAX,
                 "multiplier bits (32 = TFLite's int32 m0; fewer: a narrow Q0.(w-1) m0 port)"),
    ),
    build=lambda p: QuantFixedPoint(p["out_width"], bool(p["signed_out"]), p["variant"],
                                    p["m0_width"]),
    golden=_fixedpoint_golden,
    stimulus=_fixedpoint_stimulus,
    corners=fixedpoint_corners,
))


# --- quant_float ----------------------------------------------------------------------

def _float_golden(p, x):
    return {"q": gq.quant_float(x["acc"], x["scale"], x["zp"], out_width=p["out_width"],
                                signed_out=bool(p["signed_out"]), scale_fmt=p["scale_fmt"])}


def _float_stimulus(p, n, rng):
    w = get_format(p["scale_fmt"]).width
    return {"acc": random_codes(rng, n, 32, True), "scale": random_codes(rng, n, w, False),
            "zp": random_codes(rng, n, p["out_width"] + 1, True)}


#: binary32 patterns every quant_float run includes: signed zeros, the smallest and largest
#: subnormals, the smallest normal, powers of two across the range that matters, 0.035,
#: the largest finite, infinities, quiet and signalling NaNs.
SCALE_EDGES = np.array([
    0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF, 0x00800000,
    0x80800000, 0x2F800000, 0x30000000, 0x30800000, 0x3D0F5C29, 0x3B800000, 0x3F000000,
    0x3F800000, 0xBF800000, 0x3F7FFFFF, 0x3FC00000, 0x40000000, 0x4B000000, 0x7F7FFFFF,
    0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF,
], np.int64)


def float_corners(p) -> dict:
    """INT32 extremes x edge scales x extreme zero points; exact ties of ``rint`` (``acc *
    2**-k`` for odd ``acc``) and of the int->float rounding (``acc`` just above 2**24);
    products at the clamp boundaries."""
    n = p["out_width"]
    acc = np.concatenate([I32_EDGES, [(1 << 24) + 1, (1 << 24) + 3, -(1 << 24) - 1,
                                      (1 << 25) + 2, (1 << 25) + 6, 16777217 * 3]])
    parts = [_cross(acc=acc, scale=SCALE_EDGES, zp=_zp_edges(p))]
    # rint ties: acc = v * 2**k + d times 2**-k (and its neighbour scales), with d = +-2**(k-1)
    # an exact half, for v around 0 and around the clamp bounds (minus the zero point).
    lo, hi = gq.out_range(n, bool(p["signed_out"]))
    v = np.unique(np.concatenate([np.arange(-3, 4), lo + np.arange(-3, 4), hi + np.arange(-3, 4),
                                  lo - 1 + np.arange(-2, 3), hi - 1 + np.arange(-2, 3)]))
    for k in range(1, 9):
        h = 1 << (k - 1)
        d = np.array([-h - 1, -h, -h + 1, -1, 0, 1, h - 1, h, h + 1])
        acc_k = (v[:, None] * (1 << k) + d[None, :]).ravel()
        sc = (127 - k) << 23
        parts.append(_cross(acc=acc_k, scale=[sc, sc | 1, sc - 1, sc | (1 << 31)], zp=[0, 1]))
    # Products that round to fp32 ties at large magnitude (f32(acc) inexact) times 2**-k.
    big = np.array([(1 << 24) + 1, (1 << 25) + 3, (1 << 30) + 65, gq.INT32_MAX, gq.INT32_MIN + 1])
    parts.append(_cross(acc=np.concatenate([big, -big]),
                        scale=((127 - np.arange(14, 32)) << 23).astype(np.int64), zp=[0]))
    x = _cat(*parts)
    x["zp"] = _wrap(x["zp"], n + 1)
    if p.get("scale_fmt", "fp32") != "fp32":
        # the same binary32 edges rounded to the narrow format, plus its own edges: every
        # code with the exponent field all ones or zero, and accumulators around its range
        fmt = get_format(p["scale_fmt"])
        x["scale"] = gq.scale_to_format(x["scale"], fmt)
        top = 1 << (fmt.width - 1)
        own = np.concatenate([np.arange(0, 64), np.arange(fmt.inf_code - 8, fmt.inf_code + 8)])
        own = np.concatenate([own, own | top, [fmt.max_code, fmt.max_code | top]])
        big = np.array([65504, 65519, 65520, 65535, 1 << 16, 1 << 20, 3 << 24], np.int64)
        edge = np.concatenate([I32_EDGES, big, -big, np.arange(-40, 41)])
        x = _cat(x, _cross(acc=edge, scale=own, zp=[0, 1]))
        x["zp"] = _wrap(x["zp"], n + 1)
    x["scale"] = x["scale"].astype(np.uint64)
    return x


def _float_exhaustive(p):
    """A 16-bit scale: every scale code against accumulators 0, +-1, +-3 and around the
    fp16 range and the int32 extremes (2**16 x 16 = 2**20 inputs); none for binary32."""
    if p["scale_fmt"] == "fp32":
        return None
    acc = np.array([0, 1, -1, 3, -3, 200, -1001, 65519, -65520, 1 << 20, -(3 << 20) - 1,
                    (1 << 24) + 1, gq.INT32_MAX, gq.INT32_MIN, 123456789, -7], np.int64)
    x = _cross(acc=acc, scale=np.arange(1 << 16), zp=[0])
    x["zp"] = _wrap(np.arange(len(x["acc"])) % 7 - 3, p["out_width"] + 1)
    x["scale"] = x["scale"].astype(np.uint64)
    return x


register(UnitSpec(
    name="quant_float",
    summary="float-scale quantizer q = clamp(rint(f32(f32(acc) * scale)) + zp)",
    params=(
        IntParam("out_width", 8, 2, 16, "output width"),
        IntParam("signed_out", 1, 0, 1, "signed output (else unsigned)"),
        ChoiceParam("scale_fmt", "fp32", gq.SCALE_FMTS,
                    "format of the scale, the converted accumulator and the product (RNE)"),
    ),
    build=lambda p: QuantFloat(p["out_width"], bool(p["signed_out"]), p["scale_fmt"]),
    golden=_float_golden,
    stimulus=_float_stimulus,
    corners=float_corners,
    exhaustive=_float_exhaustive,
))


# --- a layer-like stimulus for the cost model ------------------------------------------

#: The real scale every quantizer implements in the ``random_acc`` stream: 0.0035, i.e.
#: ``quant_shift`` shifts by 8 (2**-8 = 0.0039), ``quant_fixedpoint`` gets TFLite's
#: ``quantize_multiplier(0.0035)`` and ``quant_float`` the binary32 of 0.0035.
LAYER_SCALE = 0.0035


def _random_acc(unit):
    """Uniform random accumulators (and biases), configuration inputs (shift, m0, zp,
    scale) held at the values of one layer of scale :data:`LAYER_SCALE`, as a real
    datapath holds them; the ``random`` stimulus redraws them every vector, which makes
    the baselines' multipliers toggle far more than in use."""
    def fn(p, n):
        rng = np.random.default_rng(12345)
        spec = {"quant_shift": _shift_stimulus, "quant_fixedpoint": _fixedpoint_stimulus,
                "quant_float": _float_stimulus}[unit]
        x = spec(p, n, rng)
        const = np.ones(n, np.int64)
        if unit == "quant_shift" and "shift" in x:
            x["shift"] = (const * gq.pow2_shift(LAYER_SCALE)[0]).astype(x["shift"].dtype)
        if unit == "quant_fixedpoint":
            m0, sh = gq.reduce_multiplier(*gq.quantize_multiplier(LAYER_SCALE), p["m0_width"])
            x["m0"], x["shift"] = const * int(m0), const * int(sh)
        if unit == "quant_float":
            f32 = int(np.float32(LAYER_SCALE).view(np.uint32))
            x["scale"] = (const * int(gq.scale_to_format(f32, p["scale_fmt"]))).astype(np.uint64)
        if "zp" in x:
            x["zp"] = const * 0
        return x
    return fn


for _unit in ("quant_shift", "quant_fixedpoint", "quant_float"):
    register_stream(_unit, "random_acc", _random_acc(_unit),
                    "uniform accumulators (and biases); shift/m0/scale/zp of one layer, constant")
