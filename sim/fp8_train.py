"""RTL replay of FP8 training GEMMs: a sample of the dot products of one training step on
the generated ``fp8_dot`` unit (Verilator).

:func:`golden.nets.fp8train.step_trace` runs the first SGD step of an FP8 configuration and
records ``sample`` dot products of each of its eight GEMMs (forward ``fwd1..3``, backward
``bwd2..3``, weight gradient ``wgrad1..3``) as ``fp8_dot`` operation streams (one product
per cycle, ``last`` on the final product of each dot product), with the golden model's
results. :func:`replay_step` runs every recorded stream through the RTL of the unit with
the configuration's parameters (:class:`sim.net.RtlExecutor`, one batched simulator call
per GEMM) and counts mismatches of every output cycle (``result`` and ``result_valid``)
against the golden model.

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


def replay_step(config: str, hyper=None, sample: int = 8, progress: bool = False) -> StepReplay:
    """Record one training step of ``config`` and replay ``sample`` dot products of each of
    its GEMMs on the RTL ``fp8_dot`` (see the module docstring)."""
    import numpy as np

    from qrtl.golden.nets.fp8train import CONFIGS, Hyper, dot_params, step_trace
    from qrtl.sim.net import RtlExecutor
    hp = (hyper or Hyper()).checked()
    t0 = time.perf_counter()
    trace = step_trace(config, hp, sample)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=sum(op.count for op in trace.ops), unit="op", unit_scale=True,
                   file=sys.stderr, desc=f"{config} on RTL", dynamic_ncols=True)
    ex = RtlExecutor(progress=bar)
    out = StepReplay(config, dot_params(CONFIGS[config], hp.acc), sample)
    try:
        for op in trace.ops:
            before = ex.mismatches.get(op.unit, 0)
            got = ex(op)
            # the executor compares with the golden outputs; check the results here too
            for port, want in op.outputs.items():
                if not np.array_equal(np.asarray(got[port]).astype(np.uint64),
                                      np.asarray(want).astype(np.uint64)):
                    if ex.mismatches.get(op.unit, 0) == before:
                        raise QrtlError(f"{op.layer}: RTL outputs differ from the golden model "
                                        "but the simulator reported no mismatch")
            k = int(np.flatnonzero(op.inputs["last"])[0]) + 1
            out.gemms.append({"layer": op.layer, "dot_products": op.count // k, "length": k,
                              "ops": op.count,
                              "mismatches": ex.mismatches.get(op.unit, 0) - before})
    finally:
        if bar is not None:
            bar.close()
    out.total_ops = sum(g["ops"] for g in out.gemms)
    out.total_mismatches = sum(g["mismatches"] for g in out.gemms)
    out.calls, out.first_mismatch = ex.calls, ex.first_mismatch
    out.seconds = time.perf_counter() - t0
    return out
