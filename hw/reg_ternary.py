"""Registry entry of ``ternary_dot`` (BinaryDuo): hardware, golden model, stimulus, corners."""

from __future__ import annotations

import numpy as np

from qrtl.golden.bits import every_input, random_codes
from qrtl.golden.params import ChoiceParam, IntParam
from qrtl.golden.ternary import ternary_dot, ternary_encode

from .registry import UnitSpec, register
from .ternary_dot import TernaryDot

__all__: list[str] = []


def _ports(p):
    n = p["n"]
    w = ["w"] if p["weights"] == "binary" else ["w_sign", "w_nz"]
    return [(name, n, False) for name in ["a_sign", "a_nz"] + w]


def _golden(p, x):
    if p["weights"] == "binary":
        dot = ternary_dot(x["a_sign"], x["a_nz"], p["n"], w=x["w"])
    else:
        dot = ternary_dot(x["a_sign"], x["a_nz"], p["n"], w_sign=x["w_sign"], w_nz=x["w_nz"])
    return {"dot": dot}


def _stimulus(p, count, rng):
    """Uniform over codes: each sign and nonzero bit is 1 with probability 1/2, so an
    element is 0 with probability 1/2 (the unused code ``sign=1, nz=0`` included)."""
    return {name: random_codes(rng, count, width, False) for name, width, _ in _ports(p)}


def _corners(p):
    """Activations all +1, all -1, all 0, all the unused code (must read as 0), alternating
    +1/-1 and +1/0, one nonzero element (first, middle, last), against weights all +1, all
    -1 and alternating (and, for ternary weights, all 0 and all the unused code)."""
    n = p["n"]
    idx = np.arange(n)
    acts = [np.ones(n), -np.ones(n), np.zeros(n), np.where(idx % 2, -1, 1),
            np.where(idx % 2, 0, 1), np.where(idx % 3 == 0, -1, idx % 3 - 1)]
    for i in sorted({0, n // 2, n - 1}):
        one = np.zeros(n)
        one[i] = -1
        acts.append(one)
    weights = [np.ones(n), -np.ones(n), np.where(idx % 2, -1, 1)]
    if p["weights"] == "ternary":
        weights += [np.zeros(n), np.where(idx % 3 == 0, -1, idx % 3 - 1)]
    a = np.array([x for x in acts for _ in weights], dtype=np.int8)
    w = np.array([y for _ in acts for y in weights], dtype=np.int8)
    a_sign, a_nz = ternary_encode(a)
    x = {"a_sign": a_sign, "a_nz": a_nz}
    if p["weights"] == "binary":
        x["w"] = _binary(w)
    else:
        x["w_sign"], x["w_nz"] = ternary_encode(w)
    # the unused code: sign=1, nz=0 everywhere (reads as 0), against every weight pattern
    unused_sign = ternary_encode(-np.ones((len(weights), n), np.int8))[0]
    unused_nz = ternary_encode(np.zeros((len(weights), n), np.int8))[1]
    extra = {"a_sign": unused_sign, "a_nz": unused_nz}
    if p["weights"] == "binary":
        extra["w"] = _binary(np.array(weights, np.int8))
    else:
        ws, wz = ternary_encode(np.array(weights, np.int8))
        # ternary weights in the unused code too (sign=1, nz=0): a 0 weight
        extra["w_sign"], extra["w_nz"] = ws | unused_sign, wz
    return {k: np.concatenate([x[k], extra[k]]) for k in x}


def _binary(values) -> np.ndarray:
    """Port array of binary weights from a matrix of +-1 (bit 1 = +1): the nonzero plane of
    ``(values + 1) / 2`` in the ternary encoding."""
    return ternary_encode(((np.asarray(values) + 1) // 2).astype(np.int8))[1]


def _exhaustive(p):
    """Every input when all input bits are at most 20: n <= 6 with binary weights (3n bits),
    n <= 5 with ternary weights (4n bits), unused codes included."""
    return every_input(_ports(p))


register(UnitSpec(
    name="ternary_dot",
    summary="BinaryDuo ternary-activation dot product with binary or ternary weights, exact",
    params=(
        IntParam("n", 64, 1, 4096, "vector length"),
        ChoiceParam("weights", "binary", ("binary", "ternary"),
                    "binary weights (1 bit, 1 = +1) or ternary (sign and nonzero planes)"),
    ),
    build=lambda p: TernaryDot(p["n"], p["weights"]),
    golden=_golden,
    stimulus=_stimulus,
    corners=_corners,
    exhaustive=_exhaustive,
))
