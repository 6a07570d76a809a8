"""Exceptions with messages a user can act on. The CLI prints them as one line, no traceback."""


class InterestLensError(Exception):
    """Base class: a clear, user-facing problem (bad input, unknown id, unreachable backend)."""


class InvalidInputError(InterestLensError, ValueError):
    """Input that cannot be processed: empty, too large, malformed, not UTF-8."""


class UnknownIdError(InterestLensError, KeyError):
    """A user or item id that the store does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown id"


class LLMError(InterestLensError):
    """The LLM backend failed: unreachable, timed out, refused, or produced nothing usable."""


class LLMOutputError(LLMError):
    """The LLM answered, but the answer did not validate against the response model."""


class LogprobsUnavailable(LLMError):
    """The backend answers, but gives no token log-probabilities (label scoring is impossible there)."""


class StoreError(InterestLensError):
    """The store cannot be opened or written (locked, unreachable, corrupt)."""
