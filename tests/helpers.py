"""Helpers shared by the tests: run an operation against given facts, pyinfra-style."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pyinfra.api import FileUploadCommand, StringCommand
from pyinfra.context import ctx_host, ctx_state

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


class FakeHost:
    """Serves facts by class name; a callable value gets the fact's arguments."""

    print_prefix = "[test] "

    name = "@test"

    def __init__(self, facts: dict[str, Any], data: dict | None = None) -> None:
        self.facts = facts
        self.noops: list[str] = []
        self.fact_calls: list[tuple[str, dict]] = []
        self.current_op_global_arguments: dict = {}
        host_data = dict(data or {})
        self.data = SimpleNamespace(dict=lambda: dict(host_data), **host_data)

    def get_fact(self, cls, *args, **kwargs):
        self.fact_calls.append((cls.__name__, kwargs))
        value = self.facts[cls.__name__]
        return value(**kwargs) if callable(value) else value

    def noop(self, description: str) -> None:
        self.noops.append(description)

    def log(self, message: str, log_func=None) -> None:
        pass

    def get_temp_filename(self, *args, **kwargs) -> str:
        return "/tmp/pyinfra-temp"


def command_repr(command) -> Any:
    if isinstance(command, StringCommand):
        return command.get_raw_value()
    if isinstance(command, FileUploadCommand):
        src = command.src
        content = src.getvalue() if isinstance(src, io.StringIO) else str(src)
        return ("upload", command.dest, content)
    return str(command)


def run_op(
    op,
    facts: dict[str, Any],
    diff: bool = False,
    host_data: dict | None = None,
    executing: bool = True,
    **kwargs,
) -> tuple[list, FakeHost]:
    """The commands ``op`` yields for ``facts`` (as strings / ("upload", dest, content));
    ``executing=False``: as planned (change detection), before anything ran."""
    host = FakeHost(facts, host_data)
    state = SimpleNamespace(config=SimpleNamespace(DIFF=diff), is_executing=executing)
    with ctx_host.use(host), ctx_state.use(state):
        commands = [command_repr(c) for c in op._inner(**kwargs)]
    return commands, host


def fixture_lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()
