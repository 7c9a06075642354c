"""What must stay on a cluster: files of jobs that may still be queued or running."""

from __future__ import annotations


def keep_reason(job_ids: list[str], states: dict, active: set[str] | None) -> str | None:
    """Why files of these jobs must stay (one may be queued or running), or ``None``: a job
    the scheduler neither lists as active nor as active in its history has ended."""
    if not job_ids:
        return None
    if active is None:
        return "the scheduler could not be asked which jobs are queued or running"
    for job in job_ids:
        state = states.get(job)
        if state is not None and state.active:
            return f"job {job} is {state.state}"
        if job in active or job.split(".", 1)[0] in active:
            return f"job {job} is queued or running"
    return None
