"""Whether a roll-out starts a run again from its checkpoint: its last job was warned before
its wall time, wrote a checkpoint and was not requeued (PBS; a Slurm site that refuses
``scontrol requeue``), has ended, and the run has attempts left (``launch[attempts]``)."""

from __future__ import annotations

from dataclasses import dataclass

from isaac_deploy.model.launch import Attempt
from isaac_deploy.model.ledger import Entry, submitted
from isaac_deploy.model.runs import same_job


@dataclass(frozen=True)
class Continuation:
    job_id: str  # the job this submission continues
    attempt: int  # the how-manieth start of the run it is


def attempts_made(jobs: dict[str, tuple[Attempt, ...]]) -> int:
    """The starts of a run so far, over all its jobs (Slurm counts a requeued job's again)."""
    return max((a.number for records in jobs.values() for a in records), default=0)


def continuation(
    entries: tuple[Entry, ...],
    run_key: str,
    states: dict,
    attempts: dict[str, tuple[Attempt, ...]],
    max_attempts: int,
) -> Continuation | None:
    """The continuation due for ``run_key`` (``attempts``: its jobs' records), else ``None``."""
    jobs = submitted(entries, run_key)
    if not jobs:
        return None
    last = jobs[-1].job_id
    state = states.get(last)
    if state is None or state.active:
        return None  # still queued or running, or the scheduler does not know it: not now
    records = next((r for job, r in attempts.items() if same_job(job, last)), ())
    if not records or records[-1].event != "checkpointed":
        return None
    made = attempts_made(attempts)
    return Continuation(last, made + 1) if made < max_attempts else None
