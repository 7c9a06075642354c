"""Operations: a run key is submitted to the scheduler exactly once, and recorded in the
ledger; a run's queued or running jobs cancelled.

The check ("submitted already?"), the submission and its records run on the login node as one
command under ``flock`` on a lock file next to the ledger, so two roll-outs of a run key (two
terminals, two workstations) submit one job. A pending record is appended before the scheduler
is called and completed with the job id after it; a pending record without an outcome (the
connection dropped, the ledger could not be written) is settled by the next roll-out from the
scheduler's own answer: the job with the run's job name (``squeue``/``sacct``, ``qselect``).
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import replace

from pyinfra import host, logger
from pyinfra.api import QuoteString, StringCommand, operation

from isaac_deploy.facts.ledger import LedgerEntries
from isaac_deploy.facts.scheduler import PBS_NO_HISTORY, ActiveJobs, JobStates
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.ledger import Entry, check_run_key, search_start, submitted, unresolved
from isaac_deploy.operations.util import fail, first_pass
from isaac_deploy.policy.retention import job_active
from isaac_deploy.render.ledger_table import unreadable_lines

LOCK_WAIT = 300  # seconds a roll-out waits while another one submits to the same ledger
# what sbatch --parsable (``id[;cluster]``, cut at ``;``) and qsub print on their last line
JOB_ID = {"slurm": r"[0-9]+", "pbs": r"[0-9]+(\[[0-9]*\])?(\.[A-Za-z0-9._-]+)?"}
# per scheduler: submit FILE; lookup NAME: the ids of the user's jobs named NAME (one
# submission's), queued, running or ended (Slurm's history from $since; no accounting database
# is no error)
SCHEDULER = {
    "slurm": """tool=sbatch
submit() { sbatch --parsable "$1"; }
lookup() {
  u=$(id -un) && squeue -h -t all -u "$u" -n "$1" -o %i &&
    { sacct -n -X -P -u "$u" --name "$1" -S "$since" -o JobID 2>/dev/null || true; }
}
""",
    # a PBS server without job history refuses -x (PBSE_JOBHISTNOTSET): then its active jobs
    "pbs": """tool=qsub
submit() { qsub "$1"; }
lookup() {
  u=$(id -un) && found=$(qselect -x -u "$u" -N "$1" 2>&1) && printf '%s\\n' "$found" && return
  case $found in """
    + PBS_NO_HISTORY
    + """) qselect -u "$u" -N "$1" ;; *) return 1 ;; esac
}
""",
}
# check-submit-record, under the ledger's lock. The ledger's lines of the run are found by their
# run key (torn lines left out); a record is the pending line with its job id and status filled
# in; a pending record is settled by its own job name. $1..$8: ledger, run key, job name,
# snapshot, job script, resubmit (1/0, or after:<job id>: a continuation of that job), pending
# line, since
SUBMIT = r"""set -f
ledger=$1 key=$2 name=$3 snapshot=$4 script=$5 resubmit=$6 line=$7 since=$8
job=$snapshot/job-$key.sh
run_re="\"run_key\"[[:space:]]*:[[:space:]]*\"$(printf '%s' "$key" | sed 's/[.]/[.]/g')\""
id_re='"job_id"[[:space:]]*:[[:space:]]*"[^"]+"'
records() { grep -E -e "$run_re" -- "$ledger" 2>/dev/null | grep -E '^[{].*[}]$'; }
recorded() { records | grep -Eo -e "$id_re" | sed 's/.*"\([^"]*\)"$/\1/'; }
record() {
  printf '%s\n' "$1" | LC_ALL=C sed \
    -e "s/\"job_id\"[[:space:]]*:[[:space:]]*\"\"/\"job_id\": \"$2\"/" \
    -e "s/\"status\"[[:space:]]*:[[:space:]]*\"pending\"/\"status\": \"$3\"/" >> "$ledger"
}
named() {
  found=$(lookup "$1") || return 1
  printf '%s\n' "$found" | grep -Ex -e "$id_ok" | sort -u
}
case $resubmit in
  after:*)  # a continuation: only while the job it continues is the run's latest
    latest=$(recorded | tail -n 1)
    if [ "$latest" != "${resubmit#after:}" ]; then
      echo "run $key was continued already (job $latest): nothing submitted"
      exit 0
    fi ;;
  1) ;;
  *)
    if [ -n "$(recorded)" ]; then
      echo "run $key was submitted already (job $(echo $(recorded))): nothing submitted"
      exit 0
    fi ;;
