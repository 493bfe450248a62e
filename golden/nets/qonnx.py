"""Users' own networks: a QONNX graph lowered to the units' golden models.

:func:`load_qonnx` reads an ONNX file with ``qonnx`` (its ``ModelWrapper``), cleans it the
way ``qonnx.util.cleanup.cleanup_model`` does (shape inference, unique parameter tensors,
constant folding; ``FloatQuant`` is kept like ``Quant`` so that FP8 weights keep their
codes, and the exporter's node names are kept), and lowers the node list, which must be a
chain (every node has one data input; the others are constants), to a list of *stages*:

``Quant`` on a constant
    Integer weights ``qw = clip(round(w / s_w))`` (the executor's float32 arithmetic),
    per-tensor or per-output-channel ``s_w``, zero point 0.
``Conv``/``Gemm``/``MatMul`` on ``Quant`` activations and weights
    ``int_mac`` dot products at the actual widths (an unsigned ``b``-bit activation enters
    the signed MAC as ``b + 1`` bits; int32 accumulator, checked not to overflow), Conv by
    im2col (weights flattened in ONNX's ``(C_in, kh, kw)`` order, padding with the zero
    point). The golden model computes whole layers as float64 matrix products, exact since
    every partial sum is below 2**31 (the overflow check).
``Quant`` after such a layer
    The layer's output scale ``s_a s_w[c]``, its float bias, a following
    ``BatchNormalization``, ``Add``/``Sub``/``Mul``/``Div`` by constants, ``Relu`` and layout
    operators (moved after the requantizer: they only move values) fold into one
    requantizer per output channel ``c``: ``y[c] = A[c] acc + B[c]`` (``A[c] < 0`` is made
    positive by negating the weights of ``c``), ``M[c] = A[c] / s_out``, the bias in
    accumulator units ``bq[c] = round(B[c] / A[c])``. With every ``M[c] = 2**-shift[c]``
    (``0 <= shift <= 31``) the requantizer is ``quant_shift`` (runtime shift, fused bias
    ``bq + zp 2**shift``, the ``Quant`` node's rounding: ``ROUND`` -> ``half_even``), the
    executor's arithmetic exactly wherever its float32 is exact. Otherwise
    ``scheme=fixedpoint`` (default): ``quant_fixedpoint`` with TFLite's ``(m0, shift) =
    quantize_multiplier(M[c])`` and ``bq`` in the accumulator's start value, or
    ``scheme=float``: ``quant_float`` with ``scale = f32(M[c])``. These round a bias rounded
    to the accumulator's LSB (error ``M |B/A - bq|``) and their own product (gemmlowp
    rounds twice: first to ``2**-right`` of an LSB), not the executor's float32 expression:
    a value that close to a rounding tie lands one LSB away (:func:`agreement` measures
    it). A channel whose bias does not fit the accumulator (a vanishing BatchNorm gamma) is
    constant, its value in the zero-point port with ``m0 = 0``, provided no accumulator can
    move it across a tie.
``Quant`` anywhere else, and a graph input feeding a layer unquantized
    NumPy, as the executor computes it (float32 ``x / s + zp``, clip, round); an
    unquantized graph input gets an assumed unsigned ``input_bits`` quantizer of scale
    ``1 / (2**input_bits - 1)`` (images in [0, 1], the ESPCN models' convention), stated in
    the lowering.
``FloatQuant``
    When its attributes are OCP E4M3 or E5M2 (exponent and mantissa bits, bias, maximum
    ``448`` / ``57344``, ``ROUND``): codes ``encode(f32(x / s))``; a following
    ``Gemm``/``MatMul``/``Conv`` on two FP8 operands is one ``fp8_dot`` per output (``acc``
    fp32 by default, one chunk per dot product; or ``acc=fp16`` with ``chunk``), its fp32
    result scaled and biased in float64 and rounded once to float32.
``BipolarQuant``, ``XnorPopcountMatMul``, ``MultiThreshold``
    ``BipolarQuant`` weights (bits ``w >= 0``) and activations; ``MatMul``/``Gemm``/``Conv``
    (no padding: a 0 is not bipolar) on bipolar operands, and ``XnorPopcountMatMul`` on 0/1
    activations (``popcount = (dot + K) / 2``), are ``xnor_popcount`` dot products
    (``n = K``). The layer's value ``relu?(A dot + B)`` (scales, float bias, BatchNorm,
    constant ``Add``/``Sub``/``Mul``/``Div`` folded; a negative ``A`` inverts the row's
    weight bits) followed by a ``MultiThreshold`` with one threshold ``t`` per channel and a
    bipolar (``out_scale 2c, out_bias -c``) or 0/1 (``out_scale c``) output is the unit's
    threshold ``dot >= ceil((t - B) / A)``; without one, a float32 output. A
    ``MultiThreshold`` on a float tensor runs in NumPy (qonnx's float32 comparison), giving
    bits when it is bipolar or 0/1.
``Relu``, ``Add``/``Sub``/``Mul``/``Div`` by constants, ``Flatten``, ``Reshape``,
``Transpose``, ``Tile``, ``DepthToSpace``, ``Resize`` (nearest), ``Pad`` (constant; a
nonzero value on float tensors only), ``MaxPool``, ``Identity``
    NumPy (float32 on float tensors; layout operators and MaxPool also on integer codes).

Any other operator is a one-line :class:`QrtlError` naming the node, its op type and the
supported list.

Operand streams (cost)
    :meth:`QonnxNet.streams` records, for each layer, a few thousand of its operations at
    seeded random output positions: the real operands the cost model measures energy on.

Recording (RTL replay)
    :meth:`QonnxNet.forward` computes every stage vectorised; with ``samples=N`` it picks
    ``N`` output pixels (seeded), walks back through the stages to every value they depend
    on (the receptive field, through im2col, pooling windows and layout index maps) and
    records as unit operations (:mod:`golden.nets.program`) only the dot products and
    requantizations at those positions, whose executor outputs replace the golden ones
    before the next stage. ``samples=None`` records every operation (small networks only:
    a MAC chain records every step).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from qrtl.golden.errors import QrtlError
from qrtl.golden.params import ChoiceParam, IntParam, resolve

from .program import Trace, run_chain, run_map

__all__ = ["QONNX_PARAMS", "SUPPORTED_OPS", "QonnxNet", "Agreement", "BinMeta", "load_qonnx",
           "read_tensor", "agreement", "compare_float"]

QONNX_PARAMS = (
    ChoiceParam("scheme", "fixedpoint", ("fixedpoint", "float"),
                "requantizer where the scale is not a power of two (else quant_shift)"),
    ChoiceParam("variant", "double", ("double", "single"),
                "scheme=fixedpoint: gemmlowp's double rounding (TFLite's default) or "
                "TFLITE_SINGLE_ROUNDING"),
    ChoiceParam("acc", "fp32", ("fp32", "fp16"), "FP8 layers: fp8_dot's chunk accumulator"),
    IntParam("chunk", 64, 1, 65536, "FP8 layers with acc=fp16: products per chunk"),
    IntParam("input_bits", 8, 2, 16,
             "bits of the assumed unsigned input quantizer (scale 1/(2**bits-1)) when the "
             "graph's input feeds a layer unquantized"),
)

SUPPORTED_OPS = ("Quant", "IntQuant", "FloatQuant", "BipolarQuant", "MultiThreshold", "Conv",
                 "Gemm", "MatMul", "XnorPopcountMatMul", "BatchNormalization", "Relu", "Add",
                 "Sub", "Mul", "Div", "Flatten", "Reshape", "Transpose", "Tile", "DepthToSpace",
                 "Resize", "Pad", "MaxPool", "Identity")

_KEEP_OPS = ["Quant", "IntQuant", "BipolarQuant", "FloatQuant", "Trunc", "MultiThreshold",
             "QuantizeLinear", "DequantizeLinear"]
_ROUNDING = {"ROUND": "half_even", "HALF_EVEN": "half_even", "FLOOR": "floor",
             "HALF_UP": "half_away"}
_ACC_WIDTH = 32
#: Consecutive MAC steps per piece of a layer's operand stream (:meth:`QonnxNet.streams`).
_SEGMENT = 32
_FP32_CHUNK = 256


# --- small helpers --------------------------------------------------------------------

def _attrs(node) -> dict:
    from onnx import helper
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _where(node) -> str:
    return f"node {node.name} ({node.op_type})"


def _signed_width(lo: int, hi: int) -> int:
    """Bits of the smallest two's complement range holding ``lo..hi``."""
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


def _positions(shape) -> tuple:
    """Shape of the positions of a tensor: all axes but the channel axis 1."""
    return (shape[0],) + tuple(shape[2:])


def _expand_channel(a, ndim: int) -> np.ndarray:
    """Per-channel vector ``a`` (C,) broadcastable along axis 1 of an ``ndim`` tensor."""
    return np.asarray(a).reshape((1, -1) + (1,) * (ndim - 2))


def _index_map(fn, shape) -> np.ndarray:
    """Flat input index of every output element of a layout function ``fn``."""
    return fn(np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape))


def _mask_back(idx: np.ndarray, mask_out: np.ndarray, in_shape) -> np.ndarray:
    m = np.zeros(int(np.prod(in_shape)), bool)
    src = idx[mask_out]
    m[src[src >= 0]] = True
    return m.reshape(in_shape)


def _per_channel(scale, m: int, where: str) -> np.ndarray:
    """A scale tensor as one value per output channel (axis 0 of a weight)."""
    s = np.asarray(scale, np.float64)
    if s.size == 1:
        return np.full(m, float(s.reshape(-1)[0]))
    if s.size == m and s.shape[0] == m:
        return s.reshape(m)
    raise QrtlError(f"{where}: weight scale of shape {s.shape} is neither per-tensor nor "
                    f"per-output-channel ({m} channels)")


def _scalar(v, what: str, where: str) -> float:
    a = np.asarray(v)
    if a.size != 1:
        raise QrtlError(f"{where}: {what} must be one value per tensor (got shape {a.shape})")
    return float(a.reshape(-1)[0])


# --- layout operators (work on float values, integer codes and index maps alike) -----

