"""Golden model of the ternary-activation dot product (unit ``ternary_dot``).

BinaryDuo (Kim, Kim, Kim, "BinaryDuo: Reducing Gradient Mismatch in Binary Activation
Network by Coupling Binary Activations", ICLR 2020) trains with ternary activations
``{-1, 0, +1}`` (two coupled binary activations) against binary or ternary weights.

Encoding: two bits per element, held as two n-bit planes (each an n-bit port array like
the bit-vectors of :mod:`qrtl.golden.xnor`: ints for n <= 64, little-endian byte matrices
above). Element ``i`` is ``(sign[i], nz[i])``:

======  ====  =======
sign    nz    value
======  ====  =======
0       0     0
0       1     +1
1       1     -1
1       0     0 (unused code, "negative zero": read as 0; :func:`ternary_encode` never makes it)
======  ====  =======

Binary weights use one bit per element as in ``xnor_popcount``: bit 1 = +1, bit 0 = -1.
"""

from __future__ import annotations

import numpy as np

from .bits import from_bytes, popcount_bytes, to_bytes

__all__ = ["ternary_dot", "ternary_encode", "ternary_decode"]


def _mask_tail(b: np.ndarray, n: int) -> np.ndarray:
    if n % 8:
        b[:, -1] &= (1 << (n % 8)) - 1
    return b


def ternary_dot(a_sign, a_nz, n: int, *, w=None, w_sign=None, w_nz=None) -> np.ndarray:
    """``sum_i t(a_sign[i], a_nz[i]) * v_i`` per vector, exact, as int64.

    ``t(s, z) = z * (1 - 2 s)`` is the ternary value of the encoding in the module
    docstring (so the unused code ``s=1, z=0`` is 0). The weights are either binary,
    ``w`` (``v_i = 2 w[i] - 1``), or ternary, ``w_sign`` and ``w_nz``
    (``v_i = t(w_sign[i], w_nz[i])``); give exactly one of the two forms.

    With ``z = a_nz & w_nz`` (binary: ``z = a_nz``) and ``q = a_sign ^ w_sign`` (binary:
    ``q = a_sign ^ ~w``, the sign of the product), the result is
    ``popcount(z & ~q) - popcount(z & q)``.
    """
    if (w is not None, w_sign is not None, w_nz is not None) not in ((True, False, False),
                                                                     (False, True, True)):
        raise ValueError("give either w (binary weights) or both w_sign and w_nz (ternary)")
    sa, za = to_bytes(a_sign, n), to_bytes(a_nz, n)
    if w is not None:
        z, q = za, sa ^ ~to_bytes(w, n)
    else:
        z, q = za & to_bytes(w_nz, n), sa ^ to_bytes(w_sign, n)
    pos = _mask_tail(z & ~q, n)
    neg = _mask_tail(z & q, n)
    return popcount_bytes(pos) - popcount_bytes(neg)


def ternary_encode(values) -> tuple[np.ndarray, np.ndarray]:
    """``(sign, nz)`` port arrays of a ``(vectors, n)`` matrix of values in {-1, 0, +1}.

    Ints for n <= 64, byte matrices above; 0 is encoded as ``(0, 0)``.
    """
    v = np.asarray(values)
    if v.ndim != 2:
        raise ValueError(f"ternary values must be a (vectors, n) matrix (got shape {v.shape})")
    if not np.isin(v, (-1, 0, 1)).all():
        raise ValueError("ternary values must be -1, 0 or +1")
    n = v.shape[1]
    sign = np.packbits((v < 0).astype(np.uint8), axis=1, bitorder="little")
    nz = np.packbits((v != 0).astype(np.uint8), axis=1, bitorder="little")
    return from_bytes(sign, n, False), from_bytes(nz, n, False)


def ternary_decode(sign, nz, n: int) -> np.ndarray:
    """The ``(vectors, n)`` int8 matrix of values of ``(sign, nz)`` planes (unused code: 0)."""
    s = np.unpackbits(to_bytes(sign, n), axis=1, bitorder="little")[:, :n].astype(np.int8)
    z = np.unpackbits(to_bytes(nz, n), axis=1, bitorder="little")[:, :n].astype(np.int8)
    return z * (1 - 2 * s)
