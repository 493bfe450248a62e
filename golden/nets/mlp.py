"""The MLP 64-128-64-10 (ReLU): float32 reference, ``int8`` and ``fp8`` golden networks.

One set of float weights (``params/float.npz``, trained by ``qrtl train float`` on
``pixels / 16``) is quantized after training into every integer and FP8 variant.

``int8`` (int8 weights and activations, int32 accumulators on ``int_mac``)
    * Input: the pixel itself, ``q0 = p`` (0..16), scale ``1/16``, zero point 0 (exact).
    * Weights: per-tensor symmetric, ``s_w = max|W| / 127``, ``qW = clip(rint(W / s_w),
      -127, 127)``; the same ``qW`` for every scheme.
    * Calibration: the float network on the whole train split; ``a_max`` = largest ReLU
      output of each hidden layer.
    * Accumulator: ``acc = acc0 + sum_k q_k qW_k`` (``int_mac`` chain, k in input order),
      with ``s_acc = s_in s_w``, ``bq = rint(b / s_acc)`` and
      ``acc0 = bq - zp_in * sum_k qW_k`` (the zero-point correction folded into the bias,
      as TFLite does).
    * Requantization of hidden layers (real multiplier ``M = s_acc / s_out``):

      - ``shift``: ``quant_shift`` with fused bias and ReLU (the unified module of Geng
        et al., DCC 2019): ``acc0`` excludes ``bq``, which enters the ``bias`` port; target
        ``s_out = a_max / 127`` (output 0..127, zero point 0), ``shift, _ = pow2_shift(M)``;
        the realized scale ``s_out = s_acc 2**shift`` is what the next layer uses.
      - ``fixedpoint``: ``quant_fixedpoint`` (gemmlowp double rounding) with
        ``(m0, shift) = quantize_multiplier(M)``, ``s_out = a_max / 255``, zero point
        -128 (asymmetric int8 as TFLite: the clamp at -128 is the ReLU).
      - ``float``: ``quant_float`` with ``scale = f32(M)``, same ``s_out`` and zero point.
    * Output layer: no requantization; the class is the first index of the largest int32
      accumulator (``bq`` included via ``acc0``).

``fp8`` (weights and activations in ``e4m3`` or ``e5m2``; dot products on ``fp8_dot``)
    * Input ``p / 16`` and every weight are rounded to the FP8 format (RNE, saturating).
      The bias is one more weight whose activation is ``1.0``; it is the first product of
      each dot product, so every addition happens inside the FP8 unit.
    * Each dot product is :func:`golden.fp8.fp8_dot`: products accumulated in ``acc``
      (fp16 or fp32) with one rounding per MAC, the chunk sum added into an fp32 outer
      accumulator every ``chunk`` products and at the end. ``acc=fp32`` uses one chunk
      per dot product (``chunk`` = 256, longer than any dot product here): plain fp32
      accumulation.
    * Between layers: ReLU, then rounding of the fp32 result to the FP8 format (RNE,
      saturating). No unit of the registry does this conversion; it is NumPy.
    * Class: first index of the largest fp32 output.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qrtl.golden.intmac import int_mac

from .data import load_params, load_split
from .program import Trace, run_chain, run_map

__all__ = ["load_float", "float_forward", "INT8_SCHEMES", "Int8Layer", "int8_quantize",
           "int8_forward", "FP8_FORMATS", "FP8_ACCS", "FP8_FP32_CHUNK", "fp8_forward",
           "fp8_weights", "calibration_max"]

INT8_SCHEMES = ("shift", "fixedpoint", "float")
FP8_FORMATS = ("e4m3", "e5m2")
FP8_ACCS = ("fp16", "fp32")
#: chunk used for ``acc=fp32``: one chunk covers every dot product of the network
FP8_FP32_CHUNK = 256
INT_MAC = {"a_width": 8, "b_width": 8, "acc_width": 32, "signed": 1}


@lru_cache(maxsize=1)
def load_float() -> tuple:
    """``((w1, b1), (w2, b2), (w3, b3))`` float32, weights shaped (out, in)."""
    d = load_params("float")
    return tuple((d[f"w{i}"], d[f"b{i}"]) for i in (1, 2, 3))


def float_forward(pixels: np.ndarray, *, hidden: bool = False):
    """Float32 reference: ``relu(relu(x W1^T + b1) W2^T + b2) W3^T + b3`` with
    ``x = pixels / 16``. Returns the logits (N, 10), or with ``hidden`` also the list of
    hidden activations."""
    h = np.asarray(pixels, np.float32) / np.float32(16)
    acts = []
    layers = load_float()
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if i < len(layers) - 1:
            h = np.maximum(h, np.float32(0))
            acts.append(h)
    return (h, acts) if hidden else h


@lru_cache(maxsize=1)
def calibration_max() -> tuple:
    """Largest ReLU output of each hidden layer over the train split (float64)."""
    _, acts = float_forward(load_split().x_train, hidden=True)
    return tuple(float(a.max()) for a in acts)


# --- int8 --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Int8Layer:
    """One quantized layer: ``qw`` (out, in) int64, ``acc0`` (out,) int64 MAC start value,
    ``bias`` (out,) for quant_shift's bias port (shift scheme) or None, and the
    requantizer's parameters ``rq`` (dict; None for the output layer)."""

    qw: np.ndarray
    acc0: np.ndarray
    bias: np.ndarray | None
    rq: dict | None
    s_acc: float
    s_out: float | None
    zp_out: int


