"""Design-space sweeps (``qrtl sweep``, ``qrtl.sweep``): a grid of unit configurations, each
costed with :func:`qrtl.reports.cost.cost_unit` (and verified on Verilator when asked), one
row per point, on local processes or a Dask cluster; the scaling and Pareto plots.

A sweep is the Cartesian product of its parameters' value lists (or, ``zip``, their
element-wise pairs); :func:`qrtl.golden.params.parse_values` reads the lists and ranges.
Every point is resolved before any work, so a bad value is a one-line error up front.

**Caching.** A point's row is one entry of the cost cache (``build/cache/cost/``), keyed on
the configuration, the library's contents, the stimulus, clock and vectors, the
verification asked for, qrtl's code (:func:`qrtl.golden.cache.code_hash`) and the tool
versions: a rerun computes nothing. Computing a point goes through :func:`cost_unit` and
its own cost-cache entries, so a point already costed by ``qrtl cost`` is quick.

**Dask.** With a scheduler address, each missing point is one task
(:func:`_dask_point`) that runs on a worker in the worker's own scratch folder (its
``local_directory``; nothing shared but the task's arguments: a ``--liberty`` file travels
as bytes) and returns the row plus the cost-cache entries it used or made
(:func:`qrtl.golden.cache.journal`), which the client stores in its own cache: a local
rerun is warm. A worker whose qrtl code or tool versions differ from the client's is a
one-line error (its figures could differ from a local run's).

The verification function comes from the caller (:func:`qrtl.sim.runner.verify` through
:func:`qrtl.sweep`), as the report's does: ``reports`` and ``sim`` never import each other.
"""

from __future__ import annotations

import builtins  # ``zip`` is a keyword argument of the sweep functions
import itertools
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from qrtl.golden.cache import atomic_output, code_hash, journal, tool_versions
from qrtl.golden.errors import QrtlError
from qrtl.golden.params import IntParam, check_int, parse_values
from qrtl.golden.procs import pool_map
from qrtl.hw.units import configure, get_unit

from .cost import COST_CACHE, DEFAULT_CLOCK_NS, DEFAULT_VECTORS, cost_unit, stimuli
from .liberty import load_library

__all__ = ["SweepSettings", "points", "run_sweep", "write_sweep", "fit_exponent", "exponents",
           "pareto_front", "plot_scaling", "plot_pareto", "scaling_rows", "sweep_bench",
           "FIGURES", "SCALING_FIGURES", "BENCH_SWEEP", "SCALING_SWEEPS"]

SWEEP_VERSION = "1"

#: Columns of a row after the unit's parameters (``verify_*`` only when verification ran).
FIGURES = ("latency", "library", "corner", "wire_load", "stimulus", "vectors", "clock_ns",
           "clock_target", "area_um2", "cell_count", "transistors", "depth", "delay_ps",
           "slack_ps", "energy_pj_per_op", "energy_internal_pj", "energy_switching_pj",
           "energy_leakage_pj", "energy_zero_delay_pj_per_op", "glitch_pct", "toggles_per_op",
           "power_mw", "ops_per_s", "horowitz_pj")
VERIFY_COLUMNS = ("verify_vectors", "verify_mismatches")
#: Figures plotted against each numeric swept parameter (log-log, with fitted exponents).
SCALING_FIGURES = ("area_um2", "cell_count", "delay_ps", "energy_pj_per_op",
                   "energy_zero_delay_pj_per_op", "power_mw")
_LABELS = {"area_um2": "area (um²)", "cell_count": "cells", "delay_ps": "delay (ps)",
           "energy_pj_per_op": "energy (pJ/op)", "energy_zero_delay_pj_per_op":
           "zero-delay energy (pJ/op)", "power_mw": "power (mW)"}


@dataclass(frozen=True)
class SweepSettings:
    """What every point of a sweep shares (see :func:`qrtl.sweep`). ``liberty`` is a path
    (None: the built-in library); ``clock_ns`` None: no clock target; ``verify``: random
    vectors per point on Verilator (0: none), drawn from ``seed`` like the stimulus."""

    liberty: Optional[str] = None
    stimulus: str = "random"
    vectors: int = DEFAULT_VECTORS
    seed: int = 0
    clock_ns: Optional[float] = None
    wire_load: str = "default"
    verify: int = 0


