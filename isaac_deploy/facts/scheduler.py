"""Facts: the scheduler's view of some jobs (Slurm: ``scontrol`` + ``sacct``; PBS: ``qstat``)
and which of the user's jobs are active, with their names (``squeue`` / ``qselect`` + ``qstat``).

States are normalised to PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, UNKNOWN;
``active`` (pending or running) is what guards deletions and resubmissions.

PBS is asked one job at a time (``qstat -x -f -F json ID``): OpenPBS builds exist whose
``qstat -f -F json ID1 ID2`` answers the first job only (openpbs/openpbs#2672), and the
alternative, every job of the server, is the whole site's history. A server that keeps no job
history refuses ``-x`` (PBSE_JOBHISTNOTSET, "not configured to maintain job history"): the
jobs are then asked without it, and a finished job is unknown to the server (the ledger calls
it ENDED).
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
PBS_STATES = {  # job_state letters (PBS Pro Reference Guide, "Job States")
    "Q": "PENDING",
    "H": "PENDING",
    "W": "PENDING",
    "T": "PENDING",
    "S": "PENDING",
    "U": "PENDING",
    "R": "RUNNING",
    "E": "RUNNING",
    "B": "RUNNING",
}
PBS_FINISHED = ("F", "X")  # finished: a job, a subjob (M, moved to another server: UNKNOWN)
# Exit_status values PBS itself sets (OpenPBS src/include/job.h, JOB_EXEC_*): killed for going
# over a limit of the job; wall time and CPU time are time limits (TIMEOUT), the others not
PBS_TIME_KILLS = {-29: "JOB_EXEC_KILL_WALLTIME", -28: "JOB_EXEC_KILL_CPUT"}
PBS_LIMIT_KILLS = {
    -27: "JOB_EXEC_KILL_MEM",
    -26: "JOB_EXEC_KILL_VMEM",
    -25: "JOB_EXEC_KILL_NCPUS_SUM",
    -24: "JOB_EXEC_KILL_NCPUS_BURST",
}
PBS_SIGNALLED = 256  # Exit_status 256 + N: PBS ended the job with signal N (qdel; older PBS Pro
# versions also a wall-time kill, which resources_used.walltime then shows)
PBS_TERMINATED = 91  # JOB_SUBSTATE_TERMINATED: deleted (a queued job never gets an Exit_status)
# qstat's answers for a job it does not list (any more)
PBS_GONE = ("Unknown Job Id", "Job has finished")
PBS_NO_HISTORY = "*'job history'*|*job_history*"  # PBSE_JOBHISTNOTSET's message (a case pattern)


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
        ids = [QuoteString(j) for j in job_ids if JOB_ID_RE.match(j)]
        if scheduler == "pbs":
            if not ids:
                return StringCommand("true")
            # one job per call; without job history, the rest without -x
            query = (
                f'; do echo "{MARK}qstat $j"; out=$(qstat $x -f -F json "$j" 2>&1);'
                f' case $out in {PBS_NO_HISTORY}) x=; out=$(qstat -f -F json "$j" 2>&1);; esac;'
                " printf '%s\\n' \"$out\"; done; true"
            )
            return StringCommand("set -f; x=-x; for j in", *ids, query)
        # an array element (12_3) is asked through its array (12) too: a pending element has no
        # record of its own for scontrol, and one cancelled while pending never gets one
        wanted = [j for j in job_ids if JOB_ID_RE.match(j)]
        arrays = sorted({j.split("_", 1)[0] for j in wanted if "_" in j} - set(wanted))
        ids = [QuoteString(j) for j in (*wanted, *arrays)]
        joined = QuoteString(",".join((*wanted, *arrays)))
        sacct = "echo @@isaac:sacct; sacct -n -X -P -o JobID,State,ExitCode -j"
        # a job scontrol forgot (MinJobAge) fails its call: the fact must not fail with it
        scontrol = '; do scontrol show job -o "$j" 2>/dev/null; done; true'
        return StringCommand(
            sacct,
            joined,
            "2>/dev/null;",
            "echo @@isaac:scontrol; for j in",
            *(ids or ["''"]),
            scontrol,
        )

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict:
        sections = split_sections(list(output))
        states = parse_slurm(sections.get("sacct", []), sections.get("scontrol", []))
        for name, lines in sections.items():
            if name.startswith("qstat "):  # PBS: one section per job
                states.update(parse_qstat("\n".join(lines)))
        return states


def _slurm_exit(text: str) -> int | None:
    match = re.match(r"(\d+):(\d+)", text or "")
    if not match:
        return None
    code, signal = int(match.group(1)), int(match.group(2))
    return code if code else (128 + signal if signal else 0)


def task_ids(tasks: str) -> list[int]:
    """Slurm's array task list (``2``, ``2-3``, ``1,4-8:2``; a ``%N`` throttle left out) as
    indices; none when it does not parse."""
    indices: list[int] = []
    for part in tasks.split("%", 1)[0].split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        if not match:
            return []
        first = int(match.group(1))
        last = int(match.group(2) or first)
        indices += range(first, last + 1, int(match.group(3) or 1))
    return indices


def slurm_ids(text: str) -> list[str]:
    """The job ids of one ``sacct`` JobID: ``12``; an array element ``12_3``; the pending rest
    of an array ``12_[4-7%2]`` as ``12_4`` ... ``12_7``."""
    match = re.fullmatch(r"(\d+)(?:_(\d+)|_\[([0-9,:%-]+)\])?", text)
    if not match:
        return []
    if match.group(3):
        return [f"{match.group(1)}_{index}" for index in task_ids(match.group(3))]
    return [text]


def parse_slurm(sacct: list[str], scontrol: list[str]) -> dict[str, JobState]:
    """``scontrol show job -o`` (recent jobs) wins over ``sacct`` (accounting, older jobs). An
    array's elements also under ``<array id>_<index>``, the id the ledger records for them."""
    states: dict[str, JobState] = {}
    for line in sacct:
        parts = line.strip().split("|")
        if len(parts) == 3:
            raw = parts[1].split()[0] if parts[1] else ""
            for job in slurm_ids(parts[0]):
                states[job] = JobState(job, SLURM_STATES.get(raw, "UNKNOWN"), _slurm_exit(parts[2]))
    for line in scontrol:
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if "JobId" in fields and "JobState" in fields:
            job = fields["JobId"]
            state = SLURM_STATES.get(fields["JobState"], "UNKNOWN")
            code = _slurm_exit(fields.get("ExitCode", ""))
            states[job] = JobState(job, state, code)
            array = fields.get("ArrayJobId", "")
            for index in task_ids(fields.get("ArrayTaskId", "")) if array.isdigit() else ():
                states[f"{array}_{index}"] = JobState(f"{array}_{index}", state, code)
    return states


