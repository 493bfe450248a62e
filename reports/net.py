"""``qrtl net NAME``: accuracy of a network's golden model, optionally replayed on RTL."""

from __future__ import annotations

__all__ = ["register_cli"]


def register_cli(sub):
    """Placeholder until the network command lands."""
