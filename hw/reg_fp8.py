"""Registry entries of the FP8 family: ``fp8_mul``, ``fp8_mac``, ``fp8_dot``."""

from __future__ import annotations

import numpy as np

from qrtl.golden.bits import random_codes
from qrtl.golden.formats import ACC_FORMATS, ELEMENT_FORMATS, FP8_FORMATS, get_format
from qrtl.golden.fp8 import decode, encode, fp8_dot_stream, fp8_mac, fp8_mul, join_lanes

from qrtl.golden.errors import QrtlError
from .fp8 import MAC_STAGES, Fp8Dot, Fp8Mac, Fp8Mul
from qrtl.golden.params import ChoiceParam, IntParam
from .registry import UnitSpec, register

__all__ = ["special_codes", "acc_values", "all_pairs", "mac_exhaustive", "dot_stimulus"]


def special_codes(fmt) -> np.ndarray:
    """Edge codes of a format: +-0, +-min/max subnormal, +-min normal, +-1, +-max, +-max
    minus one ulp, +-Inf (if any), the canonical NaN and a negative NaN with another payload
    (if any)."""
    f = get_format(fmt)
    sb = f.sign_bit
    mags = [0, 1, (1 << f.mbits) - 1, 1 << f.mbits, f.bias << f.mbits, f.max_code, f.max_code - 1,
            1 << (f.mbits - 1)]
    if f.has_inf:
        mags.append(f.inf_code)
    codes = [c | s for c in mags for s in (0, sb)]
    if f.has_nan:
        codes += [f.nan_code, f.nan_code | sb | (1 if f.nan == "ieee" else 0)]
    return np.unique(np.array(codes, np.uint64))


def acc_values(acc, fmt, count: int = 64, seed: int = 0) -> np.ndarray:
    """``count`` accumulator codes: every :func:`special_codes` value, then seeded random
    finite codes whose magnitude lies in (a little beyond) the range of ``fmt`` products,
    where additions really round, cancel and carry."""
    f, fi = get_format(acc), get_format(fmt)
    sp = special_codes(f)
    rng = np.random.default_rng(seed)
    lo = 2 * (fi.emin - fi.mbits) - 3            # smallest product exponent, minus a little
    hi = 2 * (fi.emax + 1) + 3
    need = count - len(sp)
    e = rng.integers(lo, hi + 1, need)
    v = np.ldexp(rng.uniform(1, 2, need), e) * rng.choice([-1.0, 1.0], need)
    extra = encode(v, f, saturate=True)
    return np.concatenate([sp, extra]).astype(np.uint64)


