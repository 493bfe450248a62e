"""``bnn``: a binarized MLP whose every layer runs on ``xnor_popcount``.

Network (FINN-style deployment of a Courbariaux et al. 2016 BNN):

* **Input.** Each pixel ``p`` (0..16) becomes a thermometer code of ``len(LEVELS)`` bits,
  bit ``k`` = ``p >= LEVELS[k]``; the code of the image is level-major
  (bit ``k * 64 + j`` belongs to pixel ``j``), 256 bits. Bit 1 means +1, bit 0 means -1,
  so the first layer is a binary dot product like the others.
* **Hidden layers** (256 -> 256 -> 256): ``dot = xnor_popcount(a, w)``, then the
  batch-norm ``u = gamma (dot - mu) / sqrt(var + eps) + beta`` and the activation
  ``y = [u >= 0]`` are folded into one integer threshold per neuron: ``y = dot >= thr``
  (for ``gamma < 0`` the neuron's weight bits are inverted, which negates ``dot``, so the
  comparison is always ``>=``). That is ``xnor_popcount`` with ``threshold=1``.
* **Output layer** (256 -> 10): ``score_c = xnor_popcount(h, w_c)`` with no threshold;
  the class is the first index of the largest score. (Training multiplies the scores by
  one positive learnt scale before the softmax, which does not change the argmax.)

The float reference is the same network evaluated with the batch-norm in float32
(:func:`float_forward`); the folded integer network (:func:`forward`) gives the same
hidden bits whenever no ``u`` lies within float32 rounding of 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qrtl.golden.bits import from_bytes
from qrtl.golden.xnor import dot_width, xnor_popcount

from .data import load_params

__all__ = ["LEVELS", "thermometer", "BnnParams", "load", "fold", "level_threshold", "forward",
           "float_forward", "layer_operands", "pack"]

#: thermometer levels: pixel p gives bits [p >= 2, p >= 6, p >= 10, p >= 14]
LEVELS = (2, 6, 10, 14)



def thermometer(pixels: np.ndarray, levels=LEVELS) -> np.ndarray:
    """Bits (uint8 0/1) of shape (N, len(levels) * 64): ``[pixels >= l for l in levels]``."""
    x = np.asarray(pixels)
    return np.concatenate([(x >= lv) for lv in levels], axis=1).astype(np.uint8)


def pack(bits: np.ndarray) -> np.ndarray:
    """Port value of n-bit vectors given as 0/1 rows: bit i of the row is bit i of the
    port (little-endian byte matrix above 64 bits, uint64 up to 64)."""
    bits = np.asarray(bits, np.uint8)
    b = np.packbits(bits, axis=1, bitorder="little")
    n = bits.shape[1]
    return from_bytes(b, n, False) if n <= 64 else b


def _load_npz(name: str) -> dict:
    raw = load_params(name)
    out = {}
    for k, v in raw.items():
        if k.endswith("_packed"):
            base = k[:-len("_packed")]
            rows, cols = raw[base + "_shape"]
            out[base] = np.unpackbits(v, axis=1, bitorder="little", count=int(cols))[:rows]
        elif not k.endswith("_shape"):
            out[k] = v
    return out


@dataclass(frozen=True)
class BnnParams:
    """Deployed BNN: weight bits per layer (out, in) after sign folding, integer
    thresholds per hidden layer, and the float batch-norm it came from."""

    levels: tuple
    weights: tuple      # uint8 0/1 arrays (out, in), hidden rows already sign-folded
    thresholds: tuple   # int64 per hidden layer
    raw: dict           # the trained parameters as stored


def fold(raw: dict) -> BnnParams:
    """Fold batch-norm + sign into ``dot >= thr`` per neuron (see module docstring).

    ``T = mu - beta * sqrt(var + eps) / gamma`` (float64 from the float32 parameters).
    ``gamma > 0``: ``thr = ceil(T)``. ``gamma < 0``: invert the row's weight bits and
    ``thr = ceil(-T)``. ``gamma == 0``: the neuron is constant (``beta >= 0``): ``thr = -n``
    (always 1) or ``n + 1`` (always 0). ``thr`` is clipped to ``-n..n+1``, which leaves every
    comparison with a reachable ``dot`` unchanged.
    """
    nl = sum(1 for k in raw if k.startswith("gamma"))
    weights, thresholds = [], []
    for i in range(1, nl + 1):
        w = raw[f"w{i}"].astype(np.uint8).copy()
        n = w.shape[1]
        g = raw[f"gamma{i}"].astype(np.float64)
        thr = level_threshold(raw, i, 0.0)
        if n + 1 > (1 << (dot_width(n) - 1)) - 1:
            raise ValueError(f"threshold n+1={n + 1} does not fit the thr port of n={n}")
        w[g < 0] ^= 1
        weights.append(w)
        thresholds.append(thr)
    weights.append(raw[f"w{nl + 1}"].astype(np.uint8))
    return BnnParams(tuple(int(v) for v in raw["levels"]), tuple(weights), tuple(thresholds), raw)


def level_threshold(raw: dict, i: int, c: float) -> np.ndarray:
    """Integer threshold per neuron of layer ``i`` for ``u >= c``, ``u = gamma (dot - mu) /
    sqrt(var + eps) + beta`` (float64 from the float32 parameters), on ``dot`` with the
    row's bits inverted where ``gamma < 0`` (see :func:`fold`): ``T = mu + sd (c - beta) /
    gamma``, ``thr = ceil(T)`` (``gamma > 0``) or ``ceil(-T)`` (``gamma < 0``); ``gamma = 0``:
    ``-n`` (always true, ``beta >= c``) or ``n + 1`` (never); clipped to ``-n..n+1``."""
    n = raw[f"w{i}"].shape[1]
    g = raw[f"gamma{i}"].astype(np.float64)
    sd = np.sqrt(raw[f"var{i}"].astype(np.float64) + float(raw["eps"]))
    b, mu = raw[f"beta{i}"].astype(np.float64), raw[f"mu{i}"].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mu + sd * (c - b) / g
    thr = np.where(g > 0, np.ceil(t), np.ceil(-t))
    thr = np.where(g == 0, np.where(b >= c, -n, n + 1), thr)
    return np.clip(thr, -n, n + 1).astype(np.int64)


@lru_cache(maxsize=1)
def load() -> BnnParams:
    """The committed, folded parameters (``golden/nets/params/bnn.npz``)."""
    return fold(_load_npz("bnn"))


def layer_operands(a_bits: np.ndarray, w_bits: np.ndarray, thr=None) -> dict:
    """Port arrays of ``xnor_popcount`` for every (image, neuron) pair of one layer, image
    major (image 0's neurons in order, then image 1's...): ``a``, ``w`` (and ``thr``)."""
    nimg, nout = a_bits.shape[0], w_bits.shape[0]
    a = pack(a_bits)
    w = pack(w_bits)
    ia, iw = np.repeat(np.arange(nimg), nout), np.tile(np.arange(nout), nimg)
    x = {"a": a[ia], "w": w[iw]}
    if thr is not None:
        x["thr"] = np.asarray(thr, np.int64)[iw]
    return x


def _xnor(n: int, threshold: bool) -> dict:
    return {"n": n, "pipeline": 0, "threshold": int(threshold), "popcount": "tree"}


def forward(pixels: np.ndarray, params: BnnParams | None = None, execute=None) -> dict:
    """Integer inference, one ``xnor_popcount`` operation per (image, neuron).

    ``execute`` runs each layer's operations (default: the unit's golden model; see
    :mod:`golden.nets.program`). Returns ``{"trace", "bits": [a0, h1, h2] (0/1 uint8
    activations entering each layer), "dots": [dot per layer (N, out)], "scores": (N, 10),
    "pred": (N,)}``.
    """
    from .program import Trace, run_map
    p = params or load()
    trace = Trace()
    a = thermometer(pixels, p.levels)
    nimg = len(a)
    bits, dots = [a], []
    for i, w in enumerate(p.weights):
        n = w.shape[1]
        hidden = i < len(p.thresholds)
        x = layer_operands(a, w, p.thresholds[i] if hidden else None)
        if hidden:
            def gold(x, n=n):
                dot, y = xnor_popcount(x["a"], x["w"], n, x["thr"])
                return {"dot": dot, "y": y}
        else:
            def gold(x, n=n):
                return {"dot": xnor_popcount(x["a"], x["w"], n)}
        out = run_map(trace, execute, f"fc{i + 1}", "xnor_popcount", _xnor(n, hidden), x, gold,
                      nimg)
        dots.append(np.asarray(out["dot"]).astype(np.int64).reshape(nimg, -1))
        if hidden:
            a = np.asarray(out["y"]).astype(np.uint8).reshape(nimg, -1)
            bits.append(a)
    scores = dots[-1]
    trace.tensors = {**{f"bits{i}": b for i, b in enumerate(bits)},
                     **{f"dot{i + 1}": d for i, d in enumerate(dots)}}
    return {"trace": trace, "bits": bits, "dots": dots, "scores": scores,
            "pred": np.argmax(scores, axis=1)}


def float_forward(pixels: np.ndarray, params: BnnParams | None = None,
                  activation=None) -> np.ndarray:
    """Float32 reference: {-1,+1} matrix products with the batch-norm in float32 (the
    trained network before folding). Returns the output scores (N, 10).

    ``activation(u)`` of the hidden layers: sign (``u >= 0``: +1) unless given (the
    ``binaryduo`` network's ternary one)."""
    raw = (params or load()).raw
    h = thermometer(pixels, tuple(raw["levels"])).astype(np.float32) * 2 - 1
    nl = sum(1 for k in raw if k.startswith("gamma"))
    for i in range(1, nl + 1):
        z = h @ (raw[f"w{i}"].astype(np.float32) * 2 - 1).T
        u = raw[f"gamma{i}"] * (z - raw[f"mu{i}"]) / np.sqrt(raw[f"var{i}"] + raw["eps"]) \
            + raw[f"beta{i}"]
        h = np.where(u >= 0, 1.0, -1.0).astype(np.float32) if activation is None else activation(u)
    return h @ (raw[f"w{nl + 1}"].astype(np.float32) * 2 - 1).T
