"""Units made of foreign Verilog: a module qrtl did not generate, verified and costed like
a registered unit.

A :class:`VerilogUnit` is a :class:`~qrtl.hw.registry.Unit` whose Verilog is the user's
text, whose ports were read by Yosys (``qrtl.unit_from_verilog`` in the API reads them) and
whose golden model, if any, is the user's NumPy function: a dict of input port arrays in, a
dict of output port arrays out, on the ports' integer codes (``int64`` for signed ports,
``uint64`` for unsigned ones, up to 64 bits; ``uint8`` byte matrices above). Its random
stimulus is uniform over every input port's codes; every input, when they add up to at most
20 bits.

A sequential module names its clock (rising edge) and, optionally, an active-high reset
(held until the first vector). qrtl's harness and cost flow drive ``clk`` and ``rst``, so
when the names differ, :meth:`VerilogUnit.verilog` adds a thin wrapper module that only
renames them (synthesis flattens it away). Each input vector must give its outputs
``latency`` cycles later, independently of the other vectors (a pipeline, not an
accumulator).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Callable, Mapping, Optional

import numpy as np

from qrtl.golden.bits import every_input, random_codes
from qrtl.golden.errors import QrtlError

from .registry import Port, Unit, UnitSpec

__all__ = ["VerilogUnit", "import_golden", "check_inputs", "load_stimulus"]

#: Largest input space (in bits) a foreign unit's verification covers exhaustively.
EXHAUSTIVE_BITS = 20


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def import_golden(ref: str) -> Callable:
    """The function named ``package.module:function`` (the current folder is searched too,
    as ``python -m`` does); a one-line :class:`QrtlError` if it cannot be had."""
    module, sep, attr = str(ref).partition(":")
    if not sep or not module or not attr:
        raise QrtlError(f"golden {ref!r}: expected package.module:function")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        obj = importlib.import_module(module)
    except Exception as exc:
        raise QrtlError(f"golden {ref!r}: cannot import {module} ({_one_line(exc)})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise QrtlError(f"golden {ref!r}: {module} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise QrtlError(f"golden {ref!r} is a {type(obj).__name__}, not a function")
    return obj


def _range(port: Port) -> tuple[int, int]:
    """Values a port accepts from the user: the signed or the unsigned reading of its bits
    (Verilog ports are often declared unsigned for signed data, and raw codes are often
    stored unsigned); they are then cast to the port's own reading."""
    return -(1 << (port.width - 1)), (1 << port.width) - 1


def _cast(port: Port, values, what: str, n: Optional[int]) -> np.ndarray:
    """``values`` checked against ``port`` (integers, in range, ``n`` of them) and cast to
    the registry's representation of that port."""
    a = np.asarray(values)
    if port.width > 64:
        from qrtl.golden.bits import nbytes
        if a.dtype != np.uint8 or a.ndim != 2 or a.shape[1] != nbytes(port.width):
            raise QrtlError(f"{what} {port.name}: a {port.width}-bit port takes a uint8 matrix "
                            f"(vectors, {nbytes(port.width)}) of little-endian bytes, got "
                            f"{a.dtype} {a.shape}")
    else:
        if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
            raise QrtlError(f"{what} {port.name}: expected a 1-D integer array, got {a.dtype} "
                            f"of shape {a.shape}")
        lo, hi = _range(port)
        if a.size and (int(a.min()) < lo or int(a.max()) > hi):
            bad = int(a.min()) if int(a.min()) < lo else int(a.max())
            raise QrtlError(f"{what} {port.name}: value {bad} does not fit {port.width} bits "
                            f"(allowed {lo}..{hi})")
        from qrtl.golden.bits import wrap
        a = wrap(a.astype(np.int64) if a.dtype != np.uint64 else a, port.width, port.signed)
    if n is not None and len(a) != n:
        raise QrtlError(f"{what} {port.name} has {len(a)} values, expected {n}")
    return a


