"""Our digits networks as QONNX graphs (``onnx.helper`` and qonnx's operators, no PyTorch).

:func:`export_qonnx` writes the deployed integer network of ``int8`` (each ``scheme``),
``fp8`` and ``bnn`` as a QONNX model whose input is what the float network sees, so that
:func:`golden.nets.qonnx.load_qonnx` imports it back onto the same units:

``int8``
    ``x = pixels / 16`` (N, 64) -> ``Quant`` (int8, scale 1/16: the pixel itself) ->
    per layer ``Gemm`` (``Quant`` int8 narrow weights ``qW s_w``, bias ``bq s_in s_w``: the
    int32 bias as TFLite stores it) -> ``Relu`` -> ``Quant`` (the layer's output scale and
    zero point) ...; the output layer has no ``Quant`` (float32 ``s_acc acc``).
    ``scheme=shift``: power-of-two scales throughout (the input's ``2**-4``, each weight
    scale rounded to a power of two, output scales ``s_in s_w 2**shift``), so the importer
    finds the network's shifts and biases exactly (``quant_shift``); the dequantized values
    are the int8 network's times a power of two per layer, which neither ReLU nor the
    argmax sees. ``HALF_UP`` rounding is the network's ``half_up`` (after the ReLU every
    value is non-negative). ``fixedpoint``/``float``: the network's own scales, as
    float32 (the QONNX convention); the importer's multiplier ``M = s_in s_w / s_out`` is
    then the network's to within float32 rounding of the three scales.
``fp8``
    ``x`` -> ``Pad`` (a leading 1.0: the bias input) -> ``FloatQuant`` (OCP ``fmt``, scale
    1) -> ``Gemm`` (``FloatQuant`` weights: the bias column first) -> ``Relu`` -> ``Pad``
    -> ``FloatQuant`` ...: the bias is the first product of each dot product, as in the
    network. The accumulator (``acc``, ``chunk``) is not part of QONNX: import with the
    same ``acc`` and ``chunk``.
``bnn``
    ``x = pixels`` -> ``Tile`` x4 -> ``MultiThreshold`` (the thermometer levels, one per
    channel; ``out_scale 2, out_bias -1``: bipolar) -> per layer ``MatMul``
    (``BipolarQuant`` weights, sign-folded) -> ``MultiThreshold`` (the folded integer
    threshold, bipolar output) ...; the output layer's ``MatMul`` gives the scores.

:func:`network_input` gives the graph input of test images.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from qrtl.golden.errors import QrtlError

__all__ = ["EXPORTABLE", "ROUND_TRIP_CONFIGS", "export_qonnx", "network_input", "import_params",
           "round_trip"]

#: Networks :func:`export_qonnx` writes.
EXPORTABLE = ("int8", "fp8", "bnn")
_DOMAIN = "qonnx.custom_op.general"
#: The configurations :func:`round_trip` is run on by the tests and the report.
ROUND_TRIP_CONFIGS = ([("bnn", {})] + [("int8", {"scheme": s}) for s in ("shift", "fixedpoint",
                                                                         "float")]
                      + [("fp8", {"fmt": "e4m3"}), ("fp8", {"fmt": "e5m2", "acc": "fp32"})])


class _Graph:
    def __init__(self):
        self.nodes, self.inits = [], []
        self.k = 0

    def const(self, name, value, dtype=np.float32):
        from onnx import numpy_helper
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op, inputs, outputs=None, domain="", **attrs):
        from onnx import helper
        self.k += 1
        name = f"{op}_{self.k}"
        outputs = outputs or [f"t{self.k}"]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, domain=domain,
                                           **attrs))
        return outputs[0]

    def quant(self, x, scale, zp, bits, signed, narrow=0, rounding="ROUND"):
        k = self.k + 1
        ins = [x, self.const(f"q{k}_scale", scale), self.const(f"q{k}_zp", zp),
               self.const(f"q{k}_bits", bits)]
        return self.node("Quant", ins, domain=_DOMAIN, signed=int(signed), narrow=int(narrow),
                         rounding_mode=rounding)

    def float_quant(self, x, fmt):
        e, m, b, mx = {"e4m3": (4, 3, 7, 448.0), "e5m2": (5, 2, 15, 57344.0)}[fmt]
        k = self.k + 1
        ins = [x] + [self.const(f"fq{k}_{n}", v) for n, v in
                     (("scale", 1.0), ("exp", e), ("mant", m), ("bias", b), ("max", mx))]
        return self.node("FloatQuant", ins, domain=_DOMAIN, has_inf=int(fmt == "e5m2"),
                         has_nan=1, has_subnormal=1, rounding_mode="ROUND", saturation=1)

    def model(self, x, y, n_in, n_out, batch):
        import onnx
        from onnx import TensorProto, helper
        g = helper.make_graph(
            self.nodes, "qrtl", [helper.make_tensor_value_info(x, TensorProto.FLOAT,
                                                               [batch, n_in])],
            [helper.make_tensor_value_info(y, TensorProto.FLOAT, [batch, n_out])],
            initializer=self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                                helper.make_opsetid(_DOMAIN, 1)],
                              producer_name="qrtl")
        onnx.checker.check_model(m)
        return m


def _int8(scheme: str, batch: int):
    from .mlp import int8_quantize, load_float
    layers = int8_quantize(scheme)
    g = _Graph()
    x = "x"
    if scheme == "shift":
        s_in, zp_in = 2.0 ** -4, 0
    else:
        s_in, zp_in = 1.0 / 16, 0
    h = g.quant(x, s_in, 0, 8, True)
    floats = load_float()
    for li, L in enumerate(layers):
        w_float = floats[li][0].astype(np.float64)
        s_w = float(np.abs(w_float).max()) / 127
        if scheme == "shift":
            s_w = 2.0 ** round(math.log2(s_w))
        s_w = float(np.float32(s_w))
        a = float(np.float32(s_in)) * s_w
        bq = L.bias if L.bias is not None else L.acc0 + zp_in * L.qw.sum(axis=1)
        w = g.const(f"w{li + 1}", L.qw * s_w)
        wq = g.quant(w, s_w, 0, 8, True, narrow=1)
        b = g.const(f"b{li + 1}", np.asarray(bq, np.float64) * a)
        h = g.node("Gemm", [h, wq, b], transB=1)
        if L.rq is None:
            break
        h = g.node("Relu", [h])
        if scheme == "shift":
            s_out, rounding = a * 2.0 ** L.rq["shift"], "HALF_UP"
        else:
            s_out, rounding = float(np.float32(L.s_out)), "ROUND"
        h = g.quant(h, s_out, L.zp_out, 8, True, rounding=rounding)
        s_in, zp_in = s_out, L.zp_out
    return g.model(x, h, 64, 10, batch)


def _fp8(fmt: str, batch: int):
    from qrtl.golden.fp8 import decode
    from .mlp import fp8_weights
    g = _Graph()
    h = "x"
    ws = fp8_weights(fmt)
    for li, wb in enumerate(ws):
        h = g.node("Pad", [h, g.const(f"pads{li + 1}", [0, 1, 0, 0], np.int64),
                           g.const(f"one{li + 1}", 1.0)], mode="constant")
        h = g.float_quant(h, fmt)
        w = g.const(f"w{li + 1}", decode(wb, fmt))
        h = g.node("Gemm", [h, g.float_quant(w, fmt)], transB=1)
        if li < len(ws) - 1:
            h = g.node("Relu", [h])
    return g.model("x", h, 64, 10, batch)


def _bnn(batch: int):
    from .bnn import load
    p = load()
    g = _Graph()
    levels = np.repeat(np.asarray(p.levels, np.float32), 64).reshape(-1, 1)
    h = g.node("Tile", ["x", g.const("repeats", [1, len(p.levels)], np.int64)])
    h = g.node("MultiThreshold", [h, g.const("levels", levels)], domain=_DOMAIN,
               out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0)
    for li, w in enumerate(p.weights):
        wb = g.node("BipolarQuant", [g.const(f"w{li + 1}", (2.0 * w - 1.0).T),
                                     g.const(f"w{li + 1}_scale", 1.0)], domain=_DOMAIN)
        h = g.node("MatMul", [h, wb])
        if li < len(p.thresholds):
            h = g.node("MultiThreshold", [h, g.const(f"thr{li + 1}", np.asarray(
                p.thresholds[li], np.float32).reshape(-1, 1))], domain=_DOMAIN,
                out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0)
    return g.model("x", h, 64, 10, batch)


def import_params(name: str, params: dict) -> dict:
    """The :func:`load_qonnx` parameters that reproduce network ``name`` with ``params``
    (the FP8 accumulator is not in the graph)."""
    if name == "fp8":
        return {"acc": params["acc"], "chunk": params["chunk"]}
    if name == "int8" and params["scheme"] == "float":
        return {"scheme": "float"}
    return {}


def network_input(name: str, pixels) -> np.ndarray:
    """The exported graph's input for digit images ``pixels`` (N, 64), values 0..16:
    ``pixels / 16`` (int8, fp8: what the float network sees) or the pixels (bnn: the
    thermometer compares them with its levels)."""
    x = np.asarray(pixels, np.float32)
    return x if name == "bnn" else (x / np.float32(16)).astype(np.float32)


def export_qonnx(name: str, path, params=None, batch: int = 1) -> Path:
    """Write network ``name`` (``int8``, ``fp8``, ``bnn``) with ``params`` (as
    :func:`golden.nets.resolve_params` takes them) as a QONNX model at ``path``.

    Returns the path. The graph's input is ``x`` of shape (``batch``, 64)
    (:func:`network_input`), its output the 10 class scores.
    """
    import onnx

    from . import resolve_params
    if name not in EXPORTABLE:
        raise QrtlError(f"network {name!r} cannot be exported to QONNX (exportable: "
                        f"{', '.join(EXPORTABLE)})")
    p = resolve_params(name, params)
    if name == "int8":
        m = _int8(p["scheme"], batch)
    elif name == "fp8":
        m = _fp8(p["fmt"], batch)
    else:
        m = _bnn(batch)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(m, str(path))
    except OSError as exc:
        raise QrtlError(f"cannot write {str(path)!r}: {exc.strerror}") from None
    return path


def _same_ops(a: list, b: list) -> tuple:
    """(same unit configurations in the same order, operations whose inputs differ)."""
    if [(o.unit, o.params, o.count) for o in a] != [(o.unit, o.params, o.count) for o in b]:
        return False, None
    bad = 0
    for x, y in zip(a, b):
        diff = np.zeros(x.count, bool)
        for k in y.inputs:
            u, v = np.asarray(x.inputs[k]), np.asarray(y.inputs[k])
            diff |= (u != v).reshape(x.count, -1).any(axis=1)
        bad += int(diff.sum())
    return True, bad


def round_trip(name: str, params=None, folder=".", images=None, op_images: int = 10,
               path=None) -> dict:
    """Export network ``name`` to QONNX (:func:`export_qonnx`; at ``path``, default
    ``folder/NAME_PARAMS.onnx``), import it back
    (:func:`golden.nets.qonnx.load_qonnx`) and compare on the test split.

    Returns ``{"network", "params", "path", "images", "accuracy", "imported_accuracy",
    "predictions_identical", "differing_predictions", "lowering" (units per layer),
    "same_units" (the same unit configurations, in the same order, as the network's
    operations), "op_images", "ops", "ops_differing" (of the first ``op_images`` images,
    operations whose operands differ from the network's), "import_params"}``.
    """
    from . import resolve_params, run
    from .data import load_split
    from .qonnx import load_qonnx
    p = resolve_params(name, params)
    label = "_".join([name] + [str(v) for v in p.values()])
    path = export_qonnx(name, Path(folder) / f"{label}.onnx" if path is None else path, p)
    ip = import_params(name, p)
    net = load_qonnx(path, **ip)
    s = load_split()
    n = len(s.y_test) if images is None else int(images)
    ref = run(name, p, n)
    got = np.argmax(net.run(network_input(name, s.x_test[:n]))["output"], axis=1)
    k = min(int(op_images), n)
    ops_ref = run(name, p, k)["trace"].ops
    ops_got = net.forward(network_input(name, s.x_test[:k]))["trace"].ops
    same, bad = _same_ops(ops_got, ops_ref)
    return {"network": name, "params": p, "path": str(path), "images": n,
            "accuracy": float(ref["accuracy"]),
            "imported_accuracy": float(np.mean(got == s.y_test[:n])),
            "predictions_identical": bool(np.array_equal(got, ref["pred"])),
            "differing_predictions": int((got != ref["pred"]).sum()),
            "lowering": [r["units"] for r in net.lowering() if r["units"]],
            "same_units": same, "op_images": k, "ops": sum(o.count for o in ops_got),
            "ops_differing": bad, "import_params": ip}
