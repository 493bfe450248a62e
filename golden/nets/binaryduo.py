"""``binaryduo``: a BinaryDuo MLP (ternary activations), run ternary or decoupled to binary.

BinaryDuo (Kim, Kim, Kim, ICLR 2020) trains with ternary activations ``{-1, 0, +1}`` (two
coupled binary activations) and, at inference, decouples each into two binary activations:
with ``t = [u >= delta] + [u >= -delta] - 1``, ``t = (b_lo + b_hi) / 2`` where
``b_lo = sign(u + delta)`` and ``b_hi = sign(u - delta)`` (``sign(0) = +1``). The ternary
network of width ``H`` decouples into a binary network of width ``2 H`` whose weights are the
ternary network's, duplicated; so, as in the paper, the ternary model is trained at **half
the BNN's width** (128 here, against the ``bnn`` network's 256) and decouples into exactly the
``bnn`` network's architecture and compute: 256-256-256-10 binary, the same ``xnor_popcount``
operations per inference.

Network (trained in NumPy by :func:`golden.nets.train.train_binaryduo` with the ``bnn``
network's recipe: binary weights with latent clipped floats, batch norm, straight-through
estimator ``1[|u| <= 1]``, Adam, cosine decay, seed 0):

* **Input**: the ``bnn`` network's 256-bit thermometer code of the pixels (binary).
* **Hidden layers** 256 -> 128 -> 128 (binary weights, ternary outputs): ``z = w . a``, batch
  norm ``u``, ``t = [u >= delta] + [u >= -delta] - 1`` with ``delta`` = :data:`DELTA`. Folded
  (as :func:`golden.nets.bnn.fold`) into two integer thresholds per neuron, ``t =
  [z >= thr_hi] + [z >= thr_lo] - 1`` (rows with ``gamma < 0`` have their weight bits
  inverted).
* **Output layer** 128 -> 10: scores ``w . t``; the class is the first index of the largest.

Two inferences, ``mode``:

* ``ternary``: layer 1 on ``xnor_popcount`` (binary input, ``dot`` out; the two threshold
  comparisons per neuron in NumPy), layers 2 and 3 on ``ternary_dot`` (ternary activations,
  binary weights; comparisons in NumPy).
* ``decoupled``: every layer on ``xnor_popcount`` exactly like the ``bnn`` network: hidden
  layer ``l`` has ``2 H`` binary neurons (neuron ``j`` with ``thr_lo``, neuron ``H + j``
  with ``thr_hi``, the same weights), each reading the ``2 H_{l-1}`` decoupled bits with its
  weight row duplicated, ``[w, w]``, so its dot product is ``2 (w . t)`` and its threshold is
  doubled; the output scores are twice the ternary ones. Without fine-tuning after decoupling
  (the paper fine-tunes) the two modes compute the same function: every ternary activation
  and every prediction agree, which the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qrtl.golden.ternary import ternary_dot
from qrtl.golden.xnor import xnor_popcount

from .bnn import _load_npz, layer_operands, level_threshold, pack, thermometer
from .program import Trace, run_map

__all__ = ["DELTA", "MODES", "ternary", "DuoParams", "fold", "load", "forward",
           "float_forward"]

#: ternary activation threshold on the batch-normalized value
DELTA = 0.5
MODES = ("ternary", "decoupled")


def ternary(u: np.ndarray, delta: float = DELTA) -> np.ndarray:
    """``[u >= delta] + [u >= -delta] - 1`` (float32 in {-1, 0, +1})."""
    return ((u >= delta).astype(np.float32) + (u >= -delta) - 1).astype(np.float32)


@dataclass(frozen=True)
class DuoParams:
    """Deployed network: weight bits per layer (out, in), hidden rows sign-folded, and per
    hidden layer the thresholds ``lo``/``hi`` on ``z`` (int64 (out,) each)."""

    levels: tuple
    weights: tuple
    thr_lo: tuple
    thr_hi: tuple
    raw: dict


def fold(raw: dict) -> DuoParams:
    """Batch norm + ternary activation into ``[z >= thr_hi] + [z >= thr_lo] - 1``.

    ``u >= c`` with ``u = gamma (z - mu) / sd + beta`` is ``z >= T(c)`` for ``gamma > 0``,
    ``T(c) = mu + sd (c - beta) / gamma``, so ``thr = ceil(T(c))``; for ``gamma < 0`` the
    row's bits are inverted (``z -> -z``) and ``thr = ceil(-T(c))``; ``gamma = 0``: constant
    (``-n`` always true, ``n + 1`` never), clipped to ``-n..n+1`` as in the ``bnn`` network.
    """
    nl = sum(1 for k in raw if k.startswith("gamma"))
    weights, lo, hi = [], [], []
    for i in range(1, nl + 1):
        w = raw[f"w{i}"].astype(np.uint8).copy()
        delta = float(raw["delta"])
        lo.append(level_threshold(raw, i, -delta))
        hi.append(level_threshold(raw, i, delta))
        w[raw[f"gamma{i}"] < 0] ^= 1
        weights.append(w)
    weights.append(raw[f"w{nl + 1}"].astype(np.uint8))
    return DuoParams(tuple(int(v) for v in raw["levels"]), tuple(weights), tuple(lo), tuple(hi),
                     raw)


@lru_cache(maxsize=1)
def load() -> DuoParams:
    """The committed, folded parameters (``golden/nets/params/binaryduo.npz``)."""
    return fold(_load_npz("binaryduo"))


def _xnor(n: int, threshold: bool) -> dict:
    return {"n": n, "pipeline": 0, "threshold": int(threshold), "popcount": "tree"}


def _ternary_unit(n: int) -> dict:
    return {"n": n, "weights": "binary", "pipeline": 0}


def _xnor_layer(trace, execute, layer, a_bits, w_bits, thr, nimg):
    n = w_bits.shape[1]
    x = layer_operands(a_bits, w_bits, thr)
    if thr is not None:
        def gold(x, n=n):
            dot, y = xnor_popcount(x["a"], x["w"], n, x["thr"])
            return {"dot": dot, "y": y}
    else:
        def gold(x, n=n):
            return {"dot": xnor_popcount(x["a"], x["w"], n)}
    out = run_map(trace, execute, layer, "xnor_popcount", _xnor(n, thr is not None), x, gold, nimg)
    return {k: np.asarray(v).astype(np.int64).reshape(nimg, -1) for k, v in out.items()}


def _ternary_layer(trace, execute, layer, t_vals, w_bits, nimg):
    """``ternary_dot`` for every (image, neuron): activations (images, n) in {-1,0,1}."""
    from qrtl.golden.ternary import ternary_encode
    n, nout = w_bits.shape[1], w_bits.shape[0]
    sign, nz = ternary_encode(t_vals)
    w = pack(w_bits)
    ia, iw = np.repeat(np.arange(nimg), nout), np.tile(np.arange(nout), nimg)
    x = {"a_sign": sign[ia], "a_nz": nz[ia], "w": w[iw]}

    def gold(x, n=n):
        return {"dot": ternary_dot(x["a_sign"], x["a_nz"], n, w=x["w"])}
    out = run_map(trace, execute, layer, "ternary_dot", _ternary_unit(n), x, gold, nimg)
    return np.asarray(out["dot"]).astype(np.int64).reshape(nimg, -1)


def forward(pixels: np.ndarray, mode: str = "ternary", params: DuoParams | None = None,
            execute=None) -> dict:
    """Integer inference in ``mode`` (module docstring). Returns ``{"trace", "ternary":
    [hidden activations (images, H) in {-1,0,1}], "dots", "scores", "pred"}`` (``scores``
    of ``decoupled`` are twice those of ``ternary``)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} (allowed: {', '.join(MODES)})")
    p = params or load()
    trace = Trace()
    a = thermometer(pixels, p.levels)
    nimg = len(a)
    acts, dots = [], []
    nh = len(p.thr_lo)
    if mode == "ternary":
        t = None
        for i, w in enumerate(p.weights):
            if i == 0:
                z = _xnor_layer(trace, execute, "fc1", a, w, None, nimg)["dot"]
            else:
                z = _ternary_layer(trace, execute, f"fc{i + 1}", t, w, nimg)
            dots.append(z)
            if i < nh:
                t = ((z >= p.thr_hi[i]).astype(np.int8) + (z >= p.thr_lo[i]) - 1).astype(np.int8)
                acts.append(t)
        scores = dots[-1]
    else:
        bits = a
        for i, w in enumerate(p.weights):
            wd = w if i == 0 else np.concatenate([w, w], axis=1)   # rows [w, w]
            k = 1 if i == 0 else 2
            if i < nh:
                w2 = np.concatenate([wd, wd], axis=0)               # neuron j: lo, H + j: hi
                thr = np.concatenate([k * p.thr_lo[i], k * p.thr_hi[i]])
                out = _xnor_layer(trace, execute, f"fc{i + 1}", bits, w2, thr, nimg)
                bits = out["y"].astype(np.uint8)
                h = w.shape[0]
                acts.append((bits[:, :h].astype(np.int8) + bits[:, h:] - 1).astype(np.int8))
                dots.append(out["dot"][:, :h])
            else:
                out = _xnor_layer(trace, execute, f"fc{i + 1}", bits, wd, None, nimg)
                dots.append(out["dot"])
        scores = dots[-1]
    trace.tensors = {**{f"act{i + 1}": t for i, t in enumerate(acts)},
                     **{f"dot{i + 1}": d for i, d in enumerate(dots)}}
    return {"trace": trace, "ternary": acts, "dots": dots, "scores": scores,
            "pred": np.argmax(scores, axis=1)}


def float_forward(pixels: np.ndarray, params: DuoParams | None = None) -> np.ndarray:
    """Float32 reference: ±1 weights, float32 batch norm, ternary activations (the trained
    network before folding; :func:`golden.nets.bnn.float_forward` with this activation).
    Returns the output scores (images, 10)."""
    from . import bnn
    p = params or load()
    delta = float(p.raw["delta"])
    return bnn.float_forward(pixels, p, activation=lambda u: ternary(u, delta))
