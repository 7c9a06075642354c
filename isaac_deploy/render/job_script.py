"""Job scripts for the cluster's scheduler (Slurm or PBS), rendered from ``templates/jobs/``.

The training arguments become a bash array of individually quoted words, so each arrives at
the entry script exactly as given; the container's exit code is the job's exit code (``exec``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from isaac_deploy.model.cluster import ClusterConfig
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.render.templates import render

JOB_NAME_RE = r"[A-Za-z0-9_.-]{1,64}"
# the scheduler's log of a job, in the run's logs folder (PBS cannot put the job id in it)
JOB_LOG = {"slurm": "job-%j.out", "pbs": "job.out"}


@dataclass(frozen=True)
class JobSpec:
    """One submission: what runs, from which image and code snapshot, with which arguments."""

    run_key: str
    image: str
    code_dir: str
    logs_dir: str
    cache_dir: str
    output: str
    args: tuple[str, ...] = ()
    binds: tuple[str, ...] = ()
    secret_file: str | None = None
    ext_path: str = "/workspace/ext_template"
    isaacsim_root: str = "/isaac-sim"

    @property
    def job_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]", "-", self.run_key)[:64]


def render_job(templates: Path, cluster: ClusterConfig, job: JobSpec) -> str:
    if not re.fullmatch(JOB_NAME_RE, job.job_name):
        raise ConfigError("run key", f"{job.run_key!r} cannot name a job")
    if any(c in job.output for c in "\n\x00 "):
        raise ConfigError("job output", "must be one path without spaces")
    return render(
        templates,
        f"jobs/{cluster.scheduler}.sh.j2",
        cluster=cluster,
        job_name=job.job_name,
        run_key=job.run_key,
        image=job.image,
        code_dir=job.code_dir,
        logs_dir=job.logs_dir,
        cache_dir=job.cache_dir,
        output=job.output,
        args=list(job.args),
        binds=list(job.binds),
        secret_file=job.secret_file,
        ext_path=job.ext_path,
        isaacsim_root=job.isaacsim_root,
    )
