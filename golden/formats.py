"""Declarative binary floating-point formats, shared by the hardware and the golden models.

A format is ``1`` sign bit, ``ebits`` exponent bits and ``mbits`` mantissa (fraction) bits.
With biased exponent field ``E`` and fraction field ``M`` a finite code encodes

* ``E >= 1`` (normal):     ``(-1)^s * (1 + M / 2^mbits) * 2^(E - bias)``
* ``E == 0`` (subnormal):  ``(-1)^s * (M / 2^mbits) * 2^(1 - bias)``

and the special codes follow the ``nan`` policy:

* ``"ieee"``: ``E`` all ones is special, ``M == 0`` is +-Inf (``has_inf`` must be True),
  ``M != 0`` is NaN (IEEE 754 binary16/32, bfloat16, OCP E5M2, the paper's (1,6,9)).
* ``"ones"``: only ``S.1...1.1...1`` (all exponent and fraction bits set) is NaN, there
  are no infinities and the rest of the top binade is finite (OCP E4M3 "fn": max 448).

``overflow`` is the default policy when a rounded finite result exceeds the largest finite
value: ``"infnan"`` (to +-Inf, or to NaN for a format without infinities, as IEEE 754 and
OCP's non-saturating mode say) or ``"saturate"`` (to +-max finite). Units may override it
(``fp8_mac``'s ``saturate`` parameter); use :meth:`FPFormat.with_overflow`.

Invalid combinations are rejected when the object is built, with a one-line
:class:`qrtl.golden.errors.QrtlError` naming the field, its value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction

from qrtl.golden.errors import QrtlError

__all__ = ["FPFormat", "FORMATS", "get_format", "FP8_FORMATS", "ACC_FORMATS"]


@dataclass(frozen=True)
class FPFormat:
    """A binary floating-point format (see the module docstring for the encoding).

    Parameters
    ----------
    name : str
        Short name (``"e4m3"``, ...).
    ebits, mbits : int
        Exponent and fraction field widths (``2 <= ebits <= 11``, ``1 <= mbits <= 52``).
    bias : int
        Exponent bias, ``1 <= bias <= 2^ebits - 2``.
    has_inf : bool
        Whether ``E`` all ones with ``M == 0`` encodes +-Inf (requires ``nan="ieee"``).
    nan : str
        ``"ieee"`` or ``"ones"`` (see the module docstring).
    overflow : str
        ``"infnan"`` or ``"saturate"``.
    """

    name: str
    ebits: int
    mbits: int
    bias: int
    has_inf: bool = True
    nan: str = "ieee"
    overflow: str = "infnan"

    def __post_init__(self):
        def bad(field, value, allowed):
            raise QrtlError(f"format {self.name}: {field}={value!r} is invalid (allowed {allowed})")

        for field, lo, hi in (("ebits", 2, 11), ("mbits", 1, 52)):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                bad(field, v, f"an integer {lo}..{hi}")
        if isinstance(self.bias, bool) or not isinstance(self.bias, int) \
                or not 1 <= self.bias <= (1 << self.ebits) - 2:
            bad("bias", self.bias, f"an integer 1..{(1 << self.ebits) - 2} for ebits={self.ebits}")
        if self.nan not in ("ieee", "ones"):
            bad("nan", self.nan, "'ieee' or 'ones'")
        if self.overflow not in ("infnan", "saturate"):
            bad("overflow", self.overflow, "'infnan' or 'saturate'")
        if not isinstance(self.has_inf, bool):
            bad("has_inf", self.has_inf, "True or False")
        if self.has_inf and self.nan != "ieee":
            bad("has_inf", self.has_inf, "False when nan='ones': S.1..1.1..1 is NaN and "
                "there is no code left for Inf")
        if not self.has_inf and self.nan == "ieee":
            bad("has_inf", self.has_inf, "True when nan='ieee': E all ones with M=0 is Inf")

    # --- derived facts -----------------------------------------------------------------
    @property
    def width(self) -> int:
        """Total bits ``1 + ebits + mbits``."""
        return 1 + self.ebits + self.mbits

    @property
    def precision(self) -> int:
        """Significand bits including the hidden one, ``mbits + 1``."""
        return self.mbits + 1

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal value, ``1 - bias``."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite value."""
        return self.max_field - self.bias

    @property
    def max_field(self) -> int:
        """Biased exponent field of the largest finite value."""
        all_ones = (1 << self.ebits) - 1
        return all_ones - 1 if self.nan == "ieee" else all_ones

    @property
    def max_mant(self) -> int:
        """Fraction field of the largest finite value."""
        ones = (1 << self.mbits) - 1
        return ones if self.nan == "ieee" else ones - 1

    @property
    def max_code(self) -> int:
        """Magnitude code (sign bit clear) of the largest finite value."""
        return (self.max_field << self.mbits) | self.max_mant

    @property
    def sign_bit(self) -> int:
        return 1 << (self.width - 1)

    @property
    def inf_code(self) -> int | None:
        """Code of +Inf (None without infinities)."""
        return ((1 << self.ebits) - 1) << self.mbits if self.has_inf else None

    @property
    def nan_code(self) -> int:
        """The canonical NaN every unit outputs: sign 0, quiet (fraction MSB set) for
        ``"ieee"``, ``0.1..1.1..1`` for ``"ones"``."""
        e = ((1 << self.ebits) - 1) << self.mbits
        return e | ((1 << (self.mbits - 1)) if self.nan == "ieee" else (1 << self.mbits) - 1)

    @property
    def max_value(self) -> Fraction:
        """Largest finite value, exactly."""
        return Fraction((1 << self.mbits) | self.max_mant, 1 << self.mbits) * Fraction(2) ** self.emax

    @property
    def min_subnormal(self) -> Fraction:
        """Smallest positive value ``2^(emin - mbits)``, exactly."""
        return Fraction(2) ** (self.emin - self.mbits)

    def with_overflow(self, overflow: str) -> "FPFormat":
        """The same format with another overflow policy."""
        return dataclasses.replace(self, overflow=overflow)

    def describe(self) -> str:
        """One line: fields, bias, range, specials."""
        inf = "Inf" if self.has_inf else "no Inf"
        return (f"{self.name}: 1.{self.ebits}.{self.mbits} bias {self.bias}, max "
                f"{float(self.max_value):g}, min subnormal 2^{self.emin - self.mbits}, {inf}, "
                f"NaN {self.nan}, overflow {self.overflow}")


