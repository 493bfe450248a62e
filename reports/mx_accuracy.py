"""``qrtl mx-accuracy``: quantization and dot-product error of MX block formats, NVFP4 and
per-tensor FP8 / INT, against float64, and the digits MLP run in each.

Schemes (:data:`qrtl.golden.schemes.SCHEMES`): OCP MX blocks (MXFP8 E4M3/E5M2, MXFP6
E3M2/E2M3, MXFP4 E2M1, MXINT8; k = 32, E8M0 scale), NVFP4 (E2M1, k = 16, E4M3 scale, FP32
tensor scale), per-tensor FP8 E4M3/E5M2, FP6 E3M2, FP4 E2M1 and INT8/INT4. Each is
converted and its dot products computed as :mod:`qrtl.golden.schemes` says: on the
bit-exact golden model of the unit that computes it (``mx_dot_general``, a chain of
``fp8_mac`` into FP32, ``int_mac``).

Per-tensor scales of activations come from calibration (the largest value of the tensor on
the train split for the digits network, of the operand tensor itself for synthetic data);
MX and NVFP4 block scales are computed from each block (dynamic, as MX hardware does).

Data: ``normal`` (A, B ~ N(0, 1)), ``student_t`` (A, B ~ Student's t with 3 degrees of
freedom: heavy tails, where one scale per tensor wastes range) and ``digits`` (every
pre-activation dot product of the trained digits MLP on the test images: layer input x
weight row, bias excluded). Metrics per scheme and data set: ``qsnr_a_db``, ``qsnr_b_db``
(signal-to-quantization-noise ratio ``10 log10(sum v^2 / sum (q - v)^2)`` of each operand
tensor), ``dot_rel_err_rms`` (``sqrt(mean (r - s)^2 / mean s^2)``, r: the unit's result,
s: the float64 dot product of the unquantized operands) and ``dot_rel_err_median``.

:func:`mlp_accuracy` runs the digits MLP with weights and activations in each scheme (every
layer's dot products as above, FP32 bias added after, ReLU) and gives the test accuracy.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pandas as pd

from qrtl.golden.errors import QrtlError
from qrtl.golden.params import check_int
from qrtl.golden.schemes import SCHEMES, Quantized, dot, f32, quantize

__all__ = ["SCHEMES", "DATASETS", "mx_accuracy", "mlp_accuracy"]

DATASETS = ("normal", "student_t", "digits")

def _operands(data: str, trials: int, n: int, rng) -> list[tuple]:
    """``[(A, B, amax_A, amax_B)]``, ``A`` and ``B`` (rows, n) float64."""
    if data == "normal":
        return [(rng.normal(0, 1, (trials, n)), rng.normal(0, 1, (trials, n)), None, None)]
    if data == "student_t":
        return [(rng.standard_t(3, (trials, n)), rng.standard_t(3, (trials, n)), None, None)]
    if data == "digits":
        from qrtl.golden.nets.data import load_split
        from qrtl.golden.nets.mlp import calibration_max, float_forward, load_float
        x = load_split().x_test[:trials].astype(np.float64) / 16.0
        _, acts = float_forward(load_split().x_test[:trials], hidden=True)
        ins = [(x, 1.0)] + [(a.astype(np.float64), m) for a, m in zip(acts, calibration_max())]
        out = []
        for (h, m), (w, _) in zip(ins, load_float()):
            w = w.astype(np.float64)
            # every (image, neuron) pair is one dot product of the layer
            a = np.repeat(h, w.shape[0], axis=0)
            b = np.tile(w, (len(h), 1))
            out.append((a, b, m, float(np.abs(w).max())))
        return out
    raise QrtlError(f"unknown data set {data!r} (allowed: {', '.join(DATASETS)})")


def _qsnr(q, v) -> float:
    noise = float(np.sum((q - v) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(float(np.sum(v ** 2)) / noise)


def mx_accuracy(schemes=tuple(SCHEMES), data=DATASETS, *, length: int = 1024, trials: int = 256,
                images: int = 100, seed: int = 0, progress=None) -> pd.DataFrame:
    """Quantization SNR and dot-product error of each scheme on each data set (module
    docstring). ``length``: dot-product length of the synthetic sets (a multiple of 32);
    ``trials``: dot products per synthetic set; ``images``: test images of ``digits``.
    Returns one row per (scheme, data)."""
    length = check_int("length", length, 32, 1 << 16)
    if length % 32:
        raise QrtlError(f"length={length} is not a multiple of 32 (the MX block size)")
    trials = check_int("trials", trials, 1, 100_000)
    images = check_int("images", images, 1, 10_000)
    for what, given, allowed in (("scheme", schemes, SCHEMES), ("data", data, DATASETS)):
        if not given:
            raise QrtlError(f"no {what} given (allowed: {', '.join(allowed)})")
        for x in given:
            if x not in allowed:
                raise QrtlError(f"{what}={x!r} is not one of {', '.join(allowed)}")
    rows = []
    for di, ds in enumerate(data):
        parts = _operands(ds, images if ds == "digits" else trials, length,
                          np.random.default_rng([seed, di]))
        exact = [np.einsum("ij,ij->i", a, b) for a, b, _, _ in parts]
        for name in schemes:
            res, ex, ovf, qa_v, a_v, qb_v, b_v = [], [], [], [], [], [], []
            for (a, b, ma, mb), s in zip(parts, exact):
                qa, qb = quantize(a, name, ma), quantize(b, name, mb)
                r, o = dot(qa, qb, name)
                res.append(r), ex.append(s), ovf.append(o)
                qa_v.append(qa.values.ravel()), a_v.append(a.ravel())
                qb_v.append(qb.values.ravel()), b_v.append(b.ravel())
            r, s = np.concatenate(res), np.concatenate(ex)
            ok = np.isfinite(r)
            nz = ok & (s != 0)
            rows.append({
                "scheme": name, "kind": SCHEMES[name].kind, "bits": SCHEMES[name].bits,
                "bits_per_element": SCHEMES[name].bits_per_element, "data": ds,
                "length": length if ds != "digits" else "64/128/64", "dot_products": len(r),
                "qsnr_a_db": _qsnr(np.concatenate(qa_v), np.concatenate(a_v)),
                "qsnr_b_db": _qsnr(np.concatenate(qb_v), np.concatenate(b_v)),
                "dot_rel_err_rms": math.sqrt(np.mean((r[ok] - s[ok]) ** 2) / np.mean(s[ok] ** 2)),
                "dot_rel_err_median": float(np.median(np.abs(r[nz] - s[nz]) / np.abs(s[nz]))),
                "nonfinite": int((~ok).sum()), "overflow": int(np.concatenate(ovf).sum())})
            if progress is not None:
                progress(f"{ds} {name}")
    return pd.DataFrame(rows)


def mlp_accuracy(schemes=tuple(SCHEMES), *, images: Optional[int] = None, progress=None) -> pd.DataFrame:
    """Test accuracy of the digits MLP with weights and activations in each scheme (every
    dot product on the scheme's unit arithmetic, :func:`dot`; FP32 bias, ReLU), beside
    the float32 network. ``images``: first test images (None: the whole split)."""
    from qrtl.golden.nets.data import load_split
    from qrtl.golden.nets.mlp import calibration_max, float_forward, load_float
    split = load_split()
    n = len(split.y_test) if images is None else check_int("images", images, 1, len(split.y_test))
    pix, y = split.x_test[:n], split.y_test[:n]
    rows = [{"scheme": "float32", "kind": "reference", "bits": 32, "images": n,
             "accuracy_pct": 100.0 * float(np.mean(np.argmax(float_forward(pix), 1) == y))}]
    amax = (1.0,) + calibration_max()
    for name in schemes:
        if name not in SCHEMES:
            raise QrtlError(f"scheme={name!r} is not one of {', '.join(SCHEMES)}")
        h = pix.astype(np.float64) / 16.0
        layers = load_float()
        for li, (w, b) in enumerate(layers):
            w = w.astype(np.float64)
            qh, qw = quantize(h, name, amax[li]), quantize(w, name)
            # one dot product per (image, neuron): the activation row against the weight row
            a = Quantized(np.repeat(qh.codes, len(w), axis=0),
                          None if qh.scales is None else np.repeat(qh.scales, len(w), axis=0),
                          qh.scale, None)
            wb = Quantized(np.tile(qw.codes, (len(h), 1)),
                           None if qw.scales is None else np.tile(qw.scales, (len(h), 1)),
                           qw.scale, None)
            z = f32(dot(a, wb, name)[0].reshape(len(h), len(w)) + b.astype(np.float64))
            h = np.maximum(z, 0.0) if li < len(layers) - 1 else z
        rows.append({"scheme": name, "kind": SCHEMES[name].kind, "bits": SCHEMES[name].bits,
                     "images": n, "accuracy_pct": 100.0 * float(np.mean(np.argmax(h, 1) == y))})
        if progress is not None:
            progress(name)
    return pd.DataFrame(rows)
