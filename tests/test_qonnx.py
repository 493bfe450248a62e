"""QONNX import: the shipped models lowered onto the units, against qonnx's executor and the
shipped Brevitas data; power-of-two graphs exactly; unsupported operators; RTL replay."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import qonnx
from qrtl import nets as api_nets
from qrtl.golden.errors import QrtlError
from qrtl.golden.fp8 import decode
from qrtl.golden.nets.qonnx import (Fp8Layer, IntLayer, SUPPORTED_OPS, agreement, compare_float,
                                    load_qonnx, read_tensor)

DATA = Path(qonnx.__file__).parent / "data" / "onnx"
FP8 = DATA / "floatquant_exec"
FP8_MODEL = FP8 / "qonnx_act_weight_fp8.onnx"
ESPCN = {m: DATA / "bsd300x3-espcn" / m / "quant_model.onnx" for m in ("subpixel", "nn_resize")}
ESPCN_INPUT = DATA / "bsd300x3-espcn" / "test_data" / "input_0.pb"


@pytest.fixture(scope="module")
def espcn_input():
    return read_tensor(ESPCN_INPUT)


@pytest.fixture(scope="module")
def espcn():
    return {(m, s): load_qonnx(p, scheme=s) for m, p in ESPCN.items()
            for s in ("fixedpoint", "float")}


# --- the FP8 model ----------------------------------------------------------------------

def test_fp8_model_lowers_to_fp8_dot():
    net = load_qonnx(FP8_MODEL)
    low = net.lowering()
    assert [r["units"] for r in low] == [[], ["fp8_dot"]]
    layer = net.stages[1]
    assert isinstance(layer, Fp8Layer) and layer.wc.shape == (16, 3)
    assert layer.dot["fmt"] == "e4m3" and layer.dot["acc"] == "fp32"


def test_fp8_codes_are_brevitas_quantized_tensors():
    """Our FloatQuant codes, dequantized in float32, are exactly the tensors Brevitas's
    quantizers gave (``activation.npz``), and their float32 dot products, summed in order, are
    exactly the shipped ``output.npy``."""
    net = load_qonnx(FP8_MODEL)
    x = np.load(FP8 / "test_data" / "input.npy")
    acts = np.load(FP8 / "test_data" / "activation.npz")
    fq, layer = net.stages
    codes = fq.run(x.astype(np.float32))
    scale_x = np.float32(float(np.asarray(net.model.get_initializer(
        net.model.graph.node[0].input[1]))))
    wnode = next(n for n in net.model.graph.node if n.op_type == "FloatQuant"
                 and n.input[0] != net.input_name)
    scale_w = np.float32(float(np.asarray(net.model.get_initializer(wnode.input[1]))))
    xa = (decode(codes, "e4m3").astype(np.float32) * scale_x).astype(np.float32)
    wa = (decode(layer.wc, "e4m3").astype(np.float32) * scale_w).astype(np.float32)
    assert np.array_equal(xa, acts["input_quant"])
    assert np.array_equal(wa, acts["weight_quant"])
    # float32 products summed left to right, each step rounded, then the bias: elementwise
    # float32 ufuncs, so no BLAS kernel choice or FMA contraction (``xa @ wa.T`` differs in
    # the last place from machine to machine; fused or float64 sums differ in 5 of 16).
    acc = xa[:, :1] * wa[:, 0]
    for k in range(1, xa.shape[1]):
        acc = acc + xa[:, k:k + 1] * wa[:, k]
    assert acc.dtype == np.float32
    assert np.array_equal(acc + layer.bias.astype(np.float32),
                          np.load(FP8 / "test_data" / "output.npy"))


def test_fp8_model_output_against_shipped_data_and_executor():
    """The output from fp8_dot's exact products and fp32 sums, scaled once in float64, is
    within one float32 ulp of Brevitas's ``output.npy`` and of the executor (which round the
    dequantized operands to float32 first): measured 5 of 16 outputs 1 ulp away."""
    net = load_qonnx(FP8_MODEL)
    x = np.load(FP8 / "test_data" / "input.npy")
    y = net.run(x)["output"]
    shipped = compare_float(y, np.load(FP8 / "test_data" / "output.npy"))
    assert shipped["max_ulp"] <= 1 and shipped["differing"] == 5
    a = agreement(net, x)
    assert a.unit == "ulp" and a.max_diff <= 1 and a.differing == shipped["differing"]
    assert not a.exact_expected


# --- ESPCN --------------------------------------------------------------------------------

def test_espcn_models_import(espcn):
    sub = espcn["subpixel", "fixedpoint"]
    kinds = [(s.name, s.units()) for s in sub.stages]
    assert [k for k, u in kinds if u] == ["conv1", "conv2", "conv3", "conv4"]
    assert sub.stages[0].kind == "input (assumed)" and sub.notes
    macs = {s.name: s.mac for s in sub.stages if isinstance(s, IntLayer)}
    # actual widths: uint8 input and 4-bit activations enter a signed MAC with one more bit
    assert macs["conv1"]["a_width"] == 9 and macs["conv1"]["b_width"] == 8
    assert macs["conv2"]["a_width"] == 5 and macs["conv2"]["b_width"] == 4
    assert macs["conv4"]["b_width"] == 8
    assert {s.requant.unit for s in sub.stages if isinstance(s, IntLayer)} == {"quant_fixedpoint"}
    assert sub.stages[-1].summary.startswith("DepthToSpace")
    rs = espcn["nn_resize", "float"]
    assert any(s.summary.startswith("Resize nearest") for s in rs.stages)
    assert {s.requant.unit for s in rs.stages if isinstance(s, IntLayer)} == {"quant_float"}
    assert sum(r["ops"] for r in sub.op_counts() if r["unit"] == "int_mac") > 10**9


def test_espcn_golden_inference_time(espcn, espcn_input):
    """One 128x128 image, about 1 G multiply-accumulates, well under 30 s (measured about
    2-4 s on the shared 2-core machine)."""
    import time
    net = espcn["subpixel", "fixedpoint"]
    t0 = time.perf_counter()
    y = net.run(espcn_input)["output"]
    assert time.perf_counter() - t0 < 30
    assert y.shape == (1, 3, 256, 256) and y.dtype == np.float32


#: Agreement with qonnx's executor on the shipped input, as measured (outputs differing of
#: 196,608; largest difference in LSBs of the output quantizer).
ESPCN_AGREEMENT = {
    ("subpixel", "fixedpoint"): (188969, 15),
    ("subpixel", "float"): (141346, 11),
    ("nn_resize", "fixedpoint"): (72591, 4),
    ("nn_resize", "float"): (41963, 3),
}


@pytest.mark.parametrize("key", list(ESPCN_AGREEMENT), ids=lambda k: "-".join(k))
def test_espcn_agreement(espcn, espcn_input, key):
    """Scales that are not powers of two: each layer, on the executor's own inputs, differs
    from it by at most one LSB, and only where the executor's value lies within the
    requantizer's error bound (bias rounded to the accumulator's LSB plus the multiplier's
    rounding) of a rounding tie; through the network, those one-LSB differences propagate
    (4-bit activations with large scales amplify them)."""
    a = agreement(espcn[key], espcn_input)
    assert (a.differing, a.max_diff) == ESPCN_AGREEMENT[key]
    assert a.unit == "LSB" and not a.exact_expected and a.outputs == 196608
    assert len(a.layers) == 4
    for L in a.layers:
        assert L["local_max_lsb"] <= 1
        assert L["local_max_tie_distance"] <= (L["bias_rounding_lsb"]
                                               + L["multiplier_rounding_lsb"] + 1e-3), L
        assert L["local_differing"] <= L["outputs"] // 10
    json.dumps(a.as_dict())


def test_espcn_single_rounding_agrees_better(espcn_input):
    """TFLite's single-rounding multiplier drops gemmlowp's first rounding: what remains is
    the bias rounded to the accumulator's LSB (about as close as the binary32 scale)."""
    net = load_qonnx(ESPCN["nn_resize"], variant="single")
    units = {s.requant.params["variant"] for s in net.stages if isinstance(s, IntLayer)}
    assert units == {"single"}
    a = agreement(net, espcn_input)
    assert (a.differing, a.max_diff) == (41962, 3)
    assert a.differing < ESPCN_AGREEMENT["nn_resize", "fixedpoint"][0]
    for L in a.layers:
        assert L["local_max_tie_distance"] <= (L["bias_rounding_lsb"]
                                               + L["multiplier_rounding_lsb"] + 1e-3), L


