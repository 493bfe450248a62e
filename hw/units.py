"""Every registry entry. Importing this module fills :data:`hw.registry.UNITS` (and the
networks' operand streams into :data:`hw.registry.STREAMS`).

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
# (golden/nets/streams.py; computed lazily, only when a stream is asked for).
from golden.nets.streams import register_all as _register_streams  # noqa: E402

_register_streams()
