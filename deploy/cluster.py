"""Cluster roll-out: `pyinfra inventories/cluster.py deploy/cluster.py` (add --dry for the plan).

The workstation builds the Apptainer image of the production image (once per image digest), which
must have been built from the tree as it is (else one line names `isaac-deploy -p ext build`);
each login node gets that image when it lacks it, a code snapshot for the run, the W&B key as a
0600 file, and the job, submitted once per run key (`--data isaac_run_key=...`,
`--data isaac_job_args="--task X --num_envs 64"`, `--data isaac_resubmit=1`);
`--data isaac_submit=0` puts the image (and external mounts) there without a job;
`--data isaac_sweep='{"grid": {"seed": [1, 2]}, "throttle": 2}'` submits a sweep (one job array,
a ledger line per run; `isaac-deploy cluster sweep`, README "Sweeps").
"""

from pathlib import Path

from isaac_deploy.deploys.cluster import plan, rollout

rollout.rollout(plan.load(project_root=Path(__file__).resolve().parent.parent))
