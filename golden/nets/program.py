"""A network as a sequence of unit operations, run by a golden or an RTL executor.

Each layer of a network is written once, as calls to :func:`run_map` (one unit operation
per vector: requantizers, XNOR-popcount neurons, FP8 dot-product streams) and
:func:`run_chain` (a multiply-accumulate chain: step ``k`` of every dot product). Both build
an :class:`Op` (the unit, its parameters, the input port arrays and the golden outputs
computed with the golden functions of ``golden/``, the ones the unit's registry entry
wraps) and hand it to an *executor*:

* :func:`golden_execute` returns the golden outputs (the golden network);
* an RTL executor (``reports.net``) runs the same inputs through the generated Verilog on
  Verilator, counts mismatches against the golden outputs, and returns the RTL outputs, which
  the next layer then consumes. So with the RTL executor every operation of the network is
  computed by the RTL, in the network's data flow.

MAC chains are replayed in one batch per layer: step ``k`` of every dot product is one
vector whose ``acc_in`` is the golden partial sum after ``k`` steps, and its RTL ``acc_out``
is compared with the golden partial sum after ``k + 1`` steps, which is exactly the
``acc_in`` given to step ``k + 1``. Zero mismatches therefore prove, by induction over
``k``, that feeding each RTL ``acc_out`` back as the next ``acc_in`` (a sequential
replay) reproduces every partial sum; the layer's result is the RTL ``acc_out`` of the last
step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

__all__ = ["Op", "Trace", "golden_execute", "run_map", "run_chain"]


@dataclass
class Op:
    """One batch of operations of one unit configuration.

    ``inputs``/``outputs`` map port names to arrays with one entry per operation, in the
    order a layer-by-layer datapath performs them (image-major: all operations of image 0,
    then image 1, ...). ``images`` is the number of images, so ``len / images`` operations
    belong to each image, contiguously.
    """

    layer: str
    unit: str
    params: dict
    inputs: dict
    outputs: dict
    images: int

    @property
    def count(self) -> int:
        return len(next(iter(self.inputs.values())))

    @property
    def key(self) -> str:
        """``unit`` plus its parameters, e.g. ``int_mac{"a_width": 8, ...}``."""
        return self.unit + json.dumps(self.params, sort_keys=True)


@dataclass
class Trace:
    """Every :class:`Op` a forward pass executed, in order, plus named integer tensors."""

    ops: list = field(default_factory=list)
    tensors: dict = field(default_factory=dict)


Executor = Callable[[Op], dict]


def golden_execute(op: Op) -> dict:
    """The golden executor: the outputs the unit's golden model gave."""
    return op.outputs


def run_map(trace: Trace, execute: Optional[Executor], layer: str, unit: str, params: dict,
            inputs: dict, golden: Callable[[dict], dict], images: int) -> dict:
    """Run one batch of independent operations; returns the executor's outputs."""
    op = Op(layer, unit, dict(params), inputs, golden(inputs), images)
    trace.ops.append(op)
    return (execute or golden_execute)(op)


def run_chain(trace: Trace, execute: Optional[Executor], layer: str, unit: str, params: dict,
              a: np.ndarray, b: np.ndarray, acc0: np.ndarray,
              step: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
              images: int) -> np.ndarray:
    """Dot products as chains of MAC operations ``acc <- step(a_k, b_k, acc)``.

    ``a``: activations (N, K); ``b``: weights (M, K); ``acc0``: initial accumulators
    (N, M) (or broadcastable). Computes the golden chain with ``step`` (the unit's golden
    model), then executes all ``N * M * K`` steps as one batch (vectors ordered image,
    neuron, step) with ports ``a``, ``b``, ``acc_in`` -> ``acc_out``. Returns the final
    accumulators (N, M) from the executor's outputs.
    """
    n, k = a.shape
    m = b.shape[0]
    acc = np.empty((n, m, k + 1), dtype=np.asarray(acc0).dtype if np.ndim(acc0) else np.int64)
    acc[:, :, 0] = acc0
    aa = np.broadcast_to(a[:, None, :], (n, m, k))
    bb = np.broadcast_to(b[None, :, :], (n, m, k))
    for j in range(k):
        acc[:, :, j + 1] = step(aa[:, :, j], bb[:, :, j], acc[:, :, j])
    inputs = {"a": aa.reshape(-1), "b": bb.reshape(-1), "acc_in": acc[:, :, :k].reshape(-1)}
    op = Op(layer, unit, dict(params), inputs, {"acc_out": acc[:, :, 1:].reshape(-1)}, n)
    trace.ops.append(op)
    out = (execute or golden_execute)(op)["acc_out"]
    return np.asarray(out).reshape(n, m, k)[:, :, -1]
