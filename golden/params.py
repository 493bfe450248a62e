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

__all__ = ["IntParam", "ChoiceParam", "Param", "resolve", "parse_assignments", "check_int",
           "check_float"]

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
