"""Job scripts for the cluster's scheduler (Slurm or PBS), rendered from ``templates/jobs/``.

The training arguments become a bash array of individually quoted words, so each arrives at
the entry script exactly as given; the container starts in the extension's folder with its
``logs/`` bound from the extension's persistent logs tree, and its exit code is the job's exit
code (after the job has recorded which run folders it made).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from isaac_deploy.model.cluster import ClusterConfig
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.runs import BOOKKEEPING, RUN_DEPTH
from isaac_deploy.model.sweep import Sweep
from isaac_deploy.render.launch import launch_context
from isaac_deploy.render.templates import render

# PBS Pro takes job names of up to 236 characters (Slurm more): never cut, so that a job is
# found by its name (the ledger's reconciliation) without mistaking another submission for it
JOB_NAME_RE = r"[A-Za-z0-9_.-]{1,236}"
# the scheduler's log of a job, in the run's bookkeeping folder (PBS cannot put the job id in it)
JOB_LOG = {"slurm": "job-%j.out", "pbs": "job.out"}
# a sweep element's log: named by its array job id and index (Slurm's %A_%a is the id the ledger
# records for the element, 1234_2; PBS replaces ^array_index^ in -o)
SWEEP_LOG = {"slurm": "job-%A_%a.out", "pbs": "job-^array_index^.out"}
# the variable the scheduler sets to a job array element's index
ARRAY_INDEX_VARIABLE = {"slurm": "SLURM_ARRAY_TASK_ID", "pbs": "PBS_ARRAY_INDEX"}
# the variable the scheduler sets to the job's id in the job
JOB_ID_VARIABLE = {"slurm": "SLURM_JOB_ID", "pbs": "PBS_JOBID"}


@dataclass(frozen=True)
class JobSpec:
    """One submission: what runs, from which image and code snapshot, with which arguments."""

    run_key: str
    image: str
    code_dir: str
    logs_tree: str  # the extension's persistent logs tree, bound at <ext_path>/logs
    bookkeeping: str  # isaac-deploy's folder of this run key in the tree
    cache_dir: str
    output: str
    extension: str
    planned: str  # when the roll-out was planned (UTC, as in the ledger): names this submission
    args: tuple[str, ...] = ()
    binds: tuple[str, ...] = ()
    secret_file: str | None = None
    ext_path: str = "/workspace/ext_template"
    isaacsim_root: str = "/isaac-sim"
    attempt: int = 1  # the how-manieth start of the run this submission is (resumed after 1)
    sweep: Sweep | None = None  # a job array: each element runs with its own arguments
    interactive: bool = False  # the image's shell instead of the entry script (cluster shell)

    @property
    def job_name(self) -> str:
        return job_name(self.extension, self.run_key, self.planned)


def run_prefix(extension: str, run_key: str) -> str:
    """How the names of a run's jobs start: ``<extension>.<run key>.`` (an extension name has no
    ``.``, so no other run's or extension's names start so)."""
    return f"{extension}.{run_key}."


def job_name(extension: str, run_key: str, planned: str) -> str:
    """The scheduler's name of one submission: the run's prefix and the roll-out's plan time
    (``-`` and ``:`` left out), e.g. ``ext_template.3f2a9c1-5d41402a.20261124T060000Z``: a job
    found by its name is that submission's, not an earlier one of the run."""
    return run_prefix(extension, run_key) + planned.replace("-", "").replace(":", "")


def render_job(templates: Path, cluster: ClusterConfig, job: JobSpec) -> str:
    if not re.fullmatch(JOB_NAME_RE, job.job_name):
        raise ConfigError(
            "job name",
            f"{job.job_name!r} (<extension>.<run key>.<plan time>) is not letters, digits, _ . - "
            "of at most 236 characters: use a shorter run key",
        )
    if job.sweep is not None and len(job.sweep.elements) < 2:
        raise ConfigError("sweep", "a job array needs at least two elements")
    if any(c in job.output for c in "\n\x00 "):
        raise ConfigError("job output", "must be one path without spaces")
    for what, path in (
        ("code snapshot", job.code_dir),
        ("logs tree", job.logs_tree),
        ("cache dir", job.cache_dir),
        ("W&B key file", job.secret_file or ""),
    ):
        if any(c in path for c in ":,"):
            raise ConfigError(what, f"{path} holds ':' or ',' (apptainer --bind cannot take it)")
    return render(
        templates,
        f"jobs/{cluster.scheduler}.sh.j2",
        cluster=cluster,
        job_name=job.job_name,
        run_key=job.run_key,
        image=job.image,
        code_dir=job.code_dir,
        logs_tree=job.logs_tree,
        bookkeeping=job.bookkeeping,
        book_folder=BOOKKEEPING,
        run_depth=RUN_DEPTH,
        job_id_variable=JOB_ID_VARIABLE[cluster.scheduler],
        cache_dir=job.cache_dir,
        output=job.output,
        args=list(job.args),
        binds=list(job.binds),
        secret_file=job.secret_file,
        ext_path=job.ext_path,
        isaacsim_root=job.isaacsim_root,
        **launch_context(cluster, job.attempt),
        sweep=job.sweep,
        interactive=job.interactive,
        index_variable=ARRAY_INDEX_VARIABLE[cluster.scheduler],
    )
