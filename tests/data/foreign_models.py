"""Golden models of the foreign modules in this folder, as a user writes them: a dict of
input port arrays in, a dict of output port arrays out (``qrtl sim --verilog ... --golden
foreign_models:add8``, run from this folder)."""

import numpy as np


def add8(x):
    """``s = a + b`` (9 bits: the carry out is kept)."""
    return {"s": x["a"].astype(np.int64) + x["b"].astype(np.int64)}


def add8_no_carry(x):
    """A deliberately wrong model of add8: it drops the carry out."""
    return {"s": (x["a"].astype(np.int64) + x["b"].astype(np.int64)) & 0xFF}


def mul_signed(x):
    """``p = a * b`` of two signed 4-bit codes."""
    return {"p": x["a"].astype(np.int64) * x["b"].astype(np.int64)}


def no_outputs(x):
    """A model that forgets its outputs."""
    return {}
