"""The analytical column: Horowitz (ISSCC 2014, 45 nm, 0.9 V) energies composed per unit.

A reference users would otherwise cite, **never a substitute for the measurement**: it is
a different process (45 nm vs the library's), ignores the unit's actual datapath and data.

Anchors (pJ per operation), from M. Horowitz, "Computing's energy problem (and what we
can do about it)", ISSCC 2014:

=================  ======  =================  ======
8-bit int add      0.03    16-bit FP add      0.4
32-bit int add     0.1     16-bit FP multiply 1.1
8-bit int multiply 0.2     32-bit FP add      0.9
32-bit int multiply 3.1    32-bit FP multiply 3.7
=================  ======  =================  ======

Scaling between anchors (documented, simple):

* ``add(w)``: linear in the width through the two anchors,
  ``add(w) = 0.03 + (w - 8) * (0.1 - 0.03) / 24``, and ``0.03 * w / 8`` below 8 bits
  (a one-bit add is 1/8 of an 8-bit add). Comparisons, increments and subtractions count
  as adds of their width.
* ``mul(a, b)``: quadratic (array multiplier), ``mul(a, b) = 0.2 * a * b / 64``
  (gives 3.2 pJ at 32 x 32, the anchor says 3.1).
* FP: ``fp_add``/``fp_mul`` of 16 and 32 bits are the anchors; bf16 and e6m9 use the
  16-bit figures, an FP8 multiply is its significand product plus its exponent add
  (``mul(m+1, m+1) + add(e+1)``).

:data:`COMPOSITION` gives, per unit name, a function of the unit's parameters returning
the list of ``(operation, count, pJ each)`` it performs per operation (one input vector);
:func:`horowitz` sums it. Units without an entry get ``None``.
"""

from __future__ import annotations

from typing import Callable, Optional

__all__ = ["add", "mul", "fp_add", "fp_mul", "COMPOSITION", "horowitz", "ANCHORS"]

ANCHORS = {"add8": 0.03, "add32": 0.1, "mul8": 0.2, "mul32": 3.1,
           "fadd16": 0.4, "fmul16": 1.1, "fadd32": 0.9, "fmul32": 3.7}

_FP_BITS = {"fp16": 16, "bf16": 16, "e6m9": 16, "fp32": 32}
_FP8 = {"e4m3": (4, 3), "e5m2": (5, 2)}


def add(w: int) -> float:
    """Energy (pJ) of a ``w``-bit integer add (see module doc for the scaling)."""
    if w <= 8:
        return ANCHORS["add8"] * w / 8
    return ANCHORS["add8"] + (w - 8) * (ANCHORS["add32"] - ANCHORS["add8"]) / 24


def mul(a: int, b: int) -> float:
    """Energy (pJ) of an ``a`` x ``b``-bit integer multiply (quadratic scaling)."""
    return ANCHORS["mul8"] * a * b / 64


def fp_add(fmt: str) -> float:
    """Energy (pJ) of an FP add in accumulator format ``fmt``."""
    return ANCHORS["fadd32"] if _FP_BITS.get(fmt, 16) > 16 else ANCHORS["fadd16"]


def fp_mul(fmt: str) -> float:
    """Energy (pJ) of an FP multiply: binary32 / 16-bit anchors; FP8 composed."""
    if fmt in _FP8:
        e, m = _FP8[fmt]
        return mul(m + 1, m + 1) + add(e + 1)
    return ANCHORS["fmul32"] if _FP_BITS.get(fmt, 16) > 16 else ANCHORS["fmul16"]


def _quant_shift(p):
    w = p.get("in_width", 32)
    kept = max(1, w - p.get("shift", 8))
    ops = []
    if p.get("bias"):
        ops.append((f"add{w} (bias)", 1, add(w)))
    ops.append((f"add{kept} (rounding increment)", 1, add(kept)))
    ops.append((f"compare{kept} (clamp)", 2, add(kept)))
    return ops


def _quant_fixedpoint(p):
    ow = p.get("out_width", 8)
    w = p.get("m0_width", 32)
    return [(f"mul32x{w} (acc * m0)", 1, mul(32, w)),
            ("add64 (rounding nudge)", 1, add(64)),
            ("add32 (rounding divide by 2^s)", 1, add(32)),
            (f"add{ow + 1} (zero point)", 1, add(ow + 1)),
            (f"compare{ow + 1} (clamp)", 2, add(ow + 1))]