def parse_qstat(text: str) -> dict[str, JobState]:
    """``qstat -f -F json`` (with or without ``-x``): jobs it does not know are absent; JSON that
    does not parse (as some PBS versions emit) is an error with the raw text, never an empty
    answer. Each job under its full id and its bare number."""
    start = text.find("{")
    try:
        data = json.loads(text[start:]) if start >= 0 else {}
    except ValueError as exc:
        raw = text[start:][:500]
        raise FactProcessError(f"qstat answered JSON that does not parse ({exc}): {raw}") from None
    states: dict[str, JobState] = {}
    for job, info in (data.get("Jobs") or {}).items():
        states[job] = pbs_state(job, info)
        states.setdefault(job.split(".", 1)[0], states[job])
    return states


def pbs_state(job: str, info: dict) -> JobState:
    """One job of ``qstat -f -F json``. A queued or running job has no ``Exit_status`` yet; a
    finished one (``F``, ``X``) has the script's exit code, 256 + N when PBS ended it with
    signal N, or one of PBS's own negative codes."""
    name = info.get("Job_Name")
    letter = str(info.get("job_state", ""))
    if letter not in PBS_FINISHED:
        return JobState(job, PBS_STATES.get(letter, "UNKNOWN"), None, name)
    code = _integer(info.get("Exit_status"))
    terminated = _integer(info.get("substate")) == PBS_TERMINATED
    if code is None:  # never ran: deleted while queued, or its exit status was not recorded
        return JobState(job, "CANCELLED" if terminated else "UNKNOWN", None, name)
    if code in PBS_TIME_KILLS:
        return JobState(job, "TIMEOUT", code, name)
    if code in PBS_LIMIT_KILLS:
        return JobState(job, "CANCELLED", code, name)
    if code > PBS_SIGNALLED:
        ended = "TIMEOUT" if _over_walltime(info) else "CANCELLED"
        return JobState(job, ended, 128 + code - PBS_SIGNALLED, name)
    return JobState(job, "COMPLETED" if code == 0 else "FAILED", code, name)


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and int(value) == value:
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _seconds(value: object) -> int | None:
    """PBS's ``[[HH:]MM:]SS`` durations (``resources_used.walltime``) in seconds."""
    parts = str(value or "").split(":")
    if not all(part.isdigit() for part in parts) or len(parts) > 3:
        return None
    return sum(int(part) * 60**i for i, part in enumerate(reversed(parts)))


def _over_walltime(info: dict) -> bool:
    limit = _seconds((info.get("Resource_List") or {}).get("walltime"))
    used = _seconds((info.get("resources_used") or {}).get("walltime"))
    return limit is not None and used is not None and used >= limit


class ActiveJobs(FactBase):
    """The cluster user's queued and running jobs, ``{job id: job name}`` (``squeue``; PBS:
    ``qselect``, then ``qstat`` one job at a time), or ``None`` when the scheduler could not be
    asked: then nothing may be treated as finished. Ids without an array index or a PBS server
    suffix."""

    def command(self, scheduler: str) -> StringCommand:
        if scheduler == "pbs":
            listing = (
                "set -f;"  # ids like 12[].server are not globs
                ' ids=$(qselect -u "$(id -un)" 2>/dev/null)'
                f' && {{ for j in $ids; do echo "{MARK}qstat $j"; qstat -f -F json "$j" 2>&1;'
                " done; true; }"
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
        active = {}
        for name, lines in sections.items():
            if not name.startswith("qstat "):
                continue
            text = "\n".join(lines)
            if "{" not in text and not any(gone in text for gone in PBS_GONE):
                return None  # listed by qselect, but qstat could not say what it is
            for state in parse_qstat(text).values():
                if state.active:
                    active[base_id(state.job_id)] = state.name or ""
        for line in sections.get("squeue", []):
            job, _, name = line.strip().partition("|")
            if base_id(job):
                active[base_id(job)] = name
        return active


def base_id(job: str) -> str:
    """``12`` of Slurm's ``12`` or ``12_3`` (array task) and PBS's ``12.server`` or ``12[]``."""
    match = re.match(r"(\d+)(?:[_\[.]|$)", job)
    return match.group(1) if match else ""
