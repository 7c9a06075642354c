"""What ``templates/jobs/launch.sh.j2`` needs besides the job: how many workers a node runs and
their CPU threads, the signal the warning before the wall time becomes for the training, and
the program each node runs when a job spans several nodes."""

from __future__ import annotations

from typing import Any

from isaac_deploy.model.cluster import ClusterConfig
from isaac_deploy.model.launch import workers

# one node's launcher (srun or pbsdsh start it on each node): the container with a private
# folder of that node (the job script's own is on the first node only), removed at the end.
# $1: apptainer; then apptainer exec's flags, the image and the command
NODE_SCRIPT = """app=$1; shift
w=$(mktemp -d "${TMPDIR:-/tmp}/isaac-deploy-node.XXXXXXXX") || exit 1
trap 'rm -rf "$w"' EXIT
trap 'exit 143' TERM INT
"$app" exec WORKDIR"$@"
"""


def launch_context(cluster: ClusterConfig, attempt: int) -> dict[str, Any]:
    """The launch template's values for ``cluster`` (its resources and launch as submitted)."""
    count = workers(cluster.launch, cluster.resources.gpus)
    workdir = '--workdir "$w" ' if cluster.containall else ""
    return {
        "workers": count,
        "threads": max(cluster.resources.cpus // count, 1),
        # torchrun passes SIGTERM on to its workers; SIGUSR1 would end torchrun itself
        "forward": "TERM" if cluster.launch.launcher == "torchrun" else "USR1",
        "attempt": attempt,
        "node_script": NODE_SCRIPT.replace("WORKDIR", workdir),
    }
