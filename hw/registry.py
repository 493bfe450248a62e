"""The one registry of units.

Every unit is described once, by a :class:`UnitSpec`: its parameters, its Amaranth
constructor, its golden model, its stimulus. The CLI, the testbenches, the benchmarks, the
cost model and the reports all iterate over :data:`UNITS`. Adding a unit means one class in
``hw/``, one function in ``golden/`` and one :func:`register` call in a ``hw/reg_*.py``
module imported by ``hw/units.py``, which also offers the look-ups (:func:`~qrtl.hw.units.configure`,
:func:`~qrtl.hw.units.get_unit`, :func:`~qrtl.hw.units.all_units`) that fill the registry first.

A lower layer (``qrtl.golden``) never imports this module: the network operand streams it
defines are registered here (:func:`register_stream`) by ``hw/units.py``.

Port values travel as NumPy arrays, one entry per vector: ``int64`` (signed ports) or
``uint64`` (unsigned) for ports up to 64 bits, and ``uint8`` matrices of shape
``(vectors, ceil(width / 8))`` holding little-endian bytes for wider ports.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
from amaranth.hdl import Shape

from qrtl.golden.errors import QrtlError
from qrtl.golden.params import IntParam, Param, resolve

from .pipeline import MAX_STAGES, OutputRegisters

__all__ = ["Port", "UnitSpec", "Unit", "UNITS", "STREAMS", "register", "register_stream",
           "make_unit"]

Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Port:
    """One port of a unit's Verilog module (clock and reset are not listed)."""

    name: str
    direction: str  # "in" | "out"
    width: int
    signed: bool

    def as_dict(self) -> dict:
        return {"name": self.name, "direction": self.direction, "width": self.width,
                "signed": self.signed}


@dataclass(frozen=True)
class UnitSpec:
    """Everything the suite knows about one unit.

    Attributes
    ----------
    name : str
        Registry key and CLI name.
    summary : str
        One line for ``qrtl list``.
    params : sequence of Param
        Declared parameters (defaults, ranges, choices).
    build : callable(params) -> amaranth Component
        The hardware. The component's signature gives the ports; its ``latency`` property
        (clock cycles from inputs to outputs, 0 = combinational) gives the latency.
    golden : callable(params, inputs) -> outputs
        The bit-exact NumPy model (dict of port arrays in, dict of port arrays out).
    stimulus : callable(params, n, rng) -> inputs
        ``n`` random vectors (uniform over codes unless documented otherwise).
    corners : callable(params) -> inputs, optional
        Edge vectors every verification run includes.
    exhaustive : callable(params) -> inputs or None, optional
        Every input, when the input space is small enough (else None).
    check : callable(params), optional
        Cross-parameter validation; raises :class:`QrtlError`.
    stream : bool
        True for stateful units whose outputs are compared cycle by cycle, in order
        (e.g. accumulators); False for units that map each input vector to one output.
    retime : bool
        Set by :func:`register`: the unit's ``pipeline`` parameter is the generic one
        (:mod:`qrtl.hw.pipeline`: output register ranks that costing moves into the logic
        of a combinational unit). False when the unit places its own stages.
    source : str
        Where the unit comes from: ``qrtl`` for the built-in units, the distribution name of
        a plug-in package (set when its ``qrtl.units`` entry point is loaded), ``verilog``
        for a foreign module (:mod:`qrtl.hw.foreign`).
    """

    name: str
    summary: str
    params: Sequence[Param]
    build: Callable
    golden: Callable
    stimulus: Callable
    corners: Optional[Callable] = None
    exhaustive: Optional[Callable] = None
    check: Optional[Callable] = None
    stream: bool = False
    retime: bool = False
    source: str = "qrtl"

    def resolve(self, given: Mapping[str, object] | None = None) -> dict:
        """Resolved parameter dict (defaults filled in, everything validated)."""
        p = resolve(f"unit {self.name}", self.params, given or {})
        if self.check is not None:
            self.check(p)
        return p

    def defaults(self) -> dict:
        return self.resolve({})


UNITS: dict[str, UnitSpec] = {}

#: Named operand streams per unit, beyond ``random`` (e.g. a network's real activations):
#: ``STREAMS[unit][name] = (fn(params, n) -> inputs, one-line description)``. Order matters
#: (switching activity), so a stream is in the order a real datapath sees it.
STREAMS: dict[str, dict[str, tuple[Callable, str]]] = {}


def register(spec: UnitSpec) -> UnitSpec:
    """Add a unit to the registry (names are unique).

    A unit without a ``pipeline`` parameter of its own gets the generic one: ``pipeline=K``
    puts ``K`` register ranks on its outputs (:class:`qrtl.hw.pipeline.OutputRegisters`),
    and its spec is marked ``retime`` (synthesis may move them into the logic).
    """
    if spec.name in UNITS:
        raise ValueError(f"unit {spec.name} registered twice")
    if not any(p.name == "pipeline" for p in spec.params):
        build = spec.build
        spec = replace(spec, retime=True,  # pipeline=0: the unit itself, Verilog unchanged
                       build=lambda p: OutputRegisters(build(p), p["pipeline"]) if p["pipeline"] else build(p),
                       params=tuple(spec.params) + (IntParam(
                           "pipeline", 0, 0, MAX_STAGES,
                           "output register ranks (retimed into the logic when costed; "
                           "0 = as designed)"),))
    UNITS[spec.name] = spec
    return spec


