"""Golden models of real networks trained on the digits data, and what the rest of the suite
needs from them.

Networks (``NETWORKS``; parameters declared like unit parameters):

* ``float``: the float32 MLP 64-128-64-10 every other MLP variant is quantized from.
* ``bnn``: the binarized MLP on ``xnor_popcount`` (:mod:`golden.nets.bnn`).
* ``int8``: the int8 MLP on ``int_mac`` with ``scheme`` = ``shift`` | ``fixedpoint`` |
  ``float`` requantization (:mod:`golden.nets.mlp`).
* ``fp8``: the FP8 MLP on ``fp8_dot`` with ``fmt`` = ``e4m3`` | ``e5m2``, ``acc`` =
  ``fp16`` | ``fp32`` and ``chunk`` (products per fp16 chunk).
* ``abc``: the ABC-Net MLP 64-128-64-10 on ``abc_dot`` (M = N = 3 binary bases)
  (:mod:`golden.nets.abcnet`).
* ``binaryduo``: the BinaryDuo MLP (ternary activations, half the BNN's width) with
  ``mode`` = ``ternary`` (on ``ternary_dot``) | ``decoupled`` (on ``xnor_popcount``, the
  ``bnn`` network's architecture) (:mod:`golden.nets.binaryduo`).

Users' own networks, imported from QONNX onto the same units: :mod:`golden.nets.qonnx`
(not in ``NETWORKS``: they come with their own input, and are compared with qonnx's
executor rather than with labels).

Data and split: :mod:`golden.nets.data`. Each forward pass records every unit operation
(:mod:`golden.nets.program`), which gives the RTL replay (``qrtl net --rtl``), the
operation counts per inference (:func:`op_counts`) and the real operand streams
(:mod:`golden.nets.streams`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from qrtl.golden.errors import QrtlError
from qrtl.golden.params import ChoiceParam, IntParam, resolve

from . import abcnet, binaryduo, bnn, mlp
from .data import load_split

__all__ = ["Network", "NETWORKS", "get_network", "resolve_params", "run", "TABLE_CONFIGS",
           "accuracy_table", "op_counts", "config_label", "SEED_STUDY", "seed_study"]


@dataclass(frozen=True)
class Network:
    """A network: its parameters, its golden forward pass and its float32 reference.

    ``forward(pixels, params, execute) -> dict`` with at least ``pred`` and ``trace``;
    ``reference(pixels) -> logits`` is the float32 network it came from.
    """

    name: str
    summary: str
    params: Sequence
    forward: Callable
    reference: Callable


def _float_forward(pixels, params, execute=None):
    from .program import Trace
    logits = mlp.float_forward(pixels)
    return {"trace": Trace(), "logits": logits, "pred": np.argmax(logits, axis=1)}


NETWORKS: dict[str, Network] = {n.name: n for n in (
    Network("float", "float32 MLP 64-128-64-10 (ReLU), the reference of int8 and fp8", (),
            _float_forward, mlp.float_forward),
    Network("bnn", "binarized MLP 256-256-256-10 on xnor_popcount (thermometer input)", (),
            lambda x, p, ex=None: bnn.forward(x, execute=ex),
            lambda x: bnn.float_forward(x)),
    Network("int8", "int8 MLP on int_mac, requantized by quant_shift|quant_fixedpoint|quant_float",
            (ChoiceParam("scheme", "shift", mlp.INT8_SCHEMES, "requantization"),),
            lambda x, p, ex=None: mlp.int8_forward(x, p["scheme"], ex),
            mlp.float_forward),
    Network("fp8", "FP8 MLP on fp8_dot (chunked accumulation)",
            (ChoiceParam("fmt", "e4m3", mlp.FP8_FORMATS, "weight and activation format"),
             ChoiceParam("acc", "fp16", mlp.FP8_ACCS, "accumulator format"),
             IntParam("chunk", 64, 1, 64, "products per chunk (acc=fp16; fp32 uses one chunk)")),
            lambda x, p, ex=None: mlp.fp8_forward(x, p["fmt"], p["acc"], p["chunk"], ex),
            mlp.float_forward),
    Network("abc", "ABC-Net MLP 64-128-64-10 on abc_dot (M = N = 3 binary bases, 8-bit scales)",
            (), lambda x, p, ex=None: abcnet.forward(x, execute=ex),
            lambda x: abcnet.float_forward(x)),
    Network("binaryduo", "BinaryDuo MLP 256-128-128-10, ternary activations: on ternary_dot, "
            "or decoupled to the bnn architecture on xnor_popcount",
            (ChoiceParam("mode", "ternary", binaryduo.MODES, "inference"),),
            lambda x, p, ex=None: binaryduo.forward(x, p["mode"], execute=ex),
            lambda x: binaryduo.float_forward(x)),
)}

#: The rows of the accuracy table: float32; bnn; binaryduo x mode; abc; int8 x scheme;
#: fp8 x fmt x accumulation.
TABLE_CONFIGS = (
    [("float", {}), ("bnn", {})]
    + [("binaryduo", {"mode": m}) for m in binaryduo.MODES] + [("abc", {})]
    + [("int8", {"scheme": s}) for s in mlp.INT8_SCHEMES]
    + [("fp8", {"fmt": f, **a}) for f in mlp.FP8_FORMATS
       for a in ({"acc": "fp16", "chunk": 1}, {"acc": "fp16", "chunk": 64}, {"acc": "fp32"})]
)


def get_network(name: str) -> Network:
    """The network called ``name``; a one-line error listing the networks otherwise."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise QrtlError(f"unknown network {name!r} (networks: {', '.join(NETWORKS)})") from None


