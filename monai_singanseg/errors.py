"""The one exception type users see for bad input, so a CLI or a pipeline can catch it and report it."""

from __future__ import annotations

__all__ = ["SamplesInterrupted", "SinGANSegInputError"]


class SinGANSegInputError(ValueError):
    """Input that cannot be used: the message names the file (or key) and the problem."""


class SamplesInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM at the command line) while samples were written: a ``KeyboardInterrupt`` that says how far
    it got, so the caller can say so.

    Attributes:
        written: complete pairs written (each pair's files appear together or not at all).
        total: pairs asked for.
        preview: the preview of the written pairs, or ``None`` when none was written.
    """

    def __init__(self, written: int, total: int, preview: str | None) -> None:
        super().__init__(f"interrupted after {written} of {total} pairs")
        self.written, self.total, self.preview = written, total, preview
