"""A sweep's job array on one cluster: the array job, submitted once, and a ledger line for
each element (the roll-out's code snapshot, image and mounts are the sweep's, as for one job)."""

from __future__ import annotations

import posixpath
from dataclasses import replace
from typing import TYPE_CHECKING

from isaac_deploy.model.cluster import ClusterConfig
from isaac_deploy.operations.sweep import sweep_submitted
from isaac_deploy.render.job_script import SWEEP_LOG, JobSpec, render_job
from isaac_deploy.render.templates import TEMPLATES

if TYPE_CHECKING:
    from isaac_deploy.deploys.cluster.plan import Rollout


def sweep_job(plan: Rollout, cluster: ClusterConfig, job: JobSpec, ledger: str) -> None:
    """Submit ``job`` (its ``sweep`` set) as one job array on ``cluster`` (with the submission's
    resources and launch), once per sweep run key; each element
    logs to ``job-<array id>_<index>.out`` (PBS: ``job-<index>.out``) in the sweep's folder."""
    sweep = job.sweep
    assert sweep is not None, "a sweep job"
    job = replace(job, output=posixpath.join(job.bookkeeping, SWEEP_LOG[cluster.scheduler]))
    entry = plan.entry(
        sweep.key,
        cluster.scheduler,
        job.code_dir,
        job.job_name,
        sweep={"elements": len(sweep.elements), "array": sweep.array_range},
    )
    elements = tuple(
        replace(
            entry,
            run_key=sweep.element_key(index),
            args=args,
            extra={"sweep": {"of": sweep.key, "index": index}},
        )
        for index, args in enumerate(sweep.elements)
    )
    sweep_submitted(
        name=f"{cluster.name}: {sweep.summary} {sweep.key} ({cluster.resources.summary})",
        entry=entry,
        elements=elements,
        script=render_job(TEMPLATES, cluster, job),
        ledger=ledger,
        resubmit=plan.resubmit,
        directories=(job.bookkeeping, posixpath.join(job.code_dir, "logs")),
    )
