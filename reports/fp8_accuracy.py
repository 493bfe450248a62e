"""``qrtl fp8-accuracy``: how accurate are long FP8 dot products with 16-bit accumulation?

The claim tested (Wang et al. 2018, "Training Deep Neural Networks with 8-bit Floating
Point Numbers"): plain 16-bit accumulation drifts as the sum grows (small products are
swamped by a large running sum), while chunk-based accumulation or stochastic rounding makes
a 16-bit accumulator track a 32-bit one.

Every dot product is computed bit-exactly by the golden model of the ``fp8_dot`` unit
(:func:`golden.fp8.fp8_dot_prefix`, additions in hardware order, one pass giving every
prefix length), and compared with the exact sum of the exact products (``math.fsum``).
Methods (``lanes = 1``):

* ``fp16 chunk=1``: each product rounded into fp16, summed in fp16 (the paper's chunk size 1,
  i.e. conventional fp16 accumulation);
* ``fp16 chunk=32`` / ``fp16 chunk=64``: fp16 chunk sums added into an fp16 outer sum
  (both levels 16-bit, as in the paper);
* ``fp16 chunk=64 outer=fp32``: the ``fp8_dot`` unit's default configuration;
* ``fp16 stochastic``: one fp16 accumulator with stochastic rounding (``rbits`` random bits),
  no chunking;
* ``fp32``: one fp32 accumulator (RNE), no chunking.

Data: ``normal`` (a, b ~ N(0, 1), products of mean 0), ``normal_mean1`` (a, b ~ N(1, 1): the
running sum grows linearly, the case where swamping shows) and, when the trained networks
are present, ``digits_mlp``: for each test image, the 8192 + 8192 products weight x
activation of the trained MLP's two hidden layers (:mod:`golden.nets.mlp`), in datapath order
(neuron by neuron), as one long sum. All values are rounded to the FP8 format (RNE,
saturating) before use.

Error metric: ``rel_err_rms = sqrt(mean_t (r_t - s_t)^2 / mean_t s_t^2)`` over the trials
``t`` (r: result, s: exact sum), and ``rel_err_median = median_t |r_t - s_t| / |s_t|``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from qrtl.golden.errors import QrtlError
from qrtl.golden.fp8 import RBITS_MAX, decode, encode, fp8_dot_prefix
from qrtl.golden.params import check_int

__all__ = ["METHODS", "DATASETS", "DEFAULT_LENGTHS", "MAX_LENGTH", "fp8_accuracy", "operands",
           "pivot"]

#: name -> keyword arguments of :func:`golden.fp8.fp8_dot_prefix` (chunk=None: no chunking)
METHODS: dict[str, dict] = {
    "fp16 chunk=1": dict(acc="fp16", chunk=1, outer="fp16"),
    "fp16 chunk=32": dict(acc="fp16", chunk=32, outer="fp16"),
    "fp16 chunk=64": dict(acc="fp16", chunk=64, outer="fp16"),
    "fp16 chunk=64 outer=fp32": dict(acc="fp16", chunk=64, outer="fp32"),
    "fp16 stochastic": dict(acc="fp16", chunk=None, outer="fp32", rounding="stochastic"),
    "fp32": dict(acc="fp32", chunk=None, outer="fp32"),
}
DATASETS = ("normal", "normal_mean1", "digits_mlp")
DEFAULT_LENGTHS = (64, 256, 1024, 4096, 16384)
#: Longest dot product (the operands of every trial are held in memory at once).
MAX_LENGTH = 1 << 20
MAX_TRIALS = 10_000
MAX_OPERANDS = 1 << 26


def _digits_mlp(fmt: str, trials: int, n: int):
    """``(a, b)`` codes (trials, n): hidden-layer activation x weight products of the trained
    MLP on the first test images, layer 1 then layer 2, neuron by neuron."""
    try:
        from qrtl.golden.nets.data import load_split
        from qrtl.golden.nets.mlp import float_forward, load_float
    except ImportError as exc:  # the networks are another issue's; say what is missing
        raise QrtlError(f"dataset digits_mlp needs the trained networks ({exc})") from None
    split = load_split()
    pix = split.x_test[:trials].astype(np.float64)
    _, acts = float_forward(split.x_test[:trials], hidden=True)
    (w1, _), (w2, _), _ = load_float()
    rows_a, rows_b = [], []
    for t in range(len(pix)):
        x0 = pix[t] / 16.0
        a = np.concatenate([np.tile(x0, w1.shape[0]), np.tile(acts[0][t].astype(np.float64), w2.shape[0])])
        b = np.concatenate([w1.astype(np.float64).ravel(), w2.astype(np.float64).ravel()])
        reps = -(-n // len(a))
        rows_a.append(np.tile(a, reps)[:n])
        rows_b.append(np.tile(b, reps)[:n])
    if len(rows_a) < trials:
        raise QrtlError(f"digits_mlp has only {len(rows_a)} test images (trials={trials})")
    return encode(np.array(rows_a), fmt, saturate=True), encode(np.array(rows_b), fmt, saturate=True)


def operands(data: str, fmt: str, trials: int, n: int, rng: np.random.Generator):
    """FP8 codes ``(a, b)``, shape ``(trials, n)``, of data set ``data`` (module docstring)."""
    if data == "normal":
        va, vb = rng.normal(0, 1, (trials, n)), rng.normal(0, 1, (trials, n))
    elif data == "normal_mean1":
        va, vb = rng.normal(1, 1, (trials, n)), rng.normal(1, 1, (trials, n))
    elif data == "digits_mlp":
        return _digits_mlp(fmt, trials, n)
    else:
        raise QrtlError(f"unknown data set {data!r} (allowed: {', '.join(DATASETS)})")
    return encode(va, fmt, saturate=True), encode(vb, fmt, saturate=True)


def fp8_accuracy(lengths=DEFAULT_LENGTHS, *, fmts=("e4m3", "e5m2"),
                 data=("normal", "normal_mean1", "digits_mlp"), methods=tuple(METHODS),
                 trials: int = 32, rbits: int = 16, seed: int = 0, progress=None) -> pd.DataFrame:
    """Relative error of FP8 dot products of each length, per format, data set and method.

    Returns a long table with columns ``fmt, data, method, length, trials, rel_err_rms,
    rel_err_median, nonfinite`` (``nonfinite``: results that overflowed to Inf/NaN, left out
    of the error columns). ``progress(step_name)`` is called once per (fmt, method).
    """
    lengths = sorted({check_int("dot-product length", L, 1, MAX_LENGTH) for L in lengths})
    trials = check_int("trials", trials, 1, MAX_TRIALS)
    rbits = check_int("rbits", rbits, 1, RBITS_MAX)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    for what, given, allowed in (("length", lengths, None), ("fmt", fmts, ("e4m3", "e5m2")),
                                 ("data", data, DATASETS), ("method", methods, METHODS)):
        if not given:
            raise QrtlError(f"no {what} given" + (f" (allowed: {', '.join(allowed)})" if allowed else ""))
        for x in given if allowed else ():
            if x not in allowed:
                raise QrtlError(f"{what}={x!r} is not one of {', '.join(allowed)}")
    operands_held = trials * lengths[-1] * len(data)
    if operands_held > MAX_OPERANDS:
        raise QrtlError(f"trials x longest length x data sets = {operands_held:,} operands is too "
                        f"many (at most {MAX_OPERANDS:,})")
    n = lengths[-1]
    rows = []
    for fi, fmt in enumerate(fmts):
        # every data set in one batch: the golden model's cost is per step, not per row
        parts = [operands(ds, fmt, trials, n, np.random.default_rng([seed, fi, di]))
                 for di, ds in enumerate(data)]
        a = np.concatenate([p[0] for p in parts])
        b = np.concatenate([p[1] for p in parts])
        prods = decode(a, fmt) * decode(b, fmt)              # exact in float64
        exact = np.array([[math.fsum(p[:L]) for L in lengths] for p in prods])
        rng = np.random.default_rng([seed, fi, len(data)])
        for method in methods:
            kw = dict(METHODS[method])
            kw["chunk"] = kw["chunk"] or n                   # None: one chunk, no flush
            rnd = None
            if kw.get("rounding") == "stochastic":
                rnd = rng.integers(0, 1 << rbits, a.shape, dtype=np.int64)
            res = decode(fp8_dot_prefix(a, b, lengths, fmt=fmt, rnd=rnd, rbits=rbits, **kw),
                         kw["outer"])
            for di, ds in enumerate(data):
                rs = slice(di * trials, (di + 1) * trials)
                for j, L in enumerate(lengths):
                    r, s = res[rs, j], exact[rs, j]
                    ok = np.isfinite(r)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        rms = math.sqrt(np.mean((r[ok] - s[ok]) ** 2) / np.mean(s[ok] ** 2)) \
                            if ok.any() and np.any(s[ok] != 0) else float("nan")
                        med = float(np.median(np.abs(r[ok] - s[ok]) / np.abs(s[ok]))) \
                            if ok.any() else float("nan")
                    rows.append({"fmt": fmt, "data": ds, "method": method, "length": L,
                                 "trials": trials, "rel_err_rms": rms, "rel_err_median": med,
                                 "nonfinite": int((~ok).sum())})
            if progress is not None:
                progress(f"{fmt} {method}")
    return pd.DataFrame(rows)


def pivot(df: pd.DataFrame, value: str = "rel_err_rms") -> pd.DataFrame:
    """Wide table: one row per (fmt, data, method), one column per length."""
    order = {m: i for i, m in enumerate(METHODS)}
    t = df.pivot_table(index=["fmt", "data", "method"], columns="length", values=value, sort=False)
    return t.sort_index(key=lambda idx: idx.map(order) if idx.name == "method" else idx)