# --- the grid --------------------------------------------------------------------------

def points(unit: str, params: Mapping[str, object], zip: bool = False) -> list[dict]:
    """The resolved parameters of every point (every declared parameter, defaults filled
    in), in sweep order: the Cartesian product of ``params``' value lists (the last name
    varies fastest), or with ``zip`` their element-wise combination (equal lengths).

    A value list is a list, or text in the ``-p`` syntax (:func:`parse_values`). Every
    point is validated here: a one-line :class:`QrtlError` before any work."""
    spec = get_unit(unit)
    if not params:
        raise QrtlError(f"a sweep of {spec.name} needs at least one parameter with values "
                        f"(-p NAME=V1,V2,...)")
    lists = {name: parse_values(name, values) for name, values in params.items()}
    spec.resolve({name: values[0] for name, values in lists.items()})  # unknown names first
    if zip:
        lengths = {name: len(v) for name, v in lists.items()}
        if len(set(lengths.values())) > 1:
            raise QrtlError("--zip needs value lists of equal length (" + ", ".join(
                f"{n} has {k}" for n, k in lengths.items()) + ")")
        combos = list(builtins.zip(*lists.values()))
    else:
        combos = list(itertools.product(*lists.values()))
    return [configure(spec, dict(builtins.zip(lists, combo))).params
            for combo in combos]


# --- one point -------------------------------------------------------------------------

def _point_key(unit: str, params: dict, s: SweepSettings) -> str:
    lib = load_library(s.liberty, s.wire_load)
    return COST_CACHE.key("sweep-point", SWEEP_VERSION, code_hash(), unit,
                          json.dumps(params, sort_keys=True), lib.key, s.stimulus, s.vectors,
                          s.seed, s.clock_ns, s.verify)


def _row_ok(row) -> bool:
    return isinstance(row, dict) and all(k in row for k in ("unit", *FIGURES))


def _compute_row(unit: str, params: dict, s: SweepSettings, verify: Optional[Callable]) -> dict:
    label = f"{unit} " + ",".join(f"{k}={v}" for k, v in params.items())
    try:
        c = cost_unit(unit, params, liberty=s.liberty, stimulus=s.stimulus, vectors=s.vectors,
                      seed=s.seed, clock_ns=DEFAULT_CLOCK_NS if s.clock_ns is None else s.clock_ns,
                      clock_target=s.clock_ns is not None, wire_load=s.wire_load)
    except QrtlError as exc:
        raise type(exc)(f"sweep point {label}: {exc}") from None
    e = c.energy_breakdown_pj
    row = {"unit": unit, **c.params, "latency": c.latency, "library": c.library["name"],
           "corner": c.library["corner"], "wire_load": c.library.get("wire_load", "none"),
           "stimulus": c.stimulus, "vectors": c.vectors, "clock_ns": c.clock_ns,
           "clock_target": c.clock_target, "area_um2": c.area_um2, "cell_count": c.cell_count,
           "transistors": c.transistors, "depth": c.depth, "delay_ps": c.delay_ps,
           "slack_ps": c.slack_ps, "energy_pj_per_op": c.energy_pj_per_op,
           "energy_internal_pj": e["internal"], "energy_switching_pj": e["switching"],
           "energy_leakage_pj": e["leakage"],
           "energy_zero_delay_pj_per_op": c.energy_zero_delay_pj_per_op,
           "glitch_pct": round(100.0 * c.glitch_fraction, 4), "toggles_per_op": c.toggles_per_op,
           "power_mw": c.power_mw, "ops_per_s": c.ops_per_s,
           "horowitz_pj": (c.horowitz or {}).get("pj")}
    if s.verify:
        # the configuration costed (with a clock target: the pipeline chosen)
        r = verify(configure(unit, c.params), vectors=s.verify, seed=s.seed)
        row["verify_vectors"], row["verify_mismatches"] = r.vectors, r.mismatches
    return row


