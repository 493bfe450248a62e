"""Lean baselines: narrower requantization multipliers, with their accuracy cost measured
(``qrtl cost --compare lean``, the report's ``lean.csv``).

Is the baseline needlessly expensive? The exact baselines are gemmlowp/TFLite's
``quant_fixedpoint`` (a full 32 x 32-bit multiplier) and a binary32 ``quant_float``. A
requantizer to 8 bits can use a narrower multiplier: ``quant_fixedpoint`` with
``m0_width`` = 24, 23, 20 or 16 bits (TFLite's ``m0`` rounded by
:func:`qrtl.golden.quant.reduce_multiplier`), or ``quant_float`` with an fp16 or bf16 scale
(the binary32 scale rounded by :func:`qrtl.golden.quant.scale_to_format`). For each
configuration (:data:`LEAN_CONFIGS`), :func:`compare_lean` measures

* ``mismatch_pct``: the share of requantizer outputs that differ from the exact one of its
  family (``m0_width=32`` / ``fp32``) on the int8 network's real accumulators (every
  requantization of the hidden layers over the test images, the exact network's
  accumulators fed to both; golden models, which the RTL matches bit for bit);
* ``accuracy_pct``: the int8 network's test accuracy with that requantizer in every
  hidden layer (:func:`qrtl.golden.nets.mlp.int8_forward`), beside the exact one's;
* area, delay and energy per operation (:func:`qrtl.reports.cost.cost_unit` on the network's
  ``int8`` stream), plus the separate 32-bit bias adder each baseline needs, as in the
  headline comparison; and the ratios to ``quant_shift`` with a runtime shift and fused bias
  (the headline's matched configuration) on the same stream: ``area_x_shift`` =
  this configuration / ``quant_shift`` (above 1: ``quant_shift`` is cheaper).

:func:`leanest_lossless` picks the smallest configuration whose accuracy is not below its
exact family's: the strong baseline a comparison should include.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from qrtl.golden.errors import QrtlError
from qrtl.hw.registry import STREAMS
from qrtl.hw.units import configure

from .cost import DEFAULT_CLOCK_NS, DEFAULT_VECTORS, _bias_cost, _run_jobs
from .liberty import load_library

__all__ = ["LEAN_CONFIGS", "REPORT_CONFIGS", "SHIFT_REFERENCE", "M0_WIDTHS", "SCALE_FMTS", "mismatch",
           "lean_accuracy", "compare_lean", "leanest_lossless", "LEAN_BRIEF"]

#: Multiplier widths and scale formats measured (the first of each is the exact baseline).
M0_WIDTHS = (32, 24, 23, 20, 16)
SCALE_FMTS = ("fp32", "fp16", "bf16")

#: (label, unit, params) of every lean configuration, exact baselines first in each family.
LEAN_CONFIGS = (
    [(f"quant_fixedpoint m0_width={w}", "quant_fixedpoint", {"out_width": 8, "m0_width": w})
     for w in M0_WIDTHS]
    + [(f"quant_float scale_fmt={f}", "quant_float", {"out_width": 8, "scale_fmt": f})
       for f in SCALE_FMTS]
)
#: The configurations ``qrtl report`` measures: all but m0_width 24 and 23, on whose 32 x 24
#: and 32 x 23-bit multipliers Yosys's standard flow (``abc -liberty`` with its default
#: script) ran for more than 18 CPU minutes without finishing (32 x 32, 32 x 20 and
#: 32 x 16 take 1-4 minutes), which would stall the report. ``qrtl cost --compare lean``
#: measures every configuration (``--configs`` to choose).
REPORT_CONFIGS = ("quant_fixedpoint m0_width=32", "quant_fixedpoint m0_width=20",
                  "quant_fixedpoint m0_width=16", "quant_float scale_fmt=fp32",
                  "quant_float scale_fmt=fp16", "quant_float scale_fmt=bf16")
#: The proposed operation in the headline's matched configuration.
SHIFT_REFERENCE = ("quant_shift runtime", "quant_shift",
                   {"in_width": 32, "out_width": 8, "bias": 1, "runtime_shift": 1})

#: Columns shown in Markdown (the CSV has every column).
LEAN_BRIEF = ["config", "mismatch_pct", "accuracy_pct", "area_um2", "energy_pj_per_op",
              "area_x_shift", "energy_x_shift", "lossless"]

_SCHEME = {"quant_fixedpoint": "fixedpoint", "quant_float": "float"}


def _exact(unit: str, params: dict) -> dict:
    return {**params, "m0_width": 32} if unit == "quant_fixedpoint" else {**params, "scale_fmt": "fp32"}


def _requant_per_image(unit: str) -> int:
    from qrtl.golden.nets import op_counts
    return sum(r["ops"] for r in op_counts("int8", {"scheme": _SCHEME[unit]}) if r["unit"] == unit)


def _images(images: Optional[int]) -> int:
    from qrtl.golden.nets.data import load_split
    total = len(load_split().y_test)
    if images is None:
        return total
    if not 1 <= images <= total:
        raise QrtlError(f"images={images} is out of range (the test split has {total} images)")
    return int(images)


def mismatch(unit: str, params: dict, images: Optional[int] = None) -> tuple[int, int]:
    """``(differing, total)`` outputs of the configuration against its exact family member
    on the requantizations of the first ``images`` test images (default: all) of the exact
    int8 network (the unit's registered ``int8`` stream)."""
    n = _requant_per_image(unit) * _images(images)
    lean, exact = configure(unit, params), configure(unit, _exact(unit, params))
    q = lean.golden(STREAMS[unit]["int8"][0](lean.params, n))["q"]
    q0 = exact.golden(STREAMS[unit]["int8"][0](exact.params, n))["q"]
    return int(np.count_nonzero(q != q0)), int(n)


def lean_accuracy(unit: str, params: dict, images: Optional[int] = None) -> float:
    """Test accuracy of the int8 network requantized by this configuration in every hidden
    layer (golden model), on the first ``images`` test images (default: all)."""
    from qrtl.golden.nets.data import load_split
    from qrtl.golden.nets.mlp import int8_forward
    p = configure(unit, params).params
    s = load_split()
    k = _images(images)
    kw = {"m0_width": p["m0_width"]} if unit == "quant_fixedpoint" else {"scale_fmt": p["scale_fmt"]}
    r = int8_forward(s.x_test[:k], _SCHEME[unit], **kw)
    return float(np.mean(r["pred"] == s.y_test[:k]))


def compare_lean(liberty=None, *, jobs: int = 2, vectors: int = DEFAULT_VECTORS,
                 images: Optional[int] = None,
                 configs: Optional[list] = None, progress: bool = True) -> list[dict]:
    """The lean-baseline table (see the module docstring): one row per configuration of
    ``configs`` (labels of :data:`LEAN_CONFIGS`; default all), then the ``quant_shift``
    reference row. ``images``: test images for the mismatch rate and the accuracy (default:
    the whole split); ``vectors``: operations of the ``int8`` stream simulated for energy."""
    chosen = [c for c in LEAN_CONFIGS if configs is None or c[0] in configs]
    if configs is not None and len(chosen) != len(set(configs)):
        known = ", ".join(c[0] for c in LEAN_CONFIGS)
        raise QrtlError(f"unknown lean configuration in {list(configs)} (known: {known})")
    lib = str(liberty) if liberty is not None else None
    lib_obj = load_library(lib)
    # as configured (no clock target): leakage and power at DEFAULT_CLOCK_NS
    jobs_list = [(u, p, lib, "int8", vectors, None, False) for _, u, p in chosen + [SHIFT_REFERENCE]]
    costs = _run_jobs(jobs_list, jobs, "compare lean", progress)
    adder = _bias_cost(lib, vectors, DEFAULT_CLOCK_NS, "int8")
    ref = costs[-1]
    exact_acc = {u: lean_accuracy(u, _exact(u, p), images) for _, u, p in chosen}
    rows = []
    for (label, unit, params), c in zip(chosen, costs[:-1]):
        bad, total = mismatch(unit, params, images)
        acc = lean_accuracy(unit, params, images)
        area = c["area_um2"] + adder["area_um2"]
        energy = c["energy_pj_per_op"] + adder["energy_pj_per_op"]
        rows.append({
            "library": lib_obj.name, "corner": lib_obj.corner, "stimulus": "int8",
            "config": label, "unit": unit, "params": dict(c["params"]),
            "mismatches": bad, "requantizations": total,
            "mismatch_pct": round(100.0 * bad / total, 4),
            "accuracy_pct": round(100.0 * acc, 2),
            "exact_accuracy_pct": round(100.0 * exact_acc[unit], 2),
            "lossless": bool(acc >= exact_acc[unit]),
            "area_um2": round(area, 3), "delay_ps": round(c["delay_ps"] + adder["delay_ps"], 1),
            "energy_pj_per_op": round(energy, 6), "bias_adder": True,
            "area_x_shift": round(area / ref["area_um2"], 3),
            "energy_x_shift": round(energy / ref["energy_pj_per_op"], 3),
        })
    rows.append({
        "library": lib_obj.name, "corner": lib_obj.corner, "stimulus": "int8",
        "config": SHIFT_REFERENCE[0], "unit": "quant_shift", "params": dict(ref["params"]),
        "mismatches": None, "requantizations": None, "mismatch_pct": None,
        "accuracy_pct": None, "exact_accuracy_pct": None, "lossless": None,
        "area_um2": round(ref["area_um2"], 3), "delay_ps": round(ref["delay_ps"], 1),
        "energy_pj_per_op": round(ref["energy_pj_per_op"], 6), "bias_adder": False,
        "area_x_shift": 1.0, "energy_x_shift": 1.0,
    })
    return rows


def leanest_lossless(rows: list[dict]) -> Optional[dict]:
    """The smallest-area baseline row that loses no accuracy (None if none does)."""
    ok = [r for r in rows if r.get("lossless") in (True, "True", "true")]
    return min(ok, key=lambda r: float(r["area_um2"])) if ok else None
