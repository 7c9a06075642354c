"""Shared pieces of the operations."""

from __future__ import annotations

from pyinfra import host
from pyinfra import state as pyinfra_state
from pyinfra.api import QuoteString, StringCommand, operation

from isaac_deploy.facts.scheduler import ActiveJobs, JobStates
from isaac_deploy.policy.retention import keep_reason


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


def busy(jobs: dict[str, list[str]], names: list[str], scheduler: str) -> dict[str, str]:
    """For each of ``names`` (snapshots, images, run folders) whose jobs (``jobs[name]``) may be
    queued or running: the reason to keep it. Asks the scheduler only when there are jobs."""
    ids = tuple(sorted({job for name in names for job in jobs.get(name, ())}))
    if not ids:
        return {}
    states = host.get_fact(JobStates, scheduler=scheduler, job_ids=ids)
    active = host.get_fact(ActiveJobs, scheduler=scheduler)
    reasons = {name: keep_reason(jobs.get(name, []), states, active) for name in names}
    return {name: reason for name, reason in reasons.items() if reason}
