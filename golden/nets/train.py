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

__all__ = ["train_float", "train_bnn", "TRAINERS", "save"]


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
              lr: float = 3e-3) -> dict:
    """Binarized MLP on the thermometer code of the pixels (see :mod:`golden.nets.bnn`).

    Returns the npz content: ``levels`` (thermometer thresholds), per layer ``w{i}``
    (uint8 bits, 1 = +1, shape (out, in)), per hidden layer the batch-norm running
    statistics and affine parameters ``mu{i}``, ``var{i}``, ``gamma{i}``, ``beta{i}``, and
    ``eps``.
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
                h = _sign(u)
            wb = _sign(W[nl])
            z = h @ wb.T
            sc = np.exp(logscale[0])
            logits = z * sc
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            d = p.copy()
            d[np.arange(len(y)), y] -= 1
            d /= len(y)
            grads_w = [None] * (nl + 1)
            g_logscale = np.array([(d * z).sum() * sc], np.float32)
            dz = d * sc
            grads_w[nl] = dz.T @ h
            dh = dz @ wb
            gG, gB = [None] * nl, [None] * nl
            for i in reversed(range(nl)):
                hin, wb, zh, v, u = cache[i]
                du = dh * (np.abs(u) <= 1)  # straight-through estimator
                gG[i] = (du * zh).sum(0)
                gB[i] = du.sum(0)
                dzh = du * G[i]
                bsz = len(dzh)
                dz = (bsz * dzh - dzh.sum(0) - zh * (dzh * zh).sum(0)) / (bsz * np.sqrt(v + eps))
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
    return out


TRAINERS = {"float": train_float, "bnn": train_bnn}


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

