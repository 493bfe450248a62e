"""Ternary-activation dot product (BinaryDuo, Kim, Kim, Kim, ICLR 2020)."""

from __future__ import annotations

import operator

from amaranth import Cat, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qrtl.golden.xnor import dot_width

from .errors import reject
from .xnor_popcount import popcount_tree

__all__ = ["TernaryDot"]


class TernaryDot(wiring.Component):
    """``dot = sum_i a_i * w_i`` for ternary ``a_i`` in {-1, 0, +1} and binary or ternary
    ``w_i``, exact.

    BinaryDuo (Kim, Kim, Kim, "BinaryDuo: Reducing Gradient Mismatch in Binary Activation
    Network by Coupling Binary Activations", ICLR 2020) uses ternary activations (two
    coupled binary activations) during training; this is the dot product of such a layer.

    Encoding (:mod:`qrtl.golden.ternary`): each ternary vector is two n-bit planes, a sign
    plane and a nonzero plane; element ``i`` is 0 when ``nz[i] = 0``, +1 when
    ``sign[i] = 0, nz[i] = 1``, -1 when ``sign[i] = 1, nz[i] = 1``. The unused code
    ``sign = 1, nz = 0`` means 0 (the sign is ignored when ``nz`` is 0). Binary weights are
    one bit per element as in ``xnor_popcount``: 1 = +1, 0 = -1.

    With ``z = a_nz & w_nz`` (binary: ``z = a_nz``) the nonzero products and
    ``q = a_sign ^ w_sign`` (binary: ``q = a_sign ^ ~w``) their signs, the positive products
    are ``p = z & ~q`` and the negative ones ``z & q``; their difference is computed by one
    Wallace tree (:func:`~qrtl.hw.xnor_popcount.popcount_tree`) over 2n bits,
    ``dot = popcount(p) + popcount(~(z & q)) - n``, so there is a single carry-propagate
    adder (two trees would need three).

    Parameters
    ----------
    n : int
        Vector length, 1..4096.
    weights : str
        ``"binary"`` (one bit per weight) or ``"ternary"`` (sign and nonzero planes).

    Members
    -------
    a_sign : In(n)
        Activation sign plane (1 = negative).
    a_nz : In(n)
        Activation nonzero plane (1 = nonzero).
    w : In(n), only if ``weights == "binary"``
        Weights, 1 = +1, 0 = -1.
    w_sign, w_nz : In(n), only if ``weights == "ternary"``
        Weight sign and nonzero planes, encoded like the activations.
    dot : Out(signed(bit_length(n) + 1))
        The dot product, in ``-n..n``; combinational (``latency`` 0; the registry's generic
        ``pipeline`` parameter adds output registers).
    """

    def __init__(self, n: int = 64, weights: str = "binary"):
        n = operator.index(n)
        if not 1 <= n <= 4096:
            reject(self, f"n={n} is out of range (allowed 1..4096)")
        if weights not in ("binary", "ternary"):
            reject(self, f"weights={weights!r} (allowed: binary, ternary)")
        self.n, self.weights = n, weights
        members = {"a_sign": In(n), "a_nz": In(n)}
        if weights == "binary":
            members["w"] = In(n)
        else:
            members.update(w_sign=In(n), w_nz=In(n))
        members["dot"] = Out(signed(dot_width(n)))
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Clock cycles from inputs to outputs (0: combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        n = self.n
        z, q = Signal(n), Signal(n)
        if self.weights == "binary":
            m.d.comb += [z.eq(self.a_nz), q.eq(self.a_sign ^ ~self.w)]
        else:
            m.d.comb += [z.eq(self.a_nz & self.w_nz), q.eq(self.a_sign ^ self.w_sign)]
        pos, not_neg = Signal(n), Signal(n)
        m.d.comb += [pos.eq(z & ~q), not_neg.eq(~(z & q))]
        both = Cat(pos, not_neg)
        pc = popcount_tree(m, [both[i] for i in range(2 * n)])
        m.d.comb += self.dot.eq(pc - n)
        return m
