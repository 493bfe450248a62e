"""Declarative unit parameters: integers with ranges, and named choices.

A unit declares its parameters once (in the registry); the CLI, tests, cost model and
reports all resolve user values through :func:`resolve`, so validation and error messages
are identical everywhere.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, Union

from .errors import QrtlError

__all__ = ["IntParam", "ChoiceParam", "Param", "resolve", "parse_assignments", "parse_values",
           "check_int", "check_float", "RANGE_SYNTAX"]

Bound = Union[int, Callable[[Mapping[str, object]], int]]


def _bound(b: Bound, resolved: Mapping[str, object]) -> int:
    return b(resolved) if callable(b) else b


@dataclass(frozen=True)
class IntParam:
    """An integer parameter with an inclusive range ``lo <= value <= hi``.

    ``lo``/``hi`` may be callables of the parameters declared before this one (for ranges
    such as ``shift in 0..in_width-1``).
    """

    name: str
    default: int
    lo: Bound
    hi: Bound
    doc: str = ""

    def parse(self, value: object, resolved: Mapping[str, object]) -> int:
        if isinstance(value, str):
            try:
                value = int(value.strip(), 0)
            except ValueError:
                raise QrtlError(f"parameter {self.name}={value!r} is not an integer") from None
        if isinstance(value, bool):
            value = int(value)
        try:
            value = operator.index(value)
        except TypeError:
            raise QrtlError(f"parameter {self.name}={value!r} is not an integer") from None
        lo, hi = _bound(self.lo, resolved), _bound(self.hi, resolved)
        if not lo <= value <= hi:
            raise QrtlError(f"parameter {self.name}={value} is out of range (allowed {lo}..{hi})")
        return value

    def describe_range(self) -> str:
        lo = "f(...)" if callable(self.lo) else str(self.lo)
        hi = "f(...)" if callable(self.hi) else str(self.hi)
        return f"{lo}..{hi}"


@dataclass(frozen=True)
class ChoiceParam:
    """A parameter taking one of a fixed set of names (e.g. a rounding mode)."""

    name: str
    default: str
    choices: Sequence[str]
    doc: str = ""

    def parse(self, value: object, resolved: Mapping[str, object]) -> str:
        value = str(value).strip()
        if value not in self.choices:
            raise QrtlError(
                f"parameter {self.name}={value!r} is not a valid choice "
                f"(allowed: {', '.join(self.choices)})")
        return value

    def describe_range(self) -> str:
        return "|".join(self.choices)


Param = Union[IntParam, ChoiceParam]


def resolve(owner: str, params: Sequence[Param], given: Mapping[str, object]) -> dict:
    """Resolve user-given values against declared parameters, in declaration order.

    Unknown names and invalid values raise :class:`QrtlError` with a one-line message.
    Returns a dict with every declared parameter set (defaults filled in).
    """
    names = [p.name for p in params]
    for key in given:
        if key not in names:
            allowed = ", ".join(names) if names else "none"
            raise QrtlError(f"unknown parameter {key!r} for {owner} (parameters: {allowed})")
    resolved: dict = {}
    for p in params:
        resolved[p.name] = p.parse(given.get(p.name, p.default), resolved)
    return resolved


def parse_assignments(items: Sequence[str] | None) -> dict:
    """Turn ``["n=64", "pipeline=2"]`` into ``{"n": "64", "pipeline": "2"}``."""
    out: dict = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise QrtlError(f"parameter {item!r} is not of the form NAME=VALUE")
        name = name.strip()
        if name in out:
            raise QrtlError(f"parameter {name!r} given twice ({name}={out[name]}, {item.strip()})")
        out[name] = value.strip()
    return out


#: The value-list syntax of a swept parameter (``qrtl sweep -p NAME=VALUES``), for help texts.
RANGE_SYNTAX = ("VALUES is a comma-separated list of values and ranges: A..B doubles from A "
                "up to B (16..4096 = 16,32,...,4096; B must be A times a power of two), "
                "A..B:S steps linearly by S (8..48:8 = 8,16,...,48; B included when it is hit)")


def _range_int(name: str, text: str, what: str) -> int:
    try:
        return int(text.strip(), 0)
    except ValueError:
        raise QrtlError(f"parameter {name}: the {what} of range {text!r} is not an integer") from None


def parse_values(name: str, text) -> list:
    """The values of a swept parameter: ``"8,16..64,100..200:50"`` ->
    ``["8", 16, 32, 64, 100, 150, 200]`` (plain items stay text, to be resolved by the
    parameter's own :meth:`~IntParam.parse`; ranges give integers).

    ``A..B`` doubles: A, 2A, 4A, ... B (what a hardware sweep of vector lengths or widths
    wants; B must be A times a power of two, A >= 1). ``A..B:S`` steps linearly by ``S >= 1``:
    A, A+S, ... up to B. A list or tuple is taken as the values themselves. Errors are one
    line naming the parameter.
    """
    if isinstance(text, (list, tuple)):
        values = list(text)
        if not values:
            raise QrtlError(f"parameter {name} has no values")
        return values
    out: list = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            raise QrtlError(f"parameter {name}={text!r} has an empty value")
        if ".." not in item:
            out.append(item)
            continue
        lo_text, _, rest = item.partition("..")
        hi_text, colon, step_text = rest.partition(":")
        lo, hi = _range_int(name, lo_text, "start"), _range_int(name, hi_text, "end")
        if hi < lo:
            raise QrtlError(f"parameter {name}: range {item!r} ends below its start")
        if colon:
            step = _range_int(name, step_text, "step")
            if step < 1:
                raise QrtlError(f"parameter {name}: the step of range {item!r} must be >= 1")
            out.extend(range(lo, hi + 1, step))
            continue
        if lo < 1:
            raise QrtlError(f"parameter {name}: a doubling range starts at 1 or more (got {item!r}; "
                            f"use {lo}..{hi}:1 for every integer)")
        ratio, exact = divmod(hi, lo)
        if exact or ratio & (ratio - 1):
            raise QrtlError(f"parameter {name}: range {item!r} doubles from {lo}, so its end must "
                            f"be {lo} times a power of two (or use {item}:S for a linear range)")
        v = lo
        while v <= hi:
            out.append(v)
            v *= 2
    return out


def check_int(what: str, value, lo: int, hi: int) -> int:
    """``value`` as an integer in ``lo..hi``; a one-line :class:`QrtlError` otherwise."""
    if isinstance(value, bool):
        raise QrtlError(f"{what} must be an integer (got {value!r})")
    try:
        value = operator.index(value)
    except TypeError:
        raise QrtlError(f"{what} must be an integer (got {value!r})") from None
    if not lo <= value <= hi:
        raise QrtlError(f"{what} must be between {lo:,} and {hi:,} (got {value:,})")
    return value


def check_float(what: str, value, lo: float, hi: float) -> float:
    """``value`` as a finite float with ``lo < value <= hi``; a one-line error otherwise."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise QrtlError(f"{what} must be a number (got {value!r})") from None
    if not math.isfinite(value) or not lo < value <= hi:
        raise QrtlError(f"{what} must be a finite number above {lo:g} and at most {hi:g} "
                        f"(got {value:g})")
    return value
