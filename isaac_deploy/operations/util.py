"""Shared pieces of the operations."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation


def fail(message: str) -> StringCommand:
    """A command that fails with ``message``: the operation stops with that one line (an
    exception in an operation would print a traceback instead)."""
    return StringCommand("echo", QuoteString(f"error: {message}"), ">&2; exit 1")


@operation()
def barrier(what: str):
    """Changes nothing: called from one line by every host, it is one step of pyinfra's
    operation order, so what all hosts do after it waits for what any host did before it
    (pyinfra otherwise interleaves the hosts' own sequences).

    + what: what is complete at this point (for the log)
    """
    host.noop(what)
    yield from ()
