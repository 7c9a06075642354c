"""Clusters the extension is rolled out to: one group per cluster (login nodes + settings).

This replaces the seed's `.env.cluster`. Values are checked when this file loads, before any
connection; secrets come from an environment variable or a 0600 file on this workstation, never
from this file. Cluster paths may start with ~ or a variable the cluster sets ($SCRATCH, ...).
"""

import runpy
from pathlib import Path

from isaac_deploy.model.cluster import cluster

# registries a cluster may build its image from: the ones of inventories/registries.py (one
# place for their settings); the login node must reach the registry and trust its certificate
REGISTRIES = runpy.run_path(str(Path(__file__).with_name("registries.py")))["REGISTRIES"]

# the workstation builds the Apptainer image (or pushes the Docker image to a registry)
workstation = [("@local", {})]

euler = cluster(
    "euler",
    hosts=["login.euler.example.org"],
    user="jdoe",
    scheduler="slurm",
    image_dir="$SCRATCH/isaac/images",
    code_dir="$SCRATCH/isaac/code",
    cache_dir="$SCRATCH/isaac/cache",
    logs_dir="$HOME/isaac/logs",
    entry_script="scripts/rsl_rl/train.py",
    modules=["eth_proxy"],
    # what each job asks for (README, "Job resources"): e.g. "gpus": "rtx_4090:1" for a GPU type,
    # "constraint", "mem_per_cpu", "tmp", "reservation", "extra": ["--exclusive"]
    resources={
        "account": "es_robotics",
        "gpus": 1,
        "cpus": 16,
        "memory": "32G",
        "walltime": "04:00:00",
        "mail": "jdoe@example.org",
    },
    snapshot_retention=5,  # code snapshots kept (never one of a queued or running job)
    image_retention=2,  # Apptainer images kept (never one a queued or running job uses)
    wandb_api_key_env="WANDB_API_KEY",
    # the job's Apptainer runtime (README: "Job runtime"), here with its defaults
    apptainer="apptainer",  # the command, found on PATH after `modules`, or its path there
    containall=True,  # --containall: nothing of the host's $HOME, /tmp or environment
    writable_tmpfs=True,  # --writable-tmpfs: a throw-away writable layer over the image
    stage_image=False,  # True: each job copies the image to the node's $TMPDIR first
)

pbs_cluster = cluster(
    "pbs_cluster",
    hosts=["login1.hpc.example.edu", "login2.hpc.example.edu"],
    ssh={"port": 22},
    user="jdoe",
    scheduler="pbs",
    image_dir="/scratch/jdoe/isaac/images",
    code_dir="/scratch/jdoe/isaac/code",
    cache_dir="/scratch/jdoe/isaac/cache",
    logs_dir="~/isaac/logs",
    modules=[],
    # pbs_gpu_resource: the server's GPU resource in the select chunk (ngpus, gpus, or None)
    resources={
        "gpus": 2,
        "pbs_gpu_resource": "ngpus",
        "cpus": 24,
        "memory": "64G",
        "walltime": "12:00:00",
    },
    wandb_api_key_file="~/.config/isaac-deploy/wandb_api_key",
    # login nodes build the image from the registry (`apptainer build docker://...`) instead
    # of receiving the file; the workstation pushes it there first
    image_registry="lab",
    registries=REGISTRIES,
)