@lru_cache(maxsize=None)
def int8_quantize(scheme: str) -> tuple:
    """Post-training quantization of the float MLP for ``scheme`` (see module docstring)."""
    from qrtl.golden.quant import pow2_shift, quantize_multiplier
    if scheme not in INT8_SCHEMES:
        raise ValueError(f"scheme={scheme!r} (allowed: {', '.join(INT8_SCHEMES)})")
    layers = load_float()
    amax = calibration_max()
    s_in, zp_in = 1.0 / 16, 0
    out = []
    for li, (w, b) in enumerate(layers):
        w, b = w.astype(np.float64), b.astype(np.float64)
        s_w = float(np.abs(w).max()) / 127
        qw = np.clip(np.rint(w / s_w), -127, 127).astype(np.int64)
        s_acc = s_in * s_w
        bq = np.rint(b / s_acc).astype(np.int64)
        if np.abs(bq).max() >= 1 << 31:
            raise ValueError(f"layer {li + 1}: quantized bias exceeds int32")
        corr = -zp_in * qw.sum(axis=1)
        if li == len(layers) - 1:
            out.append(Int8Layer(qw, bq + corr, None, None, s_acc, None, 0))
            break
        if scheme == "shift":
            shift, _ = pow2_shift(s_acc / (amax[li] / 127))
            if not 0 <= shift <= 31:
                raise ValueError(f"layer {li + 1}: shift {shift} outside 0..31")
            s_out, zp_out = s_acc * 2.0 ** shift, 0
            out.append(Int8Layer(qw, corr, bq, {"shift": shift}, s_acc, s_out, zp_out))
        else:
            s_out, zp_out = amax[li] / 255, -128
            m = s_acc / s_out
            if scheme == "fixedpoint":
                m0, sh = quantize_multiplier(m)
                rq = {"m0": m0, "shift": sh}
            else:
                rq = {"scale": int(np.float32(m).view(np.uint32))}
            out.append(Int8Layer(qw, bq + corr, None, rq, s_acc, s_out, zp_out))
        s_in, zp_in = s_out, zp_out
    return tuple(out)