def _point(item) -> dict:
    """One point's row, from the cache or computed (and stored): the local job."""
    unit, params, s, verify = item
    return COST_CACHE.value(_point_key(unit, params, s), lambda: _compute_row(unit, params, s, verify),
                            fmt="json", check=_row_ok)


def _dask_point(item, lib_name: Optional[str] = None, lib_data: Optional[bytes] = None) -> dict:
    """One point on a Dask worker, in the worker's own scratch folder: the row, the
    cost-cache entries behind it (for the client's cache), what the figures depend on
    (the worker's qrtl code and tool versions) and the seconds the point took there."""
    from distributed import get_worker
    root = Path(get_worker().local_directory) / "qrtl-build"
    os.environ["QRTL_BUILD"] = str(root)  # this worker's cache, whatever the client uses
    unit, params, s, verify = item
    if lib_data is not None:
        import hashlib
        path = root / "liberty" / hashlib.sha256(lib_data).hexdigest()[:16] / lib_name
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(path, "wb") as fh:
                fh.write(lib_data)
        s = replace(s, liberty=str(path))
    t0 = time.perf_counter()
    with journal(COST_CACHE) as entries:
        row = _point((unit, params, s, verify))
    return {"row": row, "entries": entries, "code": code_hash(), "tools": tool_versions(),
            "seconds": time.perf_counter() - t0}


# --- running ---------------------------------------------------------------------------

def dask_address(address: Optional[str]) -> Optional[str]:
    """``address``, else ``$DASK_SCHEDULER_ADDRESS``, else None (run locally)."""
    return address or os.environ.get("DASK_SCHEDULER_ADDRESS") or None


def _run_local(items: list, jobs: int, bar) -> list:
    return pool_map(_point, items, jobs, bar.update)


