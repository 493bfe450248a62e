"""ABC-Net multi-base binary dot product (Lin, Zhao, Pan, NeurIPS 2017)."""

from __future__ import annotations

import operator

from amaranth import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qrtl.golden.abc import abc_dot_width
from qrtl.golden.xnor import dot_width

from .errors import reject
from .xnor_popcount import popcount_tree

__all__ = ["AbcDot", "abc_dot_width"]

#: Largest number of weight (``M``) or activation (``N``) bases (the paper uses 1..5).
MAX_BASES = 5


class AbcDot(wiring.Component):
    """``dot = sum_{m<M} sum_{k<N} alpha_m * beta_k * (B_m . H_k)``, exact (ABC-Net).

    ABC-Net (Lin, Zhao, Pan, "Towards Accurate Binary Convolutional Neural Network",
    NeurIPS 2017) approximates weights by ``M`` binary bases ``B_m`` with scales
    ``alpha_m`` and activations by ``N`` binary bases ``H_k`` with scales ``beta_k``; one
    output is then ``M*N`` binary dot products combined with the scales. Bit 1 of a base
    encodes +1 and bit 0 encodes -1 (as in :class:`~qrtl.hw.xnor_popcount.XnorPopcount`),
    so ``B_m . H_k = 2 * popcount(~(B_m ^ H_k)) - n``. Each popcount is the Wallace tree of
    :func:`~qrtl.hw.xnor_popcount.popcount_tree`. The scales are ``scale_width``-bit two's
    complement integers (fixed point with the binary point kept by the user).

    The hardware sums over the activation bases first, ``S_m = sum_k beta_k * dot_mk``
    (``M*N`` multipliers of ``scale_width x (bit_length(n) + 1)`` bits), then
    ``dot = sum_m alpha_m * S_m`` (``M`` more multipliers); every intermediate is exact.

    Output width (:func:`~qrtl.golden.abc.abc_dot_width`): scales lie in
    ``[-2**(s-1), 2**(s-1) - 1]``, so ``|alpha_m beta_k| <= 4**(s-1)`` and
    ``|dot| <= K = M * N * n * 4**(s-1)``; ``+K`` (every scale ``-2**(s-1)``, every
    ``B_m = H_k``) and ``-K`` (same scales, every ``B_m = ~H_k``) are reached, so ``dot`` is
    ``signed(K.bit_length() + 1)`` wide, no more and no less. For n=64, M=N=3, s=8 that is
    ``K = 9 * 64 * 2**14``, 25 bits.

    Parameters
    ----------
    n : int
        Length of every base, 1..4096.
    m_bases : int
        ``M``, the number of weight bases, 1..5.
    n_bases : int
        ``N``, the number of activation bases, 1..5.
    scale_width : int
        Width of every scale, 2..16.

    Members
    -------
    w0 .. w{M-1} : In(n)
        Weight bases ``B_m``.
    a0 .. a{N-1} : In(n)
        Activation bases ``H_k``.
    alpha0 .. alpha{M-1} : In(signed(scale_width))
        Weight scales.
    beta0 .. beta{N-1} : In(signed(scale_width))
        Activation scales.
    dot : Out(signed(abc_dot_width(n, M, N, scale_width)))
        The scaled sum; combinational (``latency`` 0; the registry's generic ``pipeline``
        parameter adds output registers).
    """

    def __init__(self, n: int = 64, m_bases: int = 3, n_bases: int = 3, scale_width: int = 8):
        n, m_bases, n_bases, scale_width = (operator.index(n), operator.index(m_bases),
                                            operator.index(n_bases), operator.index(scale_width))
        for name, v, lo, hi in (("n", n, 1, 4096), ("m_bases", m_bases, 1, MAX_BASES),
                                ("n_bases", n_bases, 1, MAX_BASES),
                                ("scale_width", scale_width, 2, 16)):
            if not lo <= v <= hi:
                reject(self, f"{name}={v} is out of range (allowed {lo}..{hi})")
        self.n, self.m_bases, self.n_bases, self.scale_width = n, m_bases, n_bases, scale_width
        members = {}
        members.update({f"w{m}": In(n) for m in range(m_bases)})
        members.update({f"a{k}": In(n) for k in range(n_bases)})
        members.update({f"alpha{m}": In(signed(scale_width)) for m in range(m_bases)})
        members.update({f"beta{k}": In(signed(scale_width)) for k in range(n_bases)})
        members["dot"] = Out(signed(abc_dot_width(n, m_bases, n_bases, scale_width)))
        super().__init__(members)

    @property
    def out_width(self) -> int:
        """Width of ``dot`` (see the class docstring for the derivation)."""
        return abc_dot_width(self.n, self.m_bases, self.n_bases, self.scale_width)

    @property
    def latency(self) -> int:
        """Clock cycles from inputs to outputs (0: combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        n, dw = self.n, dot_width(self.n)
        total = 0
        for i in range(self.m_bases):
            w = getattr(self, f"w{i}")
            inner = 0
            for k in range(self.n_bases):
                a = getattr(self, f"a{k}")
                xn = Signal(n, name=f"xnor{i}_{k}")
                m.d.comb += xn.eq(~(w ^ a))
                pc = popcount_tree(m, [xn[j] for j in range(n)], prefix=f"t{i}_{k}_")
                d = Signal(signed(dw), name=f"dot{i}_{k}")
                m.d.comb += d.eq((pc << 1) - n)
                inner = inner + getattr(self, f"beta{k}") * d
            # Amaranth widens +, - and * to the exact result. |S_m| <= N * n * 2**(s-1)
            # (beta_k = -2**(s-1), dot = +-n), which needs bit_length(N*n) + s signed bits.
            s = Signal(signed((self.n_bases * n).bit_length() + self.scale_width), name=f"s{i}")
            m.d.comb += s.eq(inner)
            total = total + getattr(self, f"alpha{i}") * s
        m.d.comb += self.dot.eq(total)
        return m
