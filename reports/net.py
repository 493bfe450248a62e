"""``qrtl net NAME``: test accuracy of a network's golden model, optionally replayed on RTL.

``qrtl net NAME [-p NAME=VALUE]... [--images N] [--rtl]`` prints the golden model's test
accuracy and that of the float32 network it came from. With ``--rtl`` every unit operation
of those images (every MAC step, binary dot product, requantization, FP8 product) is
executed by the generated Verilog on Verilator, one batched ``simulate`` call per layer and
unit, each layer consuming the RTL outputs of the previous one (see
:mod:`golden.nets.program`); it prints the operations replayed, the mismatches against the
golden model (must be 0), and whether every integer tensor and prediction is identical.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from hw.errors import QrtlError

__all__ = ["RtlExecutor", "replay", "register_cli"]


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
        from hw.registry import instance
        from sim.runner import simulate
        inst = instance(op.unit, op.params)
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


def replay(name: str, params=None, images: int | None = None, progress: bool = False) -> dict:
    """Golden inference, then the same inference with every operation on the RTL.

    Returns a summary: ``network``, ``params``, ``images``, ``accuracy`` (golden),
    ``float32_accuracy``, ``rtl_accuracy``, ``ops`` and ``mismatches`` (per unit),
    ``total_ops``, ``total_mismatches``, ``tensors_identical``, ``predictions_identical``,
    ``calls``, ``seconds``, ``first_mismatch``.
    """
    from golden import nets
    t0 = time.perf_counter()
    gold = nets.run(name, params, images)
    total = sum(op.count for op in gold["trace"].ops)
    if total == 0:
        raise QrtlError(f"network {name} runs on no RTL unit (nothing to replay with --rtl)")
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
    return {
        "network": name, "params": gold["params"], "images": len(gold["labels"]),
        "accuracy": gold["accuracy"], "float32_accuracy": gold["float32_accuracy"],
        "rtl_accuracy": rtl["accuracy"], "ops": ex.ops, "mismatches": ex.mismatches,
        "total_ops": sum(ex.ops.values()), "total_mismatches": sum(ex.mismatches.values()),
        "tensors_identical": _same_tensors(gold["trace"].tensors, rtl["trace"].tensors),
        "predictions_identical": bool(np.array_equal(gold["pred"], rtl["pred"])),
        "calls": ex.calls, "seconds": time.perf_counter() - t0,
        "first_mismatch": ex.first_mismatch,
    }


def _label(name, params):
    from golden.nets import config_label
    return config_label(name, params)


def cmd_net(args):
    from golden import nets
    from hw.params import parse_assignments
    given = parse_assignments(args.param)
    try:
        params = nets.resolve_params(args.name, given)
    except QrtlError as exc:
        raise QrtlError(str(exc).replace("for unit network", "for network")) from None
    if args.images is not None and args.images < 1:
        raise QrtlError(f"--images={args.images} must be at least 1")
    label = _label(args.name, params)
    if not args.rtl:
        r = nets.run(args.name, params, args.images)
        n = len(r["labels"])
        print(f"{label}: golden test accuracy {100 * r['accuracy']:.2f}% "
              f"({int(round(r['accuracy'] * n))}/{n} images); float32 reference "
              f"{100 * r['float32_accuracy']:.2f}%")
        return 0
    s = replay(args.name, params, args.images, progress=not args.no_progress)
    n = s["images"]
    print(f"{label}: golden test accuracy {100 * s['accuracy']:.2f}% "
          f"({int(round(s['accuracy'] * n))}/{n} images); float32 reference "
          f"{100 * s['float32_accuracy']:.2f}%")
    per_unit = ", ".join(f"{u} {c:,}" for u, c in s["ops"].items())
    print(f"RTL replay on Verilator: {s['total_ops']:,} operations ({per_unit}) in "
          f"{s['calls']} simulator calls, {s['total_mismatches']} mismatch(es), "
          f"{s['seconds']:.1f} s")
    print(f"integer tensors {'identical' if s['tensors_identical'] else 'DIFFER'}; "
          f"predictions {'identical' if s['predictions_identical'] else 'DIFFER'} "
          f"({n} images, RTL accuracy {100 * s['rtl_accuracy']:.2f}%)")
    if s["first_mismatch"]:
        m = s["first_mismatch"]
        print(f"first mismatch: {m['layer']} on {m['unit']}, operation {m['index']}: "
              f"inputs {m['inputs']}, expected {m['expected']}, actual {m['actual']}")
    ok = s["total_mismatches"] == 0 and s["tensors_identical"] and s["predictions_identical"]
    return 0 if ok else 1


def register_cli(sub):
    """``qrtl net NAME [-p NAME=VALUE]... [--images N] [--rtl]``."""
    from golden import nets
    p = sub.add_parser("net", help="test accuracy of a network; --rtl replays it on the RTL")
    p.add_argument("name", help="network: " + ", ".join(nets.NETWORKS))
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="network parameter, e.g. scheme=fixedpoint (int8), fmt=e5m2 acc=fp32 "
                        "chunk=1 (fp8)")
    p.add_argument("--images", type=int, default=None,
                   help="first N test images (default: the whole test split, 450)")
    p.add_argument("--rtl", action="store_true",
                   help="execute every operation on the generated units (Verilator)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_net)