def _run_dask(address: str, items: list, s: SweepSettings, bar) -> tuple[list, float]:
    """The rows of ``items``, one Dask task each, and the seconds the tasks took on the
    workers in all."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise QrtlError("--dask needs Dask: pip install 'qrtl[dask]'") from None
    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except Exception as exc:  # a bad address, nothing listening, a timeout
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QrtlError(f"cannot reach the Dask scheduler at {address!r}: {why}") from None
    with client:
        lib = []
        if s.liberty is not None:
            lib = [Path(s.liberty).name, client.scatter(Path(s.liberty).read_bytes(),
                                                        broadcast=True, hash=False)]
        run = uuid.uuid4().hex[:8]
        futures = [client.submit(_dask_point, item, *lib, key=f"qrtl-sweep-{run}-{i}",
                                 pure=False, retries=0)
                   for i, item in enumerate(items)]
        index = {f.key: i for i, f in enumerate(futures)}
        out: list = [None] * len(items)
        busy = 0.0
        here = (code_hash(), tool_versions())
        try:
            for fut in as_completed(futures, loop=client.loop):
                res = fut.result()
                if (res["code"], tuple(map(tuple, res["tools"]))) != here:
                    raise QrtlError(
                        f"a Dask worker at {address} runs other qrtl code or tools (code "
                        f"{res['code']}, {dict(res['tools'])}) than here (code {here[0]}, "
                        f"{dict(here[1])}): install the same qrtl on the workers")
                for kind, version, key, fmt, value in res["entries"]:
                    if (kind, version) == (COST_CACHE.kind, COST_CACHE.version):
                        COST_CACHE.put(key, value, fmt=fmt)
                out[index[fut.key]] = res["row"]
                busy += res["seconds"]
                bar.update(1)
        finally:
            client.cancel([f for f in futures if not f.done()])
        return out, busy


def run_sweep(unit: str, params: Mapping[str, object], *, zip: bool = False,
              settings: SweepSettings = SweepSettings(), verify: Optional[Callable] = None,
              jobs: Optional[int] = None, dask: Optional[str] = None, progress: bool = True):
    """Every point of the sweep (:func:`points`) as a row of a pandas DataFrame: the unit,
    every parameter, then :data:`FIGURES` (and ``verify_vectors``, ``verify_mismatches``
    when ``settings.verify`` > 0, with ``verify(unit, vectors=, seed=)`` on each point).

    Points already in the cache are read; the others run on ``jobs`` local processes
    (default: every core) or, with ``dask`` (a scheduler address; default
    ``$DASK_SCHEDULER_ADDRESS``), as one Dask task each. ``df.attrs`` holds ``points``,
    ``computed`` (points not found in the cache), ``seconds`` (all of it),
    ``run_seconds`` (running the computed points: the pool or the Dask client, from its
    connection to the last result), ``task_seconds`` (Dask: the points' time on the
    workers, summed) and ``engine``."""
    import pandas as pd
    from tqdm import tqdm

    t0 = time.perf_counter()
    s = settings
    check_int("verify vectors", s.verify, 0, 50_000_000)
    if s.verify and verify is None:
        raise QrtlError("verification needs a verify function (qrtl.sweep passes Verilator's)")
    if s.liberty is not None and not Path(s.liberty).is_file():
        raise QrtlError(f"--liberty {s.liberty!r}: no such file")
    spec = get_unit(unit)
    if not isinstance(s.stimulus, str) or s.stimulus not in stimuli(spec.name):
        raise QrtlError(f"unknown stimulus {s.stimulus!r} for unit {spec.name} "
                        f"(stimuli: {', '.join(stimuli(spec.name))})")
    load_library(s.liberty, s.wire_load)  # a bad library or wire-load model: before any work
    grid = points(spec.name, params, zip=zip)
    address = dask_address(dask)
    jobs = check_int("jobs", (os.cpu_count() or 1) if jobs is None else jobs, 1, 4096)
    rows: list = [None] * len(grid)
    missing = []
    for i, p in enumerate(grid):
        rows[i] = COST_CACHE.get(_point_key(spec.name, p, s), fmt="json", check=_row_ok)
        if rows[i] is None:
            missing.append(i)
    items = [(spec.name, grid[i], s, verify if s.verify else None) for i in missing]
    with tqdm(total=len(grid), initial=len(grid) - len(missing), desc=f"sweep {spec.name}",
              unit="pt", file=sys.stderr, disable=not progress) as bar:
        t_run, task_seconds = time.perf_counter(), None
        if items:
            if address:
                new, task_seconds = _run_dask(address, items, s, bar)
            else:
                new = _run_local(items, jobs, bar)
            for i, row in builtins.zip(missing, new):
                rows[i] = row
        t_end = time.perf_counter()
    columns = ["unit", *(p.name for p in spec.params), *FIGURES,
               *(VERIFY_COLUMNS if s.verify else ())]
    df = pd.DataFrame(rows, columns=columns)
    df.attrs.update(points=len(grid), computed=len(missing), seconds=time.perf_counter() - t0,
                    run_seconds=t_end - t_run, task_seconds=task_seconds,
                    engine=f"dask {address}" if address and missing else f"{jobs} process(es)",
                    swept=list(params), zip=bool(zip))
    return df


# --- fits and plots --------------------------------------------------------------------

def fit_exponent(x: Sequence[float], y: Sequence[float]) -> Optional[float]:
    """The growth exponent ``b`` of ``y ~ a x^b``: the slope of the least-squares line
    through ``(log x, log y)``; None with fewer than two distinct positive ``x`` (points
    with ``x <= 0`` or ``y <= 0`` are left out)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if len(np.unique(x[ok])) < 2:
        return None
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def _r2(u: np.ndarray, v: np.ndarray) -> Optional[float]:
    """R² of the least-squares line through ``(u, v)``."""
    if len(u) < 3 or np.ptp(v) == 0:
        return None
    a, b = np.polyfit(u, v, 1)
    return float(1.0 - np.sum((v - (a * u + b)) ** 2) / np.sum((v - v.mean()) ** 2))


def _numeric_swept(df) -> list[str]:
    """Swept integer parameters with at least two distinct positive values."""
    spec = get_unit(df["unit"].iloc[0])
    ints = {p.name for p in spec.params if isinstance(p, IntParam)}
    return [n for n in df.attrs.get("swept", []) if n in ints
            and (df[n] > 0).all() and df[n].nunique() > 1]