def _requant(scheme: str, m0_width: int = 32, scale_fmt: str = "fp32"):
    """(unit, params, golden(inputs) -> outputs) of the scheme's requantizer; ``m0_width`` /
    ``scale_fmt`` select a lean fixed-point / float requantizer (parameters of the unit
    only when not the default, so the exact network's operations are unchanged)."""
    from qrtl.golden import quant
    if scheme == "shift":
        params = {"in_width": 32, "out_width": 8, "signed_out": 1, "runtime_shift": 1,
                  "rounding": "half_up", "bias": 1, "relu": 1}
        return "quant_shift", params, lambda x: {"q": quant.quant_shift(
            x["acc"], x["shift"], bias=x["bias"], relu=True)}
    if scheme == "fixedpoint":
        params = {"out_width": 8, "signed_out": 1, "variant": "double"}
        if m0_width != 32:
            params["m0_width"] = m0_width
        return "quant_fixedpoint", params, lambda x: {"q": quant.quant_fixedpoint(
            x["acc"], x["m0"], x["shift"], x["zp"], m0_width=m0_width)}
    params = {"out_width": 8, "signed_out": 1}
    if scale_fmt != "fp32":
        params["scale_fmt"] = scale_fmt
    return "quant_float", params, \
        lambda x: {"q": quant.quant_float(x["acc"], x["scale"], x["zp"], scale_fmt=scale_fmt)}


def _mac_step(a, b, acc):
    return int_mac(a, b, acc, acc_width=32, signed=True)


def int8_forward(pixels: np.ndarray, scheme: str, execute=None, *, m0_width: int = 32,
                 scale_fmt: str = "fp32") -> dict:
    """Integer inference of the ``int8`` network with requantization ``scheme``.

    ``m0_width`` (scheme ``fixedpoint``) and ``scale_fmt`` (scheme ``float``) replace the
    exact requantizer by a lean one: the layer's TFLite ``(m0, shift)`` reduced by
    :func:`qrtl.golden.quant.reduce_multiplier`, or its binary32 scale rounded to
    ``scale_fmt`` by :func:`qrtl.golden.quant.scale_to_format` (the defaults are the
    exact network).

    Returns ``{"trace": Trace, "acts": [q0, q1, q2] (int8 activations entering each
    layer), "accs": [int32 accumulators per layer], "logits": (N, 10), "pred": (N,)}``.
    """
    from qrtl.golden.quant import reduce_multiplier, scale_to_format
    layers = int8_quantize(scheme)
    unit, rparams, rgolden = _requant(scheme, m0_width, scale_fmt)
    trace = Trace()
    q = np.asarray(pixels).astype(np.int64)
    n = len(q)
    acts, accs = [q], []
    for li, L in enumerate(layers):
        name = f"fc{li + 1}"
        acc = run_chain(trace, execute, name, "int_mac", INT_MAC, q, L.qw,
                        np.broadcast_to(L.acc0, (n, len(L.acc0))), _mac_step, n)
        accs.append(acc)
        if L.rq is None:
            break
        m = acc.size
        x = {"acc": acc.reshape(-1)}
        cols = np.tile(np.arange(acc.shape[1]), n)
        if scheme == "shift":
            x["bias"] = L.bias[cols]
            x["shift"] = np.full(m, L.rq["shift"], np.int64)
        elif scheme == "fixedpoint":
            m0, sh = reduce_multiplier(L.rq["m0"], L.rq["shift"], m0_width)
            x["m0"] = np.full(m, int(m0), np.int64)
            x["shift"] = np.full(m, int(sh), np.int64)
            x["zp"] = np.full(m, L.zp_out, np.int64)
        else:
            x["scale"] = np.full(m, int(scale_to_format(L.rq["scale"], scale_fmt)), np.uint64)
            x["zp"] = np.full(m, L.zp_out, np.int64)
        q = np.asarray(run_map(trace, execute, f"{name}.requant", unit, rparams, x, rgolden, n)
                       ["q"]).astype(np.int64).reshape(n, -1)
        acts.append(q)
    logits = accs[-1]
    trace.tensors = {**{f"act{i}": a for i, a in enumerate(acts)},
                     **{f"acc{i + 1}": a for i, a in enumerate(accs)}}
    return {"trace": trace, "acts": acts, "accs": accs, "logits": logits,
            "pred": np.argmax(logits, axis=1)}