def _quant_float(p):
    ow = p.get("out_width", 8)
    f = p.get("scale_fmt", "fp32")
    name = {"fp32": "float32"}.get(f, f)
    return [(f"add32 (int32 -> {name}: normalise and round)", 1, add(32)),
            (f"{f} multiply (x scale)", 1, fp_mul(f)),
            ("add32 (rint, float -> int)", 1, add(32)),
            (f"add{ow + 1} (zero point)", 1, add(ow + 1)),
            (f"compare{ow + 1} (clamp)", 2, add(ow + 1))]


def _xnor(p):
    n = p.get("n", 64)
    ops = [("1-bit xnor (as 1-bit add)", n, add(1)),
           ("1-bit full add (popcount tree)", max(n - 1, 0), add(1))]
    if p.get("threshold"):
        w = n.bit_length() + 1
        ops.append((f"compare{w} (threshold)", 1, add(w)))
    return ops


def _int_mac(p):
    a, b, acc = p.get("a_width", 8), p.get("b_width", 8), p.get("acc_width", 32)
    return [(f"mul{a}x{b}", 1, mul(a, b)), (f"add{acc}", 1, add(acc))]


def _fp8_mul(p):
    fmt = p.get("fmt", "e4m3")
    return [(f"{fmt} multiply", 1, fp_mul(fmt))]


def _fp8_mac(p):
    fmt, acc = p.get("fmt", "e4m3"), p.get("acc", "fp16")
    return [(f"{fmt} multiply", 1, fp_mul(fmt)), (f"{acc} add", 1, fp_add(acc))]


def _fp8_dot(p):
    fmt, acc, outer = p.get("fmt", "e4m3"), p.get("acc", "fp16"), p.get("outer", "fp32")
    lanes, chunk = p.get("lanes", 1), max(1, p.get("chunk", 64))
    return [(f"{fmt} multiply", lanes, fp_mul(fmt)), (f"{acc} add", lanes, fp_add(acc)),
            (f"{outer} add (every {chunk} products)", lanes / chunk, fp_add(outer))]


def _ternary_dot(p):
    n = p.get("n", 64)
    w = n.bit_length() + 1
    gates = 2 if p.get("weights", "binary") == "binary" else 3  # sign xor, nonzero and(s)
    return [("1-bit logic per element (sign, nonzero; as 1-bit adds)", gates * n, add(1)),
            ("1-bit full add (two popcount trees)", 2 * max(n - 1, 0), add(1)),
            (f"add{w} (positive - negative count)", 1, add(w))]


def _abc_dot(p):
    n, m, k, s = p.get("n", 64), p.get("M", 2), p.get("N", 2), p.get("scale_width", 8)
    dot = n.bit_length() + 1
    out = 2 * s + dot + (m * k).bit_length()
    return [*[(f"{op} (x {m * k} binary dot products)", c * m * k, e) for op, c, e in _xnor({"n": n})],
            (f"mul{s}x{s} (alpha_m * beta_k)", m * k, mul(s, s)),
            (f"mul{2 * s}x{dot} (scale product * dot)", m * k, mul(2 * s, dot)),
            (f"add{out} (sum of the M*N terms)", max(m * k - 1, 0), add(out))]


#: unit name -> (params -> [(operation, count per op, pJ each)]).
COMPOSITION: dict[str, Callable] = {
    "quant_shift": _quant_shift,
    "quant_fixedpoint": _quant_fixedpoint,
    "quant_float": _quant_float,
    "xnor_popcount": _xnor,
    "int_mac": _int_mac,
    "fp8_mul": _fp8_mul,
    "fp8_mac": _fp8_mac,
    "fp8_dot": _fp8_dot,
    "ternary_dot": _ternary_dot,
    "abc_dot": _abc_dot,
}


def horowitz(unit: str, params: dict) -> Optional[dict]:
    """``{"pj": total, "composition": [[op, count, pJ each], ...], "source": ...}`` or None."""
    fn = COMPOSITION.get(unit)
    if fn is None:
        return None
    ops = fn(params)
    return {"pj": round(sum(c * e for _, c, e in ops), 6),
            "composition": [[op, c, round(e, 6)] for op, c, e in ops],
            "source": "Horowitz ISSCC 2014, 45 nm, 0.9 V (analytical, not measured)"}
