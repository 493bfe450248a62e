"""The one error type users see: a one-line message naming the bad input."""

__all__ = ["QrtlError"]


class QrtlError(ValueError):
    """Bad user input or a missing tool.

    The message is one line: which parameter (or tool), what value, what is allowed.
    The CLI prints it as ``qrtl: error: <message>`` and exits with status 2.
    """
