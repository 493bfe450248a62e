"""``qrtl norm-accuracy``: is L1 / L-inf normalization more accurate than L2 in half precision?

The claim tested (Hoffer, Banner, Golan, Soudry, "Norm matters", NeurIPS 2018): L1 and L-inf
batch norm avoid the squares (and the square root) of L2, so they stay numerically stable
in half precision, where the sum of squares overflows.

Every channel is normalized bit-exactly by the golden model of the ``bn_norm`` unit
(:func:`golden.norm.bn_norm`, the RTL's arithmetic: fp16 with one rounding per operation,
or int16 fixed point) and compared with float64 arithmetic on the same data.

Data: for each ``log2_std`` ``s``, ``channels`` channels of ``m`` values drawn (seeded) from
``N(2^s, (2^s)^2)`` (a mean of one standard deviation, so the mean matters too). fp16
inputs are those values rounded to fp16 (RNE; beyond 65504: Inf); int16 inputs are
``round(x * 2^int_frac_bits)`` saturated to the int16 range (fixed point with
``int_frac_bits`` fraction bits, the same for every scale, as a layer's fixed format is).

Reference: float64 ``mu``, ``sigma`` (the norm's definition and constant,
:func:`golden.norm.norm_constant`) and ``y = (x - mu) / sigma`` of the original float64
values (``*_e2e`` columns: input rounding included) and of the format's decoded inputs
(columns without suffix: the unit's arithmetic alone).

Columns, per (fmt, norm, log2_std):

* ``y_rel_rms`` = ``sqrt(sum (y - y_ref)^2 / sum y_ref^2)`` over the channels whose ``y`` is
  finite (and whose reference is defined); ``y_max_err`` = ``max |y - y_ref|`` (``y`` has unit
  scale, so this is absolute);
* ``inv_rel_rms`` = ``sqrt(mean ((inv - inv_ref) / inv_ref)^2)`` of ``1/sigma`` in real units;
* ``overflow``: share of channels where an input overflowed (fp16 Inf, int16 saturated) or
  the unit reported an overflow (fp16: an operation gave Inf, or ``1/sigma`` saturated;
  int16: a ``y`` saturated);
* ``underflow``: share of channels where a nonzero input rounded to zero, or the unit
  reported an underflow (fp16: a product or scaling of nonzero values rounded to zero, or
  ``sigma`` became 0 with nonzero deviations);
* ``nonfinite``: share of channels with an Inf or NaN ``y`` (left out of the errors).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qrtl.golden.errors import QrtlError
from qrtl.golden.fp8 import decode, encode
from qrtl.golden.norm import (M_MAX, M_MIN, NORMS, bn_norm, inv_frac_bits, norm_constant,
                              y_frac_bits)
from qrtl.golden.params import check_int

__all__ = ["norm_accuracy", "summary", "FORMATS", "DEFAULT_SCALES", "COLUMNS"]

FORMATS = ("fp16", "int16")
DEFAULT_SCALES = tuple(range(-8, 13, 2))
COLUMNS = ("y_rel_rms", "y_max_err", "inv_rel_rms", "y_rel_rms_e2e", "inv_rel_rms_e2e",
           "overflow", "underflow", "nonfinite")
MAX_CHANNELS = 100_000


def _reference(v: np.ndarray, m: int, norm: str):
    """float64 ``y`` and ``1/sigma`` of the values ``v`` (Inf / NaN where undefined)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mu = v.mean(axis=1)
        d = v - mu[:, None]
        stat = {"l2": lambda: np.sqrt((d * d).mean(axis=1)), "l1": lambda: np.abs(d).mean(axis=1),
                "linf": lambda: np.abs(d).max(axis=1)}[norm]()
        sigma = norm_constant(m, norm) * stat
        return d / sigma[:, None], 1 / sigma


def _errors(y, inv, v, m, norm, ok):
    yr, ir = _reference(v, m, norm)
    ok = ok & np.isfinite(ir) & np.isfinite(yr).all(axis=1) & (ir > 0)
    if not ok.any():
        return float("nan"), float("nan"), float("nan")
    dy = y[ok] - yr[ok]
    den = np.sum(yr[ok] ** 2)
    rms = float(np.sqrt(np.sum(dy ** 2) / den)) if den > 0 else float("nan")
    inv_rms = float(np.sqrt(np.mean(((inv[ok] - ir[ok]) / ir[ok]) ** 2)))
    return rms, float(np.max(np.abs(dy))), inv_rms


