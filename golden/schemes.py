"""Number formats with their scaling, as deployed: MX blocks, NVFP4, per-tensor FP and INT.

A :class:`Scheme` is an element format plus how values are scaled into it; :func:`quantize`
turns real tensors into its codes and :func:`dot` computes row-wise dot products of two
quantized tensors **in the arithmetic of the unit that does it in hardware** (bit-exact
golden models), so the accuracy study (:mod:`qrtl.reports.mx_accuracy`) and the energy
measurement (the ``normal`` streams below) see the same numbers.

* ``mx`` (OCP MX v1.0): blocks of k = 32 along the reduction axis, E8M0 scale
  (:func:`qrtl.golden.mx.mx_quantize`, the spec's conversion, section 6.3); dot products on
  ``mx_dot_general`` (each block pair exact, rounded once into an FP32 accumulator,
  :func:`qrtl.golden.mx.mx_dot_general_stream`).
* ``nvfp4``: E2M1 blocks of 16 with an E4M3 scale, after division by a per-tensor FP32
  scale ``amax / (6 * 448)`` (so every block scale fits E4M3); ``mx_dot_general`` with
  ``scale=e4m3``, then the FP32 result times the two tensor scales (binary32 multiplies).
* ``tensor_fp``: one FP32 scale per tensor, ``amax / max_elem``; elements rounded to the
  format (nearest even, saturating); dot products on a chain of ``fp8_mac`` with an FP32
  accumulator (one rounding per MAC), then times the two scales in binary32.
* ``tensor_int``: symmetric, scale ``amax / (2^(b-1) - 1)``, codes ``clip(rint(v / s))``;
  the integer sum is exact (``int_mac`` with its accumulator of :data:`INT_ACC` bits;
  :func:`dot` flags dot products whose partial sums would wrap), then times the two scales.

The ``normal`` operand streams (:data:`NORMAL_STREAMS`) feed ``int_mac``, ``fp8_mac`` and
``mx_dot`` N(0, 1) operands quantized this way, dot products of :data:`STREAM_LENGTH`
MACs, so that energy per MAC is measured on the data the accuracy study uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import QrtlError
from .formats import get_format
from .fp8 import decode, encode, fp8_mac, join_lanes
from .mx import mx_dequantize, mx_dot_general_stream, mx_quantize

__all__ = ["Scheme", "SCHEMES", "INT_ACC", "Quantized", "quantize", "dot", "NORMAL_STREAMS",
           "STREAM_LENGTH", "f32"]

#: Accumulator width of the integer schemes' ``int_mac`` (bits).
INT_ACC = {8: 32, 4: 16}


@dataclass(frozen=True)
class Scheme:
    """One number format with its scaling: ``kind`` ``mx`` (block scale E8M0), ``nvfp4``
    (block scale E4M3 and an FP32 tensor scale), ``tensor_fp`` or ``tensor_int`` (one FP32
    scale per tensor); ``fmt``: the element format (``int8`` / ``int4`` for the integer
    ones); ``k``: block size."""

    name: str
    kind: str
    fmt: str
    k: int = 32

    @property
    def bits(self) -> int:
        """Bits per element, scales not counted."""
        return int(self.fmt[3:]) if self.kind == "tensor_int" else get_format(self.fmt).width

    @property
    def bits_per_element(self) -> float:
        """Bits per element with the block scale amortised (8 bits per block)."""
        return self.bits + (8 / self.k if self.kind in ("mx", "nvfp4") else 0.0)

    @property
    def unit(self) -> tuple[str, dict, int]:
        """``(unit, params, MACs per operation)`` of the datapath that computes one MAC
        (a block's ``mx_dot``: ``k`` MACs; the scale product and the FP32 rounding included)."""
        if self.kind in ("mx", "nvfp4"):
            return "mx_dot", {"fmt_a": self.fmt, "k": self.k,
                              "scale": "e4m3" if self.kind == "nvfp4" else "e8m0"}, self.k
        if self.kind == "tensor_int":
            b = self.bits
            return "int_mac", {"a_width": b, "b_width": b, "acc_width": INT_ACC[b]}, 1
        return "fp8_mac", {"fmt": self.fmt, "acc": "fp32"}, 1


SCHEMES: dict[str, Scheme] = {s.name: s for s in (
    Scheme("MXFP8 E4M3", "mx", "e4m3"), Scheme("MXFP8 E5M2", "mx", "e5m2"),
    Scheme("MXFP6 E3M2", "mx", "e3m2"), Scheme("MXFP6 E2M3", "mx", "e2m3"),
    Scheme("MXFP4 E2M1", "mx", "e2m1"), Scheme("MXINT8", "mx", "mxint8"),
    Scheme("NVFP4", "nvfp4", "e2m1", 16),
    Scheme("FP8 E4M3", "tensor_fp", "e4m3"), Scheme("FP8 E5M2", "tensor_fp", "e5m2"),
    Scheme("FP6 E3M2", "tensor_fp", "e3m2"), Scheme("FP4 E2M1", "tensor_fp", "e2m1"),
    Scheme("INT8", "tensor_int", "int8"), Scheme("INT4", "tensor_int", "int4"),
)}
#: E4M3's largest value: NVFP4's tensor scale maps a tensor's max onto 6 * 448.
_E4M3_MAX = 448.0


def f32(x) -> np.ndarray:
    """Round float64 values to binary32 (RNE), returned as float64."""
    return np.asarray(x, np.float64).astype(np.float32).astype(np.float64)


@dataclass
class Quantized:
    """Codes of one operand tensor ``(rows, n)``: ``codes``, block ``scales`` (MX/NVFP4),
    the FP32 tensor ``scale`` (1 for MX), and the dequantized ``values`` (float64)."""

    codes: np.ndarray
    scales: Optional[np.ndarray]
    scale: float
    values: np.ndarray


def quantize(v, scheme, amax: Optional[float] = None) -> Quantized:
    """``v`` (rows, n) in ``scheme`` (module docstring); ``amax``: the calibrated largest
    magnitude for a per-tensor scale (default: ``max |v|``)."""
    s = SCHEMES[scheme] if isinstance(scheme, str) else scheme
    v = np.asarray(v, np.float64)
    amax = float(np.abs(v).max()) if amax is None else float(amax)
    amax = amax if amax > 0 else 1.0
    if s.kind == "mx":
        codes, scales = mx_quantize(v, s.fmt, s.k)
        return Quantized(codes, scales, 1.0, mx_dequantize(codes, scales, s.fmt, s.k))
    if s.kind == "nvfp4":
        g = float(f32(amax / (float(get_format(s.fmt).max_value) * _E4M3_MAX)))
        codes, scales = mx_quantize(v / g, s.fmt, s.k, "e4m3")
        return Quantized(codes, scales, g, mx_dequantize(codes, scales, s.fmt, s.k, "e4m3") * g)
    if s.kind == "tensor_fp":
        g = float(f32(amax / float(get_format(s.fmt).max_value)))
        codes = encode(v / g, s.fmt, saturate=True)
        return Quantized(codes, None, g, decode(codes, s.fmt) * g)
    top = (1 << (s.bits - 1)) - 1
    g = float(f32(amax / top))
    q = np.clip(np.rint(v / g), -top, top).astype(np.int64)
    return Quantized(q, None, g, q * g)


def dot(qa: Quantized, qb: Quantized, scheme) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise dot products ``(rows,)`` of two quantized tensors in the arithmetic of the
    scheme's unit (module docstring), as float64; and a per-row flag of integer accumulator
    overflow (always False for the floating-point schemes)."""
    s = SCHEMES[scheme] if isinstance(scheme, str) else scheme
    rows, n = qa.codes.shape
    ovf = np.zeros(rows, bool)
    if s.kind in ("mx", "nvfp4"):
        nb = n // s.k
        w = get_format(s.fmt).width
        last = np.zeros((rows, nb), np.int64)
        last[:, -1] = 1
        x = {"valid": np.ones(rows * nb, np.int64), "last": last.ravel(),
             "a": join_lanes(qa.codes.reshape(-1, s.k), w),
             "b": join_lanes(qb.codes.reshape(-1, s.k), w),
             "sa": qa.scales.ravel(), "sb": qb.scales.ravel()}
        out = mx_dot_general_stream(x, fmt_a=s.fmt, fmt_b=s.fmt, k=s.k,
                                    scale="e4m3" if s.kind == "nvfp4" else "e8m0")
        r = decode(out["result"][last.ravel() == 1], "fp32")
        return f32(f32(r * qa.scale) * qb.scale), ovf
    if s.kind == "tensor_fp":
        acc = np.zeros(rows, np.uint64)                       # +0.0 in binary32
        for i in range(n):
            acc = fp8_mac(qa.codes[:, i], qb.codes[:, i], acc, fmt=s.fmt, acc="fp32")
        return f32(f32(decode(acc, "fp32") * qa.scale) * qb.scale), ovf
    prods = qa.codes * qb.codes
    total = prods.sum(axis=1)
    lim = 1 << (INT_ACC[s.bits] - 1)
    partial = np.cumsum(prods, axis=1)
    ovf = np.any((partial >= lim) | (partial < -lim), axis=1)
    return f32(f32(total * qa.scale) * qb.scale), ovf


# --- operand streams for energy: N(0, 1) data in each unit's format -----------------------

#: MACs per dot product of the ``normal`` streams (``acc_in`` is the running sum).
STREAM_LENGTH = 256


def _normal(n: int, seed: int, side: int) -> np.ndarray:
    return np.random.default_rng([seed, side]).normal(0.0, 1.0, n)


def _int_mac_stream(p, n, seed: int = 0) -> dict:
    """``int_mac``: per-tensor symmetric quantization of N(0, 1) operands to the port widths
    (magnitudes for an unsigned unit); ``acc_in`` the running sum of each dot product of
    :data:`STREAM_LENGTH` MACs, wrapped to the accumulator as the unit does."""
    from .intmac import int_mac
    codes = []
    for side, w in enumerate((p["a_width"], p["b_width"])):
        v = _normal(n, seed, side)
        top = (1 << (w - 1)) - 1 if p["signed"] else (1 << w) - 1
        v = v if p["signed"] else np.abs(v)
        codes.append(np.clip(np.rint(v / (np.abs(v).max() / top)), -top, top).astype(np.int64))
    a, b = codes
    prods = a * b
    m = -(-n // STREAM_LENGTH) * STREAM_LENGTH
    pp = np.zeros(m, np.int64)
    pp[:n] = prods
    pp = pp.reshape(-1, STREAM_LENGTH)
    run = np.concatenate([np.zeros((len(pp), 1), np.int64), np.cumsum(pp, axis=1)[:, :-1]], axis=1)
    acc = int_mac(np.zeros(m, np.int64), np.zeros(m, np.int64), run.ravel(),
                  acc_width=p["acc_width"], signed=bool(p["signed"]))[:n]
    if not p["signed"]:
        a, b, acc = (x.astype(np.uint64) for x in (a, b, acc))
    return {"a": a, "b": b, "acc_in": acc}


def _fp8_mac_stream(p, n, seed: int = 0) -> dict:
    """``fp8_mac``: N(0, 1) operands with one FP32 scale per tensor (the ``tensor_fp``
    scheme) in the unit's element format; ``acc_in`` the running sum of each dot product of
    :data:`STREAM_LENGTH` MACs in the unit's accumulator (nearest even, as the unit with
    ``rounding=rne`` computes it); random ``rnd`` bits for stochastic rounding."""
    s = Scheme("", "tensor_fp", p["fmt"])
    m = -(-n // STREAM_LENGTH) * STREAM_LENGTH
    a, b = (quantize(_normal(m, seed, side).reshape(-1, STREAM_LENGTH), s).codes
            for side in (0, 1))
    acc = np.zeros(len(a), np.uint64)
    acc_in = np.empty(a.shape, np.uint64)
    for i in range(STREAM_LENGTH):
        acc_in[:, i] = acc
        acc = fp8_mac(a[:, i], b[:, i], acc, fmt=p["fmt"], acc=p["acc"],
                      saturate=bool(p["saturate"]))
    out = {"a": a.ravel()[:n], "b": b.ravel()[:n], "acc_in": acc_in.ravel()[:n]}
    if p["rounding"] == "stochastic":
        out["rnd"] = np.random.default_rng([seed, 2]).integers(0, 1 << p["rbits"], n).astype(np.uint64)
    return out


def _mx_dot_stream(p, n, seed: int = 0) -> dict:
    """``mx_dot``: blocks of N(0, 1) values converted as the MX (E8M0 scale) or NVFP4 (E4M3
    scale, FP32 tensor scale) scheme, each side in its element format."""
    fb = p["fmt_a"] if p["fmt_b"] == "same" else p["fmt_b"]
    kind = "nvfp4" if p["scale"] == "e4m3" else "mx"
    out = {}
    for side, (fmt, port) in enumerate(((p["fmt_a"], "a"), (fb, "b"))):
        q = quantize(_normal(n * p["k"], seed, side).reshape(n, p["k"]), Scheme("", kind, fmt, p["k"]))
        out[port] = join_lanes(q.codes, get_format(fmt).width)
        out["s" + port] = q.scales.ravel().astype(np.uint64)
    return out


#: ``(unit, stream name, function, description)``: registered by :mod:`qrtl.hw.units`.
NORMAL_STREAMS = [
    ("int_mac", "normal", _int_mac_stream,
     f"N(0, 1) operands, per-tensor symmetric INT, dot products of {STREAM_LENGTH} MACs"),
    ("fp8_mac", "normal", _fp8_mac_stream,
     f"N(0, 1) operands, per-tensor FP32 scale, dot products of {STREAM_LENGTH} MACs"),
    ("mx_dot", "normal", _mx_dot_stream,
     "blocks of N(0, 1) values converted to MX (OCP 6.3) or NVFP4 (E4M3 + FP32 tensor scale)"),
]
