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
* ``"none"``: every code is finite, no Inf, no NaN (the OCP MX FP6 E2M3/E3M2 and FP4 E2M1
  element types, OCP MX v1.0 section 5.3.2/5.3.3); ``overflow`` must be ``"saturate"``.

``overflow`` is the default policy when a rounded finite result exceeds the largest finite
value: ``"infnan"`` (to +-Inf, or to NaN for a format without infinities, as IEEE 754 and
OCP's non-saturating mode say) or ``"saturate"`` (to +-max finite). Units may override it
(``fp8_mac``'s ``saturate`` parameter); use :meth:`FPFormat.with_overflow`.

Besides those binary floating-point formats, the table holds the two other MX types
(OCP Microscaling Formats v1.0, section 5):

* :class:`ScaleFormat` ``e8m0``: the shared block scale, 8 exponent bits, no sign, no
  fraction, bias 127: code ``E`` is ``2^(E - 127)`` for ``E = 0..254`` and ``0xFF`` is NaN
  (no zero, no infinity).
* :class:`IntFormat` ``mxint8``: the MX INT8 element, an 8-bit two's complement integer
  ``c`` with the implicit scale ``2^-6`` (value ``c * 2^-6``: ``0x7F`` is ``1 + 63/64``,
  ``0x80`` is ``-2``; section 5.3.4), no special codes.

Invalid combinations are rejected when the object is built, with a one-line
:class:`qrtl.golden.errors.QrtlError` naming the field, its value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction

from qrtl.golden.errors import QrtlError

__all__ = ["FPFormat", "ScaleFormat", "IntFormat", "FORMATS", "get_format", "FLOAT_FORMATS",
           "FP8_FORMATS", "ELEMENT_FORMATS", "MX_ELEMENTS", "ACC_FORMATS"]


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
        ``"ieee"``, ``"ones"`` or ``"none"`` (see the module docstring).
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
        if self.nan not in ("ieee", "ones", "none"):
            bad("nan", self.nan, "'ieee', 'ones' or 'none'")
        if self.overflow not in ("infnan", "saturate"):
            bad("overflow", self.overflow, "'infnan' or 'saturate'")
        if not isinstance(self.has_inf, bool):
            bad("has_inf", self.has_inf, "True or False")
        if self.has_inf and self.nan != "ieee":
            bad("has_inf", self.has_inf, "False when nan='ones': S.1..1.1..1 is NaN and "
                "there is no code left for Inf")
        if not self.has_inf and self.nan == "ieee":
            bad("has_inf", self.has_inf, "True when nan='ieee': E all ones with M=0 is Inf")
        if self.nan == "none" and self.overflow != "saturate":
            bad("overflow", self.overflow, "'saturate' when nan='none': there is no Inf or NaN "
                "code to overflow to")

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
        return ones - 1 if self.nan == "ones" else ones

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
    def has_nan(self) -> bool:
        """Whether any code is NaN (False for the finite-only ``nan="none"``)."""
        return self.nan != "none"

    @property
    def nan_code(self) -> int | None:
        """The canonical NaN every unit outputs: sign 0, quiet (fraction MSB set) for
        ``"ieee"``, ``0.1..1.1..1`` for ``"ones"``; None for ``"none"``."""
        if self.nan == "none":
            return None
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
        if self.nan == "none":
            inf = "no Inf"
        return (f"{self.name}: 1.{self.ebits}.{self.mbits} bias {self.bias}, max "
                f"{float(self.max_value):g}, min subnormal 2^{self.emin - self.mbits}, {inf}, "
                f"NaN {self.nan}, overflow {self.overflow}")


@dataclass(frozen=True)
class ScaleFormat:
    """An exponent-only scale format (OCP MX E8M0, section 5.2): code ``E`` is
    ``2^(E - bias)`` for ``0 <= E < 2^ebits - 1``; all ones is NaN. No sign, zero or Inf.

    Conversion from a real value (:func:`qrtl.golden.fp8.encode`) rounds to nearest with
    ties away from zero (in the linear domain: ``1.5 * 2^e`` goes to ``2^(e+1)``; the same
    rule as round-to-nearest-even with no fraction bits, whose kept significand, the
    implicit 1, is always odd); below ``2^-bias`` gives the smallest code (the nearest
    value: there is no zero), above the largest gives NaN (``saturate``: the largest).
    Zero, negative values, Inf and NaN have no code and give NaN.
    """

    name: str
    ebits: int = 8
    bias: int = 127

    @property
    def width(self) -> int:
        return self.ebits

    @property
    def nan_code(self) -> int:
        return (1 << self.ebits) - 1

    @property
    def emin(self) -> int:
        """Exponent of the smallest value (code 0)."""
        return -self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest value (code ``2^ebits - 2``)."""
        return (1 << self.ebits) - 2 - self.bias

    @property
    def max_value(self) -> Fraction:
        return Fraction(2) ** self.emax

    def describe(self) -> str:
        return (f"{self.name}: scale, {self.ebits} exponent bits, bias {self.bias}, "
                f"2^{self.emin}..2^{self.emax}, NaN 0x{self.nan_code:X}, no sign/zero/Inf")


@dataclass(frozen=True)
class IntFormat:
    """A two's complement integer element with an implicit power-of-two scale: code ``c``
    (``width`` bits) is ``c * 2^scale_exp``. The MX INT8 element (OCP MX v1.0 section
    5.3.4) is ``width = 8``, ``scale_exp = -6``: values ``-2 .. 1 + 63/64`` in steps of
    ``1/64``. Conversion rounds to nearest even and saturates to ``[-2^(width-1),
    2^(width-1) - 1] * 2^scale_exp``; NaN has no code (an error), +-Inf saturates.
    """

    name: str
    width: int = 8
    scale_exp: int = -6

    @property
    def sign_bit(self) -> int:
        return 1 << (self.width - 1)

    @property
    def max_value(self) -> Fraction:
        return Fraction((1 << (self.width - 1)) - 1) * Fraction(2) ** self.scale_exp

    @property
    def min_value(self) -> Fraction:
        return -Fraction(1 << (self.width - 1)) * Fraction(2) ** self.scale_exp

    def describe(self) -> str:
        return (f"{self.name}: {self.width}-bit two's complement x 2^{self.scale_exp}, "
                f"{float(self.min_value):g}..{float(self.max_value):g}, no Inf/NaN")


#: Named formats, accepted wherever a format parameter appears.
FORMATS: dict[str, FPFormat | ScaleFormat | IntFormat] = {f.name: f for f in (
    FPFormat("e2m1", 2, 1, 1, has_inf=False, nan="none", overflow="saturate"),  # OCP MX FP4
    FPFormat("e2m3", 2, 3, 1, has_inf=False, nan="none", overflow="saturate"),  # OCP MX FP6
    FPFormat("e3m2", 3, 2, 3, has_inf=False, nan="none", overflow="saturate"),  # OCP MX FP6
    FPFormat("e4m3", 4, 3, 7, has_inf=False, nan="ones"),   # OCP E4M3 (float8_e4m3fn)
    FPFormat("e5m2", 5, 2, 15),                             # OCP E5M2 = the paper's (1,5,2)
    FPFormat("fp16", 5, 10, 15),                            # IEEE 754 binary16
    FPFormat("bf16", 8, 7, 127),                            # bfloat16
    FPFormat("e6m9", 6, 9, 31),                             # the paper's (1,6,9) accumulator
    FPFormat("fp32", 8, 23, 127),                           # IEEE 754 binary32
    ScaleFormat("e8m0"),                                    # OCP MX scale
    IntFormat("mxint8"),                                    # OCP MX INT8 element
)}

#: The binary floating-point formats of the table (the :class:`FPFormat` entries).
FLOAT_FORMATS = tuple(n for n, f in FORMATS.items() if isinstance(f, FPFormat))
#: Formats of the 8-bit data inputs and of the accumulators of the FP8 units.
FP8_FORMATS = ("e4m3", "e5m2")
#: Minifloat element formats of ``fp8_mul`` / ``fp8_mac`` (OCP MX FP4, FP6, FP8).
ELEMENT_FORMATS = ("e2m1", "e2m3", "e3m2", "e4m3", "e5m2")
#: Element formats of the MX dot product (the minifloats and the INT8 element).
MX_ELEMENTS = ELEMENT_FORMATS + ("mxint8",)
ACC_FORMATS = ("fp16", "bf16", "e6m9", "fp32")


def get_format(name):
    """The format named ``name`` (a format object is returned unchanged)."""
    if isinstance(name, (FPFormat, ScaleFormat, IntFormat)):
        return name
    try:
        return FORMATS[str(name)]
    except KeyError:
        raise QrtlError(f"unknown format {name!r} (formats: {', '.join(FORMATS)})") from None