def norm_accuracy(scales=DEFAULT_SCALES, *, fmts=FORMATS, norms=NORMS, m: int = 64,
                  channels: int = 512, int_frac_bits: int = 8, seed: int = 0,
                  progress=None) -> pd.DataFrame:
    """Error and overflow/underflow rates of ``bn_norm`` against float64 (module docstring).

    Returns a long table with columns ``fmt, norm, log2_std, m, channels`` and
    :data:`COLUMNS`; ``progress(step)`` is called once per (fmt, norm).
    """
    scales = sorted({check_int("log2 of the input standard deviation", s, -30, 30)
                     for s in scales})
    if not scales:
        raise QrtlError("no input scale given")
    m = check_int("m", m, M_MIN, M_MAX)
    if m & (m - 1):
        raise QrtlError(f"m={m} is not a power of two")
    channels = check_int("channels", channels, 1, MAX_CHANNELS)
    int_frac_bits = check_int("int_frac_bits", int_frac_bits, 0, 15)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    for what, given, allowed in (("fmt", fmts, FORMATS), ("norm", norms, NORMS)):
        if not given:
            raise QrtlError(f"no {what} given (allowed: {', '.join(allowed)})")
        for x in given:
            if x not in allowed:
                raise QrtlError(f"{what}={x!r} is not one of {', '.join(allowed)}")
    rng = np.random.default_rng(seed)
    data = {s: rng.normal(1.0, 1.0, (channels, m)) * 2.0 ** s for s in scales}
    rows = []
    for fmt in fmts:
        for norm in norms:
            for s in scales:
                x = data[s]
                if fmt == "fp16":
                    codes = encode(x, "fp16")
                    v = decode(codes, "fp16")
                    in_over = ~np.isfinite(v).all(axis=1)
                    in_under = ((v == 0) & (x != 0)).any(axis=1)
                    r = bn_norm(codes, m, "fp16", norm)
                    y = decode(r.y, "fp16")
                    inv = decode(r.inv_sigma, "fp16")
                else:
                    q = np.rint(x * 2.0 ** int_frac_bits)
                    codes = np.clip(q, -32768, 32767).astype(np.int64)
                    in_over = (q != codes).any(axis=1)
                    in_under = ((codes == 0) & (x != 0)).any(axis=1)
                    v = codes / 2.0 ** int_frac_bits
                    r = bn_norm(codes, m, "int16", norm)
                    y = r.y / 2.0 ** y_frac_bits("int16")
                    # inv_sigma is 1/sigma of the codes: in real units, times 2^int_frac_bits
                    inv = r.inv_sigma.astype(np.float64) / 2.0 ** inv_frac_bits("int16") \
                        * 2.0 ** int_frac_bits
                finite = np.isfinite(y).all(axis=1) & np.isfinite(inv)
                e_arith = _errors(y, inv, v, m, norm, finite & ~in_over)
                e_e2e = _errors(y, inv, x, m, norm, finite)
                rows.append({"fmt": fmt, "norm": norm, "log2_std": s, "m": m,
                             "channels": channels, "y_rel_rms": e_arith[0],
                             "y_max_err": e_arith[1], "inv_rel_rms": e_arith[2],
                             "y_rel_rms_e2e": e_e2e[0], "inv_rel_rms_e2e": e_e2e[2],
                             "overflow": float(np.mean(in_over | r.overflow)),
                             "underflow": float(np.mean(in_under | r.underflow)),
                             "nonfinite": float(np.mean(~finite))})
            if progress is not None:
                progress(f"{fmt} {norm}")
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame, good: float = 1e-2) -> list[str]:
    """Plain sentences per format: the scales where each norm works (``y_rel_rms_e2e`` below
    ``good`` and no overflow), from which scale it overflows, and which norm is most
    accurate (mean ``y_rel_rms_e2e``) on the scales where all of them work."""
    lines = []
    for fmt, g in df.groupby("fmt", sort=False):
        ok_scales = None
        for norm, h in g.groupby("norm", sort=False):
            ok = h[(h["y_rel_rms_e2e"] < good) & (h["overflow"] == 0)]["log2_std"]
            over = h[h["overflow"] > 0]["log2_std"]
            span = f"2^{int(ok.min())}..2^{int(ok.max())}" if len(ok) else "none"
            lines.append(f"{fmt} {norm}: error below {good:g} for std {span}; overflow " +
                         (f"from std 2^{int(over[over > ok.max()].min())}"
                          if len(ok) and (over > ok.max()).any() else "never above that"))
            ok_scales = set(ok) if ok_scales is None else ok_scales & set(ok)
        common = g[g["log2_std"].isin(ok_scales or set())]
        if len(common):
            mean = common.groupby("norm", sort=False)["y_rel_rms_e2e"].mean()
            best = mean.idxmin()
            lines.append(f"{fmt}: where every norm works, the most accurate is {best} (mean "
                         "relative RMS error of y " + ", ".join(f"{n} {v:.2e}" for n, v in mean.items()) + ")")
    return lines