#: Named formats, accepted wherever a format parameter appears.
FORMATS: dict[str, FPFormat] = {f.name: f for f in (
    FPFormat("e4m3", 4, 3, 7, has_inf=False, nan="ones"),   # OCP E4M3 (float8_e4m3fn)
    FPFormat("e5m2", 5, 2, 15),                             # OCP E5M2 = the paper's (1,5,2)
    FPFormat("fp16", 5, 10, 15),                            # IEEE 754 binary16
    FPFormat("bf16", 8, 7, 127),                            # bfloat16
    FPFormat("e6m9", 6, 9, 31),                             # the paper's (1,6,9) accumulator
    FPFormat("fp32", 8, 23, 127),                           # IEEE 754 binary32
)}

#: Formats of the 8-bit data inputs and of the accumulators of the FP8 units.
FP8_FORMATS = ("e4m3", "e5m2")
ACC_FORMATS = ("fp16", "bf16", "e6m9", "fp32")


def get_format(name) -> FPFormat:
    """The format named ``name`` (an :class:`FPFormat` is returned unchanged)."""
    if isinstance(name, FPFormat):
        return name
    try:
        return FORMATS[str(name)]
    except KeyError:
        raise QrtlError(f"unknown format {name!r} (formats: {', '.join(FORMATS)})") from None
