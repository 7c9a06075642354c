"""The attempts of the ledger's jobs for people (``launch[attempts]``): each start of a job, on
which node, and how it ended; a Slurm job requeued before its wall time starts again under its
id, a PBS job is continued by a new submission (its ledger entry names the job it continues)."""

from __future__ import annotations

from isaac_deploy.model.launch import Attempt
from isaac_deploy.model.ledger import Entry
from isaac_deploy.model.runs import same_job
from isaac_deploy.render.ledger_table import printable


def attempt_lines(
    entries: list[Entry], attempts: dict[str, dict[str, tuple[Attempt, ...]]]
) -> list[str]:
    """``ATTEMPTS`` and one line per attempt of the listed jobs (nothing when none has any)."""
    rows = []
    for entry in entries:
        jobs = attempts.get(entry.run_key, {})
        records = next((r for job, r in jobs.items() if same_job(job, entry.job_id)), ())
        ended: dict[int, str] = {}
        for record in records:
            if record.event != "started":
                ended[record.number] = record.outcome
        for record in records:
            if record.event == "started":
                outcome = ended.get(record.number, "running (or killed without a word)")
                rows.append(
                    (
                        entry.run_key,
                        entry.job_id,
                        str(record.number),
                        record.time,
                        printable(record.host),
                        printable(outcome),
                    )
                )
    if not rows:
        return []
    head = ("RUN KEY", "JOB", "ATTEMPT", "STARTED", "NODE", "OUTCOME")
    widths = [max(len(row[i]) for row in (head, *rows)) for i in range(5)]
    return [
        "ATTEMPTS (launch[attempts]: each start of a job, resumed from its run's checkpoint)"
    ] + [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
        + "  "
        + row[5]
        for row in (head, *rows)
    ]
