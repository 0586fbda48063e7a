"""The one line of an exception that error messages quote."""

from __future__ import annotations

__all__ = ["first_line"]


def first_line(error: BaseException) -> str:
    """The first non-empty line of ``str(error)``, or the exception's type name when it has no
    text (many library errors carry several lines, or none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