def resolve_params(name: str, given=None) -> dict:
    """Resolved network parameters (one-line errors for unknown names or bad values)."""
    return resolve(f"network {name}", get_network(name).params, given or {})


def config_label(name: str, params: dict) -> str:
    """``int8 scheme=shift``, ``fp8 e4m3 fp16 chunk=64``... (``chunk`` only for fp16)."""
    if name == "fp8":
        tail = f" chunk={params['chunk']}" if params["acc"] == "fp16" else ""
        return f"fp8 {params['fmt']} {params['acc']}{tail}"
    return " ".join([name] + [f"{k}={v}" for k, v in params.items()])


def _test_images(images: int | None):
    s = load_split()
    total = len(s.y_test)
    if images is None:
        return s.x_test, s.y_test
    if not 1 <= images <= total:
        raise QrtlError(f"images={images} is out of range (the test split has {total} images)")
    return s.x_test[:images], s.y_test[:images]


def run(name: str, params=None, images: int | None = None, execute=None) -> dict:
    """Golden (or, with an RTL ``execute``, replayed) inference on the first ``images``
    test images. Adds ``labels``, ``accuracy`` and ``float32_accuracy`` to the result."""
    net = get_network(name)
    p = resolve_params(name, params)
    x, y = _test_images(images)
    out = net.forward(x, p, execute)
    ref = np.argmax(net.reference(x), axis=1)
    out.update(labels=y, params=p, accuracy=float(np.mean(out["pred"] == y)),
               float32_accuracy=float(np.mean(ref == y)), float32_pred=ref)
    return out


def accuracy_table(images: int | None = None):
    """Test accuracy of every configuration in :data:`TABLE_CONFIGS` (golden models) as a
    ``pandas.DataFrame`` with columns ``network``, ``config``, ``params`` (dict),
    ``accuracy``, ``float32_accuracy`` (of the float network it came from), ``images``."""
    import pandas as pd
    rows = []
    for name, given in TABLE_CONFIGS:
        r = run(name, given, images)
        rows.append({"network": name, "config": config_label(name, r["params"]),
                     "params": r["params"], "accuracy": r["accuracy"],
                     "float32_accuracy": r["float32_accuracy"], "images": len(r["labels"])})
    return pd.DataFrame(rows)


def op_counts(name: str, params=None) -> list[dict]:
    """Unit operations per inference (one image), by unit configuration:
    ``[{"unit", "params", "ops"}]`` in first-use order. An ``int_mac``/``fp8_dot`` op is one
    multiply-accumulate (one product), an ``xnor_popcount`` op one n-bit binary dot product
    (``n`` binary MACs), a ``ternary_dot`` op one n-element ternary dot product, an
    ``abc_dot`` op ``M * N`` n-bit binary dot products, a requantizer op one
    requantization."""
    r = run(name, params, images=1)
    out: dict = {}
    for op in r["trace"].ops:
        row = out.setdefault(op.key, {"unit": op.unit, "params": dict(op.params), "ops": 0})
        row["ops"] += op.count // op.images
    return list(out.values())


#: The networks retrained per seed by :func:`seed_study`.
SEED_STUDY = ("float", "bnn", "binaryduo", "abc")


def _deployed_accuracy(name: str, raw: dict, x, y) -> float:
    if name == "float":
        h = x / 16.0
        for i in (1, 2, 3):
            h = h @ raw[f"w{i}"].T + raw[f"b{i}"]
            if i < 3:
                h = np.maximum(h, 0)
        return float(np.mean(np.argmax(h, axis=1) == y))
    if name == "bnn":
        out = bnn.forward(x, bnn.fold(raw))
    elif name == "binaryduo":
        out = binaryduo.forward(x, "ternary", binaryduo.fold(raw))
    else:
        out = abcnet.forward(x, abcnet.fold(raw))
    return float(np.mean(out["pred"] == y))


def seed_study(seeds=range(5), names=SEED_STUDY, progress: bool = False):
    """Retrain each network with every seed (:mod:`golden.nets.train`, the committed recipe)
    and measure the test accuracy of the deployed network (golden model; float: the float32
    MLP). One seed is one test-split measurement: 450 images, so 1 image = 0.22 points; the
    spread over seeds says which differences between networks are larger than training noise.

    Returns a ``pandas.DataFrame`` with columns ``network``, ``seed``, ``accuracy``.
    """
    import pandas as pd
    from tqdm import tqdm

    from .train import TRAINERS
    s = load_split()
    jobs = [(n, int(seed)) for seed in seeds for n in names]
    rows = []
    for name, seed in tqdm(jobs, desc="seed study", unit="net", disable=not progress):
        raw = TRAINERS[name](seed=seed)
        rows.append({"network": name, "seed": seed,
                     "accuracy": _deployed_accuracy(name, raw, s.x_test, s.y_test)})
    return pd.DataFrame(rows)
