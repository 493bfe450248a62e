"""Real operand streams of the networks, registered as named stimuli for the cost model.

A stream is what one unit of a layer-by-layer datapath sees while the network classifies
the test images in order: image 0's operations (layer 1, its requantization, layer 2, ...),
then image 1's, and so on; within a layer, neuron by neuron, and for a MAC, step by step
through the dot product. Switching activity, hence energy, depends on this order and on the
data, which is why the cost model measures energy per operation on these streams as well as
on uniform random codes.

Streams (:data:`STREAM_TABLE`, registered by :mod:`qrtl.hw.units` as ``qrtl.hw.registry.STREAMS[unit][name]``; ``fn(params, n)`` returns the
first ``n`` operations, wrapping around to image 0 past the end of the test split):

=================  =================  ======================================================
unit               stream             operations
=================  =================  ======================================================
int_mac            int8               MAC steps of ``int8`` (scheme fixedpoint, TFLite's int8)
int_mac            int8_SCHEME        MAC steps of ``int8`` with that scheme
quant_shift        int8               requantizations of ``int8 scheme=shift`` (acc, bias, shift)
quant_fixedpoint   int8               requantizations of ``int8 scheme=fixedpoint``
quant_float        int8               requantizations of ``int8 scheme=float``
xnor_popcount      bnn                binary dot products of ``bnn`` (hidden layers with
                                      thresholds if threshold=1, else every layer)
xnor_popcount      binaryduo_MODE     the same of ``binaryduo mode=MODE`` (ternary: layer 1)
ternary_dot        binaryduo          ternary dot products of ``binaryduo mode=ternary``
abc_dot            abc                dot products of ``abc`` with the unit's ``n``
fp8_mul            fp8                products of ``fp8`` (fmt of the unit)
fp8_mac            fp8                (a, b, chunk accumulator) of ``fp8`` (fmt, acc of the
                                      unit; fp16 with chunk 64, fp32 in one chunk)
fp8_dot            fp8                (valid, last, a, b) cycles of ``fp8`` (fmt of the unit)
=================  =================  ======================================================

A stream only fits unit parameters whose port widths match the network's (e.g. int_mac
8x8 bits into 32); anything else is a one-line :class:`qrtl.golden.errors.QrtlError`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from qrtl.golden.errors import QrtlError

__all__ = ["network_stream", "fp8_chunk_acc_in", "STREAM_TABLE"]

MAX_IMAGES = 450


@lru_cache(maxsize=16)
def _trace_ops(name: str, params_key: tuple, images: int) -> tuple:
    from . import run
    return tuple(run(name, dict(params_key), images)["trace"].ops)


def network_stream(name: str, params: dict, n: int, select) -> dict:
    """The first ``n`` operations of the ops ``select(op)`` picks, image-major.

    Runs the golden network on as few test images as the count needs (at most the whole
    split; beyond, the stream starts again at image 0).
    """
    if n < 1:
        raise QrtlError(f"stream length n={n} must be at least 1")
    key = tuple(sorted(params.items()))
    per = sum(op.count // op.images for op in _trace_ops(name, key, 1) if select(op))
    if per == 0:
        raise QrtlError(f"network {name} has no operations for this unit configuration")
    images = min(MAX_IMAGES, math.ceil(n / per))
    ops = [op for op in _trace_ops(name, key, images) if select(op)]
    # ports every selected op has (e.g. the bnn output layer has no threshold input)
    ports = [p for p in ops[0].inputs if all(p in op.inputs for op in ops)]
    out = {}
    for port in ports:
        # (images, ops per image, bytes...): wide ports are byte matrices
        blocks = [np.asarray(op.inputs[port]) for op in ops]
        blocks = [v.reshape((op.images, -1) + v.shape[1:]) for v, op in zip(blocks, ops)]
        flat = np.concatenate(blocks, axis=1)
        flat = flat.reshape((-1,) + flat.shape[2:])
        reps = math.ceil(n / len(flat))
        out[port] = (np.tile(flat, (reps,) + (1,) * (flat.ndim - 1)) if reps > 1 else flat)[:n]
    return out


def _need(unit: str, stream: str, params: dict, **want):
    bad = {k: v for k, v in want.items() if params.get(k) != v}
    if bad:
        need = ", ".join(f"{k}={v}" for k, v in want.items())
        got = ", ".join(f"{k}={params.get(k)}" for k in bad)
        raise QrtlError(f"stream {stream!r} of {unit} needs {need} (got {got})")


def _int_mac(scheme):
    def fn(params, n):
        _need("int_mac", "int8", params, a_width=8, b_width=8, acc_width=32, signed=1)
        return network_stream("int8", {"scheme": scheme}, n, lambda op: op.unit == "int_mac")
    return fn


def _quant(unit, scheme, **want):
    def fn(params, n):
        from qrtl.golden import quant
        _need(unit, "int8", params, **want)
        x = network_stream("int8", {"scheme": scheme}, n, lambda op: op.unit == unit)
        # A lean requantizer on the exact network's accumulators: its configuration is the
        # layer's TFLite (m0, shift) reduced to m0_width bits, or its binary32 scale rounded
        # to scale_fmt (as golden.nets.mlp.int8_forward does for the lean network).
        if params.get("m0_width", 32) != 32:
            x["m0"], x["shift"] = quant.reduce_multiplier(x["m0"], x["shift"], params["m0_width"])
        if params.get("scale_fmt", "fp32") != "fp32":
            x["scale"] = quant.scale_to_format(x["scale"], params["scale_fmt"]).astype(np.uint64)
        return x
    return fn


def _quant_shift(params, n):
    _need("quant_shift", "int8", params, in_width=32)
    x = network_stream("int8", {"scheme": "shift"}, n, lambda op: op.unit == "quant_shift")
    if not params.get("bias"):
        x.pop("bias")
    if not params.get("runtime_shift"):
        x.pop("shift")
    return x


def _bnn(params, n):
    _need("xnor_popcount", "bnn", params, n=256)
    thr = bool(params.get("threshold"))
    x = network_stream("bnn", {}, n, lambda op: op.params["threshold"] == 1 or not thr)
    if not thr:
        x.pop("thr", None)
    return x


def _duo_xnor(mode):
    def fn(params, n):
        _need("xnor_popcount", f"binaryduo_{mode}", params, n=256)
        thr = bool(params.get("threshold"))
        if thr and mode == "ternary":
            raise QrtlError("stream 'binaryduo_ternary' of xnor_popcount has no thresholds "
                            "(the ternary network compares in NumPy): use threshold=0")
        x = network_stream("binaryduo", {"mode": mode}, n,
                           lambda op: op.unit == "xnor_popcount"
                           and (op.params["threshold"] == 1 or not thr))
        if not thr:
            x.pop("thr", None)
        return x
    return fn


def _duo_ternary(params, n):
    _need("ternary_dot", "binaryduo", params, n=128, weights="binary")
    return network_stream("binaryduo", {"mode": "ternary"}, n,
                          lambda op: op.unit == "ternary_dot")


def _abc(params, n):
    from .abcnet import M_BASES, N_BASES, SCALE_WIDTH
    _need("abc_dot", "abc", params, M=M_BASES, N=N_BASES, scale_width=SCALE_WIDTH)
    if params.get("n") not in (64, 128):
        raise QrtlError(f"stream 'abc' of abc_dot needs n=64 or n=128 (got n={params.get('n')})")
    return network_stream("abc", {}, n, lambda op: op.params["n"] == params["n"])


def _fp8_config(params) -> dict:
    return {"fmt": params["fmt"], "acc": "fp16", "chunk": 64}


def _fp8_mul(params, n):
    x = network_stream("fp8", _fp8_config(params), n, lambda op: op.unit == "fp8_dot")
    return {"a": x["a"], "b": x["b"]}


def _fp8_dot(params, n):
    _need("fp8_dot", "fp8", params, lanes=1, rounding="rne")
    return network_stream("fp8", _fp8_config(params), n, lambda op: op.unit == "fp8_dot")


def fp8_chunk_acc_in(a, b, last, *, fmt: str, acc: str, chunk: int) -> np.ndarray:
    """The chunk accumulator each product meets in ``fp8_dot`` (``acc_in`` of its MAC).

    ``a``, ``b``, ``last``: per-product arrays (dot products back to back, ``last = 1`` on
    each one's final product). The accumulator restarts at +0 after every ``chunk``
    products of a dot product and after each ``last``.
    """
    from qrtl.golden.fp8 import fp8_mac
    last = np.asarray(last).astype(bool)
    a, b = np.asarray(a), np.asarray(b)
    ends = np.flatnonzero(last)
    if len(ends) == 0 or ends[-1] != len(last) - 1:
        raise ValueError("the last dot product is incomplete (no last = 1 at the end)")
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    acc_in = np.zeros(len(last), np.uint64)
    for k in np.unique(lengths):  # dot products of one length at a time, as a grid
        idx = starts[lengths == k][:, None] + np.arange(k)
        c = np.zeros(len(idx), np.uint64)
        for j in range(int(k)):
            if j % chunk == 0:
                c = np.zeros(len(idx), np.uint64)
            acc_in[idx[:, j]] = c
            c = fp8_mac(a[idx[:, j]], b[idx[:, j]], c, fmt=fmt, acc=acc)
    return acc_in


def _fp8_mac(params, n):
    _need("fp8_mac", "fp8", params, rounding="rne")
    if params["acc"] not in ("fp16", "fp32"):
        raise QrtlError(f"stream 'fp8' of fp8_mac needs acc=fp16 or fp32 (got {params['acc']})")
    from .mlp import fp8_params
    cfg = {"fmt": params["fmt"], "acc": params["acc"], "chunk": 64}
    chunk = fp8_params(cfg["fmt"], cfg["acc"], cfg["chunk"])["chunk"]
    # Whole dot products, so every chunk accumulator is computed from its start.
    per = sum(op.count // op.images for op in _trace_ops("fp8", tuple(sorted(cfg.items())), 1))
    m = math.ceil(n / per) * per
    x = network_stream("fp8", cfg, min(m, per * MAX_IMAGES), lambda op: op.unit == "fp8_dot")
    acc_in = fp8_chunk_acc_in(x["a"], x["b"], x["last"], fmt=cfg["fmt"], acc=cfg["acc"],
                              chunk=chunk)
    reps = math.ceil(n / len(acc_in))
    take = lambda v: (np.tile(v, reps) if reps > 1 else v)[:n]  # noqa: E731
    return {"a": take(x["a"]), "b": take(x["b"]), "acc_in": take(acc_in)}


STREAM_TABLE = [
    ("int_mac", "int8", _int_mac("fixedpoint"),
     "MAC steps of the int8 digits MLP (scheme fixedpoint), image by image"),
    *[("int_mac", f"int8_{s}", _int_mac(s), f"MAC steps of the int8 digits MLP (scheme {s})")
      for s in ("shift", "fixedpoint", "float")],
    ("quant_shift", "int8", _quant_shift,
     "accumulators, biases and shifts entering the requantizers of int8 scheme=shift"),
    ("quant_fixedpoint", "int8", _quant("quant_fixedpoint", "fixedpoint", out_width=8),
     "accumulators entering the requantizers of int8 scheme=fixedpoint"),
    ("quant_float", "int8", _quant("quant_float", "float", out_width=8),
     "accumulators entering the requantizers of int8 scheme=float"),
    ("xnor_popcount", "bnn", _bnn, "binary dot products of the digits BNN (n=256)"),
    ("xnor_popcount", "binaryduo_decoupled", _duo_xnor("decoupled"),
     "binary dot products of the decoupled BinaryDuo MLP (n=256)"),
    ("xnor_popcount", "binaryduo_ternary", _duo_xnor("ternary"),
     "first-layer binary dot products of the ternary BinaryDuo MLP (n=256, threshold=0)"),
    ("ternary_dot", "binaryduo", _duo_ternary,
     "ternary dot products of the BinaryDuo MLP (n=128, binary weights)"),
    ("abc_dot", "abc", _abc, "dot products of the ABC-Net MLP (M=N=3, n=64: layers 1 and 3, "
     "n=128: layer 2)"),
    ("fp8_mul", "fp8", _fp8_mul, "products of the FP8 digits MLP (fmt of the unit)"),
    ("fp8_mac", "fp8", _fp8_mac,
     "MACs of the FP8 digits MLP with their chunk accumulator (fmt, acc of the unit)"),
    ("fp8_dot", "fp8", _fp8_dot, "product cycles of the FP8 digits MLP (fmt of the unit)"),
]

