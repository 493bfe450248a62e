"""Reproducible training of the networks (``qrtl train NAME``).

Inference and tests never need this module: its output is committed under
``golden/nets/params/`` (package data). ``qrtl train NAME`` writes to ``build/params/`` or
the folder it is given, never into the installed package. Everything is seeded, so rerunning ``qrtl train NAME`` on the same
library versions writes the same file.

* ``float``: the MLP 64-128-64-10 (ReLU) that the ``int8`` and ``fp8`` networks quantize,
  trained with scikit-learn's ``MLPClassifier`` (Adam, L2 1e-3, ``random_state=0``) on
  pixels / 16.
* ``bnn``: a binarized MLP (Courbariaux et al. 2016, FINN-style deployment) trained here in
  NumPy: latent real weights clipped to [-1, 1], forward with their signs, batch-norm after
  every binary dot product, sign activations with the straight-through estimator, Adam,
  seed 0. See :mod:`golden.nets.bnn` for the network itself.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from qrtl.golden.cache import atomic_output

__all__ = ["train_float", "train_bnn", "train_binaryduo", "train_abc", "TRAINERS", "save"]


def _single_thread(fn):
    """Run ``fn`` with one BLAS/OpenMP thread: the same sums in the same order on every
    machine (and no thread thrashing on a shared 2-core box)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits
        with threadpool_limits(1):
            return fn(*args, **kwargs)
    return wrapper