def check_inputs(inst: Unit, arrays: Mapping, what: str = "stimulus") -> dict:
    """Input vectors given by the user (one array per input port of ``inst``, equal
    nonzero lengths, values that fit the ports), cast to the registry's representation."""
    want = [p.name for p in inst.inputs]
    missing = [n for n in want if n not in arrays]
    extra = sorted(set(arrays) - set(want))
    if missing or extra:
        raise QrtlError(f"{what} for {inst.name}: " + "; ".join(
            ([f"no array for input port(s) {', '.join(missing)}"] if missing else [])
            + ([f"unknown port(s) {', '.join(extra)}"] if extra else []))
            + f" (inputs: {', '.join(want)})")
    n = len(np.asarray(arrays[want[0]])) if want else 0
    if n == 0:
        raise QrtlError(f"{what} for {inst.name} holds no vectors")
    return {p.name: _cast(p, arrays[p.name], f"{what} port", n) for p in inst.inputs}


def load_stimulus(path, inst: Unit) -> dict:
    """The input vectors in ``path`` (a ``.npz`` with one array per input port)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise QrtlError(f"stimulus {str(path)!r}: no such file") from None
    except Exception as exc:
        raise QrtlError(f"stimulus {str(path)!r} is not a NumPy .npz file ({_one_line(exc)})") from None
    return check_inputs(inst, arrays, f"stimulus {os.path.basename(str(path))}")


class VerilogUnit(Unit):
    """A foreign Verilog module as a unit (made by ``qrtl.unit_from_verilog``).

    Parameters
    ----------
    sources : dict
        File name -> Verilog text (every module the top instantiates).
    top : str
        The module to verify and cost.
    ports : list of dict
        Its ports (``name``, ``direction``, ``width``, ``signed``), as Yosys read them.
    golden : callable, optional
        ``golden(inputs) -> outputs`` on port arrays (none: the unit can be costed, not
        verified).
    clock, reset : str, optional
        Names of its clock input (rising edge) and active-high reset input.
    latency : int, optional
        Clock cycles from inputs to outputs (default 1 with a clock, else 0).
    """

    def __init__(self, sources: Mapping[str, str], top: str, ports: list, *,
                 golden: Optional[Callable] = None, clock: Optional[str] = None,
                 reset: Optional[str] = None, latency: Optional[int] = None,
                 golden_name: Optional[str] = None):
        by_name = {p["name"]: p for p in ports}
        for role, name in (("clock", clock), ("reset", reset)):
            if name is None:
                continue
            p = by_name.get(name)
            if p is None or p["direction"] != "in" or p["width"] != 1:
                raise QrtlError(f"{role} {name!r}: module {top} has no 1-bit input of that name "
                                f"(inputs: {', '.join(q['name'] for q in ports if q['direction'] == 'in')})")
        if reset is not None and clock is None:
            raise QrtlError(f"reset {reset!r} given without a clock")
        if latency is None:
            latency = 1 if clock else 0
        if not isinstance(latency, int) or not 0 <= latency <= 64:
            raise QrtlError(f"latency={latency!r} is out of range (allowed 0..64)")
        if clock is None and latency:
            raise QrtlError(f"latency={latency} needs a clock (a module without one is combinational)")
        data = [p for p in ports if p["name"] not in (clock, reset)]
        for p in data:
            if p["direction"] not in ("in", "out"):
                raise QrtlError(f"port {p['name']} of {top} is {p['direction']}: only inputs "
                                f"and outputs are supported")
            if p["name"] in ("clk", "rst"):
                raise QrtlError(f"input {p['name']!r} of {top} must be named as the clock or "
                                f"reset (--clock/--reset), or renamed: qrtl drives clk and rst")
        if not any(p["direction"] == "out" for p in data):
            raise QrtlError(f"module {top} has no output port")
        self.top, self.sources = top, dict(sources)
        self.clock, self.reset, self._latency = clock, reset, latency
        self._ports = [Port(p["name"], p["direction"], p["width"], p["signed"]) for p in data]
        self._all_ports = list(ports)
        self._golden_fn = golden
        self.golden_name = golden_name or (getattr(golden, "__qualname__", None) if golden else None)
        spec = UnitSpec(
            name=f"verilog:{top}", summary=f"foreign Verilog module {top}", params=(),
            build=None, golden=None if golden is None else self._call_golden,
            stimulus=self._random, exhaustive=self._every_input, source="verilog")
        super().__init__(spec, {}, None)

    # --- the contract -------------------------------------------------------------------
    @property
    def module(self) -> str:
        """The module qrtl instantiates: ``top``, or its wrapper when the clock or reset
        are not named ``clk`` / ``rst``."""
        return f"qrtl_wrap_{self.top}" if self._wrapped else self.top

    @property
    def _wrapped(self) -> bool:
        return self.clock is not None and (self.clock, self.reset) != ("clk", "rst")

    @property
    def latency(self) -> int:
        return self._latency

    @property
    def clocked(self) -> bool:
        return self.clock is not None

    @property
    def ports(self) -> list[Port]:
        """Data ports in declaration order (clock and reset not listed)."""
        return list(self._ports)

    def describe(self) -> dict:
        return {"unit": self.name, "source": "verilog", "params": {}, "module": self.module,
                "top": self.top, "files": list(self.sources), "latency": self.latency,
                "clock": self.clock, "reset": self.reset, "golden": self.golden_name,
                "ports": [p.as_dict() for p in self.ports]}

    def contract(self) -> dict:
        """What the testbench needs to rebuild this unit in the simulator's process (ports
        and timing; no sources, no golden model: the expected outputs travel as data)."""
        return {"top": self.top, "ports": self._all_ports, "clock": self.clock,
                "reset": self.reset, "latency": self.latency}

    @classmethod
    def from_contract(cls, d: Mapping) -> "VerilogUnit":
        return cls({}, d["top"], d["ports"], clock=d["clock"], reset=d["reset"],
                   latency=d["latency"])

    # --- Verilog ------------------------------------------------------------------------
    def verilog(self) -> str:
        """The user's Verilog, plus the clock/reset renaming wrapper when needed."""
        text = "\n".join(t if t.endswith("\n") else t + "\n" for t in self.sources.values())
        return text + (self._wrapper() if self._wrapped else "")

    def _wrapper(self) -> str:
        decls = ["input wire clk", "input wire rst"]
        conns = [f".{self.clock}(clk)"] + ([f".{self.reset}(rst)"] if self.reset else [])
        for p in self.ports:
            rng = f"[{p.width - 1}:0] " if p.width > 1 else ""
            kind = "input wire" if p.direction == "in" else "output wire"
            decls.append(f"{kind} {'signed ' if p.signed else ''}{rng}{p.name}")
            conns.append(f".{p.name}({p.name})")
        return (f"// qrtl: {self.top} with its clock and reset named clk and rst\n"
                f"module {self.module} (\n  " + ",\n  ".join(decls) + "\n);\n"
                f"  {self.top} u ({', '.join(conns)});\nendmodule\n")

    # --- stimulus and golden model ------------------------------------------------------
    def _random(self, params, n: int, rng) -> dict:
        return {p.name: random_codes(rng, n, p.width, p.signed) for p in self.inputs}

    def _every_input(self, params) -> Optional[dict]:
        if any(p.width > 64 for p in self.inputs):
            return None
        return every_input([(p.name, p.width, p.signed) for p in self.inputs], EXHAUSTIVE_BITS)

    def _call_golden(self, params, inputs) -> dict:
        n = len(np.asarray(next(iter(inputs.values())))) if inputs else 0
        what = f"golden {self.golden_name}"
        try:
            out = self._golden_fn({k: np.asarray(v) for k, v in inputs.items()})
        except QrtlError:
            raise
        except Exception as exc:
            raise QrtlError(f"{what} failed: {_one_line(exc)}") from None
        if not isinstance(out, Mapping):
            raise QrtlError(f"{what} returned {type(out).__name__}, not a dict of output arrays")
        missing = [p.name for p in self.outputs if p.name not in out]
        if missing:
            raise QrtlError(f"{what} returned no array for output port(s) {', '.join(missing)} "
                            f"(it gave {', '.join(map(str, out)) or 'none'})")
        return {p.name: _cast(p, out[p.name], f"{what} output", n) for p in self.outputs}

    def golden(self, inputs) -> dict:
        """The user's golden model (checked: every output port, ``len(inputs)`` values each,
        values that fit the ports)."""
        if self._golden_fn is None:
            raise QrtlError(f"{self.name} has no golden model (give golden=package.module:function)")
        return self._call_golden({}, inputs)