def register_stream(unit: str, name: str, fn: Callable, doc: str) -> None:
    """Make ``fn(params, n) -> inputs`` available as stimulus ``name`` of ``unit``."""
    STREAMS.setdefault(unit, {})[name] = (fn, doc)


def _module_name(unit: str, params: Mapping[str, object]) -> str:
    parts = [unit] + [f"{k}{v}" for k, v in params.items()]
    name = re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts))
    if len(name) > 96:  # keep identifiers readable; the hash keeps them unique
        digest = hashlib.sha1(json.dumps(dict(params), sort_keys=True).encode()).hexdigest()[:10]
        name = f"{unit}_{digest}"
    return name


@dataclass
class Unit:
    """One resolved configuration of a unit: its parameters, hardware contract, Verilog,
    stimulus and golden model.

    Made by :func:`qrtl.hw.units.configure` (``qrtl.unit(name, **params)`` in the API), which
    validates the parameters. A ``Unit`` only describes and generates: verification
    (``qrtl.verify``) and costing (``qrtl.cost``) take one as their argument.

    Attributes
    ----------
    spec : UnitSpec
        The registry entry.
    params : dict
        Every declared parameter, defaults filled in.
    component : amaranth.lib.wiring.Component
        The hardware of this configuration (for its signature and latency).
    """

    spec: UnitSpec
    params: dict
    component: object = field(repr=False)

    @property
    def name(self) -> str:
        """The unit's registry name."""
        return self.spec.name

    @property
    def module(self) -> str:
        """Name of the generated Verilog module (unique per configuration)."""
        return _module_name(self.spec.name, self.params)

    @property
    def latency(self) -> int:
        """Clock cycles from inputs to outputs (0: combinational)."""
        return int(getattr(self.component, "latency", 0))

    @property
    def clocked(self) -> bool:
        return self.latency > 0 or bool(getattr(self.component, "clocked", False))

    @property
    def ports(self) -> list[Port]:
        """The Verilog ports in signature order (clock and reset not listed)."""
        out = []
        for pname, member in self.component.signature.members.items():
            shape = Shape.cast(member.shape)
            direction = "in" if member.flow.name == "In" else "out"
            out.append(Port(pname, direction, shape.width, shape.signed))
        return out

    def port(self, name: str) -> Port:
        for p in self.ports:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def inputs(self) -> list[Port]:
        return [p for p in self.ports if p.direction == "in"]

    @property
    def outputs(self) -> list[Port]:
        return [p for p in self.ports if p.direction == "out"]

    def describe(self) -> dict:
        """The public contract: what ``qrtl describe --json`` prints."""
        return {
            "unit": self.spec.name,
            "source": self.spec.source,
            "params": dict(self.params),
            "module": self.module,
            "latency": self.latency,
            "clock": "clk" if self.clocked else None,
            "reset": "rst" if self.clocked else None,
            "ports": [p.as_dict() for p in self.ports],
        }

    def verilog(self) -> str:
        """Verilog text of this configuration (cached per configuration)."""
        return _verilog(self.spec.name, json.dumps(self.params, sort_keys=True))

    # model and stimulus, bound to this configuration
    def golden(self, inputs: Arrays) -> dict:
        """The bit-exact model: input port -> array in, output port -> array out."""
        return self.spec.golden(self.params, inputs)

    def stimulus(self, n: int, seed: int | np.random.Generator = 0) -> dict:
        """``n`` random input vectors (input port -> array), from ``seed`` (an integer or
        a NumPy ``Generator``)."""
        n = operator.index(n)
        if n < 1:
            raise QrtlError(f"the number of stimulus vectors must be >= 1 (got {n})")
        return self.spec.stimulus(self.params, n, np.random.default_rng(seed))

    def corners(self) -> dict | None:
        """Edge vectors every verification includes (None if the unit has none)."""
        return self.spec.corners(self.params) if self.spec.corners else None

    def exhaustive(self) -> dict | None:
        """Every input vector, when the input space is small enough; else None."""
        return self.spec.exhaustive(self.params) if self.spec.exhaustive else None


@lru_cache(maxsize=64)
def _unit(name: str, params_json: str) -> Unit:
    """The configuration of registered unit ``name`` with resolved ``params_json``."""
    spec = UNITS[name]
    params = {p.name: json.loads(params_json)[p.name] for p in spec.params}
    component = spec.build(params)
    # This object only answers contract questions (ports, latency); the Verilog is made
    # from a fresh one, so Amaranth's "created but never used" warning does not apply.
    for c in (component, getattr(component, "inner", None)):
        if c is not None:
            c._MustUse__silence = True
    return Unit(spec, params, component)


def make_unit(spec: UnitSpec, given: Mapping[str, object] | None = None) -> Unit:
    """Resolve ``given`` against ``spec`` (one-line :class:`QrtlError` if invalid) and build
    that configuration (cached per configuration)."""
    params = spec.resolve(given)
    return _unit(spec.name, json.dumps(params, sort_keys=True))


@lru_cache(maxsize=64)
def _verilog(name: str, params_json: str) -> str:
    from amaranth.back import verilog
    inst = _unit(name, params_json)
    # Build a fresh component: Amaranth elaborates a component once per conversion.
    comp = inst.spec.build(inst.params)
    return verilog.convert(comp, name=inst.module, emit_src=False)
