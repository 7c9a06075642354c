"""The submission ledger for people: each entry with its job's state, as aligned lines."""

from __future__ import annotations

import shlex

from isaac_deploy.model.ledger import Entry, Ledger
from isaac_deploy.model.runs import same_job
from isaac_deploy.model.sweep import element_ids

ARGS_WIDTH = 80  # the arguments column is cut here (the ledger keeps them whole)


def printable(text: str) -> str:
    """``text`` on one line: newlines, tabs and other control characters as escapes."""
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode() for char in text
    )


def arguments_cell(args: tuple[str, ...], width: int = ARGS_WIDTH) -> str:
    """The arguments as a shell would take them, escaped onto one line; longer than ``width``,
    their middle gives way to `` ... `` (the first ones name the task, the last ones are
    usually what changed between runs)."""
    text = printable(" ".join(shlex.quote(arg) for arg in args)) or "-"
    if len(text) <= width:
        return text
    keep = width - len(" ... ")
    return text[: keep - keep // 2] + " ... " + text[len(text) - keep // 2 :]


def state_of(entry: Entry, states: dict, active: dict[str, str] | None) -> str:
    """A ledger entry's job state for people: the scheduler's, or what its silence means; a
    submission without a job id is ``REFUSED`` (the scheduler took no job) or ``UNRECORDED``
    (its outcome was never written: the next roll-out of the run finds its job by name)."""
    if not entry.job_id:
        return "REFUSED" if entry.status == "refused" else "UNRECORDED"
    size = array_size(entry)
    if size:
        return array_state(entry, size, states, active)
    state = states.get(entry.job_id)
    if state is not None:
        code = "" if state.exit_code in (None, 0) or state.active else f" ({state.exit_code})"
        return state.state + code
    if active is None:
        return "UNKNOWN"
    return "ACTIVE" if entry.job_id.split(".", 1)[0] in active else "ENDED"


def array_size(entry: Entry) -> int:
    """How many elements ``entry``'s job array has (0: not a sweep's array job)."""
    sweep = entry.extra.get("sweep")
    size = sweep.get("elements") if isinstance(sweep, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 0


def array_state(entry: Entry, size: int, states: dict, active: dict[str, str] | None) -> str:
    """A sweep's array job: how many of its elements are in each state (``2 RUNNING, 1 PENDING,
    1 COMPLETED``), each element's state as its own line shows it."""
    counts: dict[str, int] = {}
    for job in element_ids(entry.job_id, entry.scheduler, size):
        element = Entry(run_key=entry.run_key, job_id=job, scheduler=entry.scheduler)
        state = state_of(element, states, active).split(" ", 1)[0]
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{count} {state}" for state, count in counts.items())


def run_folders(entry: Entry, records: dict[str, dict[str, tuple[str, ...]]]) -> list[str]:
    """The run folders ``entry``'s job recorded it made in the logs tree (as ``logs/...``, where
    they are in the container and, after ``cluster sync``, in the project)."""
    if not entry.job_id:
        return []
    jobs = records.get(entry.run_key, {})
    return [
        f"logs/{folder}"
        for job, folders in sorted(jobs.items())
        if same_job(job, entry.job_id)
        for folder in folders
    ]


def table(
    entries: list[Entry],
    states: dict,
    active: dict[str, str] | None,
    records: dict[str, dict[str, tuple[str, ...]]] | None = None,
) -> list[str]:
    """The ledger as aligned lines: run key, job, state, submitted, commit, arguments; under
    each job, the run folders it made (``records``: run key -> job id -> folders, from the
    logs tree's bookkeeping)."""
    rows = [("RUN KEY", "JOB", "STATE", "SUBMITTED", "COMMIT", "ARGUMENTS")]
    for entry in entries:
        rows.append(
            (
                entry.run_key,
                entry.job_id or "-",
                state_of(entry, states, active),
                entry.time or "-",
                entry.commit or "-",
                arguments_cell(entry.args),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for index, row in enumerate(rows):
        cells = (cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
        lines.append("  ".join(cells) + "  " + row[5])
        if index:
            folders = run_folders(entries[index - 1], records or {})
            lines += [f"  -> {printable(folder)}" for folder in folders]
    return lines


def unreadable_lines(path: str, ledger: Ledger, width: int = ARGS_WIDTH) -> list[str]:
    """One line for each line of the ledger at ``path`` that is not an entry (left out of every
    decision), with its number and its text, escaped and cut at ``width``."""
    lines = []
    for number, text in ledger.unreadable:
        shown = printable(text)
        shown = shown if len(shown) <= width else shown[: width - 3] + "..."
        lines.append(f"{path} line {number} is not a ledger entry (left out): {shown}")
    return lines
