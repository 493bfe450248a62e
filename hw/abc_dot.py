"""ABC-Net multi-base binary dot product (Lin, Zhao, Pan, NeurIPS 2017)."""

from __future__ import annotations

import operator

from amaranth import Cat, Const, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qrtl.golden.abc import abc_dot_width
from qrtl.golden.xnor import dot_width

from .errors import reject
from .xnor_popcount import compress_columns, popcount_tree

__all__ = ["AbcDot", "abc_dot_width", "sum_of_products", "product_bits", "MAX_BASES"]

#: Largest number of weight (``M``) or activation (``N``) bases (the paper uses 1..5).
MAX_BASES = 5


def product_bits(a, b, width: int):
    """Partial products of the two's complement product ``a * b`` modulo ``2**width``.

    ``a * b = sum_{i,j} s_i t_j a_i b_j 2**(i+j)`` with ``s_i = -1`` for the sign bit of
    ``a`` (``t_j`` likewise for ``b``) and +1 otherwise. A positive term is the bit
    ``a_i & b_j`` in column ``i+j``; a negative one, ``-x 2**q = (1 - x) 2**q - 2**q``, is
    the bit ``~x`` in column ``q`` and ``-2**q`` in a constant (Baugh-Wooley). Columns at or
    above ``width`` are dropped (they vanish modulo ``2**width``).
    Returns ``(bits, constant)``, ``bits`` a list of ``(column, 1-bit value)``.
    """
    la, lb = len(a), len(b)
    bits, const = [], 0
    for i in range(la):
        for j in range(min(lb, width - i)):
            x = a[i] & b[j]
            if (i == la - 1) != (j == lb - 1):
                bits.append((i + j, ~x))
                const -= 1 << (i + j)
            else:
                bits.append((i + j, x))
    return bits, const


def sum_of_products(m: Module, products, width: int, name: str):
    """``sum(a * b for a, b in products)`` of signed values, as a signed ``width``-bit signal.

    Every partial product of every product (:func:`product_bits`) and the sum of their
    constants go into one Wallace tree (:func:`~qrtl.hw.xnor_popcount.compress_columns`),
    so the whole sum costs one carry-propagate adder instead of one per product and one per
    addition. Exact when the true sum fits in ``width`` signed bits (the tree works modulo
    ``2**width``).
    """
    columns = [[] for _ in range(width)]
    const = 0
    for a, b in products:
        bits, c = product_bits(a, b, width)
        const += c
        for q, x in bits:
            columns[q].append(x)
    const %= 1 << width
    for q in range(width):
        if (const >> q) & 1:
            columns[q].append(Const(1, 1))
    row0, row1 = compress_columns(m, (), prefix=f"{name}_", columns=columns)
    out = Signal(signed(width), name=name)
    m.d.comb += out.eq(Cat(*row0) + Cat(*row1))  # truncated to width: the sum mod 2**width
    return out


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
    (the ``N`` products of ``scale_width x (bit_length(n) + 1)`` bits as one sum of partial
    products, :func:`sum_of_products`), then ``dot = sum_m alpha_m * S_m`` (the ``M``
    products as one more such sum); every intermediate is exact. Fusing the products into
    compressor trees keeps the carry-propagate adders to ``M + 1`` after the popcounts
    (a multiplier per product would need ``M*N + M`` of them plus the adders between).

    Output width (:func:`~qrtl.golden.abc.abc_dot_width`): scales lie in
    ``[-2**(s-1), 2**(s-1) - 1]``, so ``|alpha_m beta_k| <= 4**(s-1)`` and
    ``|dot| <= K = M * N * n * 4**(s-1)``; ``+K`` (every scale ``-2**(s-1)``, every
    ``B_m = H_k``) and ``-K`` (same scales, every ``B_m = ~H_k``) are reached, so ``dot`` is
    ``signed(K.bit_length() + 1)`` wide, no more and no less. For n=64, M=N=3, s=8 that is
    ``K = 9 * 64 * 2**14``, 25 bits.

    Parameters
    ----------
    n : int
        Length of every base, 1..4096 (default 64).
    m_bases : int
        ``M``, the number of weight bases, 1..5 (default 2; the paper's headline is 3).
    n_bases : int
        ``N``, the number of activation bases, 1..5 (default 2).
    scale_width : int
        Width of every scale, 2..16 (default 8).

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

    def __init__(self, n: int = 64, m_bases: int = 2, n_bases: int = 2, scale_width: int = 8):
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
        sums = []
        for i in range(self.m_bases):
            w = getattr(self, f"w{i}")
            products = []
            for k in range(self.n_bases):
                a = getattr(self, f"a{k}")
                xn = Signal(n, name=f"xnor{i}_{k}")
                m.d.comb += xn.eq(~(w ^ a))
                pc = popcount_tree(m, [xn[j] for j in range(n)], prefix=f"t{i}_{k}_")
                d = Signal(signed(dw), name=f"dot{i}_{k}")
                m.d.comb += d.eq((pc << 1) - n)
                products.append((getattr(self, f"beta{k}"), d))
            # |S_m| <= N * n * 2**(s-1) (beta_k = -2**(s-1), dot = +-n): that needs
            # bit_length(N*n) + s signed bits.
            sw = (self.n_bases * n).bit_length() + self.scale_width
            sums.append((getattr(self, f"alpha{i}"), sum_of_products(m, products, sw, f"s{i}")))
        m.d.comb += self.dot.eq(sum_of_products(m, sums, self.out_width, "total"))
        return m