# --- hand-made graphs: power-of-two scales, unsupported operators ----------------------

def _quant(name, x, scale, bits, signed, narrow=0):
    from onnx import helper
    return helper.make_node("Quant", [x, f"{name}_s", f"{name}_z", f"{name}_b"], [name],
                            domain="qonnx.custom_op.general", signed=signed, narrow=narrow,
                            rounding_mode="ROUND"), [
        _init(f"{name}_s", np.asarray(scale, np.float32)), _init(f"{name}_z", np.float32(0)),
        _init(f"{name}_b", np.float32(bits))]


def _init(name, value):
    from onnx import numpy_helper
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def _save(tmp_path, nodes, inits, in_shape, out_shape, name="m.onnx"):
    import onnx
    from onnx import TensorProto, helper
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("qonnx.custom_op.general", 1)])
    path = tmp_path / name
    onnx.save(m, str(path))
    return path


def _pow2_model(tmp_path):
    """Quant(u8, 2^-4) -> Conv 3x3 (int4 weights, per-channel 2^-3 / 2^-2, bias integral in
    accumulator units) -> Relu -> Quant(u4, 2^-1) -> MaxPool 2x2 -> Flatten -> Gemm (int4,
    2^-3) -> Quant (int8, 2^-2)."""
    from onnx import helper
    rng = np.random.default_rng(1)
    nodes, inits = [], []
    n, i = _quant("xq", "x", 2.0 ** -4, 8, 0)
    nodes.append(n)
    inits += i
    w1 = rng.integers(-7, 8, (2, 2, 3, 3)).astype(np.float32)
    s1 = np.array([2.0 ** -3, 2.0 ** -2], np.float32).reshape(2, 1, 1, 1)
    inits.append(_init("w1", w1 * s1))
    n, i = _quant("w1q", "w1", s1, 4, 1, narrow=1)
    nodes.append(n)
    inits += i
    inits.append(_init("b1", np.array([3, -5], np.float32) * 2.0 ** -4 * s1.reshape(2)))
    nodes.append(helper.make_node("Conv", ["xq", "w1q", "b1"], ["c1"], kernel_shape=[3, 3],
                                  pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"]))
    n, i = _quant("a1", "r1", 2.0 ** -1, 4, 0)
    nodes.append(n)
    inits += i
    nodes.append(helper.make_node("MaxPool", ["a1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]))
    nodes.append(helper.make_node("Flatten", ["p1"], ["f1"], axis=1))
    w2 = rng.integers(-7, 8, (5, 2 * 2 * 2)).astype(np.float32)
    inits.append(_init("w2", w2 * 2.0 ** -3))
    n, i = _quant("w2q", "w2", 2.0 ** -3, 4, 1, narrow=1)
    nodes.append(n)
    inits += i
    nodes.append(helper.make_node("Gemm", ["f1", "w2q"], ["g2"], transB=1))
    n, i = _quant("y", "g2", 2.0 ** -2, 8, 1)
    nodes.append(n)
    inits += i
    return _save(tmp_path, nodes, inits, [3, 2, 4, 4], [3, 5])


def test_power_of_two_graph_is_identical_to_the_executor(tmp_path):
    net = load_qonnx(_pow2_model(tmp_path))
    layers = [s for s in net.stages if isinstance(s, IntLayer)]
    assert [s.requant.unit for s in layers] == ["quant_shift", "quant_shift"]
    assert layers[0].requant.params["rounding"] == "half_even"
    # M = 2^-4 * (2^-3 | 2^-2) / 2^-1
    assert sorted(set(layers[0].requant.ports["shift"].tolist())) == [5, 6]
    assert net.exact
    rng = np.random.default_rng(0)
    for scale in (1.0, 20.0):     # inside the range, and saturating every quantizer
        x = (rng.random((3, 2, 4, 4)) * scale).astype(np.float32)
        a = agreement(net, x)
        assert a.identical and a.exact_expected and a.differing == 0, a
        assert all(L["differing"] == 0 and L["local_differing"] == 0 for L in a.layers)
    f = net.forward(x, samples=1, seed=1)      # one image: its whole receptive field
    assert f["recorded"] == {"conv1": 2 * 4 * 4, "fc1": 5}
    assert np.array_equal(f["codes"], f["golden"]["codes"])


def _fq(name, x, scale, fmt):
    from onnx import helper
    e, m, b, mx = {"e4m3": (4, 3, 7, 448.0), "e5m2": (5, 2, 15, 57344.0)}[fmt]
    ins = [f"{name}_{k}" for k in "semb"] + [f"{name}_x"]
    node = helper.make_node("FloatQuant", [x] + ins, [name], domain="qonnx.custom_op.general",
                            has_inf=int(fmt == "e5m2"), has_nan=1, has_subnormal=1,
                            rounding_mode="ROUND", saturation=1)
    return node, [_init(n, v) for n, v in zip(ins, (scale, e, m, b, mx))]


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_fp8_conv_graph_matches_the_executor(tmp_path, fmt):
    """FloatQuant -> strided Conv (FloatQuant weights, bias) -> Relu -> FloatQuant: fp8_dot per
    output (im2col), every output code identical to the executor's."""
    from onnx import helper
    rng = np.random.default_rng(0)
    n, inits = _fq("xq", "x", 0.01, fmt)
    nodes = [n]
    inits.append(_init("w", rng.normal(size=(4, 2, 3, 3)) * 0.3))
    n, i = _fq("wq", "w", 0.002, fmt)
    nodes.append(n)
    inits += i + [_init("b", rng.normal(size=4) * 0.1)]
    nodes += [helper.make_node("Conv", ["xq", "wq", "b"], ["c"], kernel_shape=[3, 3],
                               pads=[1, 1, 1, 1], strides=[2, 2]),
              helper.make_node("Relu", ["c"], ["r"])]
    n, i = _fq("y", "r", 0.05, fmt)
    nodes.append(n)
    inits += i
    net = load_qonnx(_save(tmp_path, nodes, inits, [2, 2, 5, 5], [2, 4, 3, 3]))
    assert [r["units"] for r in net.lowering()] == [[], ["fp8_dot"], [], []]
    assert net.stages[1].dot["fmt"] == fmt
    a = agreement(net, rng.normal(size=(2, 2, 5, 5)).astype(np.float32))
    assert a.identical and a.outputs == 72
    f = net.forward(rng.normal(size=(2, 2, 5, 5)).astype(np.float32))
    assert [(o.unit, o.count) for o in f["trace"].ops] == [("fp8_dot", 2 * 4 * 9 * 18)]


def _affine_model(tmp_path, mul_shape):
    """Quant -> Conv -> Mul by a per-channel constant (one factor negative) -> Add -> Relu ->
    Quant, all scales powers of two."""
    from onnx import helper
    rng = np.random.default_rng(2)
    n, inits = _quant("xq", "x", 2.0 ** -4, 8, 0)
    nodes = [n]
    inits.append(_init("w1", rng.integers(-7, 8, (2, 2, 3, 3)) * 2.0 ** -3))
    n, i = _quant("w1q", "w1", 2.0 ** -3, 4, 1, narrow=1)
    nodes.append(n)
    inits += i + [_init("k", np.array([0.5, -2.0]).reshape(mul_shape)),
                  _init("b", np.array([2.0 ** -6, -2.0 ** -5]).reshape(2, 1, 1))]
    nodes += [helper.make_node("Conv", ["xq", "w1q"], ["c1"], kernel_shape=[3, 3],
                               pads=[1, 1, 1, 1]),
              helper.make_node("Mul", ["c1", "k"], ["m1"], name="the_mul"),
              helper.make_node("Add", ["m1", "b"], ["a1"]),
              helper.make_node("Relu", ["a1"], ["r1"])]
    n, i = _quant("y", "r1", 2.0 ** -1, 4, 0)
    nodes.append(n)
    inits += i
    return _save(tmp_path, nodes, inits, [2, 2, 4, 4], [2, 2, 4, 4])


def test_per_channel_constants_fold_into_the_requantizer(tmp_path):
    net = load_qonnx(_affine_model(tmp_path, (1, 2, 1, 1)))
    layer, = [s for s in net.stages if isinstance(s, IntLayer)]
    assert layer.nodes == ("Conv_0", "the_mul", "Add_0", "Relu_0", "Quant_2") and layer.relu
    assert layer.requant.unit == "quant_shift" and net.exact
    x = (np.random.default_rng(0).random((2, 2, 4, 4)) * 3).astype(np.float32)
    assert agreement(net, x).identical
    # a (2,) constant broadcasts along W, not along the channels: not foldable
    with pytest.raises(QrtlError, match=r"node the_mul \(Mul\): constant of shape \(2,\)"):
        load_qonnx(_affine_model(tmp_path, (2,)))


@pytest.mark.parametrize("op", ["Sigmoid", "AveragePool"])
def test_unsupported_operator_is_one_line(tmp_path, op):
    from onnx import helper
    nodes = [helper.make_node(op, ["x"], ["y"], name="the_node",
                              **({"kernel_shape": [2, 2]} if op == "AveragePool" else {}))]
    path = _save(tmp_path, nodes, [], [1, 2, 4, 4],
                 [1, 2, 2, 2] if op == "AveragePool" else [1, 2, 4, 4])
    with pytest.raises(QrtlError) as e:
        load_qonnx(path)
    msg = str(e.value)
    assert "\n" not in msg and f"({op})" in msg and "supported:" in msg
    assert all(s in msg for s in SUPPORTED_OPS)


def test_floatquant_that_is_not_ocp_fp8_is_one_line(tmp_path):
    from onnx import helper
    node = helper.make_node("FloatQuant", ["x", "s", "e", "m", "b", "mx"], ["y"], name="fq",
                            domain="qonnx.custom_op.general", has_inf=0, has_nan=1,
                            has_subnormal=1, rounding_mode="ROUND", saturation=1)
    inits = [_init("s", 1.0), _init("e", 4.0), _init("m", 3.0), _init("b", 8.0),
             _init("mx", 240.0)]
    with pytest.raises(QrtlError, match=r"node fq.*\(FloatQuant\).*bias 8.*neither OCP E4M3"):
        load_qonnx(_save(tmp_path, [node], inits, [1, 4], [1, 4]))


def test_bad_inputs_are_one_line(tmp_path):
    with pytest.raises(QrtlError, match="does not exist"):
        load_qonnx(tmp_path / "missing.onnx")
    with pytest.raises(QrtlError, match="scheme"):
        load_qonnx(FP8_MODEL, scheme="shift")
    net = load_qonnx(FP8_MODEL)
    with pytest.raises(QrtlError, match=r"shape \(1, 4\) does not match"):
        net.run(np.zeros((1, 4), np.float32))
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(QrtlError, match="unknown type"):
        read_tensor(tmp_path / "x.txt")


# --- recording and RTL replay -------------------------------------------------------------

def test_sampled_recording_covers_the_receptive_field(espcn, espcn_input):
    """Two sampled output pixels of the subpixel model: every layer records the dot products
    of exactly the positions they depend on (1 conv4 position each, 3x3 of conv3, 5x5 of
    conv2, 7x7 of conv1, unless the pixels' fields overlap or meet the border), and the
    recorded outputs are the golden ones."""
    net = espcn["subpixel", "fixedpoint"]
    f = net.forward(espcn_input, samples=2, seed=3)
    per_pos = {s.name: s.qw.shape[0] for s in net.stages if isinstance(s, IntLayer)}
    positions = {k: v // per_pos[k] for k, v in f["recorded"].items()}
    assert positions["conv4"] <= 2 and positions["conv3"] <= 18
    assert positions["conv2"] <= 50 and positions["conv1"] <= 98
    assert positions["conv1"] > positions["conv2"] > positions["conv3"] > positions["conv4"]
    assert np.array_equal(f["codes"], f["golden"]["codes"])
    ops = {(o.layer, o.unit): o.count for o in f["trace"].ops}
    assert ops["conv2", "int_mac"] == positions["conv2"] * 64 * 576
    assert ops["conv2.requant", "quant_fixedpoint"] == positions["conv2"] * 64


def test_fp8_model_rtl_replay_is_bit_exact():
    net = api_nets.load_qonnx(FP8_MODEL)
    r = api_nets.replay_qonnx(net, np.load(FP8 / "test_data" / "input.npy"))
    assert r.bit_exact and r.total_ops == 48 and r.ops == {"fp8_dot": 48}
    assert r.samples is None and r.total_mismatches == 0


# --- the command line -----------------------------------------------------------------

def test_cli_qonnx_fp8(cli, tmp_path):
    out = tmp_path / "y.npy"
    code, text, err = cli("net", "--qonnx", str(FP8_MODEL), "--input",
                          str(FP8 / "test_data" / "input.npy"), "-o", str(out), "--rtl",
                          "--no-progress")
    assert code == 0, err
    assert "fp8_fc1: /Gemm -> fp8_dot" in text
    assert "5 of 16 outputs differ (31.25%), at most 1 ulp" in text
    assert "0 mismatch(es)" in text and "outputs identical" in text
    y = np.load(out)
    assert y.dtype == np.float32 and y.shape == (1, 16)
    assert compare_float(y, np.load(FP8 / "test_data" / "output.npy"))["max_ulp"] <= 1


def test_cli_qonnx_json_and_errors(cli):
    code, text, err = cli("net", "--qonnx", str(ESPCN["nn_resize"]), "--input", str(ESPCN_INPUT),
                          "-p", "scheme=float", "--json")
    assert code == 0, err
    d = json.loads(text)
    assert d["agreement"]["differing"] == ESPCN_AGREEMENT["nn_resize", "float"][0]
    assert d["output_shape"] == [1, 3, 256, 256] and d["rtl"] is None
    assert [r["units"] for r in d["lowering"] if r["units"]][0] == ["int_mac", "quant_float"]
    code, _, err = cli("net", "--qonnx", str(FP8_MODEL), "--images", "3")
    assert code == 2 and "--images cannot be used with --qonnx" in err
    code, _, err = cli("net", "int8", "--samples", "3")
    assert code == 2 and "--samples needs --qonnx" in err
    code, _, err = cli("net")
    assert code == 2 and "give a network NAME or --qonnx" in err
    code, _, err = cli("net", "--qonnx", str(FP8_MODEL), "-p", "scheme=shift")
    assert code == 2 and err.count("\n") == 1


def test_espcn_sample_rtl_replay_is_bit_exact(espcn, espcn_input):
    """One seeded output pixel of the subpixel model: every operation it depends on (about
    1.3 M MAC steps and their requantizations, four layers) on Verilator, 0 mismatches."""
    net = espcn["subpixel", "fixedpoint"]
    r = api_nets.replay_qonnx(net, espcn_input, samples=1, seed=0)
    assert r.bit_exact and r.total_mismatches == 0, r.first_mismatch
    assert set(r.ops) == {"int_mac", "quant_fixedpoint"}
    assert r.ops["quant_fixedpoint"] == sum(r.recorded.values())
    assert 10**6 < r.ops["int_mac"] < 2 * 10**6


def test_power_of_two_graph_rtl_replay_is_bit_exact(tmp_path):
    """The exact path on the RTL: every int_mac step and quant_shift (runtime shift, fused
    bias, half_even) of the power-of-two graph, saturating inputs included."""
    net = api_nets.load_qonnx(_pow2_model(tmp_path))
    x = (np.random.default_rng(0).random((3, 2, 4, 4)) * 20).astype(np.float32)
    r = api_nets.replay_qonnx(net, x)
    assert r.bit_exact and r.ops == {"int_mac": 1848, "quant_shift": 111}


# --- bipolar layers -----------------------------------------------------------------------

def _mt(name, x, thr, scale, bias):
    from onnx import helper
    return helper.make_node("MultiThreshold", [x, f"{name}_t"], [name], domain=DOMAIN,
                            out_dtype="BIPOLAR" if bias else "BINARY", out_scale=scale,
                            out_bias=bias), [_init(f"{name}_t", np.asarray(thr, np.float32))]


def _bq(name, w, scale):
    from onnx import helper
    return helper.make_node("BipolarQuant", [f"{name}_w", f"{name}_s"], [name], domain=DOMAIN), \
        [_init(f"{name}_w", w), _init(f"{name}_s", scale)]


DOMAIN = "qonnx.custom_op.general"


def _xnor_model(tmp_path, steps=1):
    """MultiThreshold (0/1) -> XnorPopcountMatMul -> Mul per channel (one negative) -> Add ->
    MultiThreshold (bipolar) -> MatMul (BipolarQuant weights, scale 0.5)."""
    from onnx import helper
    rng = np.random.default_rng(5)
    nodes, inits = [], []
    n, i = _mt("b0", "x", [[0.0]], 1.0, 0.0)
    nodes.append(n)
    inits += i + [_init("w1", rng.integers(0, 2, (16, 8))),
                  _init("k", np.array([0.5, -1.0, 2.0, 1.0, 0.25, -0.5, 1.0, 3.0])),
                  _init("c", rng.normal(size=8))]
    nodes += [helper.make_node("XnorPopcountMatMul", ["b0", "w1"], ["p1"], domain=DOMAIN,
                               name="the_xnor"),
              helper.make_node("Mul", ["p1", "k"], ["m1"]),
              helper.make_node("Add", ["m1", "c"], ["a1"])]
    thr = np.sort(rng.normal(size=(8, steps)) * 3 + 0.37, axis=1)
    n, i = _mt("h1", "a1", thr, 2.0, -1.0)
    n.name = "the_thr"
    nodes.append(n)
    inits += i
    n, i = _bq("w2q", np.where(rng.random((8, 4)) < 0.5, -1.0, 1.0) * 0.7, 0.5)
    nodes += [n, helper.make_node("MatMul", ["h1", "w2q"], ["y"])]
    inits += i
    return _save(tmp_path, nodes, inits, [6, 16], [6, 4])


def _bconv_model(tmp_path, pads=(0, 0, 0, 0)):
    """BipolarQuant -> Conv 3x3 (BipolarQuant weights) -> BatchNorm (a negative gamma) ->
    MultiThreshold (bipolar) -> Flatten -> MatMul (BipolarQuant weights)."""
    from onnx import helper
    rng = np.random.default_rng(6)
    nodes, inits = [helper.make_node("BipolarQuant", ["x", "xs"], ["xb"], domain=DOMAIN)], \
        [_init("xs", 1.0)]
    n, i = _bq("w1q", rng.normal(size=(3, 2, 3, 3)), 1.0)
    nodes.append(n)
    inits += i + [_init("g", [1.5, -0.5, 2.0]), _init("be", [0.3, -0.2, 0.1]),
                  _init("mu", [1.2, -2.6, 0.4]), _init("var", [4.0, 1.0, 2.5])]
    nodes += [helper.make_node("Conv", ["xb", "w1q"], ["c1"], kernel_shape=[3, 3],
                               pads=list(pads), name="the_conv"),
              helper.make_node("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["n1"])]
    n, i = _mt("h1", "n1", [[0.0], [0.0], [0.0]], 2.0, -1.0)
    nodes.append(n)
    inits += i
    ho = 5 - 2 + pads[0] + pads[2]
    nodes.append(helper.make_node("Flatten", ["h1"], ["f1"], axis=1))
    n, i = _bq("w2q", rng.normal(size=(3 * ho * ho, 5)), 1.0)
    nodes += [n, helper.make_node("MatMul", ["f1", "w2q"], ["y"])]
    inits += i
    return _save(tmp_path, nodes, inits, [2, 2, 5, 5], [2, 5])


def test_xnor_popcount_matmul_graph_is_identical_to_the_executor(tmp_path):
    """0/1 activations into XnorPopcountMatMul, per-channel Mul (a negative factor inverts
    the row's bits) and Add folded with the MultiThreshold into one integer threshold per
    channel of xnor_popcount; then a bipolar MatMul (scale 0.5) with a float32 output."""
    net = load_qonnx(_xnor_model(tmp_path))
    low = net.lowering()
    assert [r["units"] for r in low] == [[], ["xnor_popcount"], ["xnor_popcount"]]
    assert low[1]["nodes"] == ["the_xnor", "Mul_0", "Add_0", "the_thr"]
    assert net.stages[1].unit_params == {"n": 16, "pipeline": 0, "threshold": 1,
                                         "popcount": "tree"}
    # the random Add makes the threshold's boundary a float32 expression: not claimed exact,
    # identical all the same (no value lies that close to a threshold)
    assert not net.exact and net.stages[2].exact
    x = np.random.default_rng(0).normal(size=(6, 16)).astype(np.float32)
    a = agreement(net, x)
    assert a.identical and a.outputs == 24 and a.unit == "ulp", a
    r = api_nets.replay_qonnx(net, x)
    assert r.bit_exact and r.ops == {"xnor_popcount": 6 * 8 + 6 * 4}


def test_bipolar_conv_graph_is_identical_to_the_executor(tmp_path):
    net = load_qonnx(_bconv_model(tmp_path))
    assert [r["units"] for r in net.lowering() if r["units"]] == [["xnor_popcount"]] * 2
    conv = net.stages[1]
    assert conv.geom is not None and conv.wb.shape == (3, 18) and conv.thr is not None
    assert not conv.exact and net.stages[-1].exact         # BatchNorm: float32 boundaries
    for seed in range(3):
        x = np.random.default_rng(seed).normal(size=(2, 2, 5, 5)).astype(np.float32)
        assert agreement(net, x).identical
    assert [r["ops"] for r in net.op_counts()] == [2 * 9 * 3, 2 * 5]


def test_bipolar_errors_are_one_line(tmp_path):
    with pytest.raises(QrtlError, match=r"node the_thr \(MultiThreshold\): after a bipolar "
                                        r"layer only one threshold per channel"):
        load_qonnx(_xnor_model(tmp_path, steps=3))
    with pytest.raises(QrtlError, match=r"node the_conv \(Conv\): padding a bipolar tensor"):
        load_qonnx(_bconv_model(tmp_path, pads=(1, 1, 1, 1)))


# --- round trip of our digits networks ---------------------------------------------------

@pytest.fixture(scope="module")
def trips(tmp_path_factory):
    from qrtl.golden.nets.qonnx_export import ROUND_TRIP_CONFIGS, round_trip
    d = tmp_path_factory.mktemp("trip")
    return {(n, tuple(p.items())): round_trip(n, p, d) for n, p in ROUND_TRIP_CONFIGS}


def test_round_trip_predictions_are_identical(trips):
    """Every exported network, imported back, predicts the same class for each of the 450
    test images, on the same unit configurations in the same order. bnn, int8 shift (power-
    of-two scales) and fp8 run the very same operations; int8 fixedpoint/float differ in the
    requantizer's multiplier (QONNX scales are float32: M to within float32 rounding) and in
    the output layer's start value (its bias, dequantized to float32, is no longer integral
    in accumulator units)."""
    assert len(trips) == 6
    for (name, params), r in trips.items():
        assert r["images"] == 450 and r["predictions_identical"], r
        assert r["imported_accuracy"] == r["accuracy"] and r["same_units"], r
        exact = name != "int8" or dict(params)["scheme"] == "shift"
        assert (r["ops_differing"] == 0) == exact, r
    assert trips["bnn", ()]["lowering"] == [["xnor_popcount"]] * 3
    assert trips["int8", (("scheme", "shift"),)]["lowering"] == \
        [["int_mac", "quant_shift"]] * 2 + [["int_mac"]]


@pytest.mark.parametrize("name,params", [("bnn", {}), ("int8", {"scheme": "shift"}),
                                         ("fp8", {"fmt": "e5m2", "acc": "fp32"})])
def test_round_trip_matches_the_executor(trips, name, params):
    """Integer thresholds, power-of-two scales, and FP8 with fp32 accumulation: the imported
    network is identical to qonnx's executor on the exported graph."""
    from qrtl.golden.nets.data import load_split
    from qrtl.golden.nets.qonnx_export import import_params, network_input
    r = trips[name, tuple(params.items())]
    net = load_qonnx(r["path"], **import_params(name, r["params"]))
    assert net.exact == (name != "fp8")         # integer thresholds, power-of-two scales
    x = network_input(name, load_split().x_test[:3])
    for i in range(3):          # the exported graph's batch is 1
        a = agreement(net, x[i:i + 1])
        assert a.identical, a


@pytest.mark.parametrize("name,params", [("bnn", {}), ("int8", {"scheme": "fixedpoint"}),
                                         ("fp8", {"fmt": "e4m3"})])
def test_round_trip_rtl_replay_is_bit_exact(trips, name, params):
    from qrtl.golden.nets.data import load_split
    from qrtl.golden.nets.qonnx_export import import_params, network_input
    r = trips[name, tuple(params.items())]
    net = api_nets.load_qonnx(r["path"], **import_params(name, r["params"]))
    rep = api_nets.replay_qonnx(net, network_input(name, load_split().x_test[:2]))
    assert rep.bit_exact and rep.total_mismatches == 0, rep.first_mismatch
    assert rep.total_ops == {"bnn": 2 * 522, "int8": 2 * (64 * 128 + 128 * 64 + 64 * 10 + 192),
                             "fp8": 2 * (65 * 128 + 129 * 64 + 65 * 10)}[name]


def test_export_errors_are_one_line(tmp_path):
    from qrtl.golden.nets.qonnx_export import export_qonnx
    with pytest.raises(QrtlError, match="network 'abc' cannot be exported"):
        export_qonnx("abc", tmp_path / "a.onnx")
    with pytest.raises(QrtlError, match="scheme"):
        export_qonnx("int8", tmp_path / "a.onnx", {"scheme": "nope"})


# --- cost per inference -------------------------------------------------------------------

def test_layer_streams_are_the_layers_operations(tmp_path):
    """Each layer's stream is ``vectors`` operations of that layer, on its golden input: the
    requantizer sees the layer's own accumulators, the MAC chains step through dot products
    of its activations and weights."""
    from qrtl.hw.units import configure
    net = load_qonnx(_pow2_model(tmp_path))
    x = (np.random.default_rng(0).random((3, 2, 4, 4)) * 20).astype(np.float32)
    st = net.streams(x, 40, seed=2)
    assert [(s["stage"], s["unit"]) for s in st] == [
        ("conv1", "int_mac"), ("conv1", "quant_shift"), ("fc1", "int_mac"), ("fc1", "quant_shift")]
    gold = net.run(x)
    conv1 = next(s for s in net.stages if s.name == "conv1")
    accs = set(conv1.accumulate(net.stages[0].run(x)).reshape(-1).tolist())
    for s in st:
        inst = configure(s["unit"], s["params"])
        assert sorted(s["inputs"]) == sorted(p.name for p in inst.inputs)
        inst.golden(s["inputs"])
    # fc1 has 3 x 5 requantizations in all: its whole layer
    assert [{len(v) for v in s["inputs"].values()} for s in st] == [{40}, {40}, {40}, {15}]
    rq = st[1]["inputs"]
    assert len(rq["acc"]) == 40 and set(rq["acc"].tolist()) <= accs
    mac = st[0]["inputs"]
    assert set(mac["b"].tolist()) <= set(conv1.qw.reshape(-1).tolist())
    assert gold["codes"].shape == (3, 5)


def test_cost_unit_takes_a_stimulus_as_arrays():
    from qrtl.reports.cost import cost_unit
    with pytest.raises(QrtlError, match=r"stimulus arrays for int_mac have ports a \(the "
                                        r"unit's inputs: a, b, acc_in\)"):
        cost_unit("int_mac", stimulus={"a": np.zeros(4, np.int64)}, vectors=4)


def test_qonnx_cost_of_the_fp8_model(tmp_path):
    """Operations, energy per operation on the layer's own operand stream, energy per
    inference and area of the FP8 model's one unit; table and plot written."""
    net = api_nets.load_qonnx(FP8_MODEL)
    c = api_nets.qonnx_cost(net, np.load(FP8 / "test_data" / "input.npy"), vectors=512)
    (row,) = c.layers
    assert row["unit"] == "fp8_dot" and row["ops_per_inference"] == 48
    assert row["stimulus"] == "qonnx_act_weight_fp8:fp8_fc1"
    assert 1 < row["energy_pj_per_op"] < 1000 and c.area_um2 > 1000
    assert c.energy_nj_per_inference == pytest.approx(48 * row["energy_pj_per_op"] / 1000)
    assert row["share_pct"] == pytest.approx(100.0)
    assert "memory" in c.scope and "data movement" in c.scope
    files = c.write(tmp_path)
    assert {f.name for f in files} == {"qonnx_cost.csv", "qonnx_cost_units.csv",
                                       "qonnx_cost.md", "qonnx_cost.png", "qonnx_cost.svg"}
    assert "fp8_fc1" in (tmp_path / "qonnx_cost.csv").read_text()
    json.dumps(c.as_dict())


def test_cli_qonnx_cost(cli, tmp_path):
    code, text, err = cli("net", "--qonnx", str(FP8_MODEL), "--input",
                          str(FP8 / "test_data" / "input.npy"), "--cost", "--cost-dir",
                          str(tmp_path), "--no-progress")
    assert code == 0, err
    assert "fp8_fc1 fp8_dot: 48 ops x" in text and "nJ per inference" in text
    assert "scope: arithmetic units only" in text and (tmp_path / "qonnx_cost.png").is_file()
    code, _, err = cli("net", "--qonnx", str(FP8_MODEL), "--liberty", "x.lib")
    assert code == 2 and "--liberty needs --cost" in err
    code, _, err = cli("net", "int8", "--cost")
    assert code == 2 and "--cost needs --qonnx" in err


def test_cli_export_qonnx(cli, tmp_path):
    out = tmp_path / "int8.onnx"
    code, text, err = cli("net", "int8", "-p", "scheme=float", "--export-qonnx", str(out),
                          "--images", "50")
    assert code == 0, err
    assert f"wrote {out}" in text and "-p scheme=float" in text
    assert "predictions identical on 50 test images" in text
    assert [r["units"] for r in load_qonnx(out, scheme="float").lowering() if r["units"]][0] == \
        ["int_mac", "quant_float"]
    code, _, err = cli("net", "abc", "--export-qonnx", str(out))
    assert code == 2 and "cannot be exported to QONNX" in err
    code, _, err = cli("net", "--qonnx", str(out), "--export-qonnx", str(out))
    assert code == 2 and "--export-qonnx cannot be used with --qonnx" in err
