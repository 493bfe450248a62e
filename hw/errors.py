"""The one error type users see: a one-line message naming the bad input."""

__all__ = ["QrtlError", "reject"]


class QrtlError(ValueError):
    """Bad user input or a missing tool.

    The message is one line: which parameter (or tool), what value, what is allowed.
    The CLI prints it as ``qrtl: error: <message>`` and exits with status 2.
    """


def reject(component, message: str):
    """Raise ``ValueError(message)`` from a component constructor.

    Amaranth warns when an elaboratable is created but never used; a constructor that
    rejects its arguments has created one, so silence that warning first.
    """
    component._MustUse__silence = True
    raise ValueError(message)
