"""Network replay on the RTL: every unit operation of a network's inference on Verilator.

:func:`replay` runs a network's golden model on test images, then the same inference with
every unit operation (every MAC step, binary dot product, requantization, FP8 product)
executed by the generated Verilog on Verilator, one batched ``simulate`` call per layer and
unit, each layer consuming the RTL outputs of the previous one (see
:mod:`qrtl.golden.nets.program`). The result says how many operations ran, the mismatches
against the golden model (must be 0), and whether every integer tensor and prediction is
identical. ``qrtl net NAME --rtl`` and ``qrtl.nets.replay`` are its front ends.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from qrtl.golden.errors import QrtlError

__all__ = ["RtlExecutor", "Replay", "replay", "QonnxReplay", "replay_qonnx"]


@dataclass
class RtlExecutor:
    """Runs each :class:`golden.nets.program.Op` on Verilator; returns the RTL outputs.

    Counts operations and mismatches per unit; ``progress`` (a tqdm bar, optional) advances
    by the operations of each call.
    """

    progress: object = None
    ops: dict = field(default_factory=dict)
    mismatches: dict = field(default_factory=dict)
    calls: int = 0
    first_mismatch: dict | None = None
    sim_seconds: float = 0.0

    def __call__(self, op) -> dict:
        from qrtl.hw.units import configure
        from qrtl.sim.runner import simulate
        inst = configure(op.unit, op.params)
        inputs = {p.name: op.inputs[p.name] for p in inst.inputs}
        expected = {p.name: op.outputs[p.name] for p in inst.outputs}
        if self.progress is not None:
            self.progress.set_postfix_str(f"{op.layer} on {op.unit}")
        res = simulate(inst, inputs, expected=expected, keep_outputs=True)
        if res.outputs is None or res.vectors != op.count:
            raise QrtlError(f"{op.unit} ({op.layer}): the simulator returned "
                            f"{res.vectors} of {op.count} results")
        self.calls += 1
        self.sim_seconds += res.wall_seconds
        self.ops[op.unit] = self.ops.get(op.unit, 0) + op.count
        self.mismatches[op.unit] = self.mismatches.get(op.unit, 0) + res.mismatches
        if res.mismatches and self.first_mismatch is None:
            self.first_mismatch = {"layer": op.layer, "unit": op.unit, **res.first_mismatch}
        if self.progress is not None:
            self.progress.update(op.count)
        return res.outputs


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(np.asarray(a[k]), np.asarray(b[k]))
                                        for k in a)


@dataclass
class Replay:
    """What :func:`replay` found.

    Attributes
    ----------
    network, params, images
        The network, its resolved parameters and the number of test images.
    accuracy, float32_accuracy, rtl_accuracy : float
        Test accuracy of the golden model, of the float32 network it came from, and of the
        RTL inference.
    ops, mismatches : dict
        Operations replayed and mismatches against the golden model, per unit.
    total_ops, total_mismatches : int
    tensors_identical, predictions_identical : bool
        Every integer tensor (and every prediction) of the RTL inference equals the golden
        one.
    calls : int
        Simulator calls.
    seconds : float
        Wall time of golden plus RTL inference.
    first_mismatch : dict or None
        Layer, unit, operation index, inputs, expected and actual outputs.
    """

    network: str
    params: dict
    images: int
    accuracy: float
    float32_accuracy: float
    rtl_accuracy: float
    ops: dict
    mismatches: dict
    total_ops: int
    total_mismatches: int
    tensors_identical: bool
    predictions_identical: bool
    calls: int
    seconds: float
    first_mismatch: Optional[dict]

    @property
    def bit_exact(self) -> bool:
        """No mismatch, and every tensor and prediction identical."""
        return (self.total_mismatches == 0 and self.tensors_identical
                and self.predictions_identical)

    def as_dict(self) -> dict:
        """Every field, plus ``bit_exact`` (what ``qrtl net --rtl --json`` prints)."""
        return {**asdict(self), "bit_exact": self.bit_exact}


def replay(name: str, params=None, images: int | None = None, progress: bool = False) -> Replay:
    """Golden inference, then the same inference with every operation on the RTL.

    ``params``: the network's parameters (e.g. ``{"scheme": "shift"}``); ``images``: the
    first test images (None: the whole test split); ``progress``: a progress bar on stderr.
    """
    from qrtl.golden import nets
    t0 = time.perf_counter()
    gold = nets.run(name, params, images)
    total = sum(op.count for op in gold["trace"].ops)
    if total == 0:
        raise QrtlError(f"network {name} runs on no RTL unit (nothing to replay)")
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="op", unit_scale=True, file=sys.stderr,
                   desc=f"{name} on RTL", dynamic_ncols=True)
    ex = RtlExecutor(progress=bar)
    try:
        rtl = nets.run(name, params, images, execute=ex)
    finally:
        if bar is not None:
            bar.close()
    return Replay(
        network=name, params=gold["params"], images=len(gold["labels"]),
        accuracy=gold["accuracy"], float32_accuracy=gold["float32_accuracy"],
        rtl_accuracy=rtl["accuracy"], ops=ex.ops, mismatches=ex.mismatches,
        total_ops=sum(ex.ops.values()), total_mismatches=sum(ex.mismatches.values()),
        tensors_identical=_same_tensors(gold["trace"].tensors, rtl["trace"].tensors),
        predictions_identical=bool(np.array_equal(gold["pred"], rtl["pred"])),
        calls=ex.calls, seconds=time.perf_counter() - t0, first_mismatch=ex.first_mismatch)



@dataclass
class QonnxReplay:
    """What :func:`replay_qonnx` found for an imported QONNX network.

    Attributes
    ----------
    model : str
        The ONNX file.
    samples : int or None
        Output pixels whose operations were replayed (None: every operation).
    recorded : dict
        Values recorded per stage (layer outputs the replayed operations produce).
    ops, mismatches : dict
        Operations replayed and mismatches against the golden model, per unit.
    total_ops, total_mismatches : int
    outputs_identical : bool
        The network output computed from the RTL results equals the golden output.
    calls : int
        Simulator calls.
    seconds : float
        Wall time of golden plus RTL inference.
    first_mismatch : dict or None
    """

    model: str
    samples: Optional[int]
    recorded: dict
    ops: dict
    mismatches: dict
    total_ops: int
    total_mismatches: int
    outputs_identical: bool
    calls: int
    seconds: float
    first_mismatch: Optional[dict]

    @property
    def bit_exact(self) -> bool:
        """No mismatch and the output identical."""
        return self.total_mismatches == 0 and self.outputs_identical

    def as_dict(self) -> dict:
        return {**asdict(self), "bit_exact": self.bit_exact}


def replay_qonnx(net, x, samples: Optional[int] = None, seed: int = 0,
                 progress: bool = False) -> QonnxReplay:
    """Replay an imported network's unit operations on Verilator (:class:`RtlExecutor`).

    ``net``: a :class:`qrtl.golden.nets.qonnx.QonnxNet`; ``x``: its input; ``samples``:
    None replays every operation, ``N`` those of ``N`` output pixels (seeded by ``seed``),
    each layer consuming the RTL results of the previous one.
    """
    t0 = time.perf_counter()
    gold = net.forward(x, samples=samples, seed=seed)
    total = sum(op.count for op in gold["trace"].ops)
    if total == 0:
        raise QrtlError(f"model {net.path} runs on no RTL unit (nothing to replay)")
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="op", unit_scale=True, file=sys.stderr,
                   desc="QONNX on RTL", dynamic_ncols=True)
    ex = RtlExecutor(progress=bar)
    try:
        rtl = net.forward(x, execute=ex, samples=samples, seed=seed)
    finally:
        if bar is not None:
            bar.close()
    same = bool(np.array_equal(np.asarray(rtl["codes"]), np.asarray(gold["codes"]))
                and _same_tensors(gold["trace"].tensors, rtl["trace"].tensors))
    return QonnxReplay(
        model=net.path, samples=samples, recorded=gold["recorded"], ops=ex.ops,
        mismatches=ex.mismatches, total_ops=sum(ex.ops.values()),
        total_mismatches=sum(ex.mismatches.values()), outputs_identical=same, calls=ex.calls,
        seconds=time.perf_counter() - t0, first_mismatch=ex.first_mismatch)
