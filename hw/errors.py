"""Rejecting bad constructor arguments of Amaranth components."""

from qrtl.golden.errors import QrtlError

__all__ = ["QrtlError", "reject"]


def reject(component, message: str):
    """Raise ``ValueError(message)`` from a component constructor.

    Amaranth warns when an elaboratable is created but never used; a constructor that
    rejects its arguments has created one, so silence that warning first.
    """
    component._MustUse__silence = True
    raise ValueError(message)
