"""Cluster jobs: `pyinfra inventories/cluster.py deploy/cluster_jobs.py` prints each login node's
ledger (run key, job, state, submitted, commit, arguments) with the scheduler's states;
`--data isaac_cancel=<run key>` cancels that run's queued or running jobs."""

from pathlib import Path

from isaac_deploy.deploys.cluster import jobs

jobs.jobs(project_root=Path(__file__).resolve().parent.parent)
