"""Shared pieces of the operations."""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand


def fail(message: str) -> StringCommand:
    """A command that fails with ``message``: the operation stops with that one line (an
    exception in an operation would print a traceback instead)."""
    return StringCommand("echo", QuoteString(f"error: {message}"), ">&2; exit 1")
