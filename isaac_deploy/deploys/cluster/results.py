"""Experiment logs back from the clusters."""

from __future__ import annotations

import os
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy

from isaac_deploy.deploys.cluster.plan import (
    extension_config,
    flag,
    ledger_path,
    standing_by,
    this_cluster,
)
from isaac_deploy.facts.cluster import ClusterEnv
from isaac_deploy.model.cluster import KEY, path_variables, resolve
from isaac_deploy.model.runs import BOOKKEEPING, logs_tree
from isaac_deploy.operations.results import results_pulled


@deploy("Results back")
def results(project_root: str | Path) -> None:
    """Each cluster's logs tree of the extension into the project's ``logs/`` (or
    ``isaac_results_dir``), where local runs are; its bookkeeping into
    ``logs/isaac-deploy/<cluster>/``. With ``--data isaac_remove=1`` the pulled runs of
    finished run keys are removed on the cluster."""
    if host.name == "@local":
        return
    cluster = this_cluster()
    if standing_by(cluster):
        return
    config = extension_config(project_root, "isaac_remove", "isaac_results_dir")
    default = os.path.join(config.extension_folder, "logs")
    results_dir = os.path.abspath(
        os.path.expanduser(str(host.data.get("isaac_results_dir") or default))
    )
    env = host.get_fact(ClusterEnv, names=path_variables(cluster.logs_dir))
    logs_dir = resolve(cluster.logs_dir, env, f"{cluster.name}: {KEY}[logs_dir]")
    results_pulled(
        name=f"{cluster.name}: results",
        tree=logs_tree(logs_dir, config.extension_name),
        local_dir=results_dir,
        book_dir=os.path.join(results_dir, BOOKKEEPING, cluster.name),
        ledger=ledger_path(env["HOME"], config.extension_name),
        scheduler=cluster.scheduler,
        extension=config.extension_name,
        remove=flag(host.data.dict(), "isaac_remove"),
    )
