"""The networks: accuracy of the golden models and bit-exact replay on the RTL.

``qrtl.nets.replay("int8", scheme="shift", images=20)`` runs the int8 digits MLP with
``quant_shift`` requantization on the first 20 test images, once on the golden models and
once with every unit operation on Verilator, and says whether they agree.
"""

from __future__ import annotations

from typing import Optional

from qrtl.golden import nets as _nets
from qrtl.sim.net import Replay
from qrtl.sim.net import replay as _replay

__all__ = ["names", "accuracy", "replay", "Replay"]


def names() -> list[str]:
    """The networks: ``float``, ``bnn``, ``int8``, ``fp8``, ``abc``, ``binaryduo``."""
    return list(_nets.NETWORKS)


def accuracy(name: str, images: Optional[int] = None, **params) -> float:
    """Test accuracy of network ``name`` (golden model) on the first ``images`` test images
    (default: all 450); ``params`` as for :func:`replay`."""
    return _nets.run(name, params, images)["accuracy"]


def replay(name: str, images: Optional[int] = None, progress: bool = False, **params) -> Replay:
    """Run network ``name`` on the golden models and on the RTL, and compare them.

    Parameters
    ----------
    name : str
        ``bnn``, ``int8``, ``fp8``, ``abc`` or ``binaryduo`` (``float`` runs on no unit).
    images : int, optional
        The first test images (default: the whole test split).
    progress : bool
        A progress bar on stderr.
    **params
        The network's parameters: ``scheme`` (int8: ``shift``, ``fixedpoint``,
        ``float``); ``fmt``, ``acc``, ``chunk`` (fp8); ``mode`` (binaryduo: ``ternary``,
        ``decoupled``).

    Returns
    -------
    Replay
        ``accuracy``, ``rtl_accuracy``, ``total_ops``, ``total_mismatches``, ``bit_exact``...
    """
    return _replay(name, params, images, progress=progress)
