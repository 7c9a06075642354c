"""Operations: a run key is submitted to the scheduler once, and recorded in the ledger; a
run's queued or running jobs cancelled."""

from __future__ import annotations

import posixpath
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation

from isaac_deploy.facts.ledger import LedgerEntries
from isaac_deploy.facts.scheduler import ActiveJobs, JobStates
from isaac_deploy.model.ledger import Entry, check_run_key, entry_line_parts, submitted
from isaac_deploy.operations.util import fail, first_pass
from isaac_deploy.policy.retention import keep_reason
from isaac_deploy.render.ledger_table import unreadable_lines

SUBMIT = {"slurm": "sbatch --parsable", "pbs": "qsub"}
# what sbatch --parsable (``id[;cluster]``, cut at ``;``) and qsub print on their last line
JOB_ID = {"slurm": r"[0-9]+", "pbs": r"[0-9]+(\[[0-9]*\])?(\.[A-Za-z0-9._-]+)?"}


@operation()
def job_submitted(
    entry: Entry, script: str, ledger: str, resubmit: bool = False, directories: tuple = ()
):
    """Submit ``script`` from ``entry.snapshot`` unless ``entry.run_key`` is in the ledger.

    The job id the scheduler answers is appended to the ledger in the same command as the
    submission (``sbatch --parsable`` / ``qsub``).

    + entry: the ledger entry to record (its ``job_id`` is filled in from the scheduler)
    + script: the rendered job script, written as ``job-<run key>.sh`` in the snapshot
    + ledger: absolute path of the ledger file on the login node
    + resubmit: submit even when the run key was submitted before
    + directories: folders that must exist at submission (e.g. where the job log goes)

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
            ),
            script=render_job(templates, cluster, job),
            ledger="/cluster/home/jdoe/.isaac-deploy/ext_template-ledger.jsonl",
            directories=("/cluster/home/jdoe/isaac/logs/3f2a9c1-5d41402a",),
        )
    """
    check_run_key(entry.run_key)
    records = host.get_fact(LedgerEntries, path=ledger)
    if first_pass():
        for line in unreadable_lines(ledger, records):
            logger.warning(f"{host.print_prefix}{line}")
    done = submitted(records.entries, entry.run_key)
    if done and not resubmit:
        jobs = ", ".join(e.job_id for e in done)
        host.noop(f"run {entry.run_key} was submitted already (job {jobs})")
        return
    snapshot = entry.snapshot or ""
    job_file = posixpath.join(snapshot, f"job-{entry.run_key}.sh")
    folders = (snapshot, posixpath.dirname(ledger), *directories)
    yield StringCommand("mkdir -p", *(QuoteString(folder) for folder in folders))
    yield FileUploadCommand(StringIO(script), job_file, remote_temp_filename=job_file)
    prefix, suffix = entry_line_parts(entry)
    yield StringCommand(
        "cd",
        QuoteString(snapshot),
        "&& chmod 700",
        QuoteString(job_file),
        "&& out=$(",
        SUBMIT[entry.scheduler],
        QuoteString(job_file),
        ") && id=$(printf '%s\\n' \"$out\" | tail -n 1) && id=${id%%;*}",
        "&& { printf '%s\\n' \"$id\" | grep -Eqx",
        QuoteString(JOB_ID[entry.scheduler]),
        "|| { printf 'error: %s answered no job id: %s\\n'",
        QuoteString(SUBMIT[entry.scheduler].split()[0]),
        '"$out" >&2; exit 1; }; }',
        "&& printf '%s%s%s\\n'",
        QuoteString(prefix),
        '"$id"',
        QuoteString(suffix),
        ">>",
        QuoteString(ledger),
        '&& echo "submitted job $id"',
    )


CANCEL = {"slurm": "scancel", "pbs": "qdel"}


@operation(is_idempotent=False)
def job_cancelled(run_key: str, ledger: str, scheduler: str):
    """No job of ``run_key`` is queued or running any more (``scancel`` / ``qdel``).

    + run_key: the run whose jobs to cancel (as recorded in the ledger)
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
    entries = host.get_fact(LedgerEntries, path=ledger).entries
    jobs = [entry.job_id for entry in submitted(entries, run_key)]
    if not jobs:
        yield fail(f"no run {run_key} in the ledger {ledger}")
        return
    states = host.get_fact(JobStates, scheduler=scheduler, job_ids=tuple(jobs))
    active = host.get_fact(ActiveJobs, scheduler=scheduler)
    if active is None:
        yield fail("the scheduler could not be asked which jobs are queued or running")
        return
    running = [job for job in jobs if keep_reason([job], states, active)]
    if not running:
        host.noop(f"no job of run {run_key} is queued or running ({', '.join(jobs)})")
        return
    yield StringCommand(CANCEL[scheduler], *(QuoteString(job) for job in running))
