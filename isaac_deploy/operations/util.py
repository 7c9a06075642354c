"""Shared pieces of the operations."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra import state as pyinfra_state
from pyinfra.api import QuoteString, StringCommand, operation

from isaac_deploy.facts.scheduler import ActiveJobs, JobStates
from isaac_deploy.model.ledger import Entry
from isaac_deploy.model.ssh import ssh_options
from isaac_deploy.policy.retention import keep_reason, unrecorded_reason


class ShownCommand(StringCommand):
    """The command of a long step, its output (the step's progress) shown line by line as it
    runs, on a terminal and in a log alike: pyinfra shows a command's output only with
    ``-vvv``, and its spinner only on a terminal. The lines carry the host's prefix."""

    def execute(self, state, host, connector_arguments):
        connector_arguments.update(self.connector_arguments)
        return host.run_shell_command(
            self, print_output=True, print_input=state.print_input, **connector_arguments
        )


def shown(command: StringCommand | str) -> ShownCommand:
    """``command`` with its output shown as it runs (:class:`ShownCommand`)."""
    if isinstance(command, str):
        return ShownCommand(command)
    return ShownCommand(*command.bits, _separator=command.separator, **command.connector_arguments)


def quoted_command(argv: list[str]) -> StringCommand:
    """``argv`` as one shell command line, each word quoted."""
    return StringCommand(*(QuoteString(word) for word in argv))


def remote(host, path: str) -> tuple[str, str]:
    """``(rsh, host:path)`` for an rsync between this workstation and ``path`` on ``host``: the
    login node's master connection (``@openssh``), else the host's SSH settings."""
    connector = host.connector
    if hasattr(connector, "rsh"):
        return connector.rsh(), f"{connector.address}:{path}"
    data = host.data.dict()
    user, address = data.get("ssh_user"), data.get("ssh_hostname") or host.name
    return shlex.join(["ssh", *ssh_options(data)]), f"{user + '@' if user else ''}{address}:{path}"


def fail(message: str) -> StringCommand:
    """A command that fails with ``message``: the operation stops with that one line (an
    exception in an operation would print a traceback instead)."""
    return StringCommand("echo", QuoteString(f"error: {message}"), ">&2; exit 1")


def first_pass() -> bool:
    """Whether an operation's body runs for the first time in this deploy: with the plan when
    pyinfra checks for changes, else (``-y``) when it executes. What it says then is said once."""
    return pyinfra_state.is_executing != pyinfra_state.should_check_for_changes()


@operation()
def barrier(what: str):
    """A step all hosts reach before any goes on; it changes nothing.

    Called from one line by every host, it is one step of pyinfra's operation order, so what
    all hosts do after it waits for what any host did before it (pyinfra otherwise interleaves
    the hosts' own sequences).

    + what: what is complete at this point (for the log)

    **Example:**

    .. code:: python

        util.barrier(
            name="workstation image ready",
            what="image built and pushed where needed",
        )
    """
    host.noop(what)
    yield from ()


def busy(
    records: dict[str, list[Entry]],
    candidates: list[str],
    scheduler: str,
    prefixes: dict[str, str] | None = None,
    unknown: str | None = None,
) -> dict[str, str]:
    """For each of ``candidates`` (snapshots, images, run folders) whose ledger records
    (``records[candidate]``) have a job that may be queued or running, or an active job's name
    starts with ``prefixes[candidate]`` (ledger or not): the reason to keep it. With ``unknown``
    (how this extension's job names start), an active job of that name that no record names
    keeps every candidate. Asks the scheduler only when there is something to ask about."""
    prefixes = prefixes or {}
    asked = [c for c in candidates if unknown is not None or records.get(c) or c in prefixes]
    if not asked:
        return {}
    ids = tuple(sorted({e.job_id for c in asked for e in records.get(c, ()) if e.job_id}))
    states = host.get_fact(JobStates, scheduler=scheduler, job_ids=ids) if ids else {}
    active = host.get_fact(ActiveJobs, scheduler=scheduler)
    every = [entry for entries in records.values() for entry in entries]
    unrecorded = unrecorded_reason(active, unknown, every) if unknown is not None else None
    reasons = {
        c: keep_reason(records.get(c, []), states, active, prefixes.get(c)) or unrecorded
        for c in asked
    }
    return {candidate: reason for candidate, reason in reasons.items() if reason}
