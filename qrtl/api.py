"""The public Python API (re-exported by :mod:`qrtl`).

A :class:`Unit` is one validated configuration of a registered unit: it describes and
generates (ports, latency, Verilog, stimulus, golden model). :func:`verify` and :func:`cost`
take a unit and return dataclasses whose ``as_dict()`` is exactly what the command line's
``--json`` prints. Errors are :class:`QrtlError` with one line in the words of the domain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from qrtl.golden.errors import QrtlError
from qrtl.hw.registry import Unit
from qrtl.hw.units import all_units, configure
from qrtl.reports.cost import DEFAULT_CLOCK_NS, DEFAULT_VECTORS, CostResult, cost_unit
from qrtl.sim.net import Replay
from qrtl.sim.runner import RunResult
from qrtl.sim.runner import verify as _verify

__all__ = ["QrtlError", "Unit", "RunResult", "CostResult", "Replay", "units", "unit", "verify",
           "cost", "report"]


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


def _as_unit(u) -> Unit:
    if isinstance(u, Unit):
        return u
    if isinstance(u, str):
        return unit(u)
    raise QrtlError(f"expected a unit (qrtl.unit(...)) or a unit name, got {type(u).__name__}")


def verify(unit: Unit, vectors: int = 100_000, seed: int = 0) -> RunResult:
    """Verify a unit's RTL on Verilator against its golden model, bit for bit.

    Runs the unit's corner vectors, then every input when the input space is small enough
    (exhaustive), else ``vectors`` random vectors from ``seed``.

    Parameters
    ----------
    unit : Unit
        From :func:`unit`.
    vectors : int
        Random vectors (1 .. 50,000,000) when the check cannot be exhaustive.
    seed : int
        Seed of the random vectors (>= 0).

    Returns
    -------
    RunResult
        ``vectors``, ``mismatches``, ``first_mismatch``, ``vectors_per_s``, ``seconds``...
    """
    return _verify(_as_unit(unit), vectors=vectors, seed=seed)


def cost(unit: Unit, liberty: Optional[str] = None, stimulus: str = "random",
         clock_ns: Optional[float] = None, *, vectors: int = DEFAULT_VECTORS,
         seed: int = 0, wire_load: str = "default") -> CostResult:
    """Area, delay and energy per operation of a unit, from synthesis and measured activity.

    Parameters
    ----------
    unit : Unit
        From :func:`unit`.
    liberty : str, optional
        A Liberty file (plain or gzipped); default: the built-in SKY130 HD subset.
    stimulus : str
        ``random`` (uniform codes from ``seed``) or a named stream of the unit (e.g. a
        network's real operands, ``int8``).
    clock_ns : float, optional
        A clock target: the unit gets the fewest ``pipeline`` stages (at least its own)
        whose clock period meets it on our static timing (a generic ``pipeline`` is
        retimed into the logic), then is costed at that clock. Default: no target, the
        configuration as given, leakage and power at ``DEFAULT_CLOCK_NS`` (10 ns).
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
    return cost_unit(_as_unit(unit), liberty=liberty, stimulus=stimulus, vectors=vectors,
                     clock_ns=DEFAULT_CLOCK_NS if clock_ns is None else clock_ns, seed=seed,
                     clock_target=clock_ns is not None, wire_load=wire_load)


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
