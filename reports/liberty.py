"""Liberty (``.lib``, plain or gzip) standard-cell libraries: what the cost model needs.

:func:`load_library` parses a Liberty file into a :class:`Library`: per cell its area,
leakage, pins (direction, capacitance, Boolean ``function``), flip-flop description
(``ff`` group), timing arcs (NLDM delay / transition / setup tables) and ``internal_power``
tables. Units are normalised on load, whatever the file declares:

=================  ==========================================================
time               ns
capacitance        pF
leakage power      nW
internal energy    pJ   (Liberty: capacitive_load_unit x voltage_unit^2)
=================  ==========================================================

Cells a real synthesis flow would not use are marked ``dont_use`` (see
:data:`DONT_USE_PATTERNS` and :func:`excluded_reason`); :meth:`Library.write_filtered`
writes the library without them, which is the file handed to Yosys and ABC.

Parsed libraries are cached (``build/cache/liberty/``) keyed on the file's SHA-256.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import os
import re
import zlib
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Optional

import numpy as np

from qrtl.golden.cache import Cache
from qrtl.golden.errors import QrtlError

__all__ = ["WireLoad", "with_wire_load", "Table", "PowerArc", "TimingArc", "Pin", "FlipFlop", "Cell", "Library",
           "load_library", "parse_liberty", "DONT_USE_PATTERNS", "excluded_reason",
           "default_library_path", "sky130_path", "parse_function", "function_to_python"]

#: Name patterns of cells a synthesis flow does not map logic onto: physical-only cells
#: (tap, fill, decap, diode, tie), clock-tree and delay cells, probes, low-power/isolation
#: and level-shifter cells, scan flip-flops and spare-cell macros. Structural exclusions
#: (latches, tri-states, integrated clock gates, ``dont_use : true``, no area, no
#: output function) are applied as well, so the patterns also serve libraries with other
#: naming schemes.
DONT_USE_PATTERNS = ("*lpflow*", "*probe*", "*tap*", "*fill*", "*decap*", "*diode*", "*conb*",
                     "*dlygate*", "*dlymetal*", "*clkdly*", "*clkbuf*", "*clkinv*",
                     "*sparecell*", "*bleeder*", "*sdf*", "*sedf*", "*scan*", "*antenna*",
                     "*tie*")

_TOKEN = re.compile(r'/\*.*?\*/|\\\r?\n|"(?:[^"\\]|\\.)*"|[{}();:,]|[^\s{}();:,"]+', re.S)


@dataclass
class _Group:
    kind: str
    args: list
    attrs: dict = field(default_factory=dict)     # simple attributes: name -> str
    complex: dict = field(default_factory=dict)   # complex attributes: name -> [args]
    groups: list = field(default_factory=list)
    span: tuple = (0, 0)                          # character span in the source text

    def sub(self, kind: str) -> list:
        return [g for g in self.groups if g.kind == kind]


def _unquote(tok: str) -> str:
    return tok[1:-1] if len(tok) >= 2 and tok[0] == '"' and tok[-1] == '"' else tok


def parse_liberty(text: str) -> _Group:
    """Parse Liberty text into a tree of groups (the top one is ``library``)."""
    toks = [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text)
            if not m.group(0).startswith("/*") and not m.group(0).startswith("\\")]
    n = len(toks)
    i = 0

    def parse_body(group: _Group) -> int:
        nonlocal i
        while i < n:
            tok, start, _ = toks[i]
            if tok == "}":
                i += 1
                return toks[i - 1][2]
            if tok == ";":
                i += 1
                continue
            name = tok
            nxt = toks[i + 1][0] if i + 1 < n else ""
            if nxt == ":":
                i += 2
                vals = []
                while i < n and toks[i][0] not in (";", "}"):
                    vals.append(_unquote(toks[i][0]))
                    i += 1
                group.attrs[name] = " ".join(vals)
            elif nxt == "(":
                i += 2
                args = []
                while i < n and toks[i][0] != ")":
                    if toks[i][0] != ",":
                        args.append(_unquote(toks[i][0]))
                    i += 1
                i += 1  # ')'
                if i < n and toks[i][0] == "{":
                    i += 1
                    sub = _Group(name, args)
                    end = parse_body(sub)
                    sub.span = (start, end)
                    group.groups.append(sub)
                else:
                    group.complex.setdefault(name, []).append(args)
            else:
                raise QrtlError(f"Liberty syntax error near {text[start:start + 40]!r}")
        return len(text)

    root = _Group("root", [])
    parse_body(root)
    libs = root.sub("library")
    if not libs:
        raise QrtlError("not a Liberty file: no library (...) { } group")
    return libs[0]


# --- tables --------------------------------------------------------------------------

_VAR = {"input_net_transition": "slew", "input_transition_time": "slew",
        "constrained_pin_transition": "slew", "related_pin_transition": "rel_slew",
        "total_output_net_capacitance": "load", "related_out_total_output_net_capacitance": "load"}


@dataclass
class Table:
    """A Liberty look-up table ``values[i, j]`` over ``index_1 x index_2``.

    ``variables`` names each axis (``slew`` in ns, ``load`` in pF, ``rel_slew`` in ns).
    :meth:`at` interpolates linearly along each axis (bilinear in 2-D) and extrapolates
    linearly beyond the table, as static timing tools do.
    """

    variables: tuple
    index: tuple          # one float array per axis
    values: np.ndarray    # shape (len(index_1), len(index_2)) or (len(index_1),) or ()

    def at(self, slew: float = 0.0, load: float = 0.0, rel_slew: Optional[float] = None) -> float:
        """Table value at the given input slew (ns) and output load (pF)."""
        point = {"slew": slew, "load": load, "rel_slew": slew if rel_slew is None else rel_slew}
        vals = self.values
        if vals.ndim == 0:
            return float(vals)
        coords = [point.get(v, 0.0) for v in self.variables]
        return float(_interp(vals, list(self.index), coords))


def _interp(vals: np.ndarray, index: list, coords: list) -> float:
    """Multilinear interpolation/extrapolation of ``vals`` at ``coords``."""
    if not index:
        return float(vals)
    idx, x = index[0], coords[0]
    if len(idx) == 1:
        return _interp(vals[0], index[1:], coords[1:])
    k = int(np.clip(np.searchsorted(idx, x) - 1, 0, len(idx) - 2))
    x0, x1 = idx[k], idx[k + 1]
    t = (x - x0) / (x1 - x0) if x1 != x0 else 0.0
    v0 = _interp(vals[k], index[1:], coords[1:])
    v1 = _interp(vals[k + 1], index[1:], coords[1:])
    return v0 + t * (v1 - v0)


def _floats(s: str) -> np.ndarray:
    return np.array([float(v) for v in s.replace(",", " ").split()], dtype=float)


@dataclass
class PowerArc:
    """``internal_power`` of a pin: energy (pJ) per rising / falling transition."""

    related_pin: Optional[str]
    rise: Optional[Table]
    fall: Optional[Table]
    when: Optional[str] = None


@dataclass
class TimingArc:
    """One ``timing`` group of a pin (delays and transitions in ns)."""

    related_pin: str
    timing_type: str
    cell_rise: Optional[Table] = None
    cell_fall: Optional[Table] = None
    rise_transition: Optional[Table] = None
    fall_transition: Optional[Table] = None
    rise_constraint: Optional[Table] = None
    fall_constraint: Optional[Table] = None
    timing_sense: Optional[str] = None  # positive_unate | negative_unate | non_unate


@dataclass
class Pin:
    """A cell pin: direction, input capacitance (pF), output Boolean function."""

    name: str
    direction: str
    capacitance: float = 0.0
    function: Optional[str] = None
    clock: bool = False
    three_state: bool = False
    power: list = field(default_factory=list)    # PowerArc
    timing: list = field(default_factory=list)   # TimingArc


@dataclass
class FlipFlop:
    """A Liberty ``ff`` group: state ``iq`` (and ``iqn``), updated on ``clocked_on``."""

    iq: str
    iqn: Optional[str]
    clocked_on: str
    next_state: str
    clear: Optional[str] = None
    preset: Optional[str] = None


@dataclass
class Cell:
    """A standard cell: area (um^2), leakage (nW), pins, optional flip-flop."""

    name: str
    area: float
    leakage_nw: float
    pins: dict
    ff: Optional[FlipFlop] = None
    latch: bool = False
    clock_gate: bool = False
    dont_use: bool = False
    span: tuple = (0, 0)

    @property
    def inputs(self) -> list:
        return [p for p in self.pins.values() if p.direction == "input"]

    @property
    def outputs(self) -> list:
        return [p for p in self.pins.values() if p.direction == "output"]

    @property
    def sequential(self) -> bool:
        return self.ff is not None


@dataclass
class WireLoad:
    """A Liberty ``wire_load`` group: estimated wire length by fanout, capacitance per
    unit length (pF). Beyond the largest fanout in the table the length grows by
    ``slope`` per extra sink, as Liberty specifies. Resistance is not used (our timing
    has no RC wire delay; with SKY130's tables it is under a picosecond per net)."""

    name: str
    cap_per_length: float
    slope: float
    lengths: dict          # fanout -> length

    def capacitance(self, fanout: int) -> float:
        if fanout in self.lengths:
            length = self.lengths[fanout]
        else:
            top = max(self.lengths)
            if fanout > top:
                length = self.lengths[top] + self.slope * (fanout - top)
            else:  # between table entries: linear interpolation
                lo = max(f for f in self.lengths if f < fanout)
                hi = min(f for f in self.lengths if f > fanout)
                t = (fanout - lo) / (hi - lo)
                length = self.lengths[lo] + t * (self.lengths[hi] - self.lengths[lo])
        return length * self.cap_per_length


@dataclass
class Library:
    """A parsed Liberty library, units normalised (ns, pF, nW, pJ)."""

    name: str
    corner: str
    voltage: float
    cells: dict
    path: str
    sha256: str
    #: Wire-load models of the file: name -> :class:`WireLoad`; the file's default one.
    wire_loads: dict = field(default_factory=dict)
    default_wire_load: Optional[str] = None
    #: The wire-load model applied to every net (None: pin capacitances only); chosen
    #: with :func:`load_library`'s ``wire_load``.
    wire_load: Optional[str] = None

    @property
    def key(self) -> str:
        """What cached figures computed on this library depend on: the file's contents
        and the wire-load model applied."""
        return self.sha256 if self.wire_load is None else f"{self.sha256}+wire_load={self.wire_load}"

    def wire_cap(self, fanout: int) -> float:
        """Wire capacitance (pF) of a net with ``fanout`` sink pins under the selected
        wire-load model (0 without one)."""
        if self.wire_load is None or fanout <= 0:
            return 0.0
        return self.wire_loads[self.wire_load].capacitance(fanout)

    def usable(self) -> dict:
        """Cells a synthesis flow may map onto (the ``dont_use`` ones removed)."""
        return {k: c for k, c in self.cells.items() if not c.dont_use}

    @property
    def label(self) -> dict:
        """``{"name", "corner", "voltage", "file"}`` for reports."""
        return {"name": self.name, "corner": self.corner, "voltage": self.voltage,
                "file": os.path.basename(self.path), "wire_load": self.wire_load or "none"}

    def reference_inverter(self) -> Cell:
        """Smallest-area usable single-input inverter (``function = !A``)."""
        best = None
        for c in self.usable().values():
            if c.sequential or len(c.inputs) != 1 or len(c.outputs) != 1:
                continue
            f = c.outputs[0].function
            if f is None:
                continue
            a = c.inputs[0].name
            fn = function_to_python(f, {a: "x"})
            if eval(f"lambda x, M: {fn}")(0, 1) == 1 and eval(f"lambda x, M: {fn}")(1, 1) == 0:
                if best is None or c.area < best.area:
                    best = c
        if best is None:
            raise QrtlError(f"library {self.name} has no usable inverter")
        return best

    def write_filtered(self, dest: Path) -> Path:
        """Write the library without its ``dont_use`` cells (plain text) to ``dest``."""
        text = _read_text(self.path)
        parts, pos = [], 0
        for c in sorted(self.cells.values(), key=lambda c: c.span[0]):
            if c.dont_use:
                parts.append(text[pos:c.span[0]])
                pos = c.span[1]
        parts.append(text[pos:])
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text("".join(parts))
        tmp.replace(dest)
        return dest


# --- Boolean functions ---------------------------------------------------------------

def parse_function(expr: str):
    """Parse a Liberty ``function`` into a tree: ``("var", name)``, ``("const", 0|1)``,
    ``("not", x)``, ``("and"|"or"|"xor", x, y)``.

    Precedence, highest first: ``!``/``'`` (not), ``^``, ``&``/``*``/juxtaposition, ``|``/``+``.
    """
    toks = []
    for m in re.finditer(r"[A-Za-z_][A-Za-z0-9_\[\]\.]*|[01]|[!'&*|+^()]|\S", expr):
        toks.append(m.group(0))
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take():
        nonlocal pos
        pos += 1
        return toks[pos - 1]

    def atom():
        t = take() if peek() is not None else None
        if t is None:
            raise QrtlError(f"bad Liberty function {expr!r}")
        if t == "!":
            node = ("not", atom())
        elif t == "(":
            node = p_or()
            if take() != ")":
                raise QrtlError(f"bad Liberty function {expr!r}")
        elif t in ("0", "1"):
            node = ("const", int(t))
        elif re.match(r"[A-Za-z_]", t):
            node = ("var", t)
        else:
            raise QrtlError(f"bad Liberty function {expr!r}")
        while peek() == "'":
            take()
            node = ("not", node)
        return node

    def p_xor():
        node = atom()
        while peek() == "^":
            take()
            node = ("xor", node, atom())
        return node

    def p_and():
        node = p_xor()
        while True:
            t = peek()
            if t in ("&", "*"):
                take()
                node = ("and", node, p_xor())
            elif t is not None and (t in ("!", "(", "0", "1") or re.match(r"[A-Za-z_]", t)):
                node = ("and", node, p_xor())  # juxtaposition
            else:
                return node

    def p_or():
        node = p_and()
        while peek() in ("|", "+"):
            take()
            node = ("or", node, p_and())
        return node

    tree = p_or()
    if pos != len(toks):
        raise QrtlError(f"bad Liberty function {expr!r}")
    return tree


def function_to_python(expr: str, names: dict) -> str:
    """A Python expression of a Liberty ``function`` on bit-parallel integers.

    ``names`` maps pin names to Python expressions; ``M`` must be the all-ones mask
    (NOT x is written ``M ^ x``, so the result stays within the mask).
    """
    def emit(node):
        kind = node[0]
        if kind == "var":
            if node[1] not in names:
                raise QrtlError(f"Liberty function {expr!r} uses unknown pin {node[1]!r}")
            return names[node[1]]
        if kind == "const":
            return "M" if node[1] else "0"
        if kind == "not":
            return f"(M ^ {emit(node[1])})"
        op = {"and": "&", "or": "|", "xor": "^"}[kind]
        return f"({emit(node[1])} {op} {emit(node[2])})"
    return emit(parse_function(expr))


def function_to_verilog(expr: str) -> str:
    """The same function as a Verilog expression (pin names kept)."""
    def emit(node):
        kind = node[0]
        if kind == "var":
            return node[1]
        if kind == "const":
            return f"1'b{node[1]}"
        if kind == "not":
            return f"(~{emit(node[1])})"
        op = {"and": "&", "or": "|", "xor": "^"}[kind]
        return f"({emit(node[1])} {op} {emit(node[2])})"
    return emit(parse_function(expr))


__all__.append("function_to_verilog")


# --- loading -------------------------------------------------------------------------

def _read_text(path) -> str:
    path = str(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
        if head == b"\x1f\x8b":
            with gzip.open(path, "rt", errors="replace") as fh:
                return fh.read()
        with open(path, "r", errors="replace") as fh:
            return fh.read()
    except (OSError, EOFError, zlib.error) as exc:  # unreadable, or a truncated/garbled .gz
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
        raise QrtlError(f"cannot read Liberty file {path!r}: {why}") from None


def _unit_scale(s: str, base: dict) -> float:
    m = re.match(r"\s*([0-9.eE+-]*)\s*([A-Za-z]+)", s or "")
    if not m:
        raise QrtlError(f"unrecognised Liberty unit {s!r}")
    num = float(m.group(1)) if m.group(1) else 1.0
    unit = m.group(2).lower()
    if unit not in base:
        raise QrtlError(f"unrecognised Liberty unit {s!r}")
    return num * base[unit]


_TIME = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0, "ps": 1e-3, "fs": 1e-6}
_CAP = {"f": 1e12, "mf": 1e9, "uf": 1e6, "nf": 1e3, "pf": 1.0, "ff": 1e-3}
_POWER = {"w": 1e9, "mw": 1e6, "uw": 1e3, "nw": 1.0, "pw": 1e-3, "fw": 1e-6}


def excluded_reason(cell_group: _Group, patterns=DONT_USE_PATTERNS) -> Optional[str]:
    """Why a synthesis flow would not use this cell (None if it would)."""
    name = cell_group.args[0] if cell_group.args else ""
    for pat in patterns:
        if fnmatch.fnmatchcase(name, pat):
            return f"name matches {pat}"
    a = cell_group.attrs
    if a.get("dont_use", "").lower() == "true":
        return "dont_use : true"
    if "clock_gating_integrated_cell" in a:
        return "integrated clock gate"
    if "area" not in a:
        return "no area"
    if cell_group.sub("latch") or cell_group.sub("statetable"):
        return "latch / state table"
    pins = _pins_of(cell_group)
    outs = [p for p in pins if p.attrs.get("direction") == "output"]
    if not outs:
        return "no output pin"
    if any("three_state" in p.attrs for p in pins):
        return "tri-state output"
    if any("function" not in p.attrs for p in outs):
        return "output without function"
    return None


def _pins_of(g: _Group) -> list:
    pins = []
    for p in g.sub("pin"):
        pins.append(p)
    for b in g.sub("bus") + g.sub("bundle"):
        pins.extend(b.sub("pin"))
    return pins


def _build_library(text: str, path: str, sha: str) -> Library:
    lib = parse_liberty(text)
    a = lib.attrs
    t_ns = _unit_scale(a.get("time_unit", "1ns"), _TIME)
    cap = lib.complex.get("capacitive_load_unit", [["1", "pf"]])[0]
    c_pf = float(cap[0]) * _CAP[cap[1].lower()]
    leak_nw = _unit_scale(a.get("leakage_power_unit", "1nW"), _POWER)
    v_unit = _unit_scale(a.get("voltage_unit", "1V"), {"v": 1.0, "mv": 1e-3})
    e_pj = c_pf * v_unit * v_unit  # internal energy unit: capacitance x voltage^2
    corner = a.get("default_operating_conditions", "")
    voltage = None
    for oc in lib.sub("operating_conditions"):
        if not corner or (oc.args and oc.args[0] == corner):
            corner = corner or (oc.args[0] if oc.args else "")
            if "voltage" in oc.attrs:
                voltage = float(oc.attrs["voltage"]) * v_unit
    if voltage is None:
        voltage = float(a.get("nom_voltage", "1.0")) * v_unit
    templates = {}
    for kind in ("lu_table_template", "power_lut_template"):
        for t in lib.sub(kind):
            vars_ = tuple(t.attrs.get(f"variable_{k}") for k in (1, 2, 3) if f"variable_{k}" in t.attrs)
            idx = tuple(_floats(t.complex[f"index_{k}"][0][0]) for k in (1, 2, 3)
                        if f"index_{k}" in t.complex)
            templates[t.args[0] if t.args else ""] = (vars_, idx)

    def table(g: _Group, value_scale: float) -> Table:
        tname = g.args[0] if g.args else "scalar"
        vars_, idx = templates.get(tname, ((), ()))
        idx = list(idx)
        for k in (1, 2, 3):
            if f"index_{k}" in g.complex:
                arr = _floats(g.complex[f"index_{k}"][0][0])
                if k - 1 < len(idx):
                    idx[k - 1] = arr
                else:
                    idx.append(arr)
        canon = tuple(_VAR.get(v, v) for v in vars_)[:len(idx)]
        scaled = tuple(ix * (c_pf if v == "load" else t_ns) for ix, v in zip(idx, canon))
        rows = g.complex.get("values", [[]])[0]
        vals = np.array([_floats(r) for r in rows], dtype=float) * value_scale
        if tname == "scalar" or not canon:
            return Table((), (), np.array(vals.ravel()[0] if vals.size else 0.0))
        vals = vals.reshape([len(ix) for ix in scaled]) if vals.size == np.prod([len(ix) for ix in scaled]) \
            else vals.reshape(-1)
        if vals.ndim == 1 and len(scaled) == 2:  # 1 x n table written as one row
            vals = vals.reshape(len(scaled[0]), len(scaled[1]))
        return Table(canon, scaled, vals)

    cells = {}
    for g in lib.sub("cell"):
        name = g.args[0]
        reason = excluded_reason(g)
        pins = {}
        try:
            for pg in _pins_of(g):
                pa = pg.attrs
                pin = Pin(pg.args[0], pa.get("direction", "input"),
                          float(pa.get("capacitance", 0.0)) * c_pf,
                          pa.get("function"), pa.get("clock", "false") == "true",
                          "three_state" in pa)
                for ip in pg.sub("internal_power"):
                    rise = ip.sub("rise_power") or ip.sub("power")
                    fall = ip.sub("fall_power") or ip.sub("power")
                    pin.power.append(PowerArc(ip.attrs.get("related_pin"),
                                              table(rise[0], e_pj) if rise else None,
                                              table(fall[0], e_pj) if fall else None,
                                              ip.attrs.get("when")))
                for tg in pg.sub("timing"):
                    arc = TimingArc(tg.attrs.get("related_pin", ""),
                                    tg.attrs.get("timing_type", "combinational"),
                                    timing_sense=tg.attrs.get("timing_sense"))
                    for key in ("cell_rise", "cell_fall", "rise_transition", "fall_transition",
                                "rise_constraint", "fall_constraint"):
                        sub = tg.sub(key)
                        if sub:
                            setattr(arc, key, table(sub[0], t_ns))
                    pin.timing.append(arc)
                pins[pin.name] = pin
        except (ValueError, IndexError, KeyError) as exc:
            if reason is None:
                reason = f"unreadable ({exc})"
        ff = None
        ffs = g.sub("ff")
        if ffs:
            f = ffs[0]
            ff = FlipFlop(f.args[0], f.args[1] if len(f.args) > 1 else None,
                          f.attrs.get("clocked_on", ""), f.attrs.get("next_state", ""),
                          f.attrs.get("clear"), f.attrs.get("preset"))
            if len(ffs) > 1 or not ff.clocked_on or not ff.next_state:
                reason = reason or "unsupported flip-flop"
        area = float(g.attrs.get("area", 0.0))
        leak = float(g.attrs.get("cell_leakage_power", a.get("default_cell_leakage_power", 0.0))) * leak_nw
        cells[name] = Cell(name, area, leak, pins, ff, bool(g.sub("latch")),
                           "clock_gating_integrated_cell" in g.attrs, reason is not None, g.span)
    wire_loads = {}
    for g in lib.sub("wire_load"):
        lengths = {int(float(f)): float(l) for f, l in g.complex.get("fanout_length", [])}
        if g.args and lengths:
            wire_loads[g.args[0]] = WireLoad(g.args[0], float(g.attrs.get("capacitance", 0.0)) * c_pf,
                                             float(g.attrs.get("slope", 0.0)), lengths)
    default_wl = a.get("default_wire_load")
    return Library(lib.args[0] if lib.args else "library", corner, voltage, cells, str(path), sha,
                   wire_loads, default_wl if default_wl in wire_loads else None)


_PARSER_VERSION = "6"
_MEMO: dict = {}


def load_library(path=None, wire_load: str = "default") -> Library:
    """Parse (or load from cache) the Liberty file ``path`` (default: the shipped library).

    ``wire_load``: the wire-load model added to every net's capacitance in timing and
    energy: ``"default"`` (the file's ``default_wire_load``; none if it has none),
    ``"none"``, or a model's name."""
    path = Path(path) if path is not None else default_library_path()
    if not path.is_file():
        raise QrtlError(f"Liberty file {str(path)!r} does not exist")
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _MEMO:
        _MEMO[memo_key] = _load(path)
    return with_wire_load(_MEMO[memo_key], wire_load)


def with_wire_load(lib: Library, wire_load: str = "default") -> Library:
    """``lib`` with the wire-load model ``wire_load`` applied (see :func:`load_library`)."""
    if wire_load in (None, "default"):
        name = lib.default_wire_load
    elif wire_load == "none":
        name = None
    elif wire_load in lib.wire_loads:
        name = wire_load
    else:
        have = ", ".join(sorted(lib.wire_loads)) or "none"
        raise QrtlError(f"wire-load model {wire_load!r} is not in library {lib.name} "
                        f"(it has: {have}; or 'none')")
    if name == lib.wire_load:
        return lib
    key = (id(lib.cells), name)
    out = _WL_MEMO.get(key)
    if out is None or out.cells is not lib.cells:
        out = _WL_MEMO[key] = replace(lib, wire_load=name)
    return out


_WL_MEMO: dict = {}


LIBERTY_CACHE = Cache("liberty", _PARSER_VERSION)


def _load(path: Path) -> Library:
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()

    def parse() -> Library:
        text = _read_text(path)
        try:
            lib = _build_library(text, str(path.resolve()), sha)
        except (KeyError, ValueError, IndexError) as exc:  # a malformed or unsupported file
            raise QrtlError(f"Liberty file {str(path)!r} could not be read: "
                            f"{type(exc).__name__}: {exc}") from None
        if not lib.usable():
            raise QrtlError(f"Liberty file {str(path)!r} has no usable cells")
        try:
            lib.reference_inverter()  # ABC cannot map any logic without one
        except QrtlError:
            raise QrtlError(f"Liberty file {str(path)!r} has no usable inverter "
                            f"(a cell with function !A), which logic mapping needs") from None
        return lib

    lib = LIBERTY_CACHE.value(LIBERTY_CACHE.key(sha), parse,
                              check=lambda v: isinstance(v, Library) and v.sha256 == sha)
    lib.path = str(path.resolve())
    return lib


def default_library_path() -> Path:
    """The library shipped with qrtl (a SKY130 HD subset, see its header; package data)."""
    return Path(str(files("qrtl.reports") / "data" / "qrtl_default.lib"))


def sky130_path() -> Optional[Path]:
    """The full SkyWater 130 HD library if present: ``$QRTL_SKY130``, or
    ``../shared/liberty/sky130hd_tt.lib.gz`` beside the source checkout or the working folder."""
    env = os.environ.get("QRTL_SKY130")
    cands = [Path(env)] if env else []
    rel = Path("shared") / "liberty" / "sky130hd_tt.lib.gz"
    cands += [Path(__file__).resolve().parents[2] / rel, Path.cwd().parent / rel]
    for c in cands:
        if c.is_file():
            return c
    return None
