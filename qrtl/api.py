"""The public Python API (re-exported by :mod:`qrtl`).

A :class:`Unit` is one validated configuration of a registered unit: it describes and
generates (ports, latency, Verilog, stimulus, golden model). :func:`verify` and :func:`cost`
take a unit and return dataclasses whose ``as_dict()`` is exactly what the command line's
``--json`` prints. Errors are :class:`QrtlError` with one line in the words of the domain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Union

from qrtl.golden.errors import QrtlError
from qrtl.hw.foreign import VerilogUnit, check_inputs, import_golden
from qrtl.hw.registry import Unit
from qrtl.hw.units import all_units, configure
from qrtl.reports.cost import DEFAULT_CLOCK_NS, DEFAULT_VECTORS, CostResult, cost_unit
from qrtl.reports.synth import module_ports
from qrtl.sim.net import Replay
from qrtl.sim.runner import RunResult
from qrtl.sim.runner import simulate as _simulate
from qrtl.sim.runner import verify as _verify
from qrtl.sim.runner import exhaustive as _exhaustive

__all__ = ["QrtlError", "Unit", "VerilogUnit", "RunResult", "CostResult", "Replay", "units",
           "unit", "unit_from_verilog", "verify", "cost", "sweep", "report"]


def units() -> list[str]:
    """Names of every registered unit, in the order of ``qrtl list``.

    Returns
    -------
    list of str
    """
    return [spec.name for spec in all_units()]


def unit(name: str, **params) -> Unit:
    """One configuration of a registered unit.

    Parameters
    ----------
    name : str
        A name from :func:`units`.
    **params
        Parameter values (integers, or names of choices such as ``rounding="half_even"``);
        the others take their defaults.

    Returns
    -------
    Unit
        With ``name``, ``params`` (every parameter), ``module``, ``ports``, ``latency``,
        ``verilog()``, ``stimulus(n, seed=0)`` and ``golden(inputs)``.

    Raises
    ------
    QrtlError
        Unknown unit or parameter, or a value out of range.
    """
    if not isinstance(name, str):
        raise QrtlError(f"a unit is named by a string (got {name!r})")
    return configure(name, params)


def unit_from_verilog(files: Union[str, Path, Sequence[Union[str, Path]]], top: str,
                      golden: Union[None, str, Callable] = None, clock: Optional[str] = None,
                      *, reset: Optional[str] = None, latency: Optional[int] = None) -> VerilogUnit:
    """A foreign Verilog module as a unit that :func:`verify` and :func:`cost` take like a
    registered one.

    Parameters
    ----------
    files : path or list of paths
        Verilog (or SystemVerilog that Yosys and Verilator read) holding ``top`` and every
        module under it.
    top : str
        The module; its ports are read by Yosys (parameters at their defaults).
    golden : callable or str, optional
        The bit-exact model: ``golden(inputs) -> outputs``, dicts of NumPy arrays keyed by
        port name, one entry per vector, on the ports' integer codes; or its name,
        ``"package.module:function"`` (the current folder is searched too). Needed by
        :func:`verify`; :func:`cost` then also checks the gate-level netlist against it.
    clock : str, optional
        The clock input of a sequential module (rising edge); none: combinational.
    reset : str, optional
        Its active-high reset input (asserted until the first vector).
    latency : int, optional
        Clock cycles from an input vector to its outputs (default 1 with a clock, else 0).

    Returns
    -------
    VerilogUnit
        ``name`` is ``verilog:TOP``; ``ports``, ``latency``, ``verilog()``,
        ``stimulus(n, seed)`` (uniform codes per input port), ``golden(inputs)``.

    Raises
    ------
    QrtlError
        A missing file, a module Yosys cannot find or read, a golden model that cannot be
        imported, a clock or reset that is not a 1-bit input.
    """
    paths = [files] if isinstance(files, (str, Path)) else list(files)
    if not paths:
        raise QrtlError("no Verilog file given")
    sources = {}
    for i, path in enumerate(paths):
        path = Path(path)
        if not path.is_file():
            raise QrtlError(f"Verilog file {str(path)!r}: no such file")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise QrtlError(f"Verilog file {str(path)!r} cannot be read ({exc})") from None
        name = path.name if path.name not in sources else f"{i}_{path.name}"
        sources[name] = text
    golden_name = golden if isinstance(golden, str) else None
    fn = import_golden(golden) if isinstance(golden, str) else golden
    if fn is not None and not callable(fn):
        raise QrtlError(f"golden must be a function or 'package.module:function', got "
                        f"{type(fn).__name__}")
    return VerilogUnit(sources, top, module_ports(sources, top), golden=fn, clock=clock,
                       reset=reset, latency=latency, golden_name=golden_name)


def _as_unit(u) -> Unit:
    if isinstance(u, Unit):
        return u
    if isinstance(u, str):
        return unit(u)
    raise QrtlError(f"expected a unit (qrtl.unit(...)) or a unit name, got {type(u).__name__}")


def verify(unit: Unit, vectors: int = 100_000, seed: int = 0, *,
           stimulus: Optional[Mapping] = None, exhaustive: bool = False, jobs: int = 1,
           progress: Optional[Callable[[int, int], None]] = None) -> RunResult:
    """Verify a unit's RTL on Verilator against its golden model, bit for bit.

    Runs the unit's corner vectors, then every input when the input space is small enough
    (exhaustive), else ``vectors`` random vectors from ``seed``; or exactly the vectors of
    ``stimulus`` (input port -> array); or, with ``exhaustive=True``, every one of the
    ``2^B`` input vectors (``B``: the input ports' bits together, at most 34), generated
    inside the simulator.

    Parameters
    ----------
    unit : Unit
        From :func:`unit`.
    vectors : int
        Random vectors (1 .. 50,000,000) when the check cannot be exhaustive.
    seed : int
        Seed of the random vectors (>= 0).
    stimulus : dict, optional
        Input vectors to run instead (one array per input port, values that fit the ports).
    exhaustive : bool
        Every input vector of the configuration (vector ``i`` has its input ports as bit
        fields of ``i``, the first port in the least significant bits).
    jobs : int
        Simulator processes, each over a contiguous slice of the vectors.
    progress : callable, optional
        ``progress(done, total)``, called about twice a second with the vectors checked.

    Returns
    -------
    RunResult
        ``vectors``, ``mismatches``, ``first_mismatch``, ``vectors_per_s``, ``seconds``...
    """
    u = _as_unit(unit)
    if exhaustive:
        if stimulus is not None:
            raise QrtlError("give either stimulus or exhaustive=True, not both")
        return _exhaustive(u, jobs=jobs, progress=progress)
    if stimulus is not None:
        return _simulate(u, check_inputs(u, stimulus), jobs=jobs, progress=progress)
    return _verify(u, vectors=vectors, seed=seed, jobs=jobs, progress=progress)


def cost(unit: Unit, liberty: Optional[str] = None, stimulus: Union[str, Mapping] = "random",
         clock_ns: Optional[float] = None, *, vectors: int = DEFAULT_VECTORS,
         seed: int = 0, wire_load: str = "default",
         stimulus_label: Optional[str] = None) -> CostResult:
    """Area, delay and energy per operation of a unit, from synthesis and measured activity.

    Parameters
    ----------
    unit : Unit
        From :func:`unit`.
    liberty : str, optional
        A Liberty file (plain or gzipped); default: the built-in SKY130 HD subset.
    stimulus : str or dict
        ``random`` (uniform codes from ``seed``) or a named stream of the unit (e.g. a
        network's real operands, ``int8``); or input port -> array, one entry per operation
        in order (repeated or cut to ``vectors``), named ``stimulus_label`` in the result.
    clock_ns : float, optional
        A clock target: the unit gets the fewest ``pipeline`` stages (at least its own)
        whose clock period meets it on our static timing (a generic ``pipeline`` is
        retimed into the logic), then is costed at that clock. Default: no target, the
        configuration as given, leakage and power at ``DEFAULT_CLOCK_NS`` (10 ns). A
        foreign module (:func:`unit_from_verilog`) is costed as written, at that clock.
    vectors : int
        Vectors simulated on the gate-level netlist.
    seed : int
        Seed of the random stimulus.
    wire_load : str
        Wire-load model added to every net's capacitance in timing and energy: the
        library's ``default_wire_load`` (``"default"``), ``"none"``, or a model's name.

    Returns
    -------
    CostResult
        ``area_um2``, ``delay_ps``, ``energy_pj_per_op``, ``cells``, ... and ``as_dict()``.
    """
    u = _as_unit(unit)
    if isinstance(stimulus, Mapping):
        stimulus = check_inputs(u, stimulus)
    return cost_unit(u, liberty=liberty, stimulus=stimulus, vectors=vectors,
                     clock_ns=DEFAULT_CLOCK_NS if clock_ns is None else clock_ns, seed=seed,
                     clock_target=clock_ns is not None and not isinstance(u, VerilogUnit),
                     wire_load=wire_load, stimulus_label=stimulus_label)


def sweep(unit: str, params: dict, *, zip: bool = False, liberty: Optional[str] = None,
          clock_ns: Optional[float] = None, stimulus: str = "random", verify: int = 0,
          vectors: int = DEFAULT_VECTORS, seed: int = 0, wire_load: str = "default",
          jobs: Optional[int] = None, dask: Optional[str] = None, progress: bool = True,
          output=None):
    """Cost (and optionally verify) every point of a grid of a unit's parameters.

    Parameters
    ----------
    unit : str
        A name from :func:`units`.
    params : dict
        Parameter name -> its values: a list (``[16, 32, 64]``) or text in the command
        line's syntax (``"16..4096"``: doubling; ``"8..48:8"``: linear steps;
        ``"0,1"``; see :func:`qrtl.golden.params.parse_values`). Parameters not named take
        their defaults.
    zip : bool
        Pair the lists element-wise (equal lengths) instead of their Cartesian product.
    liberty, clock_ns, stimulus, vectors, seed, wire_load
        As for :func:`cost`, the same for every point.
    verify : int
        Also verify every point on Verilator with this many random vectors (0: no).
    jobs : int, optional
        Local processes (default: every core).
    dask : str, optional
        Address of a running Dask scheduler (default: ``$DASK_SCHEDULER_ADDRESS``, else
        local): every point not in the local cache is one task on its workers.
    progress : bool
        A progress bar on stderr.
    output : path, optional
        Also write ``sweep.csv``, ``exponents.csv``, ``scaling.png/svg`` and
        ``pareto.png/svg`` into this folder (``df.attrs["files"]`` lists them).

    Returns
    -------
    pandas.DataFrame
        One row per point, in sweep order: ``unit``, every parameter, then area, cells,
        delay, energy per op (with its breakdown), zero-delay energy, glitch %, power...
        (:data:`qrtl.reports.sweep.FIGURES`; ``verify_vectors``, ``verify_mismatches``
        with ``verify``). ``df.attrs``: ``points``, ``computed`` (not from the cache),
        ``seconds``, ``engine``.

    Raises
    ------
    QrtlError
        An unknown unit, parameter or stimulus, a value out of range, ``zip`` with
        lists of unequal length, an unreachable Dask scheduler; before any work.
    """
    from qrtl.reports.sweep import SweepSettings, run_sweep, write_sweep
    settings = SweepSettings(liberty=None if liberty is None else str(liberty),
                             stimulus=stimulus, vectors=vectors, seed=seed, clock_ns=clock_ns,
                             wire_load=wire_load, verify=verify)
    df = run_sweep(unit, params, zip=zip, settings=settings, verify=_verify, jobs=jobs,
                   dask=dask, progress=progress)
    if output is not None:
        df.attrs["files"] = [str(p) for p in write_sweep(df, output)]
    return df


def report(output="build/reports", *, liberty: Optional[str] = None, jobs: int = 1,
           images: Optional[int] = None, verify_vectors: int = 1_000_000,
           progress: bool = True, seeds: int = 10) -> list[Path]:
    """Generate, verify and cost every unit, run the networks, and write the report.

    Parameters
    ----------
    output : path
        Output folder (created if needed).
    liberty : str, optional
        Liberty file; default: the built-in library.
    jobs : int
        Parallel processes.
    images : int, optional
        Test images for the networks (default: the whole test split).
    verify_vectors : int
        Random vectors per unit where verification cannot be exhaustive.
    progress : bool
        Progress bars on stderr.
    seeds : int
        Seeds of the seed study (the networks of the paper claims retrained per seed).

    Returns
    -------
    list of Path
        Every file written (``report.md`` last).
    """
    from qrtl.reports.report import run_report
    from qrtl.sim.net import replay, replay_qonnx
    return run_report(Path(output), verify=_verify, replay=replay, liberty=liberty, jobs=jobs,
                      images=images, verify_vectors=verify_vectors, progress=progress,
                      seeds=seeds, replay_qonnx=replay_qonnx)
