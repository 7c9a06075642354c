"""Helpers shared by the tests: run an operation against given facts, pyinfra-style.

Fact fixtures are keyed the way pyinfra keys the facts of its own operation tests
(``tests/operations/*/*.json``): by the fact's name, then by the arguments it is asked with::

    {
        "FileWithMode": {"path=/p/docker/.env.ext": None},
        "JobStates": {"job_ids=('1', '2'), scheduler=slurm": {}},
        "SudoWithoutPassword": {"": True},
    }

- the name is the fact's class name (``FileWithMode``, pyinfra's ``File``, ``Users``, ...);
- the arguments are ``pyinfra.api.util.get_kwargs_str``'s string, as in pyinfra's fixtures:
  ``name=value`` sorted by name and joined with ``", "``, each value as ``str()`` shows it
  (a tuple as ``('1', '2')``, a list as ``['/a']``); a fact asked without arguments is ``""``.

A fact asked with arguments that have no entry fails the test (``MissingFact``), naming the
fact, the arguments it was asked with and the entries there are: an operation that asks about
the wrong path, scheduler or folder does not get an answer meant for another one.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pyinfra.api import FileUploadCommand, FunctionCommand, RsyncCommand, StringCommand
from pyinfra.api.util import get_kwargs_str
from pyinfra.context import ctx_host, ctx_state

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


class MissingFact(AssertionError):
    """A fact was asked with arguments its fixture has no entry for."""


def fact_args(kwargs: dict[str, Any]) -> str:
    """The fixture key of a fact's arguments: pyinfra's, ``"a=1, b=x"`` (sorted), ``""``."""
    return get_kwargs_str(kwargs)


def answer_fact(facts: dict[str, dict[str, Any]], cls, args: tuple, kwargs: dict) -> Any:
    """The fixture ``facts[name][arguments]`` for ``host.get_fact(cls, **kwargs)``."""
    name = cls.__name__
    if args:
        raise MissingFact(f"fact {name} asked with positional arguments {args!r}: pass keywords")
    key = fact_args(kwargs)
    entries = facts.get(name)
    if not isinstance(entries, dict):
        raise MissingFact(
            f"fact {name} asked with {key!r}: no fixture for {name}"
            if entries is None
            else f"fixture for {name} must map argument strings to values, got {entries!r}"
        )
    if key not in entries:
        raise MissingFact(
            f"fact {name} asked with {key!r}: no fixture entry; {name} has "
            + (", ".join(repr(known) for known in entries) or "no entries")
        )
    return entries[key]


class FakeHost:
    """Serves facts from fixtures keyed by fact name, then by arguments (see the module)."""

    print_prefix = "[test] "

    name = "@test"

    def __init__(self, facts: dict[str, dict[str, Any]], data: dict | None = None) -> None:
        self.facts = facts
        self.noops: list[str] = []
        self.fact_calls: list[tuple[str, dict]] = []
        self.current_op_global_arguments: dict = {}
        host_data = dict(data or {})
        self.data = SimpleNamespace(dict=lambda: dict(host_data), **host_data)

    def get_fact(self, cls, *args, **kwargs):
        self.fact_calls.append((cls.__name__, kwargs))
        return answer_fact(self.facts, cls, args, kwargs)

    def noop(self, description: str) -> None:
        self.noops.append(description)

    def log(self, message: str, log_func=None) -> None:
        pass

    def get_temp_filename(self, *args, **kwargs) -> str:
        return "/tmp/pyinfra-temp"


def command_repr(command, calls: bool = False) -> Any:
    if calls and isinstance(command, FunctionCommand):  # its name and arguments
        return ("call", command.function.__name__, *(command_repr(a) for a in command.args))
    if isinstance(command, (str, tuple, type(None))):
        return command
    if isinstance(command, StringCommand):
        return command.get_raw_value()
    if isinstance(command, FileUploadCommand):
        src = command.src
        content = src.getvalue() if isinstance(src, io.StringIO) else str(src)
        return ("upload", command.dest, content)
    return str(command)


def run_op(
    op,
    facts: dict[str, dict[str, Any]],
    diff: bool = False,
    host_data: dict | None = None,
    executing: bool = True,
    checking: bool = True,
    calls: bool = False,
    **kwargs,
) -> tuple[list, FakeHost]:
    """The commands ``op`` yields for ``facts`` (as strings / ("upload", dest, content));
    ``executing=False``: as planned (change detection), before anything ran; ``checking=False``:
    in a deploy that does not check for changes (``-y``: the body runs when it executes only);
    ``calls``: functions run on this workstation as ("call", name, *arguments).

    ``facts``: ``{"FactName": {"arg=value, other=x": value}}`` (see the module); a fact asked
    with arguments that have no entry raises ``MissingFact``."""
    host = FakeHost(facts, host_data)
    state = SimpleNamespace(
        config=SimpleNamespace(DIFF=diff),
        is_executing=executing,
        should_check_for_changes=lambda: checking,
    )
    with ctx_host.use(host), ctx_state.use(state):
        commands = [command_repr(c, calls) for c in op._inner(**kwargs)]
    return commands, host


def run_here(op, facts: dict[str, dict[str, Any]], **kwargs) -> tuple[int, str]:
    """Run the commands ``op`` yields for ``facts`` on this machine, as a connector would
    (shell commands with ``sh -c``, rsync as its words, uploads written), up to the first that
    fails: its exit code (0: all ran) and the output so far."""
    host = FakeHost(facts)
    state = SimpleNamespace(config=SimpleNamespace(DIFF=False), is_executing=True)
    output = ""
    with ctx_host.use(host), ctx_state.use(state):
        for command in op._inner(**kwargs):
            if isinstance(command, FileUploadCommand):
                Path(command.dest).write_text(command.src.getvalue())
                continue
            if isinstance(command, RsyncCommand):
                argv = ["sh", "-c", " ".join(["rsync", *command.flags, command.src, command.dest])]
            else:
                argv = ["sh", "-c", command.get_raw_value()]
            done = subprocess.run(argv, capture_output=True, text=True)
            output += done.stdout + done.stderr
            if done.returncode:
                return done.returncode, output
    return 0, output


def fixture_lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()
