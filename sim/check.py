"""Compare RTL outputs with golden outputs; describe the first mismatch."""

from __future__ import annotations

import numpy as np

from qrtl.golden.bits import to_bytes, wrap

__all__ = ["normalise", "mismatch_mask", "describe_vector"]


def normalise(values, port) -> np.ndarray:
    """Golden values reduced to the port's width and signedness (bytes above 64 bits)."""
    if port.width > 64:
        return to_bytes(values, port.width)
    return wrap(values, port.width, port.signed)


def mismatch_mask(ports, expected: dict, actual: dict) -> np.ndarray:
    """Boolean per vector: True where any output port differs."""
    bad = None
    for p in ports:
        e, a = normalise(expected[p.name], p), normalise(actual[p.name], p)
        diff = np.any(e != a, axis=1) if e.ndim == 2 else (e != a)
        bad = diff if bad is None else (bad | diff)
    return bad if bad is not None else np.zeros(0, bool)


def _fmt(v, port) -> str:
    if port.width > 64:
        return "0x" + bytes(np.asarray(v, np.uint8)[::-1]).hex()
    v = int(v)
    return f"{v} (0x{v & ((1 << port.width) - 1):0{(port.width + 3) // 4}x})"


def describe_vector(i: int, inputs_ports, outputs_ports, inputs, expected, actual) -> dict:
    """Human-readable inputs, expected and actual outputs of vector ``i``."""
    return {
        "index": int(i),
        "inputs": {p.name: _fmt(normalise(inputs[p.name], p)[i], p) for p in inputs_ports},
        "expected": {p.name: _fmt(normalise(expected[p.name], p)[i], p) for p in outputs_ports},
        "actual": {p.name: _fmt(normalise(actual[p.name], p)[i], p) for p in outputs_ports},
    }