esac
last=$(records | tail -n 1)
if [ -n "$last" ] &&
  ! printf '%s\n' "$last" | grep -Eq -e "$id_re" -e '"status"[[:space:]]*:[[:space:]]*"refused"'
then
  earlier=$(printf '%s\n' "$last" |
    sed -n 's/.*"job_name"[[:space:]]*:[[:space:]]*"\([A-Za-z0-9_.-]*\)".*/\1/p')
  earlier=${earlier:-$name}
  ids=$(named "$earlier") || {
    echo "error: $tool could not be asked for the jobs named $earlier: nothing submitted" >&2
    exit 1
  }
  for id in $ids; do
    record "$last" "$id" submitted || exit 1
    echo "recorded job $id of run $key, found by its name $earlier: nothing submitted"
  done
  [ -z "$ids" ] || exit 0
  if [ "$resubmit" != 1 ]; then
    echo "error: run $key has a submission without a job id and $tool knows no job named" \
      "$earlier: if none ran, submit it again with --data isaac_resubmit=1" >&2
    exit 1
  fi
fi
printf '%s' "$script" > "$job.tmp" && chmod 700 "$job.tmp" && mv -f "$job.tmp" "$job" &&
  cd "$snapshot" || exit 1
printf '%s\n' "$line" >> "$ledger" || {
  echo "error: the ledger $ledger cannot be written: nothing submitted" >&2
  exit 1
}
out=$(submit "$job")
id=$(printf '%s\n' "$out" | tail -n 1) && id=${id%%;*}
if printf '%s\n' "$id" | grep -Eqx -e "$id_ok"; then
  record "$line" "$id" submitted && echo "submitted job $id" && exit 0
  echo "error: job $id was submitted but the ledger $ledger cannot be written: the next" \
    "roll-out records it (it finds the job by its name $name)" >&2
  exit 1
fi
ids=$(named "$name")
asked=$?
if [ "$asked" = 0 ] && [ -n "$ids" ]; then
  for id in $ids; do
    record "$line" "$id" submitted || exit 1
    echo "$tool answered no job id ($out) but job $id has the name $name: recorded"
  done
  exit 0
fi
echo "error: $tool answered no job id: $out" >&2
[ "$asked" != 0 ] || record "$line" "" refused
exit 1
"""


def submission_script(scheduler: str) -> str:
    """The login node's check-submit-record program for ``scheduler``."""
    return f"id_ok={shlex.quote(JOB_ID[scheduler])}\n{SCHEDULER[scheduler]}{SUBMIT}"


