"""What must stay on a cluster: files of jobs that may still be queued or running."""

from __future__ import annotations

from isaac_deploy.model.ledger import Entry


def keep_reason(
    entries: list[Entry], states: dict, active: dict[str, str] | None, prefix: str | None = None
) -> str | None:
    """Why files of these ledger records must stay (a job of theirs may be queued or running),
    or ``None``. A record's job is found by its id and by the record's job name (so is one whose
    id was never recorded); active jobs whose names start with ``prefix`` keep the files too,
    ledger or not. A job the scheduler neither lists as active nor as active in its history has
    ended."""
    if not entries and prefix is None:
        return None
    if active is None:
        return "the scheduler could not be asked which jobs are queued or running"
    for entry in entries:
        reason = job_active(entry.job_id, states, active) if entry.job_id else None
        if reason:
            return reason
    names = {entry.job_name for entry in entries if entry.job_name}
    for job, name in sorted(active.items()):
        if name in names or (prefix is not None and name.startswith(prefix)):
            return f"job {job} ({name}) is queued or running"
    return None


def unrecorded_reason(
    active: dict[str, str] | None, prefix: str, entries: list[Entry]
) -> str | None:
    """Why nothing such jobs may use can go: an active job whose name starts with ``prefix``
    (this extension's) and that no ledger record names or has the id of, so what it uses is
    unknown."""
    if active is None:
        return "the scheduler could not be asked which jobs are queued or running"
    names = {entry.job_name for entry in entries if entry.job_name}
    ids = {entry.job_id.split(".", 1)[0] for entry in entries if entry.job_id}
    for job, name in sorted(active.items()):
        if name.startswith(prefix) and name not in names and job not in ids:
            return f"job {job} ({name}) is queued or running and not in the ledger"
    return None


def job_active(job: str, states: dict, active: dict[str, str]) -> str | None:
    """Why job ``job`` may be queued or running (its state, or the scheduler's active list), or
    ``None`` when it has ended."""
    state = states.get(job)
    if state is not None and state.active:
        return f"job {job} is {state.state}"
    if job.split(".", 1)[0] in active:
        return f"job {job} is queued or running"
    return None


def basis_reason(links: int) -> str | None:
    """Why an image must stay although no job needs it: it has another hard link, which a
    delivery in progress made in ``.incoming/`` as the basis of a changed image's transfer."""
    return "the basis of a delivery in progress" if links > 1 else None
