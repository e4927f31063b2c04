"""The one exception type users see for bad input, so a CLI or a pipeline can catch it and report it."""

from __future__ import annotations

__all__ = ["SinGANSegInputError"]


class SinGANSegInputError(ValueError):
    """Input that cannot be used: the message names the file (or key) and the problem."""