def _series(df, x: str):
    """``(label, rows)`` for each line against ``x``: one per combination of the other
    swept parameters (a product sweep), or all points (``zip``: they vary together)."""
    others = [] if df.attrs.get("zip") else [n for n in df.attrs.get("swept", []) if n != x]
    if not others:
        yield "", df
        return
    for values, part in df.groupby(others, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        yield ", ".join(f"{n}={v}" for n, v in builtins.zip(others, values)), part


def exponents(df, figures: Sequence[str] = SCALING_FIGURES) -> list[dict]:
    """The fitted growth exponent (:func:`fit_exponent`) of each figure against each
    numeric swept parameter, per series (:func:`_series`): ``param``, ``series``,
    ``figure``, ``exponent``, ``r2_power`` (R² of the log-log line), ``per_doubling``
    (the figure's slope against log2 of the parameter: what a doubling adds, for
    logarithmic growth such as a tree's depth) with ``r2_log``, and ``points``."""
    out = []
    for x in _numeric_swept(df):
        for label, part in _series(df, x):
            for fig in figures:
                xs, ys = part[x].to_numpy(float), part[fig].to_numpy(float)
                ok = (xs > 0) & (ys > 0)
                b = fit_exponent(xs, ys)
                if b is None:
                    continue
                lx = np.log2(xs[ok])
                out.append({"unit": df["unit"].iloc[0], "param": x, "series": label,
                            "figure": fig, "exponent": round(b, 4),
                            "r2_power": _round(_r2(lx, np.log2(ys[ok]))),
                            "per_doubling": round(float(np.polyfit(lx, ys[ok], 1)[0]), 6),
                            "r2_log": _round(_r2(lx, ys[ok])), "points": int(ok.sum())})
    return out


def _round(v, digits: int = 4):
    return None if v is None else round(v, digits)


def pareto_front(area: Sequence[float], energy: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both area and energy (ties: the
    first), in order of increasing area."""
    order = sorted(range(len(area)), key=lambda i: (area[i], energy[i]))
    front, best = [], math.inf
    for i in order:
        if energy[i] < best:
            front.append(i)
            best = energy[i]
    return front


def _title(df) -> str:
    r = df.iloc[0]
    clock = f"clock target {r['clock_ns']} ns" if r["clock_target"] else "as configured"
    return (f"{r['unit']}: {r['library']} ({r['corner']}), stimulus {r['stimulus']}, "
            f"{r['vectors']} vectors, {clock}")


def plot_scaling(df, out: Path, stem: str = "scaling") -> list[Path]:
    """Each :data:`SCALING_FIGURES` figure against each numeric swept parameter, log-log,
    one line per series with its fitted exponent in the legend (a dashed fitted line);
    ``out/stem.png`` and ``.svg``. A sweep without a numeric parameter gets a bar chart of
    area and energy per point instead."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .tables import save_figure
    xs = _numeric_swept(df)
    if not xs:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
        labels = [",".join(f"{n}={r[n]}" for n in df.attrs.get("swept", [])) for _, r in df.iterrows()]
        for ax, figname in builtins.zip(axes, ("area_um2", "energy_pj_per_op")):
            ax.bar(range(len(df)), df[figname])
            ax.set_xticks(range(len(df)), labels, rotation=45, ha="right", fontsize=7)
            ax.set_ylabel(_LABELS[figname])
        fig.suptitle(_title(df) + " (no numeric parameter swept)", fontsize=9)
        return save_figure(fig, out, stem)
    ncol = 3
    nrow = len(xs) * math.ceil(len(SCALING_FIGURES) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5 * ncol, 3.6 * nrow), layout="constrained",
                             squeeze=False)
    axes = axes.ravel()
    k = 0
    for x in xs:
        for figname in SCALING_FIGURES:
            ax = axes[k]
            k += 1
            for label, part in _series(df, x):
                part = part.sort_values(x)
                xv, yv = part[x].to_numpy(float), part[figname].to_numpy(float)
                ok = (xv > 0) & (yv > 0)
                b = fit_exponent(xv, yv)
                name = f"{label}: " if label else ""
                line, = ax.plot(xv[ok], yv[ok], "o-", ms=4,
                                label=f"{name}exponent {b:.2f}" if b is not None else name or "points")
                if b is not None:
                    a = np.polyfit(np.log(xv[ok]), np.log(yv[ok]), 1)[1]
                    ax.plot(xv[ok], np.exp(a) * xv[ok] ** b, "--", lw=0.8, color=line.get_color())
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(x)
            ax.set_ylabel(_LABELS[figname])
            ax.grid(True, which="both", lw=0.3)
            ax.legend(fontsize=6)
    for ax in axes[k:]:
        ax.set_visible(False)
    fig.suptitle(_title(df) + "; dashed: least-squares fit in log-log", fontsize=9)
    return save_figure(fig, out, stem)


def plot_pareto(df, out: Path, stem: str = "pareto") -> list[Path]:
    """Area against energy per operation, one marker per point coloured by delay; the
    Pareto front (no point smaller in both) ringed, connected and labelled with its swept
    parameters; ``out/stem.png`` and ``.svg``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .tables import save_figure
    area, energy = df["area_um2"].to_numpy(float), df["energy_pj_per_op"].to_numpy(float)
    front = pareto_front(list(area), list(energy))
    fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
    sc = ax.scatter(area, energy, c=df["delay_ps"].to_numpy(float), cmap="viridis", s=30, zorder=2)
    fig.colorbar(sc, ax=ax, label="delay (ps)")
    ax.plot(area[front], energy[front], "-", drawstyle="steps-post", color="black", lw=0.8,
            zorder=1, label=f"Pareto front ({len(front)} of {len(df)} points)")
    ax.scatter(area[front], energy[front], s=90, facecolors="none", edgecolors="black", zorder=3)
    swept = df.attrs.get("swept", [])
    for i in front:
        ax.annotate(",".join(f"{n}={df[n].iloc[i]}" for n in swept), (area[i], energy[i]),
                    fontsize=6, xytext=(4, 4), textcoords="offset points")
    for axis, v in (("x", area), ("y", energy)):
        if v.min() > 0 and v.max() / v.min() > 20:
            getattr(ax, f"set_{axis}scale")("log")
    ax.set_xlabel("area (um²)")
    ax.set_ylabel("energy (pJ/op)")
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=7)
    ax.set_title(_title(df), fontsize=8)
    return save_figure(fig, out, stem)


def write_sweep(df, out) -> list[Path]:
    """``out/sweep.csv`` (every row), ``exponents.csv`` (:func:`exponents`), the scaling and
    Pareto plots (PNG and SVG); returns the paths."""
    import pandas as pd
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in (("sweep.csv", df), ("exponents.csv", pd.DataFrame(
            exponents(df), columns=["unit", "param", "series", "figure", "exponent", "r2_power",
                                    "per_doubling", "r2_log", "points"]))):
        with atomic_output(out / name, "w", newline="") as fh:
            table.to_csv(fh, index=False)
        written.append(out / name)
    return written + plot_scaling(df, out) + plot_pareto(df, out)


# --- the report's scaling sweeps ----------------------------------------------------

#: ``(label, unit, params, zip)``: how cost grows with the size of our own units.
SCALING_SWEEPS = (
    ("xnor_popcount vs n", "xnor_popcount", {"n": "16..4096"}, False),
    ("int_mac vs operand width", "int_mac",
     {"a_width": "4..32", "b_width": "4..32", "acc_width": "8..64"}, True),
    ("quant_shift vs accumulator width", "quant_shift", {"in_width": "16..48:8"}, False),
    ("fp8_mac vs accumulator format", "fp8_mac", {"acc": "fp16,bf16,e6m9,fp32"}, False),
)


def scaling_rows(liberty=None, jobs: int = 1, *, progress: bool = True,
                 sweeps=SCALING_SWEEPS, dask: Optional[str] = None) -> tuple[list[dict], list[dict]]:
    """The report's scaling sweeps (:data:`SCALING_SWEEPS`: xnor_popcount n = 16..4096,
    int_mac a_width = b_width = 4..32 with acc_width = 2 x width, quant_shift in_width =
    16..48, fp8_mac with each accumulator format; uniform random stimulus, no clock target).

    Returns ``(rows, exponents)``: every point (with a ``sweep`` label) and the fitted
    exponents of every figure against each numeric parameter (:func:`exponents`)."""
    rows, fits = [], []
    s = SweepSettings(liberty=None if liberty is None else str(liberty))
    for label, unit, params, zipped in sweeps:
        df = run_sweep(unit, params, zip=zipped, settings=s, jobs=jobs, dask=dask,
                       progress=progress)
        rows += [{"sweep": label, **r} for r in df.to_dict("records")]
        fits += [{"sweep": label, **f} for f in exponents(df)]
    return rows, fits


# --- throughput --------------------------------------------------------------------

#: The 16-point sweep of ``qrtl bench --sweep``: small units, about 3 s a point here.
BENCH_SWEEP = ("xnor_popcount", {"n": "16..128", "pipeline": "0,1", "threshold": "0,1"})


def sweep_bench(unit: str = BENCH_SWEEP[0], params: Optional[Mapping[str, str]] = None, *,
                jobs: Sequence[int] = (1, 2), workers: int = 2, progress: bool = True) -> list[dict]:
    """Sweep throughput: the same sweep with ``-j N`` for each N in ``jobs``, then on a
    ``distributed.LocalCluster`` of ``workers`` single-threaded worker processes, each from
    a cold cache (a fresh ``QRTL_BUILD`` folder; the cluster's workers use their own new
    scratch folders), each a fresh ``qrtl sweep`` process (wall time includes its start,
    about 2 s; the cluster's start is reported apart). One row per run: ``path``, ``points``, ``seconds`` (wall), ``sweep_seconds``
    and ``run_seconds`` (what the sweep itself reports: all of it, and running the points
    on the pool or the cluster), ``task_seconds`` (Dask: the points' time on the workers,
    summed), ``points_per_min`` (from the wall time) and
    ``same_csv`` (its sweep.csv equals the first run's)."""
    params = dict(BENCH_SWEEP[1] if params is None else params)
    npoints = len(points(unit, params))
    base = [sys.executable, "-m", "qrtl.cli", "sweep", unit]
    for k, v in params.items():
        base += ["-p", f"{k}={v}"]
    rows, first = [], None
    with tempfile.TemporaryDirectory(prefix="qrtl-sweep-bench-") as tmp:
        def run(label: str, extra: list, cluster_s: Optional[float] = None):
            nonlocal first
            folder = Path(tmp) / f"run{len(rows)}"
            env = {**os.environ, "QRTL_BUILD": str(folder / "build")}
            env.pop("DASK_SCHEDULER_ADDRESS", None)
            t0 = time.perf_counter()
            res = subprocess.run(base + extra + ["-o", str(folder / "out")] +
                                 ([] if progress else ["--no-progress"]), env=env, cwd=tmp,
                                 stdout=subprocess.PIPE, text=True)
            dt = time.perf_counter() - t0
            if res.returncode:
                raise QrtlError(f"sweep bench: {label} failed (exit {res.returncode})")
            csv = (folder / "out" / "sweep.csv").read_text()
            first = first or csv
            inner = re.search(r" in ([0-9.]+) s \(([0-9.]+) s running", res.stdout)
            tasks = re.search(r"Dask tasks ([0-9.]+) s", res.stdout)
            rows.append({"path": label, "points": npoints, "seconds": round(dt, 2),
                         "sweep_seconds": float(inner.group(1)) if inner else None,
                         "run_seconds": float(inner.group(2)) if inner else None,
                         "task_seconds": float(tasks.group(1)) if tasks else None,
                         "points_per_min": round(60.0 * npoints / dt, 2),
                         "same_csv": csv == first, "cluster_start_s": cluster_s})

        for j in jobs:
            run(f"-j {j}", ["-j", str(j)])
        try:
            from distributed import LocalCluster
        except ImportError:
            raise QrtlError("the Dask part of the bench needs Dask: pip install 'qrtl[dask]'") from None
        t0 = time.perf_counter()
        with LocalCluster(n_workers=workers, processes=True, threads_per_worker=1,
                          dashboard_address=":0", local_directory=str(Path(tmp) / "dask")) as cluster:
            start = round(time.perf_counter() - t0, 2)
            run(f"Dask LocalCluster, {workers} workers", ["--dask", cluster.scheduler_address], start)

    return rows