@operation()
def job_submitted(
    entry: Entry,
    script: str,
    ledger: str,
    resubmit: bool = False,
    directories: tuple = (),
    continues: str | None = None,
):
    """Submit ``script`` from ``entry.snapshot`` once: unless ``entry.run_key`` has a job in the
    ledger, decided again on the login node under the ledger's lock.

    A pending record goes to the ledger before ``sbatch --parsable`` / ``qsub`` is called, the
    job id the scheduler answers after it (or ``refused``: no job was taken). A pending record
    without an outcome, from an earlier roll-out, is settled first: the job the scheduler knows
    by the run's job name is recorded and nothing is submitted.

    + entry: the ledger entry to record (its ``job_id`` is filled in from the scheduler; its
      ``job_name`` is the name in ``script``, how the job is found when its id was not recorded)
    + script: the rendered job script, written as ``job-<run key>.sh`` in the snapshot
    + ledger: absolute path of the ledger file on the login node (locked with ``<ledger>.lock``)
    + resubmit: submit even when the run key was submitted before
    + directories: folders that must exist at submission (e.g. where the job log goes)
    + continues: a job of the run whose continuation this is (it was warned before its wall
      time and wrote a checkpoint): submitted while that job is the run's latest in the ledger

    **Example:**

    .. code:: python

        scheduler.job_submitted(
            name="euler: job 3f2a9c1-5d41402a",
            entry=Entry(
                run_key="3f2a9c1-5d41402a",
                job_id="",
                scheduler="slurm",
                commit="3f2a9c1",
                image="sha256:ab12",
                snapshot="/cluster/scratch/jdoe/isaac/code/ext_template/3f2a9c1-5d41402a",
                args=("--task", "Template-Reach-v0", "--headless"),
                time="2025-05-12T09:30:00Z",
                job_name="ext_template.3f2a9c1-5d41402a",
            ),
            script=render_job(templates, cluster, job),
            ledger="/cluster/home/jdoe/.isaac-deploy/ext_template-ledger.jsonl",
            directories=("/cluster/home/jdoe/isaac/logs/3f2a9c1-5d41402a",),
        )
    """
    check_run_key(entry.run_key)
    if not entry.job_name:
        raise ConfigError("job name", f"the ledger entry of run {entry.run_key} names no job")
    records = host.get_fact(LedgerEntries, path=ledger)
    if first_pass():
        for line in unreadable_lines(ledger, records):
            logger.warning(f"{host.print_prefix}{line}")
    entries = records.entries
    done = submitted(entries, entry.run_key)
    if continues and done and done[-1].job_id != continues:
        host.noop(f"run {entry.run_key} was continued already (job {done[-1].job_id})")
        return
    if done and not resubmit and not continues:
        jobs = ", ".join(e.job_id for e in done)
        host.noop(f"run {entry.run_key} was submitted already (job {jobs})")
        return
    # the scheduler's history is searched from the earliest submission that may be unrecorded
    pending = unresolved(entries, entry.run_key)
    if pending is not None and first_pass():
        logger.info(
            f"{host.print_prefix}run {entry.run_key} has a submission without a job id: the "
            f"job named {pending.job_name or entry.job_name} is recorded if the scheduler has it, "
            "before anything is submitted"
        )
    since = search_start([entry.time] + ([pending.time] if pending else []))
    snapshot = entry.snapshot or ""
    lock = f"{ledger}.lock"
    folders = (snapshot, posixpath.dirname(ledger), *directories)
    yield StringCommand("mkdir -p", *(QuoteString(folder) for folder in folders))
    arguments = (
        ledger,
        entry.run_key,
        entry.job_name,
        snapshot,
        script,
        "1" if resubmit else f"after:{continues}" if continues else "0",
        replace(entry, job_id="", status="pending").to_json(),
        since,
    )
    busy = f"error: another roll-out held {lock} for {LOCK_WAIT} s: nothing submitted, run again"
    yield StringCommand(
        "flock -E 75 -w",
        str(LOCK_WAIT),
        QuoteString(lock),
        "sh -c",
        QuoteString(submission_script(entry.scheduler)),
        "sh",
        *(QuoteString(argument) for argument in arguments),
        "|| { rc=$?; [ $rc != 75 ] || echo",
        QuoteString(busy),
        ">&2; exit $rc; }",
    )


CANCEL = {"slurm": "scancel", "pbs": "qdel"}


@operation(is_idempotent=False)
def job_cancelled(run_key: str, ledger: str, scheduler: str):
    """No job of ``run_key`` is queued or running any more (``scancel`` / ``qdel``).

    + run_key: the run whose jobs to cancel (as recorded in the ledger, and the jobs with its
      job name whose ids were never recorded)
    + ledger: absolute path of the ledger file on the login node
    + scheduler: ``slurm`` or ``pbs``, asked which of the run's jobs are queued or running

    **Example:**

    .. code:: python

        scheduler.job_cancelled(
            name="euler: cancel 3f2a9c1-5d41402a",
            run_key="3f2a9c1-5d41402a",
            ledger="/cluster/home/jdoe/.isaac-deploy/ext_template-ledger.jsonl",
            scheduler="slurm",
        )
    """
    check_run_key(run_key)
    records = [e for e in host.get_fact(LedgerEntries, path=ledger).entries if e.run_key == run_key]
    if not records:
        yield fail(f"no run {run_key} in the ledger {ledger}")
        return
    jobs = [entry.job_id for entry in submitted(tuple(records), run_key)]
    states = host.get_fact(JobStates, scheduler=scheduler, job_ids=tuple(jobs)) if jobs else {}
    active = host.get_fact(ActiveJobs, scheduler=scheduler)
    if active is None:
        yield fail("the scheduler could not be asked which jobs are queued or running")
        return
    running = [job for job in jobs if job_active(job, states, active)]
    # jobs of the run whose ids were never recorded: by the job name of a record without one
    # (a sweep element's name is its whole array's: never looked up for it)
    names = {entry.job_name for entry in records if entry.job_name and not entry.job_id}
    seen = {job.split(".", 1)[0] for job in running}
    running += [job for job, name in sorted(active.items()) if name in names and job not in seen]
    if not running:
        host.noop(f"no job of run {run_key} is queued or running ({', '.join(jobs) or '-'})")
        return
    yield StringCommand(CANCEL[scheduler], *(QuoteString(job) for job in running))
