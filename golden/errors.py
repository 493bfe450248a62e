"""The one error type users see: a one-line message naming the bad input."""

__all__ = ["QrtlError"]


class QrtlError(ValueError):
    """Bad input, a missing tool or a result that cannot be trusted.

    The message is one line in the words of the domain: which parameter (or tool, or
    file), what value, what is allowed. The command line prints it as
    ``qrtl: error: <message>`` and exits with status 2.
    """
