"""Every registry entry. Importing this module fills :data:`qrtl.hw.registry.UNITS` (and the
networks' operand streams into :data:`qrtl.hw.registry.STREAMS`).

One module per family (``hw/reg_*.py``), each with one :func:`hw.registry.register` call
per unit tying the hardware class (``hw/``) to its golden model (``golden/``) and its
stimulus. Nothing else in the suite needs editing to generate, simulate, cost and report a
new unit: add the import here.
"""

# the order is the order of `qrtl list` and of the report's tables
from . import reg_xnor  # noqa: F401
from . import reg_quant  # noqa: F401
from . import reg_intmac  # noqa: F401
from . import reg_fp8  # noqa: F401

__all__: list[str] = []

# The real operand streams of the digits networks, as named stimuli of the units above
# (qrtl/golden/nets/streams.py; computed lazily, only when a stream is asked for).
from qrtl.golden.nets.streams import STREAM_TABLE as _STREAMS  # noqa: E402

from .registry import register_stream  # noqa: E402

for _unit, _name, _fn, _doc in _STREAMS:
    register_stream(_unit, _name, _fn, _doc)
