"""RTL replay of FP8 training GEMMs: a sample of the dot products of one training step on
the generated ``fp8_dot`` unit (Verilator).

:func:`golden.nets.fp8train.step_trace` runs the first SGD step of an FP8 configuration and
records ``sample`` dot products of each of its eight GEMMs (forward ``fwd1..3``, backward
``bwd2..3``, weight gradient ``wgrad1..3``) as ``fp8_dot`` operation streams (one product
per cycle, ``last`` on the final product of each dot product), with the golden model's
results. :func:`replay_step` runs every recorded stream through the RTL of the unit with
the configuration's parameters (:class:`sim.net.RtlExecutor`), the eight streams
concatenated into one simulator call, and counts the output cycles (``result`` or
``result_valid``) that differ from the golden model, per GEMM.

The weight update is not replayed: its operands are 16-bit (the gradient and the velocity),
and no unit of the registry adds a 16-bit product into a 16-bit accumulator (``fp8_mac``
multiplies FP8 operands). Its stochastic rounding is the ``round_pack`` code that
``fp8_mac``'s golden model uses, which is verified against that unit's RTL.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

from qrtl.golden.errors import QrtlError

__all__ = ["StepReplay", "replay_step"]


@dataclass
class StepReplay:
    """What :func:`replay_step` found for one configuration.

    Attributes
    ----------
    config : str
    params : dict
        The ``fp8_dot`` unit's parameters.
    sample : int
        Dot products sampled per GEMM.
    gemms : list of dict
        Per GEMM: ``layer``, ``dot_products``, ``length`` (products each), ``ops`` (cycles,
        one product each) and ``mismatches``.
    total_ops, total_mismatches : int
    calls : int
        Simulator calls.
    seconds : float
        Wall time (golden training step plus RTL).
    first_mismatch : dict or None
    """

    config: str
    params: dict
    sample: int
    gemms: list = field(default_factory=list)
    total_ops: int = 0
    total_mismatches: int = 0
    calls: int = 0
    seconds: float = 0.0
    first_mismatch: Optional[dict] = None

    @property
    def bit_exact(self) -> bool:
        return self.total_ops > 0 and self.total_mismatches == 0

    def as_dict(self) -> dict:
        return {**asdict(self), "bit_exact": self.bit_exact}


def replay_step(config: str, hyper=None, sample: int = 8, progress: bool = False,
                trace=None) -> StepReplay:
    """Record one training step of ``config`` and replay ``sample`` dot products of each of
    its GEMMs on the RTL ``fp8_dot`` (see the module docstring). ``trace``: replay this
    recorded step (a :func:`golden.nets.fp8train.step_trace` result) instead."""
    import numpy as np

    from qrtl.golden.nets.fp8train import CONFIGS, Hyper, dot_params, step_trace
    from qrtl.golden.nets.program import Op
    from qrtl.sim.net import RtlExecutor
    hp = (hyper or Hyper()).checked()
    t0 = time.perf_counter()
    if trace is None:
        trace = step_trace(config, hp, sample)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=sum(op.count for op in trace.ops), unit="op", unit_scale=True,
                   file=sys.stderr, desc=f"{config} on RTL", dynamic_ncols=True)
    ex = RtlExecutor(progress=bar)
    out = StepReplay(config, dot_params(CONFIGS[config], hp.acc), sample)
    # One stream for the whole step (one simulator call): each GEMM's stream ends with
    # last = 1, so they concatenate; the result register then shows the previous GEMM's last
    # result (not 0) until the next GEMM's first result, which the expected outputs say.
    merged_in = {port: np.concatenate([op.inputs[port] for op in trace.ops])
                 for port in trace.ops[0].inputs}
    results, valids, bounds, prev = [], [], [0], np.uint64(0)
    for op in trace.ops:
        r = np.asarray(op.outputs["result"], np.uint64).copy()
        v = np.asarray(op.outputs["result_valid"], np.uint64)
        first = int(np.flatnonzero(v)[0])
        r[:first] = prev
        prev = r[-1]
        results.append(r)
        valids.append(v)
        bounds.append(bounds[-1] + op.count)
    step = Op("step", "fp8_dot", trace.ops[0].params, merged_in,
              {"result": np.concatenate(results), "result_valid": np.concatenate(valids)}, 1)
    try:
        got = ex(step)
    finally:
        if bar is not None:
            bar.close()
    bad = np.zeros(step.count, bool)
    for port, want in step.outputs.items():
        bad |= np.asarray(got[port]).astype(np.uint64) != want
    if bad.any() != (ex.mismatches.get("fp8_dot", 0) > 0):
        raise QrtlError(f"{config}: the simulator's mismatch count disagrees with the outputs")
    for op, lo, hi in zip(trace.ops, bounds[:-1], bounds[1:]):
        k = int(np.flatnonzero(op.inputs["last"])[0]) + 1
        out.gemms.append({"layer": op.layer, "dot_products": op.count // k, "length": k,
                          "ops": op.count, "mismatches": int(bad[lo:hi].sum())})
    out.total_ops = sum(g["ops"] for g in out.gemms)
    out.total_mismatches = sum(g["mismatches"] for g in out.gemms)
    out.calls, out.first_mismatch = ex.calls, ex.first_mismatch
    out.seconds = time.perf_counter() - t0
    return out