def _depth_to_space(bs: int, mode: str):
    def fn(x):
        b, c, h, w = x.shape
        if mode == "DCR":
            t = x.reshape(b, bs, bs, c // (bs * bs), h, w).transpose(0, 3, 4, 1, 5, 2)
        else:
            t = x.reshape(b, c // (bs * bs), bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
        return t.reshape(b, c // (bs * bs), h * bs, w * bs)
    return fn


def _reshape(shape):
    shape = [int(v) for v in shape]

    def fn(x):
        s = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return x.reshape(s)
    return fn


def _flatten(axis: int):
    def fn(x):
        a = axis if axis >= 0 else x.ndim + axis
        return x.reshape(int(np.prod(x.shape[:a], dtype=np.int64)), -1)
    return fn


def _nearest_index(n_in: int, scale: float, n_out: int, ctm: str, nmode: str) -> np.ndarray:
    i = np.arange(n_out, dtype=np.float64)
    if ctm == "asymmetric":
        x = i / scale
    elif ctm in ("half_pixel", "pytorch_half_pixel"):
        x = (i + 0.5) / scale - 0.5
        if ctm == "pytorch_half_pixel" and n_out == 1:
            x = np.zeros_like(i)
    elif ctm == "align_corners":
        x = i * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros_like(i)
    else:
        raise ValueError(ctm)
    if nmode == "floor":
        r = np.floor(x)
    elif nmode == "ceil":
        r = np.ceil(x)
    elif nmode == "round_prefer_ceil":
        r = np.floor(x + 0.5)
    else:  # round_prefer_floor
        r = np.ceil(x - 0.5)
    return np.clip(r, 0, n_in - 1).astype(np.int64)


def _resize(scales, ctm: str, nmode: str):
    def fn(x):
        for ax, s in enumerate(scales):
            if s != 1.0:
                n_out = int(math.floor(x.shape[ax] * s))
                x = np.take(x, _nearest_index(x.shape[ax], s, n_out, ctm, nmode), axis=ax)
        return x
    return fn


def _pad(pads, fill):
    n = len(pads) // 2
    widths = [(int(pads[i]), int(pads[i + n])) for i in range(n)]

    def fn(x, fill=fill):
        v = -1 if x.dtype == np.int64 and fill is None else (0 if fill is None else fill)
        return np.pad(x, widths, constant_values=v)
    return fn


# --- im2col ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ConvGeom:
    """Geometry of a 2-D convolution: kernel, strides, dilations, pads (top, left, bottom,
    right), as ONNX gives them."""

    kernel: tuple
    strides: tuple
    dilations: tuple
    pads: tuple

    def out_hw(self, h: int, w: int) -> tuple:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.strides, self.dilations
        pt, pl, pb, pr = self.pads
        return ((h + pt + pb - (kh - 1) * dh - 1) // sh + 1,
                (w + pl + pr - (kw - 1) * dw - 1) // sw + 1)

    def im2col(self, x: np.ndarray, fill) -> np.ndarray:
        """(N, C, H, W) -> (N * Ho * Wo, C * kh * kw) rows in ONNX weight order."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.strides, self.dilations
        pt, pl, pb, pr = self.pads
        xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
        win = np.lib.stride_tricks.sliding_window_view(
            xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
        win = win[:, :, ::sh, ::sw, ::dh, ::dw]               # (N, C, Ho, Wo, kh, kw)
        n, c, ho, wo = win.shape[:4]
        return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)


def _exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` of int64 matrices through float64 BLAS (exact: the caller checks that
    every partial sum is below 2**53)."""
    return np.rint(a.astype(np.float64) @ b.astype(np.float64).T).astype(np.int64)


# --- tensors' static descriptions -----------------------------------------------------

@dataclass(frozen=True)
class IntMeta:
    """Integer codes ``q`` with value ``(q - zp) * scale``."""

    bits: int
    signed: bool
    narrow: bool
    scale: float
    zp: int

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1)) + self.narrow if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1 - self.narrow

    def describe(self) -> str:
        kind = "int" if self.signed else "uint"
        zp = f", zero point {self.zp}" if self.zp else ""
        return f"{kind}{self.bits}{' narrow' if self.narrow else ''} x {self.scale:.6g}{zp}"


@dataclass(frozen=True)
class Fp8Meta:
    """FP8 codes of format ``fmt`` with value ``decode(code) * scale``."""

    fmt: str
    scale: float

    def describe(self) -> str:
        return f"{self.fmt} x {self.scale:.6g}"


# --- stages ---------------------------------------------------------------------------

@dataclass
class Stage:
    """One step of the lowered network: ``run`` (golden, whole tensor), ``need`` (which
    inputs the wanted outputs depend on), ``record`` (the wanted outputs as unit
    operations, through an executor). NumPy stages record nothing."""

    name: str
    nodes: tuple
    kind: str
    summary: str

    def run(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def need(self, mask_out: np.ndarray, in_shape) -> np.ndarray:
        return mask_out          # elementwise: each output needs its own input

    def record(self, x, y, mask, trace, execute, images):
        return self.run(x)

    def units(self) -> list:
        return []


@dataclass
class NumpyStage(Stage):
    """An elementwise or layout operation in NumPy; ``layout`` says it only moves values,
    so its dependencies follow its index map."""

    fn: Callable = None
    layout: bool = False

    def run(self, x):
        return self.fn(x)

    def need(self, mask_out, in_shape):
        if not self.layout:
            return mask_out
        return _mask_back(_index_map(self.fn, in_shape), mask_out, in_shape)


@dataclass
class PoolStage(Stage):
    """``MaxPool`` in NumPy: on integer or FP8-free codes it commutes with the (positive)
    dequantization, so it runs on the codes; each output needs its window."""

    geom: ConvGeom = None
    fill: object = None

    def _windows(self, x, fill):
        (kh, kw), (sh, sw), (dh, dw) = self.geom.kernel, self.geom.strides, self.geom.dilations
        pt, pl, pb, pr = self.geom.pads
        xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
        win = np.lib.stride_tricks.sliding_window_view(
            xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
        return win[:, :, ::sh, ::sw, ::dh, ::dw]

    def run(self, x):
        return self._windows(x, self.fill).max(axis=(4, 5))

    def need(self, mask_out, in_shape):
        idx = np.arange(int(np.prod(in_shape)), dtype=np.int64).reshape(in_shape)
        src = self._windows(idx, -1)[mask_out].reshape(-1)
        m = np.zeros(int(np.prod(in_shape)), bool)
        m[src[src >= 0]] = True
        return m.reshape(in_shape)


@dataclass
class Requant:
    """The requantizer of an integer layer, per output channel."""

    unit: str
    params: dict
    ports: dict                 # port -> per-channel array (M,)
    golden: Callable            # inputs -> {"q": ...}
    relu_zp: Optional[int]      # ReLU not in the unit: q = max(q, relu_zp) in NumPy
    clamp: Optional[tuple]      # narrow range not in the unit: clip in NumPy
    scale: np.ndarray           # the real multiplier M per channel
    note: str
    bias_err: float = 0.0       # largest |M (B/A - bq)|: the bias rounding, in output LSBs
    mult_err: float = 0.0       # bound of the multiplier's own error before the last rounding


@dataclass
class IntLayer(Stage):
    """``int_mac`` dot products (Conv by im2col, or Gemm/MatMul) and their requantizer.

    ``qw`` (M, K) int64 (rows of negative-``A`` channels negated), ``acc0`` (M,) the
    accumulators' start value; ``requant`` or, without one, the float32 output
    ``relu?(A acc + B)``.
    """

    qw: np.ndarray = None
    acc0: np.ndarray = None
    geom: Optional[ConvGeom] = None
    a_fill: int = 0
    mac: dict = None
    requant: Optional[Requant] = None
    A: np.ndarray = None
    B: np.ndarray = None
    relu: bool = False
    in_tensor: str = ""          # the executor's tensor entering the layer (dequantized)
    in_meta: IntMeta = None
    out_meta: IntMeta = None     # the Quant node's (None: float32 output)
    post: tuple = ()             # layout functions between the layer and its Quant

    def _cols(self, x):
        if self.geom is None:
            return x, None
        n, _, h, w = x.shape
        return self.geom.im2col(x, self.a_fill), (n,) + self.geom.out_hw(h, w)

    def _shape(self, acc2d, pos_shape):
        m = self.qw.shape[0]
        if pos_shape is None:
            return acc2d
        n, ho, wo = pos_shape
        return acc2d.reshape(n, ho, wo, m).transpose(0, 3, 1, 2)

    def accumulate(self, x):
        cols, pos = self._cols(x)
        return self._shape(_exact_matmul(cols, self.qw) + self.acc0[None, :], pos)

    def finish(self, acc):
        """Requantize (or scale to float32) whole accumulator tensors."""
        nd = acc.ndim
        if self.requant is None:
            y = acc * _expand_channel(self.A, nd) + _expand_channel(self.B, nd)
            if self.relu:
                y = np.maximum(y, 0.0)
            return y.astype(np.float32)
        r = self.requant
        ports = {k: np.broadcast_to(_expand_channel(v, nd), acc.shape).reshape(-1)
                 for k, v in r.ports.items()}
        q = r.golden({"acc": acc.reshape(-1), **ports})["q"].reshape(acc.shape)
        return self._post(q)

    def _post(self, q):
        r = self.requant
        q = np.asarray(q).astype(np.int64)
        if r.relu_zp is not None:
            q = np.maximum(q, r.relu_zp)
        if r.clamp is not None:
            q = np.clip(q, *r.clamp)
        return q

    def run(self, x):
        return self.finish(self.accumulate(x))

    def need(self, mask_out, in_shape):
        pos_needed = mask_out.any(axis=1)
        if self.geom is None:
            m = np.zeros(in_shape, bool)
            m[pos_needed] = True
            return m
        idx = np.arange(int(np.prod(in_shape)), dtype=np.int64).reshape(in_shape)
        cols = self.geom.im2col(idx, -1)
        src = cols[pos_needed.reshape(-1)].reshape(-1)
        m = np.zeros(int(np.prod(in_shape)), bool)
        m[src[src >= 0]] = True
        return m.reshape(in_shape)

    def record(self, x, y, mask, trace, execute, images):
        from qrtl.golden.intmac import int_mac
        cols, pos = self._cols(x)
        rows = np.flatnonzero(mask.any(axis=1).reshape(-1))   # positions, image-major
        if len(rows) == 0:
            return y
        m = self.qw.shape[0]
        a = np.ascontiguousarray(cols[rows]).astype(np.int64)
        acc = run_chain(trace, execute, self.name, "int_mac", self.mac, a, self.qw,
                        np.broadcast_to(self.acc0, (len(rows), m)),
                        lambda a_, b_, c_: int_mac(a_, b_, c_, acc_width=_ACC_WIDTH, signed=True),
                        images)
        acc = np.asarray(acc).astype(np.int64)        # (R, M)
        y = y.copy()
        if pos is None:
            sel = (rows, slice(None))
        else:
            n, ho, wo = pos
            ni, hi, wi = np.unravel_index(rows, (n, ho, wo))
            sel = (ni[:, None], np.arange(m)[None, :], hi[:, None], wi[:, None])
        if self.requant is None:
            z = acc * self.A[None, :] + self.B[None, :]
            y[sel] = (np.maximum(z, 0.0) if self.relu else z).astype(np.float32)
            return y
        r = self.requant
        ports = {k: np.broadcast_to(np.asarray(v)[None, :], acc.shape).reshape(-1)
                 for k, v in r.ports.items()}
        q = run_map(trace, execute, f"{self.name}.requant", r.unit, r.params,
                    {"acc": acc.reshape(-1), **ports}, r.golden, images)["q"]
        y[sel] = self._post(np.asarray(q).reshape(acc.shape))
        return y

    def units(self) -> list:
        out = [("int_mac", self.mac)]
        if self.requant is not None:
            out.append((self.requant.unit, self.requant.params))
        return out


@dataclass
class Fp8Layer(Stage):
    """``fp8_dot`` dot products (Conv by im2col, or Gemm/MatMul) of FP8 codes; the result
    ``decode(dot) * scale[c] + bias[c]`` in float64, rounded to float32."""

    wc: np.ndarray = None        # (M, K) codes
    geom: Optional[ConvGeom] = None
    dot: dict = None
    out_scale: np.ndarray = None
    bias: np.ndarray = None

    def _cols(self, x):
        if self.geom is None:
            return x, None
        n, _, h, w = x.shape
        return self.geom.im2col(x, 0), (n,) + self.geom.out_hw(h, w)

    def _dots(self, a):
        from qrtl.golden.fp8 import fp8_dot
        m, k = self.wc.shape
        aa = np.broadcast_to(a[:, None, :], (len(a), m, k))
        bb = np.broadcast_to(self.wc[None, :, :], (len(a), m, k))
        p = self.dot
        return fp8_dot(aa, bb, fmt=p["fmt"], acc=p["acc"], chunk=p["chunk"], outer=p["outer"])

    def _float(self, res):
        from qrtl.golden.fp8 import decode
        v = decode(res, "fp32") * self.out_scale[None, :] + self.bias[None, :]
        return v.astype(np.float32)

    def _shape(self, v, pos):
        if pos is None:
            return v
        n, ho, wo = pos
        return v.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)

    def run(self, x):
        cols, pos = self._cols(x)
        return self._shape(self._float(self._dots(cols)), pos)

    need = IntLayer.need

    def record(self, x, y, mask, trace, execute, images):
        cols, pos = self._cols(x)
        rows = np.flatnonzero(mask.any(axis=1).reshape(-1))
        if len(rows) == 0:
            return y
        a = np.ascontiguousarray(cols[rows])
        m, k = self.wc.shape
        r = len(rows)
        res = self._dots(a).reshape(-1)
        aa = np.broadcast_to(a[:, None, :], (r, m, k)).reshape(-1)
        bb = np.broadcast_to(self.wc[None, :, :], (r, m, k)).reshape(-1)
        last = np.zeros((r * m, k), np.uint64)
        last[:, -1] = 1
        inputs = {"valid": np.ones(r * m * k, np.uint64), "last": last.reshape(-1),
                  "a": aa.astype(np.uint64), "b": bb.astype(np.uint64)}

        def golden(_x, res=res, k=k):
            prev = np.concatenate([[np.uint64(0)], res[:-1]]).astype(np.uint64)
            out = np.repeat(prev, k)
            out[k - 1::k] = res
            return {"result": out, "result_valid": np.tile(
                np.concatenate([np.zeros(k - 1, np.uint64), [np.uint64(1)]]), len(res))}

        got = run_map(trace, execute, self.name, "fp8_dot", self.dot, inputs, golden, images)
        rv = np.asarray(got["result_valid"]).astype(bool)
        v = self._float(np.asarray(got["result"]).astype(np.uint64)[rv].reshape(r, m))
        y = y.copy()
        if pos is None:
            y[rows] = v
        else:
            n, ho, wo = pos
            ni, hi, wi = np.unravel_index(rows, (n, ho, wo))
            y[ni[:, None], np.arange(m)[None, :], hi[:, None], wi[:, None]] = v
        return y

    def units(self) -> list:
        return [("fp8_dot", self.dot)]


@dataclass(frozen=True)
class BinMeta:
    """Bits ``b`` (uint8 0/1) with value ``(2 b - 1) * scale`` (bipolar) or ``b * scale``
    (``binary``: the 0/1 encoding that ``XnorPopcountMatMul`` takes)."""

    scale: float
    binary: bool = False

    def describe(self) -> str:
        return f"{'binary 0/1' if self.binary else 'bipolar +-1'} x {self.scale:.6g}"

    def value(self, bits) -> np.ndarray:
        b = np.asarray(bits).astype(np.float32)
        v = b if self.binary else np.float32(2) * b - np.float32(1)
        return (v * np.float32(self.scale)).astype(np.float32)


@dataclass
class XnorLayer(Stage):
    """``xnor_popcount`` dot products of bits (Conv by im2col without padding, or
    Gemm/MatMul): ``dot = sum s(a_k) s(w_k)`` with ``s(1) = 1, s(0) = -1``; with ``thr``
    (a folded ``MultiThreshold``) the output bits ``dot >= thr[c]``, else the float32
    ``relu?(A dot + B)``."""

    wb: np.ndarray = None        # (M, K) uint8 bits, rows of negative-A channels inverted
    geom: Optional[ConvGeom] = None
    thr: Optional[np.ndarray] = None
    A: np.ndarray = None
    B: np.ndarray = None
    relu: bool = False
    unit_params: dict = None
    exact: bool = False          # the executor's float32 arithmetic is exact here

    def _cols(self, x):
        if self.geom is None:
            return x, None
        n, _, h, w = x.shape
        return self.geom.im2col(x, 0), (n,) + self.geom.out_hw(h, w)

    _shape = Fp8Layer._shape
    need = IntLayer.need

    def _finish(self, dot):
        if self.thr is not None:
            return (dot >= self.thr[None, :]).astype(np.uint8)
        y = dot * self.A[None, :] + self.B[None, :]
        if self.relu:
            y = np.maximum(y, 0.0)
        return y.astype(np.float32)

    def run(self, x):
        cols, pos = self._cols(np.asarray(x))
        dot = _exact_matmul(2 * cols.astype(np.int64) - 1, 2 * self.wb.astype(np.int64) - 1)
        return self._shape(self._finish(dot), pos)

    def record(self, x, y, mask, trace, execute, images):
        from qrtl.golden.xnor import xnor_popcount

        from .bnn import layer_operands
        cols, pos = self._cols(np.asarray(x))
        rows = np.flatnonzero(mask.any(axis=1).reshape(-1))
        if len(rows) == 0:
            return y
        m, n = self.wb.shape
        ops = layer_operands(np.ascontiguousarray(cols[rows]).astype(np.uint8), self.wb,
                             self.thr)
        if self.thr is not None:
            def gold(v, n=n):
                dot, bit = xnor_popcount(v["a"], v["w"], n, v["thr"])
                return {"dot": dot, "y": bit}
        else:
            def gold(v, n=n):
                return {"dot": xnor_popcount(v["a"], v["w"], n)}
        got = run_map(trace, execute, self.name, "xnor_popcount", self.unit_params, ops, gold,
                      images)
        if self.thr is not None:
            v = np.asarray(got["y"]).astype(np.uint8).reshape(len(rows), m)
        else:
            dot = np.asarray(got["dot"]).astype(np.int64).reshape(len(rows), m)
            z = dot * self.A[None, :] + self.B[None, :]
            v = (np.maximum(z, 0.0) if self.relu else z).astype(np.float32)
        y = y.copy()
        if pos is None:
            y[rows] = v
        else:
            nn, ho, wo = pos
            ni, hi, wi = np.unravel_index(rows, (nn, ho, wo))
            y[ni[:, None], np.arange(m)[None, :], hi[:, None], wi[:, None]] = v
        return y

    def units(self) -> list:
        return [("xnor_popcount", self.unit_params)]


def _multithreshold(v, thr, out_scale: float, out_bias: float) -> np.ndarray:
    """qonnx's ``multithreshold`` (channel axis 1, float32): the number of thresholds of
    each channel that ``v`` is at or above, times ``out_scale`` plus ``out_bias``."""
    v = np.asarray(v, np.float32)
    vm = np.expand_dims(np.moveaxis(v, 1, -1), -1)
    cnt = np.count_nonzero(vm >= np.asarray(thr, np.float32), axis=-1).astype(np.float32)
    return (np.float32(out_scale) * np.moveaxis(cnt, -1, 1) + np.float32(out_bias)) \
        .astype(np.float32)


# --- the network ----------------------------------------------------------------------

@dataclass
class QonnxNet:
    """A QONNX network lowered to the units' golden models (see the module docstring).

    Attributes
    ----------
    path : str
        The ONNX file.
    params : dict
        ``scheme``, ``acc``, ``chunk``, ``input_bits``.
    model
        The cleaned ``qonnx.core.modelwrapper.ModelWrapper`` (what the reference executor
        runs in :func:`agreement`).
    input_name, output_name : str
    input_shape : tuple
    stages : list of Stage
    output_meta : IntMeta, Fp8Meta or None
        How the output codes become the float32 output (None: already float32).
    notes : list of str
        Assumptions the lowering made (an assumed input quantizer, ...).
    """

    path: str
    params: dict
    model: object
    input_name: str
    output_name: str
    input_shape: tuple
    stages: list
    output_meta: object
    notes: list = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """Whether the lowering claims the executor's arithmetic exactly: every requantizer
        a ``quant_shift`` with an integral bias, no float or FP8 layer, no assumed input
        quantizer."""
        for s in self.stages:
            if isinstance(s, Fp8Layer) or s.kind == "input (assumed)":
                return False
            if isinstance(s, XnorLayer) and not s.exact:
                return False
            if isinstance(s, IntLayer) and s.requant is None:
                # a float32 output A acc: exact with power-of-two A, no float bias and
                # every partial sum within float32's 24-bit integers
                e = np.log2(np.where(s.A > 0, s.A, 1.0))
                a = s.in_meta
                bound = np.abs(s.qw).sum(axis=1) * max(abs(a.lo), abs(a.hi)) + np.abs(s.acc0)
                if not (np.all(s.A > 0) and np.all(e == np.rint(e)) and np.all(s.B == 0)
                        and np.all(bound < 1 << 24)):
                    return False
            elif isinstance(s, IntLayer) and (s.requant.unit != "quant_shift"
                                              or "inexact" in s.requant.note):
                return False
        return True

    def lowering(self) -> list[dict]:
        """One row per stage: ``stage``, ``nodes`` (ONNX node names), ``kind``, ``units``
        (unit names), ``summary``."""
        return [{"stage": s.name, "nodes": list(s.nodes), "kind": s.kind,
                 "units": [u for u, _ in s.units()], "summary": s.summary} for s in self.stages]

    def units(self) -> list[tuple]:
        """Distinct ``(unit, params)`` the network runs on, in first-use order."""
        seen, out = set(), []
        for s in self.stages:
            for u, p in s.units():
                key = (u, tuple(sorted(p.items())))
                if key not in seen:
                    seen.add(key)
                    out.append((u, dict(p)))
        return out

    def check_input(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise QrtlError(f"input of dtype {x.dtype} is not numeric")
        if tuple(x.shape[1:]) != tuple(self.input_shape[1:]) or x.ndim != len(self.input_shape):
            raise QrtlError(f"input of shape {tuple(x.shape)} does not match the model's input "
                            f"{self.input_name} of shape {tuple(self.input_shape)}")
        return x.astype(np.float32)

    def to_float(self, y) -> np.ndarray:
        """The output codes as the float32 tensor the reference executor produces."""
        m = self.output_meta
        if m is None:
            return np.asarray(y, np.float32)
        if isinstance(m, BinMeta):
            return m.value(y)
        if isinstance(m, Fp8Meta):
            from qrtl.golden.fp8 import decode
            return (decode(y, m.fmt).astype(np.float32) * np.float32(m.scale)).astype(np.float32)
        return ((np.asarray(y).astype(np.float32) - np.float32(m.zp)) * np.float32(m.scale)) \
            .astype(np.float32)

    def run(self, x) -> dict:
        """Golden inference, nothing recorded: ``{"output": float32, "codes": the last
        stage's codes, "tensors": {stage name: output}}``."""
        v = self.check_input(x)
        tensors = {}
        for s in self.stages:
            v = s.run(v)
            tensors[s.name] = v
        return {"output": self.to_float(v), "codes": v, "tensors": tensors}

    def forward(self, x, execute=None, samples: Optional[int] = None, seed: int = 0) -> dict:
        """Inference with the unit operations recorded (and run by ``execute``, the RTL
        executor of :mod:`qrtl.sim.net`, when given).

        ``samples=None`` records every operation; ``samples=N`` the operations that ``N``
        output pixels (positions of the output tensor, all its channels; chosen with
        ``numpy.random.default_rng(seed)``) depend on. Returns ``run``'s dict plus
        ``trace`` (:class:`golden.nets.program.Trace`, with the recorded stages' outputs as
        ``trace.tensors``) and ``recorded`` (output values per layer that were recorded:
        every channel of each position that a wanted value depends on).
        """
        gold = self.run(x)
        v = self.check_input(x)
        ins, outs = [], []
        cur = v
        for s in self.stages:
            ins.append(cur.shape)
            cur = gold["tensors"][s.name]
            outs.append(cur.shape)
        mask = np.ones(outs[-1], bool)
        if samples is not None:
            pos_shape = _positions(outs[-1]) if len(outs[-1]) >= 2 else outs[-1]
            total = int(np.prod(pos_shape))
            k = min(int(samples), total)
            pick = np.random.default_rng(seed).choice(total, size=k, replace=False)
            pm = np.zeros(total, bool)
            pm[pick] = True
            pm = pm.reshape(pos_shape)
            mask = np.broadcast_to(np.expand_dims(pm, 1), outs[-1]).copy() \
                if len(outs[-1]) >= 2 else pm
        masks = [None] * len(self.stages)
        for i in range(len(self.stages) - 1, -1, -1):
            masks[i] = mask
            mask = self.stages[i].need(mask, ins[i])
        trace = Trace()
        images = int(v.shape[0])
        recorded = {}
        cur = v
        tensors = {}
        for s, m in zip(self.stages, masks):
            cur = s.record(cur, gold["tensors"][s.name], m, trace, execute, images)
            tensors[s.name] = cur
            if s.units():
                # a layer computes every channel at a recorded position
                m = np.broadcast_to(m.any(axis=1, keepdims=True), m.shape)
                recorded[s.name] = int(m.sum())
                trace.tensors[s.name] = np.asarray(cur)[m]
        return {"output": self.to_float(cur), "codes": cur, "tensors": tensors, "trace": trace,
                "recorded": recorded, "golden": gold}

    def op_counts(self) -> list[dict]:
        """Unit operations of one full inference (batch of the model's input shape), by
        stage: ``{"stage", "unit", "params", "ops"}`` (a MAC step or a requantization or
        one FP8 product is one operation)."""
        rows = []
        shape = tuple(self.input_shape)
        for s in self.stages:
            if isinstance(s, XnorLayer):
                m = s.wb.shape[0]
                if s.geom is None:
                    npos, out = shape[0], (shape[0], m)
                else:
                    ho, wo = s.geom.out_hw(shape[2], shape[3])
                    npos, out = shape[0] * ho * wo, (shape[0], m, ho, wo)
                rows.append({"stage": s.name, "unit": "xnor_popcount", "params": s.unit_params,
                             "ops": npos * m})
                shape = out
            elif isinstance(s, (IntLayer, Fp8Layer)):
                w = s.qw if isinstance(s, IntLayer) else s.wc
                m, k = w.shape
                if s.geom is None:
                    npos = shape[0]
                    out = (shape[0], m)
                else:
                    ho, wo = s.geom.out_hw(shape[2], shape[3])
                    npos = shape[0] * ho * wo
                    out = (shape[0], m, ho, wo)
                u = s.units()
                rows.append({"stage": s.name, "unit": u[0][0], "params": u[0][1],
                             "ops": npos * m * k})
                if len(u) > 1:
                    rows.append({"stage": s.name, "unit": u[1][0], "params": u[1][1],
                                 "ops": npos * m})
                shape = out
            else:
                shape = np.shape(s.run(np.zeros(shape, np.float32 if s.kind.startswith(
                    ("float", "input")) else np.int64)))
        return rows


    def streams(self, x, vectors: int, seed: int = 0) -> list[dict]:
        """Real operand streams of every layer: ``vectors`` operations (or all the layer has)
        of each unit of each layer, as a layer-by-layer datapath performs them.

        For every stage that runs on units, ``ceil(vectors / M)`` output positions (``M``
        channels; drawn with ``numpy.random.default_rng(seed)``, image-major order) are
        recorded (:meth:`Stage.record`, golden executor) on the stage's golden input. A
        unit with one operation per output (a requantizer, ``xnor_popcount``) streams them
        in order, position by position, channel by channel; a unit that steps through dot
        products (``int_mac``, ``fp8_dot``) streams ``ceil(vectors / K)`` whole dot products
        of those positions and channels, drawn at random and kept in datapath order, each
        ``K`` consecutive steps (a stream unit, whose state runs through a dot product), or
        runs of 32 consecutive steps of them (a MAC with an ``acc_in`` port: each step is a
        whole operation): many positions and neurons, rather than the first few neurons of
        one position. Returns ``[{"stage", "unit", "params", "inputs"}]``
        (``inputs``: port -> array, one entry per operation, cut to ``vectors``).
        """
        vectors = int(vectors)
        if vectors < 1:
            raise QrtlError(f"vectors={vectors} must be at least 1")
        gold = self.run(x)
        cur = self.check_input(x)
        rng = np.random.default_rng(seed)
        out = []
        for s in self.stages:
            y = gold["tensors"][s.name]
            if s.units():
                shape = np.shape(y)
                pos = _positions(shape) if len(shape) >= 2 else shape
                total = int(np.prod(pos))
                m = shape[1] if len(shape) >= 2 else 1
                p = min(total, -(-vectors // m))
                pm = np.zeros(total, bool)
                pm[rng.choice(total, size=p, replace=False)] = True
                mask = np.broadcast_to(np.expand_dims(pm.reshape(pos), 1), shape).copy()
                trace = Trace()
                s.record(cur, y, mask, trace, None, int(np.shape(cur)[0]))
                for op in trace.ops:
                    steps = op.count // (p * m)
                    ins = {k: np.asarray(v) for k, v in op.inputs.items()}
                    if steps > 1:
                        # a stream unit (a ``last`` port) keeps its state through whole dot
                        # products; a MAC with an acc_in port takes any run of steps
                        seg = steps if "last" in ins else min(steps, _SEGMENT)
                        per = steps // seg
                        d = min(p * m * per, -(-vectors // seg))
                        pick = np.sort(rng.choice(p * m * per, size=d, replace=False))
                        ins = {k: v.reshape((p * m, steps) + v.shape[1:])[:, :per * seg]
                               .reshape((p * m * per, seg) + v.shape[1:])[pick]
                               .reshape((d * seg,) + v.shape[1:]) for k, v in ins.items()}
                    out.append({"stage": s.name, "unit": op.unit, "params": dict(op.params),
                                "inputs": {k: v[:vectors] for k, v in ins.items()}})
            cur = y
        return out


# --- reading inputs ------------------------------------------------------------------

def read_tensor(path) -> np.ndarray:
    """A tensor from a ``.npy`` file or an ONNX ``TensorProto`` (``.pb``) file."""
    p = Path(path)
    if not p.is_file():
        raise QrtlError(f"input file {str(path)!r} does not exist")
    if p.suffix == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise QrtlError(f"input file {str(path)!r} is not a NumPy .npy file: {exc}") from None
    if p.suffix == ".pb":
        import onnx
        from onnx import numpy_helper
        t = onnx.TensorProto()
        try:
            t.ParseFromString(p.read_bytes())
            return numpy_helper.to_array(t)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise QrtlError(f"input file {str(path)!r} is not an ONNX TensorProto: "
                            f"{type(exc).__name__}") from None
    raise QrtlError(f"input file {str(path)!r}: unknown type (allowed: .npy, .pb)")


# --- the importer ---------------------------------------------------------------------

def _clean(path: str):
    """``qonnx.util.cleanup.cleanup_model``'s transformations, with two changes: FloatQuant
    (and the other quantizers) stay out of constant folding, so that weights keep their
    codes; node and tensor names stay the exporter's (only unnamed or duplicate nodes are
    named), so that messages name the nodes the user knows."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (GiveUniqueNodeNames, GiveUniqueParameterTensors,
                                              RemoveStaticGraphInputs, RemoveUnusedTensors)
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit
    try:
        model = ModelWrapper(str(path))
    except Exception as exc:
        raise QrtlError(f"cannot read ONNX model {str(path)!r}: {type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None
    for n in model.graph.node:   # as cleanup_model does: QONNX ops into qonnx's domain
        if n.op_type in ("Quant", "Trunc", "BipolarQuant"):
            n.domain = "qonnx.custom_op.general"
    try:
        for t in (InferShapes(), GiveUniqueParameterTensors(),
                  FoldConstants(exclude_op_types=_KEEP_OPS), FoldTransposeIntoQuantInit(),
                  RemoveUnusedTensors(), RemoveStaticGraphInputs(), InferShapes()):
            model = model.transform(t)
    except QrtlError:
        raise
    except Exception as exc:
        raise QrtlError(f"qonnx could not clean ONNX model {str(path)!r}: {type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None
    taken = {n.name for n in model.graph.node if n.name}
    count: dict = {}
    for n in model.graph.node:          # name the unnamed nodes only: OpType_k
        while not n.name:
            count[n.op_type] = count.get(n.op_type, -1) + 1
            name = f"{n.op_type}_{count[n.op_type]}"
            if name not in taken:
                n.name = name
                taken.add(name)
    names = [n.name for n in model.graph.node]
    if len(set(names)) != len(names):
        model = model.transform(GiveUniqueNodeNames())
    return model


@dataclass
class _Pending:
    """An integer layer whose output is still ``relu?(A acc + B)`` (before its Quant)."""

    name: str
    nodes: list
    qw: np.ndarray
    acc_base: np.ndarray      # the zero-point correction, (M,)
    geom: Optional[ConvGeom]
    a_fill: int
    a_meta: IntMeta
    w_bits: int
    A: np.ndarray
    B: np.ndarray
    relu: bool = False
    layouts: list = field(default_factory=list)   # (stage name, fn, summary, node name)
    summary: str = ""
    in_tensor: str = ""


@dataclass
class _PendingBin:
    """A bipolar layer whose output is still ``relu?(A dot + B)`` (before its
    ``MultiThreshold``)."""

    name: str
    nodes: list
    wb: np.ndarray            # (M, K) bits
    geom: Optional[ConvGeom]
    A: np.ndarray
    B: np.ndarray
    relu: bool = False
    layouts: list = field(default_factory=list)
    summary: str = ""


class _Lowering:
    def __init__(self, model, params, path):
        from onnx import numpy_helper
        self.model, self.params, self.path = model, params, path
        self.consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        # constant Quant outputs: name -> (q int64, scale, zp, bits, signed, narrow)
        self.qw = {}
        self.fw = {}        # constant FloatQuant outputs: name -> (codes, scale, fmt)
        self.bw = {}        # constant BipolarQuant outputs: name -> (bits, scale)
        self.stages = []
        self.notes = []
        self.kind = "float"     # of the current data tensor: float | int | fp8 | pending
        self.meta = None
        self.pending: Optional[_Pending] = None
        self.counter = {}
        self.cur_name = ""

    # names
    def _name(self, base):
        self.counter[base] = self.counter.get(base, 0) + 1
        return f"{base}{self.counter[base]}"

    def const(self, name, node, what):
        if name in self.consts:
            return self.consts[name]
        raise QrtlError(f"{_where(node)}: {what} {name!r} is not a constant")

    # --- the current tensor as something a given op needs
    def flush(self):
        """Close a pending integer layer without a Quant: float32 output."""
        p = self.pending
        if p is None:
            return
        if isinstance(p, _PendingBin):
            self._emit_bin(p, None)
            for name, fn, summ, onnx_name in p.layouts:
                self.stages.append(NumpyStage(name, (onnx_name,), "float", summ, fn=fn,
                                              layout=True))
            self.pending = None
            self.kind, self.meta = "float", None
            return
        self._emit_int(p, None)
        for name, fn, summ, onnx_name in p.layouts:
            self.stages.append(NumpyStage(name, (onnx_name,), "float", summ, fn=fn, layout=True))
        self.pending = None
        self.kind, self.meta = "float", None

    def as_float(self, node):
        if self.kind == "pending":
            self.flush()
        elif self.kind == "int":
            m = self.meta
            self.stages.append(NumpyStage(
                self._name("dequant"), (node.name,), "float", f"{m.describe()} -> float32",
                fn=lambda q, m=m: ((q.astype(np.float32) - np.float32(m.zp)) * np.float32(m.scale))
                .astype(np.float32)))
        elif self.kind == "bin":
            m = self.meta
            self.stages.append(NumpyStage(self._name("dequant"), (node.name,), "float",
                                          f"{m.describe()} -> float32", fn=m.value))
        elif self.kind == "fp8":
            m = self.meta

            def deq(c, m=m):
                from qrtl.golden.fp8 import decode
                v = decode(c, m.fmt).astype(np.float32) * np.float32(m.scale)
                return v.astype(np.float32)
            self.stages.append(NumpyStage(self._name("dequant"), (node.name,), "float",
                                          f"{m.describe()} -> float32", fn=deq))
        self.kind, self.meta = "float", None

    # --- integer and FP8 layers
    def layer(self, node, x_name, w_name, bias, geom, trans_b, alpha=1.0):
        if w_name in self.bw or self.kind == "bin":
            return self.bin_layer(node, x_name, w_name, bias, geom, trans_b, alpha)
        if w_name in self.fw or self.kind == "fp8":
            return self.fp8_layer(node, w_name, bias, geom, trans_b, alpha)
        if w_name not in self.qw:
            raise QrtlError(f"{_where(node)}: weights {w_name!r} are not quantized (no Quant or "
                            f"FloatQuant on them)")
        if self.kind == "float" and self.stages == [] and x_name == self.model.graph.input[0].name:
            self.assume_input(node)
        if self.kind != "int":
            raise QrtlError(f"{_where(node)}: its activations are not the output of a Quant node "
                            f"(a {self.kind} tensor); integer layers need quantized activations")
        q, s_w, zp_w, bits, signed, narrow = self.qw[w_name]
        self._check_rank(node, x_name, geom)
        if geom is None and not trans_b and np.ndim(s_w) == 2:
            s_w = np.asarray(s_w).T          # MatMul / Gemm weights (K, M): scale (1, M)
        if np.any(zp_w != 0):
            raise QrtlError(f"{_where(node)}: weights with a nonzero zero point are not supported")
        q = q.reshape(q.shape[0], -1) if geom is not None else (q.T if not trans_b else q)
        q = np.ascontiguousarray(q).astype(np.int64)
        m = q.shape[0]
        s_w = _per_channel(s_w, m, _where(node))
        a = self.meta
        A = a.scale * s_w * float(alpha)
        B = np.zeros(m) if bias is None else \
            np.broadcast_to(np.asarray(bias, np.float64), (m,)).copy()
        acc_base = -a.zp * q.sum(axis=1)
        base = "conv" if geom is not None else "fc"
        summ = (f"{node.op_type} {q.shape[1]} -> {m}" +
                (f", kernel {geom.kernel[0]}x{geom.kernel[1]}, stride {geom.strides[0]}, "
                 f"pads {list(geom.pads)}" if geom is not None else "") +
                f"; activations {a.describe()}, weights int{bits} "
                f"{'per-channel' if np.ptp(s_w) > 0 else 'per-tensor'}")
        self.pending = _Pending(self._name(base), [node.name], q, acc_base, geom, a.zp, a, bits,
                                A, B, summary=summ, in_tensor=x_name)
        self.kind, self.meta = "pending", None

    def _check_rank(self, node, x_name, geom):
        shape = self.model.get_tensor_shape(x_name)
        want = 4 if geom is not None else 2
        if shape is not None and len(shape) != want:
            raise QrtlError(f"{_where(node)}: activations of shape {list(shape)} (supported: "
                            f"{want}-D{', N C H W' if want == 4 else ', N K'})")

    def assume_input(self, node):
        bits = self.params["input_bits"]
        meta = IntMeta(bits, False, False, 1.0 / ((1 << bits) - 1), 0)
        self.notes.append(f"the graph input {self.model.graph.input[0].name} feeds {node.name} "
                          f"unquantized: assumed {meta.describe()} (images in [0, 1])")
        self.stages.append(NumpyStage(
            "input", (), "input (assumed)", f"float32 -> {meta.describe()} (assumed; "
            f"-p input_bits=N)", fn=lambda x, m=meta: _int_quant(x, m, "half_even")))
        self.kind, self.meta = "int", meta

    def _emit_int(self, p: _Pending, quant):
        """Finish a pending layer with the Quant node ``quant`` (or None: float output)."""
        from qrtl.golden import quant as gq
        qw, A, B = p.qw.copy(), p.A.copy(), p.B.copy()
        acc_base = p.acc_base.copy()
        neg = A < 0
        qw[neg] = -qw[neg]
        acc_base[neg] = -acc_base[neg]
        A[neg] = -A[neg]
        a = p.a_meta
        a_lo, a_hi = a.lo, a.hi
        a_width = _signed_width(a_lo, a_hi)
        b_width = max(_signed_width(int(qw.min(initial=0)), int(qw.max(initial=0))), p.w_bits, 2)
        mac = {"a_width": max(a_width, 2), "b_width": b_width, "acc_width": _ACC_WIDTH,
               "signed": 1}
        amax = max(abs(a_lo), abs(a_hi))
        bound = np.abs(qw).sum(axis=1) * amax
        out_meta = None
        if quant is None:
            acc0 = acc_base
            rq = None
            note = "float32 output relu?(A acc + B) in NumPy"
            with np.errstate(divide="ignore", invalid="ignore"):
                bias_acc = np.where(A > 0, B / np.where(A > 0, A, 1.0), np.nan)
            if np.all(np.isfinite(bias_acc)) and np.all(bias_acc == np.rint(bias_acc)) and \
                    np.all(np.abs(bias_acc) + bound + np.abs(acc_base) < 1 << (_ACC_WIDTH - 1)):
                # an integral bias in accumulator units (an int32 bias, dequantized) starts
                # the accumulator, as in TFLite: the same value, A (acc + bq)
                acc0 = acc_base + bias_acc.astype(np.int64)
                B = np.zeros_like(B)
                note = "float32 output relu?(A acc) in NumPy, the integral bias in the accumulator"
        else:
            qnode, s_out, zp, bits, signed, narrow, rounding = quant
            out_meta = IntMeta(bits, signed, narrow, s_out, zp)
            if not 2 <= bits <= 16:
                raise QrtlError(f"{_where(qnode)}: bit width {bits} is not supported "
                                f"by the requantizers (allowed 2..16)")
            M = A / s_out
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                bias_acc = np.where(A > 0, B / np.where(A > 0, A, 1.0), 0.0)
            # A channel whose bias does not fit the accumulator (a scale near 0, e.g. a
            # BatchNorm with a vanishing gamma) is constant: relu?(B) / s_out + zp rounded,
            # provided the accumulator cannot move it across a rounding boundary.
            const = (A == 0) | (np.abs(bias_acc) + bound >= 1 << (_ACC_WIDTH - 2))
            const_q = np.zeros(len(A), np.int64)
            if np.any(const):
                v = (np.maximum(B, 0.0) if p.relu else B) / s_out + zp
                room = np.abs(v - (np.floor(v) + 0.5))
                if np.any(const & (M * bound >= room)):
                    raise QrtlError(f"{_where(qnode)}: a channel's bias exceeds the int"
                                    f"{_ACC_WIDTH} accumulator and its output is not constant")
                const_q = np.clip(np.round(v), -(1 << (bits - 1)) if signed else 0,
                                  (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1)
                const_q = const_q.astype(np.int64)
                bias_acc = np.where(const, 0.0, bias_acc)
            bq = np.rint(bias_acc).astype(np.int64)
            bias_exact = bool(np.all(bq == bias_acc))
            sh = -np.log2(np.where(M > 0, M, 1.0))
            pow2 = bool(not np.any(const) and np.all(M > 0) and np.all(sh == np.rint(sh))
                        and np.all(sh >= 0) and np.all(sh <= 31))
            out_lo = -(1 << (bits - 1)) if signed else 0
            out_hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
            clamp = (out_lo + (narrow and signed), out_hi - (narrow and not signed)) \
                if narrow else None
            relu = p.relu
            relu_zp = None
            if pow2 and rounding in _ROUNDING:
                shift = np.rint(sh).astype(np.int64)
                unit_relu = relu and zp == 0 and signed
                if relu and not unit_relu and zp > out_lo:
                    relu_zp = zp
                rnd = _ROUNDING[rounding]
                if unit_relu and rnd == "half_away":
                    # the unit's ReLU clamps every negative value to 0, so ties away from
                    # zero and ties toward +inf give the same codes: the cheaper half_up
                    rnd = "half_up"
                params = {"in_width": _ACC_WIDTH, "out_width": bits, "signed_out": int(signed),
                          "runtime_shift": 1, "rounding": rnd, "bias": 1,
                          "relu": int(unit_relu)}
                ports = {"bias": bq + (zp << shift), "shift": shift}
                golden = (lambda x, rnd=rnd, bits=bits, signed=signed, ur=unit_relu:
                          {"q": gq.quant_shift(x["acc"], x["shift"], out_width=bits,
                                               signed_out=signed, rounding=rnd, bias=x["bias"],
                                               relu=ur)})
                acc0 = acc_base
                shifts = sorted(set(shift.tolist()))
                note = (f"scale 2^-{shifts[0]}" if len(shifts) == 1 else
                        f"per-channel scales 2^-{shifts[0]}..2^-{shifts[-1]}") + \
                    (", exact" if bias_exact else ", bias rounded to the accumulator LSB (inexact)")
                unit = "quant_shift"
                bound = bound + np.abs(ports["bias"])
            else:
                if rounding not in ("ROUND", "HALF_EVEN"):
                    raise QrtlError(f"{_where(qnode)}: rounding_mode {rounding} needs a "
                                    f"power-of-two scale (quant_shift); the other requantizers "
                                    f"round to nearest")
                if relu and zp > out_lo:
                    relu_zp = zp
                acc0 = acc_base + bq
                if self.params["scheme"] == "fixedpoint":
                    try:
                        mq = [gq.quantize_multiplier(v) for v in M]
                    except ValueError as exc:
                        raise QrtlError(f"{_where(qnode)}: {exc}") from None
                    unit = "quant_fixedpoint"
                    variant = self.params["variant"]
                    params = {"out_width": bits, "signed_out": int(signed), "variant": variant}
                    ports = {"m0": np.where(const, 0, np.array([v[0] for v in mq], np.int64)),
                             "shift": np.where(const, 0, np.array([v[1] for v in mq], np.int64)),
                             "zp": np.where(const, const_q, zp).astype(np.int64)}
                    golden = (lambda x, bits=bits, signed=signed, variant=variant:
                              {"q": gq.quant_fixedpoint(x["acc"], x["m0"], x["shift"], x["zp"],
                                                        out_width=bits, signed_out=signed,
                                                        variant=variant)})
                    note = (f"scale {M.min():.6g}" + (f"..{M.max():.6g}" if np.ptp(M) else "")
                            + " (not a power of two): Q0.31 multiplier m0 * 2^(shift-31), "
                            + ("gemmlowp double rounding" if variant == "double"
                               else "single rounding"))
                else:
                    unit = "quant_float"
                    params = {"out_width": bits, "signed_out": int(signed)}
                    ports = {"scale": np.asarray(np.where(const, 0.0, M), np.float32)
                             .view(np.uint32).astype(np.uint64),
                             "zp": np.where(const, const_q, zp).astype(np.int64)}
                    golden = (lambda x, bits=bits, signed=signed:
                              {"q": gq.quant_float(x["acc"], x["scale"], x["zp"], out_width=bits,
                                                   signed_out=signed)})
                    note = (f"scale {M.min():.6g}" + (f"..{M.max():.6g}" if np.ptp(M) else "")
                            + " (not a power of two): binary32 scale f32(M)")
                if not bias_exact:
                    note += ", bias rounded to the accumulator LSB"
                if np.any(const):
                    note += (f"; {int(const.sum())} constant channel(s) (scale ~0: m0 = 0, "
                             f"the value in zp)")
                if not -(1 << bits) <= zp <= (1 << bits) - 1:
                    raise QrtlError(f"{_where(qnode)}: zero point {zp} does not fit the "
                                    f"requantizer's {bits + 1}-bit zp port")
            if relu_zp is not None:
                note += f"; ReLU as max(q, {relu_zp}) in NumPy"
            if clamp is not None:
                note += f"; narrow range clamp {clamp} in NumPy"
            live = ~const
            if unit == "quant_fixedpoint":
                # gemmlowp's double rounding: SRDHM rounds to 2**-right of an LSB first;
                # m0 itself is M to within 2**(shift - 32)
                sh_ = ports["shift"]
                first = 0.5 * 2.0 ** (-np.maximum(-sh_, 0)) * (sh_ < 0) \
                    if params["variant"] == "double" else 0.0
                mult = first + 2.0 ** (sh_ - 32.0) * (bound + np.abs(acc0))
            elif unit == "quant_float":
                mult = 2.0 ** -23 * M * (bound + np.abs(acc0))
            else:
                mult = np.zeros(len(M))
            rq = Requant(unit, params, ports, golden, relu_zp, clamp, M, note,
                         float(np.max(M * np.abs(bias_acc - bq), initial=0.0)),
                         float(np.max(np.where(live, mult, 0.0), initial=0.0)))
        if np.any(bound + np.abs(acc0) >= 1 << (_ACC_WIDTH - 1)):
            raise QrtlError(f"layer {p.name} ({', '.join(p.nodes)}): accumulators may exceed "
                            f"int{_ACC_WIDTH}")
        summ = p.summary + "; " + note
        self.stages.append(IntLayer(p.name, tuple(p.nodes), "int", summ, qw=qw, acc0=acc0,
                                    geom=p.geom, a_fill=p.a_fill, mac=mac, requant=rq,
                                    A=A, B=B, relu=p.relu, in_tensor=p.in_tensor,
                                    in_meta=p.a_meta, out_meta=out_meta,
                                    post=tuple(v[1] for v in p.layouts)))

    def fp8_layer(self, node, w_name, bias, geom, trans_b, alpha):
        if w_name not in self.fw:
            raise QrtlError(f"{_where(node)}: FP8 activations need FloatQuant weights")
        if self.kind != "fp8":
            raise QrtlError(f"{_where(node)}: FP8 weights need FloatQuant activations "
                            f"(got a {self.kind} tensor)")
        codes, s_w, fmt = self.fw[w_name]
        self._check_rank(node, self.cur_name, geom)
        if geom is None and not trans_b and np.ndim(s_w) == 2:
            s_w = np.asarray(s_w).T
        if fmt != self.meta.fmt:
            raise QrtlError(f"{_where(node)}: activations {self.meta.fmt} and weights {fmt} differ "
                            f"(fp8_dot takes one format)")
        c = codes.reshape(codes.shape[0], -1) if geom is not None else \
            (codes.T if not trans_b else codes)
        c = np.ascontiguousarray(c).astype(np.uint64)
        m, k = c.shape
        s = self.meta.scale * _per_channel(s_w, m, _where(node)) * float(alpha)
        b = np.zeros(m) if bias is None else \
            np.broadcast_to(np.asarray(bias, np.float64), (m,)).copy()
        acc = self.params["acc"]
        if acc == "fp32":
            chunk = _FP32_CHUNK if k <= _FP32_CHUNK else 1 << (k - 1).bit_length()
        else:
            chunk = self.params["chunk"]
        dot = {"fmt": fmt, "acc": acc, "chunk": chunk, "outer": "fp32", "lanes": 1,
               "rounding": "rne"}
        name = self._name("fp8_conv" if geom is not None else "fp8_fc")
        summ = (f"{node.op_type} {k} -> {m} on fp8_dot ({fmt}, acc {acc}, chunk {chunk}); "
                f"activations {self.meta.describe()}, weights {fmt}; "
                f"scales and bias in float64 -> float32")
        self.stages.append(Fp8Layer(name, (node.name,), "fp8", summ, wc=c, geom=geom, dot=dot,
                                    out_scale=s, bias=b))
        self.kind, self.meta = "float", None

    # --- bipolar layers
    def bin_layer(self, node, x_name, w_name, bias, geom, trans_b, alpha):
        where = _where(node)
        if w_name not in self.bw:
            raise QrtlError(f"{where}: bipolar activations need BipolarQuant weights")
        if self.kind != "bin" or self.meta.binary:
            what = "binary 0/1" if self.kind == "bin" else f"a {self.kind}"
            raise QrtlError(f"{where}: BipolarQuant weights need bipolar activations (got "
                            f"{what} tensor; 0/1 activations feed XnorPopcountMatMul)")
        if geom is not None and any(geom.pads):
            raise QrtlError(f"{where}: padding a bipolar tensor with 0 leaves +-1: only "
                            f"unpadded convolutions are supported")
        bits, s_w = self.bw[w_name]
        self._check_rank(node, x_name, geom)
        if geom is None and not trans_b and np.ndim(s_w) == 2:
            s_w = np.asarray(s_w).T
        wb = bits.reshape(bits.shape[0], -1) if geom is not None else \
            (bits.T if not trans_b else bits)
        wb = np.ascontiguousarray(wb).astype(np.uint8)
        m, k = wb.shape
        A = self.meta.scale * _per_channel(s_w, m, where) * float(alpha)
        B = np.zeros(m) if bias is None else \
            np.broadcast_to(np.asarray(bias, np.float64), (m,)).copy()
        summ = (f"{node.op_type} {k} -> {m} on xnor_popcount (n={k}); activations "
                f"{self.meta.describe()}, weights bipolar")
        self.pending = _PendingBin(self._name("bconv" if geom is not None else "bfc"),
                                   [node.name], wb, geom, A, B, summary=summ)
        self.kind, self.meta = "pending", None

    def xnor_matmul(self, node):
        where = _where(node)
        w = self.const(node.input[1], node, "weights")
        if self.kind != "bin" or not self.meta.binary:
            raise QrtlError(f"{where}: XnorPopcountMatMul needs binary 0/1 activations (a "
                            f"MultiThreshold with out_scale 1, out_bias 0)")
        if w.ndim != 2 or not np.all((w == 0) | (w == 1)):
            raise QrtlError(f"{where}: weights must be a 2-D constant of 0/1 values")
        self._check_rank(node, node.input[0], None)
        wb = np.ascontiguousarray(np.asarray(w).T).astype(np.uint8)
        m, k = wb.shape
        # popcount of the XNOR = (dot + K) / 2, times the activations' scale
        sc = self.meta.scale
        self.pending = _PendingBin(self._name("bfc"), [node.name], wb, None,
                                   np.full(m, 0.5 * sc), np.full(m, 0.5 * k * sc),
                                   summary=f"XnorPopcountMatMul {k} -> {m} on xnor_popcount "
                                           f"(n={k}); popcount = (dot + {k}) / 2")
        self.kind, self.meta = "pending", None

    def _emit_bin(self, p: _PendingBin, thr):
        wb, A, B = p.wb.copy(), p.A.copy(), p.B.copy()
        neg = A < 0
        wb[neg] ^= 1                 # inverting a row's bits negates its dot product
        A[neg] = -A[neg]
        m, n = wb.shape
        if thr is not None:
            t = np.broadcast_to(np.asarray(thr, np.float64), (m,))
            with np.errstate(divide="ignore", invalid="ignore"):
                # relu?(A dot + B) >= t  <=>  dot >= (t - B) / A  (dot is an integer)
                lim = np.where(A > 0, np.ceil((t - B) / np.where(A > 0, A, 1.0)),
                               np.where(B >= t, -n, n + 1))
            if p.relu:
                lim = np.where(t <= 0, -n, lim)
            thr_i = np.clip(lim, -n, n + 1).astype(np.int64)
        params = {"n": n, "pipeline": 0, "threshold": int(thr is not None), "popcount": "tree"}
        note = (f"threshold dot >= thr per channel ({int(thr_i.min())}..{int(thr_i.max())})"
                if thr is not None else "float32 output relu?(A dot + B) in NumPy")
        # With A a power of two and B a multiple of it, the executor's float32 value
        # A (dot + B/A) is exact, so its comparison and output are ours
        e = np.log2(np.where(A > 0, A, 1.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.where(A > 0, B / np.where(A > 0, A, 1.0), 0.5)
        exact = bool(np.all(A > 0) and np.all(e == np.rint(e)) and np.all(k == np.rint(k))
                     and np.all(np.abs(k) + n < 1 << 24))
        if not exact:
            note += " (inexact: A not a power of two or B not a multiple of it)"
        self.stages.append(XnorLayer(p.name, tuple(p.nodes), "bipolar", p.summary + "; " + note,
                                     wb=wb, geom=p.geom,
                                     thr=thr_i if thr is not None else None, A=A, B=B,
                                     relu=p.relu, unit_params=params, exact=exact))

    def multithreshold(self, node):
        where = _where(node)
        a = _attrs(node)
        thr = np.asarray(self.const(node.input[1], node, "thresholds"), np.float64)
        if thr.ndim != 2:
            raise QrtlError(f"{where}: thresholds of shape {thr.shape} (expected channels x "
                            f"steps)")
        layout = str(a.get("data_layout", ""))
        if layout not in ("", "NC", "NCHW"):
            raise QrtlError(f"{where}: data_layout={layout} is not supported (NC, NCHW)")
        osc, obi = float(a.get("out_scale", 1.0)), float(a.get("out_bias", 0.0))
        steps = thr.shape[1]
        bipolar = steps == 1 and osc > 0 and obi == -osc / 2
        binary = steps == 1 and osc > 0 and obi == 0.0
        if self.kind == "pending" and isinstance(self.pending, _PendingBin):
            p = self.pending
            if not (bipolar or binary):
                raise QrtlError(f"{where}: after a bipolar layer only one threshold per channel "
                                f"with a bipolar (out_scale 2c, out_bias -c) or 0/1 output "
                                f"folds into xnor_popcount (got {steps} step(s), out_scale "
                                f"{osc:g}, out_bias {obi:g})")
            if p.layouts:
                raise QrtlError(f"{where}: layout operators between a bipolar layer and its "
                                f"MultiThreshold are not supported")
            if thr.shape[0] not in (1, len(p.A)):
                raise QrtlError(f"{where}: {thr.shape[0]} threshold rows for {len(p.A)} channels")
            p.nodes.append(node.name)
            self._emit_bin(p, thr[:, 0])
            self.pending = None
            self.kind, self.meta = "bin", BinMeta(osc / 2 if bipolar else osc, binary)
            return
        self.as_float(node)
        if bipolar or binary:
            meta = BinMeta(osc / 2 if bipolar else osc, binary)
            self.stages.append(NumpyStage(
                self._name("threshold"), (node.name,), "float -> bits",
                f"MultiThreshold ({thr.shape[0]} channel(s), one step) -> {meta.describe()} "
                f"(float32 compare)", fn=lambda v, t=thr: _multithreshold(v, t, 1.0, 0.0)
                .astype(np.uint8)))
            self.kind, self.meta = "bin", meta
            return
        self.stages.append(NumpyStage(
            self._name("threshold"), (node.name,), "float",
            f"MultiThreshold ({thr.shape[0]} channel(s), {steps} steps, out_scale {osc:g}, "
            f"out_bias {obi:g}) in float32",
            fn=lambda v, t=thr, o=osc, b=obi: _multithreshold(v, t, o, b)))

    def bipolar_quant(self, node, x):
        s = self.const(node.input[1], node, "scale")
        if x in self.consts:
            w = self.consts[x].astype(np.float32)
            self.bw[node.output[0]] = ((w >= 0).astype(np.uint8), np.asarray(s, np.float64))
            return
        meta = BinMeta(_scalar(s, "activation scale", _where(node)))
        self.as_float(node)
        self.stages.append(NumpyStage(self._name("bquant"), (node.name,), "float -> bits",
                                      f"float32 -> {meta.describe()} (x >= 0)",
                                      fn=lambda v: (np.asarray(v) >= 0).astype(np.uint8)))
        self.kind, self.meta = "bin", meta

    # --- quantizers
    def quant(self, node, x):
        a = _attrs(node)
        where = _where(node)
        s = self.const(node.input[1], node, "scale")
        zp = self.const(node.input[2], node, "zero point")
        bits = _scalar(self.const(node.input[3], node, "bit width"), "bit width", where)
        if bits != int(bits) or bits < 2:
            raise QrtlError(f"{where}: bit width {bits} is not supported (allowed: integers >= 2)")
        bits = int(bits)
        signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
        rounding = str(a.get("rounding_mode", "ROUND")).upper()
        if x in self.consts:     # weights
            w = self.consts[x].astype(np.float32)
            mode = _ROUNDING.get(rounding)
            if mode is None:
                raise QrtlError(f"{where}: rounding_mode {rounding} is not supported "
                                f"(allowed: {', '.join(_ROUNDING)})")
            meta_lo = -(1 << (bits - 1)) + narrow if signed else 0
            meta_hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1 - narrow
            y = w / np.asarray(s, np.float32) + np.asarray(zp, np.float32)
            y = np.clip(y, meta_lo, meta_hi)
            q = _round(y, mode).astype(np.int64)
            self.qw[node.output[0]] = (q, np.asarray(s, np.float64), np.asarray(zp), bits, signed,
                                       narrow)
            return
        zp_f = _scalar(zp, "zero point", where)
        if zp_f != int(zp_f):
            raise QrtlError(f"{where}: zero point {zp_f} is not an integer")
        s_f = np.asarray(s, np.float64)
        if s_f.size != 1:
            if self.kind == "pending" and not self.pending.layouts and s_f.size == \
                    len(self.pending.A):
                raise QrtlError(f"{where}: per-channel activation scales are not supported "
                                f"(the next layer's dot products need one scale)")
            raise QrtlError(f"{where}: activation scale of shape {s_f.shape} is not per-tensor")
        meta = IntMeta(bits, signed, narrow, float(s_f.reshape(-1)[0]), int(zp_f))
        if self.kind == "pending" and isinstance(self.pending, _PendingBin):
            self.flush()
        if self.kind == "pending":
            p = self.pending
            p.nodes.append(node.name)
            self._emit_int(p, (node, meta.scale, meta.zp, bits, signed, narrow, rounding))
            for name, fn, summ, onnx_name in p.layouts:
                self.stages.append(NumpyStage(name, (onnx_name,), "int",
                                              summ + " (on the requantized codes)", fn=fn,
                                              layout=True))
            self.pending = None
            self.kind, self.meta = "int", meta
            return
        self.as_float(node)
        mode = _ROUNDING.get(rounding)
        if mode is None:
            raise QrtlError(f"{where}: rounding_mode {rounding} is not supported "
                            f"(allowed: {', '.join(_ROUNDING)})")
        self.stages.append(NumpyStage(self._name("quant"), (node.name,), "float -> int",
                                      f"float32 -> {meta.describe()} (the executor's arithmetic)",
                                      fn=lambda v, m=meta, r=mode: _int_quant(v, m, r)))
        self.kind, self.meta = "int", meta

    def float_quant(self, node, x):
        from qrtl.golden.fp8 import encode
        from qrtl.golden.formats import get_format
        a = _attrs(node)
        where = _where(node)
        vals = [_scalar(self.const(node.input[i], node, what), what, where) for i, what in
                ((2, "exponent bit width"), (3, "mantissa bit width"), (4, "exponent bias"),
                 (5, "max value"))]
        e, mb, bias, maxv = vals
        max_q = (2 - 2.0 ** -mb) * 2.0 ** (2 ** e - 1 - bias)
        eff_max = min(max_q, maxv)
        fmt = None
        for name in ("e4m3", "e5m2"):
            f = get_format(name)
            from qrtl.golden.fp8 import decode
            fmax = float(decode(np.array([f.max_code]), f)[0])
            if (f.ebits, f.mbits, f.bias) == (e, mb, bias) and fmax == eff_max:
                fmt = name
        rounding = str(a.get("rounding_mode", "ROUND")).upper()
        if fmt is None or rounding not in ("ROUND", "HALF_EVEN"):
            raise QrtlError(f"{where}: exponent {e:g} bits, mantissa {mb:g} bits, bias {bias:g}, "
                            f"max {eff_max:g}, rounding {rounding} match neither OCP E4M3 "
                            f"(4, 3, 7, 448, ROUND) nor E5M2 (5, 2, 15, 57344, ROUND)")
        sat = bool(a.get("saturation", 1))
        if not sat and bool(a.get("has_inf", 0)) != get_format(fmt).has_inf:
            raise QrtlError(f"{where}: saturation=0 with has_inf={a.get('has_inf', 0)} does not "
                            f"match OCP {fmt}'s overflow")
        s = self.const(node.input[1], node, "scale")
        if x in self.consts:
            w = self.consts[x].astype(np.float32)
            codes = encode((w / np.asarray(s, np.float32)).astype(np.float64), fmt, saturate=sat)
            self.fw[node.output[0]] = (codes, np.asarray(s, np.float64), fmt)
            return
        s_f = _scalar(s, "activation scale", where)
        self.as_float(node)
        meta = Fp8Meta(fmt, s_f)

        def fn(v, s=np.float32(s_f), fmt=fmt, sat=sat):
            return encode((np.asarray(v, np.float32) / s).astype(np.float64), fmt, saturate=sat)
        self.stages.append(NumpyStage(self._name("fquant"), (node.name,), "float -> fp8",
                                      f"float32 -> {meta.describe()} (RNE, "
                                      f"{'saturating' if sat else 'overflow to NaN/Inf'})", fn=fn))
        self.kind, self.meta = "fp8", meta

    # --- elementwise and layout
    def affine(self, node, op, c):
        """Add/Sub/Mul/Div by a constant ``c`` on the current tensor."""
        where = _where(node)
        if self.kind == "pending":
            p = self.pending
            m = len(p.A)
            c = np.asarray(c, np.float64)
            cv = None
            if c.size == 1:
                cv = np.full(m, float(c.reshape(-1)[0]))
            elif not p.layouts:
                # per channel iff, broadcast to the layer's output, it is constant along
                # every axis but the channel axis 1 (ONNX broadcasting, right-aligned)
                out_shape = self.model.get_tensor_shape(node.input[0])
                try:
                    cb = np.broadcast_to(c, np.broadcast_shapes(tuple(out_shape), c.shape))
                except (TypeError, ValueError):
                    cb = None
                if cb is not None and cb.ndim >= 2 and cb.shape[1] == m:
                    per = np.moveaxis(cb, 1, 0).reshape(m, -1)
                    if np.all(per == per[:, :1]):
                        cv = per[:, 0].copy()
            if cv is None:
                raise QrtlError(f"{where}: constant of shape {c.shape} is neither per-tensor nor "
                                f"per-channel on the layer output")
            if p.relu and (op in ("Add", "Sub") or np.any(cv <= 0)):
                raise QrtlError(f"{where}: {op} after ReLU cannot be folded into the requantizer "
                                f"(only a positive Mul/Div)")
            if op == "Add":
                p.B = p.B + cv
            elif op == "Sub":
                p.B = p.B - cv
            elif op == "Mul":
                p.A, p.B = p.A * cv, p.B * cv
            else:
                p.A, p.B = p.A / cv, p.B / cv
            p.nodes.append(node.name)
            return
        self.as_float(node)
        cf = np.asarray(c, np.float32)
        fn = {"Add": lambda v, c=cf: (v + c).astype(np.float32),
              "Sub": lambda v, c=cf: (v - c).astype(np.float32),
              "Mul": lambda v, c=cf: (v * c).astype(np.float32),
              "Div": lambda v, c=cf: (v / c).astype(np.float32)}[op]
        self.stages.append(NumpyStage(self._name(op.lower()), (node.name,), "float",
                                      f"{op} by a constant of shape {cf.shape} (float32)", fn=fn))

    def batchnorm(self, node):
        where = _where(node)
        g, b, mean, var = (np.asarray(self.const(node.input[i], node, "parameter"), np.float64)
                           for i in (1, 2, 3, 4))
        eps = float(_attrs(node).get("epsilon", 1e-5))
        if self.kind != "pending" or self.pending.layouts or self.pending.relu:
            raise QrtlError(f"{where}: BatchNormalization is supported only directly after "
                            f"an integer Conv/Gemm (folded into its requantizer)")
        p = self.pending
        k = g / np.sqrt(var + eps)
        p.A, p.B = p.A * k, (p.B - mean) * k + b
        p.nodes.append(node.name)

    def relu(self, node):
        if self.kind == "pending":
            self.pending.relu = True
            self.pending.nodes.append(node.name)
        elif self.kind == "int":
            m = self.meta
            self.stages.append(NumpyStage(self._name("relu"), (node.name,), "int",
                                          f"ReLU on codes: max(q, {m.zp})",
                                          fn=lambda q, z=m.zp: np.maximum(q, z)))
        else:
            self.as_float(node)
            self.stages.append(NumpyStage(self._name("relu"), (node.name,), "float",
                                          "ReLU (float32)",
                                          fn=lambda v: np.maximum(v, np.float32(0))))

    def maxpool(self, node, a):
        where = _where(node)
        ks = a.get("kernel_shape")
        if ks is None or len(ks) != 2 or a.get("ceil_mode", 0) or \
                str(a.get("auto_pad", "NOTSET")) not in ("NOTSET", ""):
            raise QrtlError(f"{where}: only 2-D MaxPool with explicit pads and ceil_mode=0 is "
                            f"supported")
        if self.kind == "pending":
            raise QrtlError(f"{where}: MaxPool between a layer and its Quant is not supported "
                            f"(pool the quantized codes)")
        if self.kind == "fp8":
            self.as_float(node)
        geom = ConvGeom(tuple(ks), tuple(a.get("strides", [1, 1])),
                        tuple(a.get("dilations", [1, 1])), tuple(a.get("pads", [0, 0, 0, 0])))
        kind = "int" if self.kind == "int" else "float"
        fill = np.iinfo(np.int64).min if kind == "int" else -np.inf
        self.stages.append(PoolStage(self._name("maxpool"), (node.name,), kind,
                                     f"MaxPool {ks[0]}x{ks[1]}, stride {geom.strides[0]} "
                                     f"({'on the codes' if kind == 'int' else 'float32'})",
                                     geom=geom, fill=fill))

    def layout(self, node, fn, summ):
        name = self._name(node.op_type.lower())
        if self.kind == "pending":
            self.pending.layouts.append((name, fn, summ, node.name))
            self.pending.nodes.append(node.name)
            return
        kind = self.kind if self.kind in ("int", "fp8") else "float"
        self.stages.append(NumpyStage(name, (node.name,), kind, summ, fn=fn, layout=True))

    # --- the walk
    def lower(self):
        g = self.model.graph
        if len(g.input) != 1 or len(g.output) != 1:
            raise QrtlError(f"model {self.path}: {len(g.input)} inputs and {len(g.output)} outputs "
                            f"(supported: one of each)")
        cur = g.input[0].name
        for node in g.node:
            dyn = [i for i in node.input if i and i not in self.consts and i not in self.qw
                   and i not in self.fw and i not in self.bw]
            if node.op_type in ("Quant", "IntQuant", "FloatQuant", "BipolarQuant") and \
                    node.input[0] in self.consts:
                fn = {"FloatQuant": self.float_quant,
                      "BipolarQuant": self.bipolar_quant}.get(node.op_type, self.quant)
                fn(node, node.input[0])
                continue
            if node.op_type not in SUPPORTED_OPS:
                raise QrtlError(f"{_where(node)} is not supported (supported: "
                                f"{', '.join(SUPPORTED_OPS)})")
            if not dyn:
                raise QrtlError(f"{_where(node)}: every input is constant (the graph was not "
                                f"folded)")
            if dyn[0] != cur or len(dyn) > 1:
                raise QrtlError(f"{_where(node)}: inputs {', '.join(dyn)} do not form a chain "
                                f"(networks with branches are not supported)")
            self.cur_name = cur
            self.node(node)
            cur = node.output[0]
        if cur != g.output[0].name:
            raise QrtlError(f"model {self.path}: the chain of nodes does not end at the output "
                            f"{g.output[0].name}")
        if self.kind == "pending":
            self.flush()
        return self.kind, self.meta

    def node(self, node):
        op = node.op_type
        a = _attrs(node)
        where = _where(node)
        if op in ("Quant", "IntQuant"):
            return self.quant(node, node.input[0])
        if op == "FloatQuant":
            return self.float_quant(node, node.input[0])
        if op == "BipolarQuant":
            return self.bipolar_quant(node, node.input[0])
        if op == "MultiThreshold":
            return self.multithreshold(node)
        if op == "XnorPopcountMatMul":
            return self.xnor_matmul(node)
        if op == "Conv":
            if a.get("group", 1) != 1:
                raise QrtlError(f"{where}: group={a['group']} is not supported (only group=1)")
            if str(a.get("auto_pad", "NOTSET")) not in ("NOTSET", ""):
                raise QrtlError(f"{where}: auto_pad={a['auto_pad']} is not supported (explicit "
                                f"pads only)")
            ks = a.get("kernel_shape")
            w = node.input[1]
            wq = self.qw.get(w, self.fw.get(w))
            if ks is None and wq is not None:
                ks = list(wq[0].shape[2:])
            if ks is None or len(ks) != 2:
                raise QrtlError(f"{where}: only 2-D convolutions are supported")
            geom = ConvGeom(tuple(ks), tuple(a.get("strides", [1, 1])),
                            tuple(a.get("dilations", [1, 1])), tuple(a.get("pads", [0, 0, 0, 0])))
            has_bias = len(node.input) > 2 and bool(node.input[2])
            bias = self.const(node.input[2], node, "bias") if has_bias else None
            return self.layer(node, node.input[0], w, bias, geom, True)
        if op == "Gemm":
            if a.get("transA", 0):
                raise QrtlError(f"{where}: transA=1 is not supported")
            bias = None
            if len(node.input) > 2 and node.input[2]:
                bias = np.asarray(self.const(node.input[2], node, "bias"), np.float64) * \
                    float(a.get("beta", 1.0))
            return self.layer(node, node.input[0], node.input[1], bias, None,
                              bool(a.get("transB", 0)), float(a.get("alpha", 1.0)))
        if op == "MatMul":
            return self.layer(node, node.input[0], node.input[1], None, None, False)
        if op == "BatchNormalization":
            return self.batchnorm(node)
        if op == "Relu":
            return self.relu(node)
        if op in ("Add", "Sub", "Mul", "Div"):
            c = self.const(node.input[1], node, "operand")
            if node.input[0] not in self.consts and node.input[1] in self.consts:
                return self.affine(node, op, c)
            raise QrtlError(f"{where}: only data {op} constant is supported")
        if op == "Identity":
            return None
        if op == "MaxPool":
            return self.maxpool(node, a)
        shape = self.model.get_tensor_shape(node.input[0])
        if op == "DepthToSpace":
            bs, mode = int(a["blocksize"]), str(a.get("mode", "DCR"))
            return self.layout(node, _depth_to_space(bs, mode), f"DepthToSpace {mode} x{bs}")
        if op == "Flatten":
            return self.layout(node, _flatten(int(a.get("axis", 1))), "Flatten")
        if op == "Reshape":
            if a.get("allowzero", 0):
                raise QrtlError(f"{where}: allowzero=1 is not supported")
            shp = self.const(node.input[1], node, "shape")
            return self.layout(node, _reshape(shp), f"Reshape to {list(shp)}")
        if op == "Tile":
            reps = [int(v) for v in self.const(node.input[1], node, "repeats")]
            return self.layout(node, lambda x, r=tuple(reps): np.tile(x, r), f"Tile {reps}")
        if op == "Transpose":
            perm = a.get("perm")
            fn = (lambda x, p=perm: np.transpose(x, p))
            return self.layout(node, fn, f"Transpose {perm}")
        if op == "Resize":
            if str(a.get("mode", "nearest")) != "nearest":
                raise QrtlError(f"{where}: mode={a.get('mode')} is not supported (only nearest)")
            ctm = str(a.get("coordinate_transformation_mode", "half_pixel"))
            nmode = str(a.get("nearest_mode", "round_prefer_floor"))
            if ctm not in ("asymmetric", "half_pixel", "pytorch_half_pixel", "align_corners"):
                raise QrtlError(f"{where}: coordinate_transformation_mode={ctm} is not supported")
            scales = None
            if len(node.input) > 2 and node.input[2]:
                sc = np.asarray(self.const(node.input[2], node, "scales"), np.float64)
                scales = sc if sc.size else None
            if scales is None and len(node.input) > 3 and node.input[3]:
                sizes = np.asarray(self.const(node.input[3], node, "sizes"), np.float64)
                scales = sizes / np.asarray(shape, np.float64)
            if scales is None:
                raise QrtlError(f"{where}: neither scales nor sizes given")
            return self.layout(node, _resize([float(s) for s in scales], ctm, nmode),
                               f"Resize nearest x{[float(s) for s in scales]} ({ctm}, {nmode})")
        if op == "Pad":
            mode = str(a.get("mode", "constant"))
            pads = a.get("pads")
            if pads is None and len(node.input) > 1:
                pads = [int(v) for v in self.const(node.input[1], node, "pads")]
            value = 0.0
            if len(node.input) > 2 and node.input[2]:
                value = float(np.asarray(self.const(node.input[2], node, "value")).reshape(-1)[0])
            if mode != "constant" or pads is None or min(pads) < 0 or \
                    (value != 0.0 and self.kind != "float"):
                raise QrtlError(f"{where}: only constant padding is supported (on quantized "
                                f"codes with the value 0)")
            if self.kind == "pending":
                raise QrtlError(f"{where}: padding between a layer and its Quant is not supported")
            fill = self.meta.zp if self.kind == "int" else (0 if self.kind == "fp8" else value)
            return self.layout(node, _pad(pads, fill), f"Pad {list(pads)} with the value {value:g}")
        raise QrtlError(f"{where} is not supported (supported: {', '.join(SUPPORTED_OPS)})")


def _round(y, mode: str) -> np.ndarray:
    if mode == "half_even":
        return np.round(y)
    if mode == "floor":
        return np.floor(y)
    return np.sign(y) * np.floor(np.abs(y) + 0.5)      # half_away (qonnx's HALF_UP)


def _int_quant(x, m: IntMeta, mode: str) -> np.ndarray:
    """qonnx's ``int_quant`` (float32: ``x / s + zp``, clip, round) as integer codes."""
    y = np.asarray(x, np.float32) / np.float32(m.scale) + np.float32(m.zp)
    y = np.clip(y, m.lo, m.hi)
    return _round(y, mode).astype(np.int64)


def load_qonnx(path, **params) -> QonnxNet:
    """Read a QONNX model and lower it to the units' golden models.

    Parameters
    ----------
    path : str or Path
        An ONNX file (QONNX operators ``Quant``/``FloatQuant`` from Brevitas, QKeras, ...).
    **params
        ``scheme`` (``fixedpoint`` default, or ``float``): the requantizer where a layer's
        scale is not a power of two; ``acc`` (``fp32`` default, or ``fp16``) and ``chunk``:
        ``fp8_dot``'s accumulation for FP8 layers; ``input_bits`` (8): the assumed input
        quantizer when the graph input feeds a layer unquantized.

    Returns
    -------
    QonnxNet
        Its ``lowering()``, ``run(x)`` (golden), ``forward(x, execute, samples)`` (recorded
        unit operations); :func:`agreement` compares it with qonnx's executor.

    Raises
    ------
    QrtlError
        One line naming the node, its op type and what is not supported.
    """
    p = resolve("qonnx import", QONNX_PARAMS, params)
    path = str(path)
    if not Path(path).is_file():
        raise QrtlError(f"ONNX model {path!r} does not exist")
    model = _clean(path)
    low = _Lowering(model, p, path)
    kind, meta = low.lower()
    inp = model.graph.input[0]
    shape = tuple(int(d) for d in model.get_tensor_shape(inp.name))
    if kind in ("int", "fp8", "bin"):
        out_meta = meta
    else:
        out_meta = None
    return QonnxNet(path, p, model, inp.name, model.graph.output[0].name, shape, low.stages,
                    out_meta, low.notes)


# --- the oracle -----------------------------------------------------------------------

@dataclass
class Agreement:
    """The imported network's golden output against qonnx's reference executor.

    Attributes
    ----------
    model : str
    outputs : int
        Elements of the output tensor.
    unit : str
        What one step of ``max_diff`` is: ``LSB`` of the output quantizer, or ``ulp`` of
        float32 (an unquantized output).
    identical : bool
        Every output element equal.
    differing : int
    share : float
        ``differing / outputs``.
    max_diff : int
        Largest difference in ``unit``.
    histogram : dict
        ``{difference: count}`` for the nonzero differences.
    exact_expected : bool
        :attr:`QonnxNet.exact`: the lowering claims the executor's arithmetic.
    layers : list of dict
        The same figures for every requantized layer output (``stage``, ``tensor``,
        ``outputs``, ``differing``, ``max_lsb``), against the executor's intermediate
        tensor of the same Quant node (its own inputs, so differences accumulate).
    why : str
    """

    model: str
    outputs: int
    unit: str
    identical: bool
    differing: int
    share: float
    max_diff: int
    histogram: dict
    exact_expected: bool
    layers: list
    why: str

    def as_dict(self) -> dict:
        return asdict(self)


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of float32 values in units in the last place (ordered integer views)."""
    def key(v):
        i = np.asarray(v, np.float32).view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)
    return np.abs(key(a) - key(b))


def compare_float(ours, ref) -> dict:
    """Float32 tensors compared: ``outputs``, ``differing``, ``max_ulp``, ``max_abs``."""
    ours, ref = np.asarray(ours, np.float32), np.asarray(ref, np.float32)
    if ours.shape != ref.shape:
        raise QrtlError(f"output shapes differ: {ours.shape} and {ref.shape}")
    u = _ulps(ours, ref)
    return {"outputs": int(ours.size), "differing": int((u != 0).sum()),
            "max_ulp": int(u.max(initial=0)),
            "max_abs": float(np.abs(ours.astype(np.float64) - ref).max(initial=0.0))}


def _codes_of(v, meta: IntMeta) -> np.ndarray:
    return np.rint(np.asarray(v, np.float64) / meta.scale + meta.zp).astype(np.int64)


def _layer_figures(s: "IntLayer", ours_chained, ctx, model) -> dict:
    """One requantized layer against the executor: on our own inputs (``chained``) and on
    the executor's inputs (``local``), plus how close to a rounding tie the executor's
    value was wherever the local results differ."""
    qnode = next(n for n in model.graph.node if n.name == s.nodes[-1])
    m = s.out_meta
    ref = _codes_of(ctx[qnode.output[0]], m)
    pre = np.asarray(ctx[qnode.input[0]], np.float64) / m.scale + m.zp

    def post(v):
        for fn in s.post:
            v = fn(v)
        return v
    chained = np.abs(post(np.asarray(ours_chained)) - ref)
    a = s.in_meta
    local_in = np.clip(_codes_of(ctx[s.in_tensor], a), a.lo, a.hi)
    local = np.abs(post(s.run(local_in)) - ref)
    near = np.abs(pre - np.floor(pre) - 0.5)[local != 0]
    return {"stage": s.name, "tensor": qnode.output[0], "outputs": int(ref.size),
            "differing": int((chained != 0).sum()), "max_lsb": int(chained.max(initial=0)),
            "local_differing": int((local != 0).sum()),
            "local_max_lsb": int(local.max(initial=0)),
            "local_max_tie_distance": float(near.max(initial=0.0)),
            "bias_rounding_lsb": s.requant.bias_err,
            "multiplier_rounding_lsb": s.requant.mult_err}


def agreement(net: QonnxNet, x) -> Agreement:
    """Run ``net`` (golden) and ``qonnx.core.onnx_exec.execute_onnx`` on the same input
    ``x`` and compare the output: codes of a quantized output (difference in LSBs of the
    output quantizer), float32 ulps otherwise. Every requantized layer is compared too, on
    our own inputs (differences propagate) and on the executor's inputs (``local_*``:
    the layer's own rounding; ``local_max_tie_distance`` is the largest distance, in LSBs,
    of the executor's unrounded value from a rounding tie where they differ, to be read
    against ``bias_rounding_lsb``, the largest error of the bias rounded to the
    accumulator's LSB, ``M |B/A - round(B/A)|``, plus ``multiplier_rounding_lsb``, the
    requantizer's own error bound: gemmlowp's first rounding to ``2**-right`` of an LSB and
    the Q0.31 multiplier, or binary32's relative ``2**-23``)."""
    from qonnx.core.onnx_exec import execute_onnx
    x = net.check_input(x)
    ours = net.run(x)
    ctx = execute_onnx(net.model, {net.input_name: x}, return_full_exec_context=True)
    ref = ctx[net.output_name]
    layers = [_layer_figures(s, ours["tensors"][s.name], ctx, net.model) for s in net.stages
              if isinstance(s, IntLayer) and s.requant is not None]
    meta = net.output_meta
    if isinstance(meta, IntMeta):
        d = np.abs(np.asarray(ours["codes"]) - _codes_of(ref, meta))
        unit = "LSB"
    else:
        d = _ulps(ours["output"], ref)
        unit = "ulp"
    vals, counts = np.unique(d[d != 0], return_counts=True)
    differing = int((d != 0).sum())
    if net.exact:
        why = ("integer arithmetic (quant_shift with power-of-two scales, xnor_popcount with "
               "power-of-two scales and integral biases): the executor's float32 arithmetic "
               "is exact here")
    elif unit == "ulp":
        why = ("float32 output: the units' exact products and fp32/int32 sums with one final "
               "scaling, against the executor's float32 dequantized operands and sums")
        if any(isinstance(s, Fp8Layer) and s.dot["acc"] == "fp16" for s in net.stages):
            why += ("; acc=fp16 rounds every partial sum of a chunk to fp16 (the executor "
                    "sums in float32)")
    else:
        why = ("scales that are not powers of two: the requantizer rounds a fixed-point (or "
               "binary32) product and a bias rounded to the accumulator's LSB, the executor its "
               "float32 expression (conv, bias, BatchNorm); values within a fraction of an LSB "
               "of a rounding tie differ by one LSB, and later layers propagate it")
    return Agreement(model=net.path, outputs=int(d.size), unit=unit, identical=differing == 0,
                     differing=differing, share=differing / max(int(d.size), 1),
                     max_diff=int(d.max(initial=0)),
                     histogram={int(v): int(c) for v, c in zip(vals, counts)},
                     exact_expected=net.exact, layers=layers, why=why)
