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
from pathlib import Path

import numpy as np
import pandas as pd

from golden.fp8 import decode, encode, fp8_dot_prefix
from hw.errors import QrtlError

__all__ = ["METHODS", "DATASETS", "fp8_accuracy", "operands", "register_cli"]

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


def _digits_mlp(fmt: str, trials: int, n: int):
    """``(a, b)`` codes (trials, n): hidden-layer activation x weight products of the trained
    MLP on the first test images, layer 1 then layer 2, neuron by neuron."""
    try:
        from golden.nets.data import load_split
        from golden.nets.mlp import float_forward, load_float
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
    lengths = sorted({int(L) for L in lengths})
    if not lengths or lengths[0] < 1:
        raise QrtlError(f"lengths={lengths} must be positive integers")
    if trials < 1:
        raise QrtlError(f"trials={trials} must be at least 1")
    for m in methods:
        if m not in METHODS:
            raise QrtlError(f"unknown method {m!r} (allowed: {', '.join(METHODS)})")
    for f in fmts:
        if f not in ("e4m3", "e5m2"):
            raise QrtlError(f"fmt={f!r} is not an FP8 format (allowed: e4m3, e5m2)")
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


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise QrtlError(f"{what}={text!r} is not a comma-separated list of integers") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def cmd_fp8_accuracy(args) -> int:
    from tqdm import tqdm
    lengths = _ints(args.lengths, "--lengths")
    fmts, data = _names(args.fmt), _names(args.data)
    for d in data:
        if d not in DATASETS:
            raise QrtlError(f"--data {d!r} is unknown (allowed: {', '.join(DATASETS)})")
    out = Path(args.output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.touch()
    except OSError as exc:
        raise QrtlError(f"cannot write output file {str(out)!r}: {exc.strerror}") from None
    bar = tqdm(total=len(fmts) * len(METHODS), desc="fp8-accuracy", unit="run",
               disable=args.no_progress)
    df = fp8_accuracy(lengths, fmts=fmts, data=data, trials=args.trials, rbits=args.rbits,
                      seed=args.seed, progress=lambda s: (bar.set_postfix_str(s), bar.update()))
    bar.close()
    df.to_csv(out, index=False)
    with pd.option_context("display.width", 200, "display.max_rows", 500,
                           "display.float_format", "{:.2e}".format):
        print(f"relative error (RMS over {args.trials} trials) of FP8 dot products, by length:")
        print(pivot(df).to_string())
    print(f"wrote {out}")
    return 0


def register_cli(sub):
    """``qrtl fp8-accuracy [--lengths ...] [--trials N] [--fmt ...] [--data ...] [-o CSV]``."""
    p = sub.add_parser("fp8-accuracy", help="accumulation error of FP8 dot products "
                                            "(fp16 chunked / stochastic vs fp32)")
    p.add_argument("--lengths", default=",".join(map(str, DEFAULT_LENGTHS)),
                   help="comma-separated dot-product lengths")
    p.add_argument("--trials", type=int, default=32, help="dot products per length")
    p.add_argument("--fmt", default="e4m3,e5m2", help="FP8 formats, comma-separated")
    p.add_argument("--data", default=",".join(DATASETS), help="data sets: " + ", ".join(DATASETS))
    p.add_argument("--rbits", type=int, default=16, help="random bits of stochastic rounding")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="build/reports/fp8_accuracy.csv", help="CSV file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_fp8_accuracy)