@_single_thread
def train_float(seed: int = 0) -> dict:
    """Float MLP 64-128-64-10: ``{"w1", "b1", "w2", "b2", "w3", "b3"}`` (float32;
    weights shaped (out, in)) trained on the train split with input ``pixels / 16``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from qrtl.golden.nets.data import load_split
    s = load_split()
    clf = MLPClassifier((128, 64), activation="relu", alpha=1e-3, max_iter=300,
                        random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(s.x_train / 16.0, s.y_train)
    out = {}
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_), 1):
        out[f"w{i}"] = np.ascontiguousarray(w.T, dtype=np.float32)
        out[f"b{i}"] = b.astype(np.float32)
    return out


# --- BNN ------------------------------------------------------------------------------

def _sign(x):
    """sign with sign(0) = +1 (the {-1,+1} code of bit 1)."""
    return np.where(x >= 0, 1.0, -1.0).astype(np.float32)


def _softmax_xent(z, logscale, y):
    """Gradient of the mean softmax cross-entropy of ``exp(logscale) * z`` w.r.t. the
    logits, and w.r.t. ``logscale``: ``(d, g_logscale)``; ``d * exp(logscale)`` is the
    gradient w.r.t. ``z``."""
    sc = np.exp(logscale[0])
    logits = z * sc
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d = p.copy()
    d[np.arange(len(y)), y] -= 1
    d /= len(y)
    return d, np.array([(d * z).sum() * sc], np.float32)


def _bn_backward(du, zh, v, eps):
    """Gradient of ``zh = (z - mean) / sqrt(var + eps)`` (batch statistics) w.r.t. ``z``."""
    b = len(du)
    return (b * du - du.sum(0) - zh * (du * zh).sum(0)) / (b * np.sqrt(v + eps))


class _Adam:
    def __init__(self, params, lr):
        self.p, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(x) for x in params]
        self.v = [np.zeros_like(x) for x in params]

    def step(self, grads, lr):
        self.t += 1
        for p, g, m, v in zip(self.p, grads, self.m, self.v):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            mh = m / (1 - 0.9 ** self.t)
            vh = v / (1 - 0.999 ** self.t)
            p -= lr * mh / (np.sqrt(vh) + 1e-8)


@_single_thread
def train_bnn(seed: int = 0, hidden=(256, 256), epochs: int = 150, batch: int = 64,
              lr: float = 3e-3, delta: float | None = None) -> dict:
    """Binarized MLP on the thermometer code of the pixels (see :mod:`golden.nets.bnn`).

    Returns the npz content: ``levels`` (thermometer thresholds), per layer ``w{i}``
    (uint8 bits, 1 = +1, shape (out, in)), per hidden layer the batch-norm running
    statistics and affine parameters ``mu{i}``, ``var{i}``, ``gamma{i}``, ``beta{i}``, and
    ``eps``.

    With ``delta`` (BinaryDuo, :func:`train_binaryduo`) the hidden activations are ternary,
    ``[u >= delta] + [u >= -delta] - 1``, instead of ``sign(u)``, with the same
    straight-through estimator; ``delta`` is then stored too.
    """
    from qrtl.golden.nets.bnn import LEVELS, thermometer
    from qrtl.golden.nets.data import load_split
    s = load_split()
    rng = np.random.default_rng(seed)
    x_all = thermometer(s.x_train).astype(np.float32) * 2 - 1
    y_all = s.y_train
    sizes = [x_all.shape[1], *hidden, 10]
    W = [rng.uniform(-1, 1, (o, i)).astype(np.float32) * np.float32(np.sqrt(1.5 / i))
         for i, o in zip(sizes[:-1], sizes[1:])]
    G = [np.ones(h, np.float32) for h in hidden]
    B = [np.zeros(h, np.float32) for h in hidden]
    logscale = np.array([np.log(1.0 / np.sqrt(sizes[-2]))], np.float32)
    mu_run = [np.zeros(h, np.float32) for h in hidden]
    var_run = [np.ones(h, np.float32) for h in hidden]
    eps, mom = 1e-4, 0.1
    params = W + G + B + [logscale]
    opt = _Adam(params, lr)
    nl = len(hidden)
    n = len(y_all)
    for ep in range(epochs):
        lr_ep = lr * 0.5 * (1 + np.cos(np.pi * ep / epochs))  # cosine decay
        order = rng.permutation(n)
        for lo in range(0, n, batch):
            idx = order[lo:lo + batch]
            x, y = x_all[idx], y_all[idx]
            cache = []
            h = x
            for i in range(nl):
                wb = _sign(W[i])
                z = h @ wb.T
                m, v = z.mean(0), z.var(0)
                zh = (z - m) / np.sqrt(v + eps)
                u = G[i] * zh + B[i]
                cache.append((h, wb, zh, v, u))
                mu_run[i] = (1 - mom) * mu_run[i] + mom * m
                var_run[i] = (1 - mom) * var_run[i] + mom * v
                h = _sign(u) if delta is None else \
                    ((u >= delta).astype(np.float32) + (u >= -delta) - 1).astype(np.float32)
            wb = _sign(W[nl])
            z = h @ wb.T
            d, g_logscale = _softmax_xent(z, logscale, y)
            grads_w = [None] * (nl + 1)
            dz = d * np.exp(logscale[0])
            grads_w[nl] = dz.T @ h
            dh = dz @ wb
            gG, gB = [None] * nl, [None] * nl
            for i in reversed(range(nl)):
                hin, wb, zh, v, u = cache[i]
                du = dh * (np.abs(u) <= 1)  # straight-through estimator
                gG[i] = (du * zh).sum(0)
                gB[i] = du.sum(0)
                dz = _bn_backward(du * G[i], zh, v, eps)
                grads_w[i] = dz.T @ hin
                dh = dz @ wb
            opt.step(grads_w + gG + gB + [g_logscale], lr_ep)
            for w in W:
                np.clip(w, -1, 1, out=w)
    out = {"levels": np.array(LEVELS, np.int64), "eps": np.array(eps, np.float32)}
    for i, w in enumerate(W, 1):
        out[f"w{i}"] = (w >= 0).astype(np.uint8)
    for i in range(nl):
        out[f"mu{i + 1}"], out[f"var{i + 1}"] = mu_run[i], var_run[i]
        out[f"gamma{i + 1}"], out[f"beta{i + 1}"] = G[i], B[i]
    if delta is not None:
        out["delta"] = np.array(delta, np.float32)
    return out


def train_binaryduo(seed: int = 0) -> dict:
    """BinaryDuo: the ``bnn`` recipe with ternary hidden activations (``delta`` =
    :data:`golden.nets.binaryduo.DELTA`) at half the BNN's width, 128 (see
    :mod:`golden.nets.binaryduo`)."""
    from qrtl.golden.nets.binaryduo import DELTA
    return train_bnn(seed=seed, hidden=(128, 128), delta=DELTA)


# --- ABC-Net ------------------------------------------------------------------------


@_single_thread
def train_abc(seed: int = 0, hidden=(128, 64), epochs: int = 150, batch: int = 64,
              lr: float = 3e-3) -> dict:
    """ABC-Net MLP 64-128-64-10, M = N = 3 (see :mod:`golden.nets.abcnet`).

    Returns the npz content: per layer ``w{i}`` (latent float32 weights, (out, in)) and
    ``beta{i}`` (scales of the layer's input bases), per hidden layer the batch-norm
    running statistics ``mu{i}``, ``var{i}``, affine ``gamma{i}``, ``bn_beta{i}``, the
    shifts ``v{i+1}`` of the next layer's input bases, ``eps`` and ``logscale``.
    """
    from qrtl.golden.nets.abcnet import (INPUT_LEVELS, N_BASES, activation_bases, fit_alpha,
                                         weight_bases)
    from qrtl.golden.nets.data import load_split
    s = load_split()
    rng = np.random.default_rng(seed)
    x_all = np.stack([np.where(s.x_train >= lv, 1.0, -1.0) for lv in INPUT_LEVELS]).astype(np.float32)
    y_all = s.y_train
    sizes = [x_all.shape[2], *hidden, 10]
    nl = len(hidden)
    W = [rng.uniform(-1, 1, (o, i)).astype(np.float32) * np.float32(np.sqrt(1.5 / i))
         for i, o in zip(sizes[:-1], sizes[1:])]
    Bt = [np.full(N_BASES, 1.0 / N_BASES, np.float32) for _ in W]
    V = [np.array([1.0, 0.5, 0.0], np.float32)[:N_BASES] for _ in range(nl)]
    G = [np.ones(h, np.float32) for h in hidden]
    Bb = [np.zeros(h, np.float32) for h in hidden]
    logscale = np.array([np.log(1.0 / np.sqrt(sizes[-2]))], np.float32)
    mu_run = [np.zeros(h, np.float32) for h in hidden]
    var_run = [np.ones(h, np.float32) for h in hidden]
    eps, mom = 1e-4, 0.1
    params = W + Bt + V + G + Bb + [logscale]
    opt = _Adam(params, lr)
    n = len(y_all)
    for ep in range(epochs):
        lr_ep = lr * 0.5 * (1 + np.cos(np.pi * ep / epochs))
        order = rng.permutation(n)
        for lo in range(0, n, batch):
            idx = order[lo:lo + batch]
            h, y = x_all[:, idx], y_all[idx]
            cache = []
            for i in range(nl + 1):
                wb = weight_bases(W[i])
                w_hat = np.tensordot(fit_alpha(W[i], wb), wb, axes=1)
                a_hat = np.tensordot(Bt[i], h, axes=1)
                z = a_hat @ w_hat.T
                entry = {"h": h, "w_hat": w_hat, "a_hat": a_hat}
                if i < nl:
                    m, v = z.mean(0), z.var(0)
                    zh = (z - m) / np.sqrt(v + eps)
                    u = G[i] * zh + Bb[i]
                    mu_run[i] = (1 - mom) * mu_run[i] + mom * m
                    var_run[i] = (1 - mom) * var_run[i] + mom * v
                    entry.update(zh=zh, v=v, u=u)
                    h = activation_bases(u, V[i])
                cache.append(entry)
            d, g_logscale = _softmax_xent(z, logscale, y)
            gW, gBt = [None] * (nl + 1), [None] * (nl + 1)
            gV, gG, gBb = [None] * nl, [None] * nl, [None] * nl
            dz = d * np.exp(logscale[0])
            for i in reversed(range(nl + 1)):
                c = cache[i]
                gW[i] = dz.T @ c["a_hat"]          # straight through the weight bases
                da = dz @ c["w_hat"]
                gBt[i] = np.array([(da * hk).sum() for hk in c["h"]], np.float32)
                if i == 0:
                    break
                prev = cache[i - 1]
                du = np.zeros_like(prev["u"])
                gv = np.zeros(N_BASES, np.float32)
                for k in range(N_BASES):
                    ste = 2.0 * ((prev["u"] + V[i - 1][k] >= 0) & (prev["u"] + V[i - 1][k] <= 1))
                    dk = Bt[i][k] * da * ste
                    du += dk
                    gv[k] = dk.sum()
                gV[i - 1] = gv
                gG[i - 1] = (du * prev["zh"]).sum(0)
                gBb[i - 1] = du.sum(0)
                dz = _bn_backward(du * G[i - 1], prev["zh"], prev["v"], eps)
            opt.step(gW + gBt + gV + gG + gBb + [g_logscale], lr_ep)
    out = {"eps": np.array(eps, np.float32), "logscale": logscale}
    for i in range(nl + 1):
        out[f"w{i + 1}"], out[f"beta{i + 1}"] = W[i], Bt[i]
    for i in range(nl):
        out[f"mu{i + 1}"], out[f"var{i + 1}"] = mu_run[i], var_run[i]
        out[f"gamma{i + 1}"], out[f"bn_beta{i + 1}"] = G[i], Bb[i]
        out[f"v{i + 2}"] = V[i]
    return out


TRAINERS = {"float": train_float, "bnn": train_bnn, "abc": train_abc,
            "binaryduo": train_binaryduo}


def save(name: str, params: dict, folder) -> Path:
    """Write ``params`` as ``folder/NAME.npz`` (compressed; bit arrays packed; written
    atomically), the format of the committed files in :data:`qrtl.golden.nets.data.PARAMS`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.npz"
    packed = {}
    for k, v in params.items():
        if v.dtype == np.uint8 and k.startswith("w"):  # weight bits: 8 per byte
            packed[k + "_packed"] = np.packbits(v, axis=1, bitorder="little")
            packed[k + "_shape"] = np.array(v.shape, np.int64)
        else:
            packed[k] = v
    with atomic_output(path, "wb") as fh:
        np.savez_compressed(fh, **packed)
    return path