def all_pairs(n_codes: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Every ``(a, b)`` pair of codes ``0 .. n_codes - 1`` (a major; 256: 8-bit codes)."""
    a, b = np.meshgrid(np.arange(n_codes, dtype=np.uint64), np.arange(n_codes, dtype=np.uint64),
                       indexing="ij")
    return a.ravel(), b.ravel()


# --- fp8_mul ---------------------------------------------------------------------------------

def _mul_golden(p, x):
    return {"p": fp8_mul(x["a"], x["b"], p["fmt"])}


def _width(p) -> int:
    return get_format(p["fmt"]).width


def _mul_stimulus(p, n, rng):
    w = _width(p)
    return {"a": random_codes(rng, n, w, False), "b": random_codes(rng, n, w, False)}


def _mul_corners(p):
    s = special_codes(p["fmt"])
    a, b = np.meshgrid(s, s, indexing="ij")
    return {"a": a.ravel(), "b": b.ravel()}


def _mul_exhaustive(p):
    a, b = all_pairs(1 << _width(p))
    return {"a": a, "b": b}


register(UnitSpec(
    name="fp8_mul",
    summary="exact minifloat product p = a*b as a binary32 pattern (FP8/FP6/FP4 elements)",
    params=(ChoiceParam("fmt", "e4m3", ELEMENT_FORMATS,
                        "input format (OCP FP8 E4M3/E5M2, MX FP6 E3M2/E2M3, MX FP4 E2M1)"),),
    build=lambda p: Fp8Mul(p["fmt"]),
    golden=_mul_golden,
    stimulus=_mul_stimulus,
    corners=_mul_corners,
    exhaustive=_mul_exhaustive,
))


# --- fp8_mac ---------------------------------------------------------------------------------

def _mac_golden(p, x):
    return {"acc_out": fp8_mac(x["a"], x["b"], x["acc_in"], fmt=p["fmt"], acc=p["acc"],
                               rounding=p["rounding"], rnd=x.get("rnd"), rbits=p["rbits"],
                               saturate=bool(p["saturate"]))}


def _rnd(p, n, rng):
    return rng.integers(0, 1 << p["rbits"], n, dtype=np.uint64)


def _mac_stimulus(p, n, rng):
    """Uniform a, b; acc_in: one quarter uniform codes, the rest near ``a*b`` (ratio
    +-2^U(-14, 14)) so that the sum really rounds; uniform rnd."""
    f, w = get_format(p["acc"]), _width(p)
    a, b = random_codes(rng, n, w, False), random_codes(rng, n, w, False)
    ratio = np.ldexp(rng.uniform(1, 2, n), rng.integers(-14, 15, n)) * rng.choice([-1.0, 1.0], n)
    with np.errstate(invalid="ignore", over="ignore"):  # Inf x 0 and NaN codes: not used
        prod = decode(a, p["fmt"]) * decode(b, p["fmt"])
        near = encode(np.where(np.isfinite(prod), prod * ratio, 1.0), f, saturate=True)
    acc = np.where(rng.random(n) < 0.25, random_codes(rng, n, f.width, False), near)
    x = {"a": a, "b": b, "acc_in": acc.astype(np.uint64)}
    if p["rounding"] == "stochastic":
        x["rnd"] = _rnd(p, n, rng)
    return x


def _mac_corners(p):
    s = special_codes(p["fmt"])
    c = special_codes(p["acc"])
    a, b, acc = (g.ravel() for g in np.meshgrid(s, s, c, indexing="ij"))
    x = {"a": a, "b": b, "acc_in": acc}
    if p["rounding"] == "stochastic":  # the extremes of rnd: never / always round up
        x["rnd"] = np.where(np.arange(len(a)) % 2 == 0, 0, (1 << p["rbits"]) - 1).astype(np.uint64)
    return x


def mac_exhaustive(p, count: int = 64):
    """Every (a, b) pair against each of ``count`` :func:`acc_values` (RNE only, else None)."""
    if p["rounding"] != "rne":
        return None
    a, b = all_pairs(1 << _width(p))
    acc = acc_values(p["acc"], p["fmt"], count)
    # compact dtypes: 4.2M vectors travel to the testbench as ~30 MB instead of 100 MB
    dt = np.uint16 if get_format(p["acc"]).width <= 16 else np.uint32
    return {"a": np.repeat(a.astype(np.uint8), len(acc)), "b": np.repeat(b.astype(np.uint8), len(acc)),
            "acc_in": np.tile(acc.astype(dt), len(a))}


register(UnitSpec(
    name="fp8_mac",
    summary="fused minifloat multiply-accumulate acc_out = round(acc_in + a*b), RNE or stochastic",
    params=(
        ChoiceParam("fmt", "e4m3", ELEMENT_FORMATS, "input format (FP8, FP6, FP4 elements)"),
        ChoiceParam("acc", "fp16", ACC_FORMATS, "accumulator format"),
        ChoiceParam("rounding", "rne", ("rne", "stochastic"),
                    "stochastic: round up iff first rbits discarded bits > rnd"),
        IntParam("rbits", 16, 1, 32, "random bits (stochastic rounding)"),
        IntParam("saturate", 0, 0, 1, "finite overflow -> +-max instead of +-Inf"),
        IntParam("pipeline", 0, 0, len(MAC_STAGES), "register stages: " + ", ".join(MAC_STAGES)),
    ),
    build=lambda p: Fp8Mac(p["fmt"], p["acc"], p["rounding"], p["rbits"], bool(p["saturate"]),
                           p["pipeline"]),
    golden=_mac_golden,
    stimulus=_mac_stimulus,
    corners=_mac_corners,
    exhaustive=mac_exhaustive,
))


# --- fp8_dot ---------------------------------------------------------------------------------

def _dot_check(p):
    if p["chunk"] % p["lanes"]:
        raise QrtlError(f"parameter chunk={p['chunk']} must be a multiple of lanes={p['lanes']}")


def _dot_golden(p, x):
    return fp8_dot_stream(x, fmt=p["fmt"], acc=p["acc"], chunk=p["chunk"], outer=p["outer"],
                          lanes=p["lanes"], rounding=p["rounding"], rbits=p["rbits"])


def dot_stimulus(p, n, rng, max_len: int = 4096):
    """``n`` input cycles holding whole dot products of log-uniform lengths 1..``max_len``.

    Data per dot product: 60% ``N(0, s^2)`` values (real-valued, s log-uniform), 25%
    ``N(1, 1)`` (sums that grow, where 16-bit accumulation drifts), 15% uniform codes
    (NaN, Inf, overflow). About 10% idle cycles (``valid = 0``) carry random junk on every
    other input. A final dot product cut short by ``n`` is left open (no ``last``).
    """
    lanes, f = p["lanes"], p["fmt"]
    valid, last, a, b = [], [], [], []
    cycles = 0
    while cycles < n:
        length = int(np.exp(rng.uniform(0, np.log(max_len + 1))))
        length = max(1, min(max_len, length))
        kind = rng.random()
        if kind < 0.6:
            s = np.exp(rng.uniform(-3, 3))
            va, vb = rng.normal(0, s, length), rng.normal(0, s, length)
        elif kind < 0.85:
            va, vb = rng.normal(1, 1, length), rng.normal(1, 1, length)
        else:
            va = vb = None
        if va is None:
            ca, cb = random_codes(rng, length, 8, False), random_codes(rng, length, 8, False)
        else:
            ca, cb = encode(va, f, saturate=True), encode(vb, f, saturate=True)
        ncyc = -(-length // lanes)
        pad = ncyc * lanes - length
        ca = np.concatenate([ca, np.zeros(pad, np.uint64)]).reshape(ncyc, lanes)
        cb = np.concatenate([cb, np.zeros(pad, np.uint64)]).reshape(ncyc, lanes)
        for k in range(ncyc):
            if rng.random() < 0.1:
                valid.append(0)
                last.append(int(rng.integers(0, 2)))
                a.append(rng.integers(0, 256, lanes))
                b.append(rng.integers(0, 256, lanes))
            valid.append(1)
            last.append(int(k == ncyc - 1))
            a.append(ca[k])
            b.append(cb[k])
        cycles = len(valid)
    valid, last = np.array(valid[:n], np.uint64), np.array(last[:n], np.uint64)
    x = {"valid": valid, "last": last,
         "a": join_lanes(np.array(a[:n], np.int64), 8), "b": join_lanes(np.array(b[:n], np.int64), 8)}
    if p["rounding"] == "stochastic":
        r = rng.integers(0, 1 << p["rbits"], (n, lanes), dtype=np.int64)
        x["rnd"] = join_lanes(r, p["rbits"])
    return x


register(UnitSpec(
    name="fp8_dot",
    summary="clocked chunk-based FP8 dot product (lanes products/cycle, valid/last handshake)",
    params=(
        ChoiceParam("fmt", "e4m3", FP8_FORMATS, "input format"),
        ChoiceParam("acc", "fp16", ACC_FORMATS, "chunk accumulator format"),
        IntParam("chunk", 64, 1, 65536, "products per chunk (multiple of lanes)"),
        ChoiceParam("outer", "fp32", ACC_FORMATS, "outer accumulator format"),
        IntParam("lanes", 1, 1, 8, "products per cycle"),
        ChoiceParam("rounding", "rne", ("rne", "stochastic"), "chunk accumulator rounding"),
        IntParam("rbits", 16, 1, 32, "random bits per lane (stochastic rounding)"),
    ),
    build=lambda p: Fp8Dot(p["fmt"], p["acc"], p["chunk"], p["outer"], p["lanes"],
                           p["rounding"], p["rbits"]),
    golden=_dot_golden,
    stimulus=dot_stimulus,
    check=_dot_check,
    stream=True,
))
