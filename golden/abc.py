"""Golden model of the ABC-Net multi-base binary dot product (unit ``abc_dot``).

ABC-Net (Lin, Zhao, Pan, "Towards Accurate Binary Convolutional Neural Network",
NeurIPS 2017) approximates the weights by ``M`` binary bases, ``W ~ sum_m alpha_m B_m``,
and the activations by ``N`` binary bases, ``A ~ sum_n beta_n H_n`` (bases in {-1,+1}),
so one output is ``M*N`` binary dot products combined with the scales::

    dot = sum_{m<M} sum_{k<N} alpha_m * beta_k * (B_m . H_k)

Here every scale is a ``scale_width``-bit two's complement integer (a fixed-point value
whose binary point the user keeps outside the unit), and every ``B_m . H_k`` is the
{-1,+1} dot product of :func:`qrtl.golden.xnor.xnor_popcount` (bit 1 = +1, bit 0 = -1).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .xnor import xnor_popcount

__all__ = ["abc_dot", "abc_dot_width", "abc_dot_bound"]


def abc_dot_bound(n: int, m_bases: int, n_bases: int, scale_width: int) -> int:
    """Largest ``|dot|`` of :func:`abc_dot`: ``K = M * N * n * 4**(scale_width - 1)``.

    Each scale lies in ``[-2**(s-1), 2**(s-1) - 1]``, so ``|alpha_m * beta_k| <= 4**(s-1)``
    (reached only when both are ``-2**(s-1)``), and ``|B_m . H_k| <= n``. Both ends are
    reached: every scale at ``-2**(s-1)`` with every ``B_m = H_k`` gives ``+K``, with every
    ``B_m = ~H_k`` gives ``-K``. The output range is exactly ``[-K, K]``.
    """
    return m_bases * n_bases * n * (1 << (2 * (scale_width - 1)))


def abc_dot_width(n: int, m_bases: int, n_bases: int, scale_width: int) -> int:
    """Signed width of ``dot``: the smallest ``w`` with ``2**(w-1) - 1 >= K``, i.e.
    ``K.bit_length() + 1`` (``K`` of :func:`abc_dot_bound`, a reachable value)."""
    return abc_dot_bound(n, m_bases, n_bases, scale_width).bit_length() + 1


def abc_dot(w: Sequence, a: Sequence, alpha: Sequence, beta: Sequence, n: int) -> np.ndarray:
    """``sum_m sum_k alpha[m] * beta[k] * (w[m] . a[k])`` per vector, exact, as int64.

    ``w`` holds the ``M`` weight bases and ``a`` the ``N`` activation bases, each an
    n-bit port array (ints for n <= 64, little-endian byte matrices above; bit 1 = +1,
    bit 0 = -1); ``alpha`` (``M`` arrays) and ``beta`` (``N`` arrays) hold the signed
    integer scales. ``w[m] . a[k] = 2 * popcount(~(w[m] ^ a[k])) - n``. Exact in int64 for
    every configuration of the unit (``|dot| <= 25 * 4096 * 4**15 < 2**63``).
    """
    if len(w) != len(alpha) or len(a) != len(beta):
        raise ValueError(f"{len(w)} weight bases with {len(alpha)} alphas, "
                         f"{len(a)} activation bases with {len(beta)} betas")
    total = None
    for wm, am in zip(w, alpha):
        # inner sum over the activation bases first: sum_k beta_k * dot_mk (as the RTL does)
        inner = sum(np.asarray(bk, dtype=np.int64) * xnor_popcount(ak, wm, n)
                    for ak, bk in zip(a, beta))
        term = np.asarray(am, dtype=np.int64) * inner
        total = term if total is None else total + term
    return np.asarray(total, dtype=np.int64)
