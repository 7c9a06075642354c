"""Facts: the scheduler's view of some jobs (Slurm: ``scontrol`` + ``sacct``; PBS: ``qstat``)
and which of the user's jobs are active, with their names (``squeue`` / ``qselect`` + ``qstat``).

States are normalised to PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, UNKNOWN;
``active`` (pending or running) is what guards deletions and resubmissions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.api.exceptions import FactProcessError

MARK = "@@isaac:"


def split_sections(lines: list[str]) -> dict[str, list[str]]:
    """``@@isaac:<name>`` marker lines split one command's output into named sections."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith(MARK):
            current = sections.setdefault(line[len(MARK) :].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


JOB_ID_RE = re.compile(r"^[A-Za-z0-9_.\[\]-]+$")
SLURM_STATES = {
    "PENDING": "PENDING",
    "CONFIGURING": "PENDING",
    "REQUEUED": "PENDING",
    "SUSPENDED": "PENDING",
    "RUNNING": "RUNNING",
    "COMPLETING": "RUNNING",
    "STAGE_OUT": "RUNNING",
    "COMPLETED": "COMPLETED",
    "FAILED": "FAILED",
    "NODE_FAIL": "FAILED",
    "OUT_OF_MEMORY": "FAILED",
    "BOOT_FAIL": "FAILED",
    "DEADLINE": "TIMEOUT",
    "TIMEOUT": "TIMEOUT",
    "PREEMPTED": "CANCELLED",
    "CANCELLED": "CANCELLED",
}
PBS_STATES = {
    "Q": "PENDING",
    "H": "PENDING",
    "W": "PENDING",
    "T": "PENDING",
    "S": "PENDING",
    "R": "RUNNING",
    "E": "RUNNING",
    "B": "RUNNING",
    "X": "COMPLETED",
    "F": "COMPLETED",
}


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str
    exit_code: int | None = None
    name: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ("PENDING", "RUNNING")


class JobStates(FactBase[dict]):
    """``{job_id: JobState}`` for ``job_ids`` on a ``slurm`` or ``pbs`` login node."""

    def command(self, scheduler: str, job_ids: tuple[str, ...]) -> StringCommand:
        ids = [QuoteString(j) for j in job_ids if JOB_ID_RE.match(j)] or ["''"]
        if scheduler == "pbs":
            return StringCommand("echo @@isaac:qstat; qstat -x -f -F json", *ids, "2>&1; true")
        joined = QuoteString(",".join(j for j in job_ids if JOB_ID_RE.match(j)))
        sacct = "echo @@isaac:sacct; sacct -n -X -P -o JobID,State,ExitCode -j"
        # a job scontrol forgot (MinJobAge) fails its call: the fact must not fail with it
        scontrol = '; do scontrol show job -o "$j" 2>/dev/null; done; true'
        return StringCommand(
            sacct, joined, "2>/dev/null;", "echo @@isaac:scontrol; for j in", *ids, scontrol
        )

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict:
        sections = split_sections(list(output))
        if "qstat" in sections:
            return parse_qstat("\n".join(sections["qstat"]))
        return parse_slurm(sections.get("sacct", []), sections.get("scontrol", []))


def _slurm_exit(text: str) -> int | None:
    match = re.match(r"(\d+):(\d+)", text or "")
    if not match:
        return None
    code, signal = int(match.group(1)), int(match.group(2))
    return code if code else (128 + signal if signal else 0)


def parse_slurm(sacct: list[str], scontrol: list[str]) -> dict[str, JobState]:
    """``scontrol show job -o`` (recent jobs) wins over ``sacct`` (accounting, older jobs)."""
    states: dict[str, JobState] = {}
    for line in sacct:
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0].isdigit():
            raw = parts[1].split()[0] if parts[1] else ""
            states[parts[0]] = JobState(
                parts[0], SLURM_STATES.get(raw, "UNKNOWN"), _slurm_exit(parts[2])
            )
    for line in scontrol:
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if "JobId" in fields and "JobState" in fields:
            job = fields["JobId"]
            state = SLURM_STATES.get(fields["JobState"], "UNKNOWN")
            states[job] = JobState(job, state, _slurm_exit(fields.get("ExitCode", "")))
    return states


def parse_qstat(text: str) -> dict[str, JobState]:
    """``qstat -x -f -F json``: jobs it does not know are absent; JSON that does not parse (as
    some PBS versions emit) is an error with the raw text, never an empty answer."""
    start = text.find("{")
    try:
        data = json.loads(text[start:]) if start >= 0 else {}
    except ValueError as exc:
        raw = text[start:][:500]
        raise FactProcessError(f"qstat answered JSON that does not parse ({exc}): {raw}") from None
    states: dict[str, JobState] = {}
    for job, info in (data.get("Jobs") or {}).items():
        raw = str(info.get("job_state", ""))
        exit_status = info.get("Exit_status")
        state = PBS_STATES.get(raw, "UNKNOWN")
        code = exit_status if isinstance(exit_status, int) else None
        if state == "COMPLETED" and code:
            # PBS Pro: > 256 killed by signal (qdel, walltime), < 0 PBS could not run it
            state = "CANCELLED" if code > 256 else "FAILED"
            code = 128 + code - 256 if code > 256 else code
        states[job] = JobState(job, state, code, info.get("Job_Name"))
        states.setdefault(job.split(".", 1)[0], states[job])
    return states


class ActiveJobs(FactBase):
    """The cluster user's queued and running jobs, ``{job id: job name}`` (``squeue``; PBS:
    ``qselect`` and ``qstat``), or ``None`` when the scheduler could not be asked: then nothing
    may be treated as finished. Ids without an array index or a PBS server suffix."""

    def command(self, scheduler: str) -> StringCommand:
        if scheduler == "pbs":
            listing = (
                "echo @@isaac:qstat; set -f;"  # ids like 12[].server are not globs
                ' ids=$(qselect -u "$(id -un)" 2>/dev/null)'
                ' && { [ -z "$ids" ] || qstat -x -f -F json $ids 2>/dev/null; }'
            )
        else:
            listing = "echo @@isaac:squeue; squeue -h -u \"$(id -un)\" -o '%i|%j' 2>/dev/null"
        return StringCommand(listing, "&& echo", QuoteString(MARK + "ok"), "; true")

    @staticmethod
    def default() -> None:
        return None

    def process(self, output: list[str]) -> dict[str, str] | None:
        sections = split_sections(list(output))
        if "ok" not in sections:
            return None
        if "qstat" in sections:
            jobs = parse_qstat("\n".join(sections["qstat"])).values()
            return {base_id(s.job_id): s.name or "" for s in jobs if s.active}
        active = {}
        for line in sections.get("squeue", []):
            job, _, name = line.strip().partition("|")
            if base_id(job):
                active[base_id(job)] = name
        return active


def base_id(job: str) -> str:
    """``12`` of Slurm's ``12`` or ``12_3`` (array task) and PBS's ``12.server`` or ``12[]``."""
    match = re.match(r"(\d+)(?:[_\[.]|$)", job)
    return match.group(1) if match else ""