# --- fp8 ---------------------------------------------------------------------------------

def fp8_params(fmt: str, acc: str, chunk: int) -> dict:
    """Parameters of the ``fp8_dot`` unit for one network configuration."""
    return {"fmt": fmt, "acc": acc, "chunk": FP8_FP32_CHUNK if acc == "fp32" else chunk,
            "outer": "fp32", "lanes": 1, "rounding": "rne"}


@lru_cache(maxsize=None)
def fp8_weights(fmt: str) -> tuple:
    """Per layer ``(codes (out, in + 1))``: the bias column first, then the weights,
    rounded to ``fmt`` (RNE, saturating)."""
    from qrtl.golden.fp8 import encode
    out = []
    for w, b in load_float():
        wb = np.concatenate([b[:, None], w], axis=1).astype(np.float64)
        out.append(encode(wb, fmt, saturate=True))
    return tuple(out)


def fp8_forward(pixels: np.ndarray, fmt: str, acc: str, chunk: int, execute=None) -> dict:
    """FP8 inference (see module docstring); dot products on ``fp8_dot``.

    Returns ``{"trace", "acts": [FP8 codes entering each layer, bias input 1.0 first],
    "outs": [fp32 codes per layer], "logits": float64 (N, 10), "pred"}``.
    """
    from qrtl.golden.fp8 import decode, encode, fp8_dot
    if fmt not in FP8_FORMATS or acc not in FP8_ACCS:
        raise ValueError(f"fp8 fmt={fmt!r} acc={acc!r}")
    p = fp8_params(fmt, acc, chunk)
    one = encode(np.array([1.0]), fmt)[0]
    x = encode(np.asarray(pixels, np.float64) / 16, fmt, saturate=True)
    n = len(x)
    trace = Trace()
    acts, outs = [], []
    weights = fp8_weights(fmt)
    for li, wb in enumerate(weights):
        a = np.concatenate([np.full((n, 1), one, np.uint64), x], axis=1)
        acts.append(a)
        m, k = wb.shape
        aa = np.broadcast_to(a[:, None, :], (n, m, k)).reshape(-1, k)
        bb = np.broadcast_to(wb[None, :, :], (n, m, k)).reshape(-1, k)
        res = fp8_dot(aa, bb, fmt=fmt, acc=acc, chunk=p["chunk"], outer="fp32")
        # The unit is fed one product per cycle; a dot product ends with last = 1.
        last = np.zeros((n * m, k), np.uint64)
        last[:, -1] = 1
        inputs = {"valid": np.ones(n * m * k, np.uint64), "last": last.reshape(-1),
                  "a": aa.reshape(-1), "b": bb.reshape(-1)}

        def golden(_x, res=res, k=k):
            # result register: the latest completed dot product (0 before the first)
            prev = np.concatenate([[np.uint64(0)], res[:-1]]).astype(np.uint64)
            r = np.repeat(prev, k)
            r[k - 1::k] = res
            return {"result": r, "result_valid": np.tile(
                np.concatenate([np.zeros(k - 1, np.uint64), [np.uint64(1)]]), len(res))}

        got = run_map(trace, execute, f"fc{li + 1}", "fp8_dot", p, inputs, golden, n)
        rv = np.asarray(got["result_valid"]).astype(bool)
        y = np.asarray(got["result"]).astype(np.uint64)[rv].reshape(n, m)
        outs.append(y)
        if li < len(weights) - 1:
            v = np.maximum(decode(y, "fp32"), 0.0)
            x = encode(v, fmt, saturate=True)
    logits = decode(outs[-1], "fp32")
    trace.tensors = {**{f"act{i}": a for i, a in enumerate(acts)},
                     **{f"out{i + 1}": o for i, o in enumerate(outs)}}
    return {"trace": trace, "acts": acts, "outs": outs, "logits": logits,
            "pred": np.argmax(logits, axis=1)}
