"""Every registry entry. Importing this module fills :data:`hw.registry.UNITS`.

One module per family (``hw/reg_*.py``), each with one :func:`hw.registry.register` call
per unit tying the hardware class (``hw/``) to its golden model (``golden/``) and its
stimulus. Nothing else in the suite needs editing to generate, simulate, cost and report a
new unit: add the import here.
"""

from . import reg_xnor  # noqa: F401
from . import reg_fp8  # noqa: F401
from . import reg_intmac  # noqa: F401
from . import reg_quant  # noqa: F401

__all__: list[str] = []
