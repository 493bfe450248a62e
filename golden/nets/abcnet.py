"""``abc``: an ABC-Net MLP 64-128-64-10 whose every layer runs on ``abc_dot`` (M = N = 3).

ABC-Net (Lin, Zhao, Pan, NeurIPS 2017) approximates each layer's weights by ``M`` binary
bases and its input activations by ``N`` binary bases, so a layer is ``M * N`` binary dot
products combined with scale factors; here the same architecture as the float/int8 MLP
(64-128-64-10), trained in NumPy by :func:`golden.nets.train.train_abc`:

* **Weight bases** (paper eq. 2-3, per layer): ``B_m = sign(W - mean(W) + u_m std(W))`` with
  ``u = (-1, 0, +1)`` (``sign(0) = +1``), and ``alpha`` the least-squares fit
  ``min ||W - sum_m alpha_m B_m||``, recomputed from the latent float weights at every step.
* **Activation bases** (paper eq. 6-7, per layer): ``H_k = 2 [hclip(U + v_k) >= 0.5] - 1``,
  ``hclip(x) = clip(x, 0, 1)``, with learnt shifts ``v_k`` and scales ``beta_k``;
  ``A = sum_k beta_k H_k``. ``U`` is the batch-normalized output of the previous layer. The
  input layer's bases are fixed thresholds of the pixel, ``H_k = [p >= INPUT_LEVELS[k]]``
  (``beta_k`` learnt).
* **Training**: straight-through estimator (``dB/dW = 1``; ``dH/dU = 2`` where
  ``0 <= U + v_k <= 1``), batch norm after each hidden layer, a learnt logit scale on the
  output, Adam, cosine decay, seed 0.

**Deployment** (:func:`fold`, what runs on the unit): per layer, ``alpha`` and ``beta`` become
signed :data:`SCALE_WIDTH`-bit integers (symmetric, one scale each per layer:
``alpha_q = rint(127 alpha / max|alpha|)``), and every output is one ``abc_dot`` operation
``z = sum_mk alpha_q[m] beta_q[k] (B_m . H_k)`` (integer, exact). For a hidden neuron the
batch norm and the ``N`` activation bases fold into ``N`` integer thresholds on ``z``:
``H_k = [d z >= thr_k]`` with ``d = sign(gamma)`` (+1 or -1). These ``N`` comparisons per
neuron are not part of the ``abc_dot`` unit (it outputs ``z``); they run in NumPy, as the
thresholds of the ``bnn`` and ``binaryduo`` networks' ternary layers do. The class is the
first index of the largest ``z`` of the output layer.

The float reference (:func:`float_forward`) is the trained network with float scales and
float batch norm; the deployed one differs from it only by the 8-bit scales and the
threshold rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qrtl.golden.abc import abc_dot

from .bnn import pack
from .data import load_params
from .program import Trace, run_map

__all__ = ["M_BASES", "N_BASES", "SCALE_WIDTH", "INPUT_LEVELS", "U_SHIFTS", "weight_bases",
           "fit_alpha", "activation_bases", "AbcParams", "fold", "load", "forward",
           "float_forward", "unit_params"]

M_BASES = 3
N_BASES = 3
SCALE_WIDTH = 8
#: pixel thresholds of the input activation bases: H_k = [p >= level_k]
INPUT_LEVELS = (3, 8, 13)
#: u_m of the weight bases (paper: evenly spread over [-1, 1])
U_SHIFTS = (-1.0, 0.0, 1.0)


def weight_bases(w: np.ndarray, shifts=U_SHIFTS) -> np.ndarray:
    """``B_m = sign(W - mean W + u_m std W)`` as float32 ±1, shape ``(M,) + w.shape``."""
    w = np.asarray(w, np.float64)
    c = w - w.mean()
    sd = w.std()
    return np.stack([np.where(c + u * sd >= 0, 1.0, -1.0) for u in shifts]).astype(np.float32)


def fit_alpha(w: np.ndarray, bases: np.ndarray) -> np.ndarray:
    """Least-squares ``alpha`` of ``W ~ sum_m alpha_m B_m`` (float32, shape (M,))."""
    a = bases.reshape(len(bases), -1).T.astype(np.float64)
    alpha, *_ = np.linalg.lstsq(a, np.asarray(w, np.float64).reshape(-1), rcond=None)
    return alpha.astype(np.float32)


def activation_bases(u: np.ndarray, shifts) -> np.ndarray:
    """``H_k = 2 [clip(U + v_k, 0, 1) >= 0.5] - 1`` (float32 ±1), shape ``(N,) + u.shape``."""
    return np.stack([np.where(np.clip(u + v, 0, 1) >= 0.5, 1.0, -1.0)
                     for v in shifts]).astype(np.float32)


def _input_bits(pixels: np.ndarray) -> np.ndarray:
    """Input bases as bits (N, images, 64): bit 1 = +1 = ``p >= level``."""
    x = np.asarray(pixels)
    return np.stack([(x >= lv) for lv in INPUT_LEVELS]).astype(np.uint8)


def _quantize_scales(s: np.ndarray, width: int = SCALE_WIDTH) -> np.ndarray:
    top = (1 << (width - 1)) - 1
    m = float(np.max(np.abs(s)))
    if m == 0:
        return np.zeros(len(s), np.int64)
    return np.clip(np.rint(np.asarray(s, np.float64) * top / m), -top, top).astype(np.int64)


@dataclass(frozen=True)
class AbcParams:
    """Deployed ABC-Net: per layer the weight-base bits ``(M, out, in)``, the integer scales,
    and per hidden layer the thresholds ``(out, N)`` and directions ``(out,)``."""

    bases: tuple        # uint8 0/1 arrays (M, out, in)
    alpha: tuple        # int64 (M,) per layer
    beta: tuple         # int64 (N,) per layer (the scales of that layer's input bases)
    thresholds: tuple   # int64 (out, N) per hidden layer
    directions: tuple   # int64 (out,) per hidden layer: +1, or -1 where gamma < 0
    raw: dict


def _layers(raw: dict) -> int:
    return sum(1 for k in raw if k.startswith("w") and k[1:].isdigit())


def fold(raw: dict) -> AbcParams:
    """Integer scales and thresholds from the trained float parameters (module docstring).

    With ``s = s_alpha s_beta`` (the real value of one unit of ``z``), the hidden
    activation ``H_k = [gamma (s z - mu) / sd + b + v_k >= 0.5]`` is ``z >= T_k`` for
    ``gamma > 0`` and ``z <= T_k`` for ``gamma < 0``, ``T_k = (mu + sd (0.5 - b - v_k) /
    gamma) / s``; so ``d = sign(gamma)``, ``thr_k = ceil(d T_k)`` and ``H_k = [d z >=
    thr_k]`` (float64 arithmetic from the float32 parameters). ``gamma = 0`` gives a constant
    base (``thr = -2**62`` or ``+2**62``).
    """
    nl = _layers(raw)
    bases, alphas, betas, thrs, dirs = [], [], [], [], []
    for i in range(1, nl + 1):
        w = raw[f"w{i}"]
        b = weight_bases(w)
        bases.append((b > 0).astype(np.uint8))
        a_f = fit_alpha(w, b).astype(np.float64)
        b_f = raw[f"beta{i}"].astype(np.float64)
        aq, bq = _quantize_scales(a_f), _quantize_scales(b_f)
        alphas.append(aq)
        betas.append(bq)
        if i == nl:
            break
        s = (np.max(np.abs(a_f)) / 127) * (np.max(np.abs(b_f)) / 127)
        g = raw[f"gamma{i}"].astype(np.float64)
        sd = np.sqrt(raw[f"var{i}"].astype(np.float64) + float(raw["eps"]))
        mu, bb = raw[f"mu{i}"].astype(np.float64), raw[f"bn_beta{i}"].astype(np.float64)
        v = raw[f"v{i + 1}"].astype(np.float64)   # shifts of the next layer's input bases
        d = np.where(g < 0, -1, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (mu[:, None] + sd[:, None] * (0.5 - bb[:, None] - v[None, :]) / g[:, None]) / s
        thr = np.ceil(d[:, None] * t)
        const = np.where(bb[:, None] + v[None, :] >= 0.5, -(2 ** 62), 2 ** 62)
        thr = np.where(g[:, None] == 0, const, thr)
        thrs.append(np.clip(thr, -(2 ** 62), 2 ** 62).astype(np.int64))
        dirs.append(d.astype(np.int64))
    return AbcParams(tuple(bases), tuple(alphas), tuple(betas), tuple(thrs), tuple(dirs), raw)


@lru_cache(maxsize=1)
def load() -> AbcParams:
    """The committed, folded parameters (``golden/nets/params/abc.npz``)."""
    return fold(load_params("abc"))


def unit_params(n: int) -> dict:
    """The ``abc_dot`` configuration of a layer with ``n`` inputs."""
    return {"n": n, "M": M_BASES, "N": N_BASES, "scale_width": SCALE_WIDTH, "pipeline": 0}


def _layer_operands(h_bits: np.ndarray, b_bits: np.ndarray, alpha, beta) -> dict:
    """Port arrays of ``abc_dot`` for every (image, neuron) pair, image major:
    ``w0..`` (neuron's weight bases), ``a0..`` (image's activation bases), scales."""
    nimg, nout = h_bits.shape[1], b_bits.shape[1]
    ia, iw = np.repeat(np.arange(nimg), nout), np.tile(np.arange(nout), nimg)
    x = {}
    for m in range(len(b_bits)):
        x[f"w{m}"] = pack(b_bits[m])[iw]
    for k in range(len(h_bits)):
        x[f"a{k}"] = pack(h_bits[k])[ia]
    count = nimg * nout
    for m, a in enumerate(alpha):
        x[f"alpha{m}"] = np.full(count, int(a), np.int64)
    for k, b in enumerate(beta):
        x[f"beta{k}"] = np.full(count, int(b), np.int64)
    return x


def forward(pixels: np.ndarray, params: AbcParams | None = None, execute=None) -> dict:
    """Integer inference, one ``abc_dot`` operation per (image, neuron) (module docstring).

    Returns ``{"trace", "bits": [input bases (N, images, n) of each layer], "dots": [z per
    layer (images, out)], "scores", "pred"}``.
    """
    p = params or load()
    trace = Trace()
    h = _input_bits(pixels)
    nimg = h.shape[1]
    bits, dots = [h], []
    for i, b in enumerate(p.bases):
        n = b.shape[2]
        x = _layer_operands(h, b, p.alpha[i], p.beta[i])
        m_bases, n_bases = len(b), len(h)

        def gold(x, n=n, m_bases=m_bases, n_bases=n_bases):
            return {"dot": abc_dot([x[f"w{m}"] for m in range(m_bases)],
                                   [x[f"a{k}"] for k in range(n_bases)],
                                   [x[f"alpha{m}"] for m in range(m_bases)],
                                   [x[f"beta{k}"] for k in range(n_bases)], n)}
        out = run_map(trace, execute, f"fc{i + 1}", "abc_dot", unit_params(n), x, gold, nimg)
        z = np.asarray(out["dot"]).astype(np.int64).reshape(nimg, -1)
        dots.append(z)
        if i < len(p.thresholds):
            dz = z * p.directions[i][None, :]
            h = np.stack([(dz >= p.thresholds[i][None, :, k]) for k in range(N_BASES)]).astype(np.uint8)
            bits.append(h)
    scores = dots[-1]
    trace.tensors = {**{f"bits{i}": b for i, b in enumerate(bits)},
                     **{f"dot{i + 1}": d for i, d in enumerate(dots)}}
    return {"trace": trace, "bits": bits, "dots": dots, "scores": scores,
            "pred": np.argmax(scores, axis=1)}


def float_forward(pixels: np.ndarray, raw: dict | None = None):
    """Float32 reference: the trained network with float scales and float batch norm
    (running statistics). Returns the output layer's ``Z`` (images, 10) (the logits up to
    the positive logit scale)."""
    raw = raw if raw is not None else load().raw
    nl = _layers(raw)
    x = np.asarray(pixels)
    h = np.stack([np.where(x >= lv, 1.0, -1.0) for lv in INPUT_LEVELS]).astype(np.float32)
    for i in range(1, nl + 1):
        w = raw[f"w{i}"]
        b = weight_bases(w)
        w_hat = np.tensordot(fit_alpha(w, b), b, axes=1)
        a_hat = np.tensordot(raw[f"beta{i}"].astype(np.float32), h, axes=1)
        z = (a_hat @ w_hat.T).astype(np.float32)
        if i == nl:
            return z
        u = raw[f"gamma{i}"] * (z - raw[f"mu{i}"]) / np.sqrt(raw[f"var{i}"] + raw["eps"]) \
            + raw[f"bn_beta{i}"]
        h = activation_bases(u, raw[f"v{i + 1}"])
