"""Text of the lab PCs' runs: the report of one line per PC, and a table of PCs and checks."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from isaac_deploy.model.fleet import PcOutcome

LIMIT = "--limit"


def outcome_line(outcome: PcOutcome) -> str:
    """``pc01: ready (12 changes)``, or ``pc02: FAILED at STEP: ERROR -> FIX``."""
    if outcome.status == "ready":
        changes = f"{outcome.changes} change{'s' if outcome.changes != 1 else ''}"
        return f"{outcome.host}: ready ({changes})"
    what = "UNREACHABLE" if outcome.status == "unreachable" else "FAILED"
    step = f" at {outcome.step}" if outcome.step else ""
    fix = f" -> {outcome.fix}" if outcome.fix else ""
    return f"{outcome.host}: {what}{step}: {outcome.error or 'see the errors above'}{fix}"


def rerun_command(argv: Sequence[str], hosts: Sequence[str]) -> str:
    """``argv`` (the command that ran) with ``--limit`` for each of ``hosts`` instead of its
    own limits, as one shell line."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == LIMIT:
            skip = True
        elif not arg.startswith(f"{LIMIT}="):
            kept.append(arg)
    return shlex.join([*kept, *(part for host in hosts for part in (LIMIT, host))])


def report_lines(outcomes: Sequence[PcOutcome], argv: Sequence[str]) -> list[str]:
    """One line per PC, a summary, and the command that re-runs only the PCs that are not
    ready (``argv``: the command that ran)."""
    lines = [outcome_line(outcome) for outcome in outcomes]
    failed = [outcome.host for outcome in outcomes if outcome.status != "ready"]
    ready = len(outcomes) - len(failed)
    lines.append(f"{ready} of {len(outcomes)} PCs ready")
    if failed:
        lines.append(f"re-run the PCs that are not ready: {rerun_command(argv, failed)}")
    return lines


def table(rows: Sequence[str], columns: Sequence[str], cells: dict[tuple[str, str], str]) -> str:
    """A plain text table: ``rows`` x ``columns``, ``cells[(row, column)]`` (``-`` if none)."""
    header = ["", *columns]
    body = [[row, *(cells.get((row, column), "-") for column in columns)] for row in rows]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (header, *body)
    )
