"""The clusters' ledgers with the scheduler's job states; cancel a run."""

from __future__ import annotations

from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import deploy

from isaac_deploy.deploys.cluster.plan import (
    extension_config,
    ledger_path,
    standing_by,
    this_cluster,
)
from isaac_deploy.facts.attempts import Attempts
from isaac_deploy.facts.cluster import ClusterEnv, LogsTree
from isaac_deploy.facts.ledger import LedgerEntries
from isaac_deploy.facts.scheduler import ActiveJobs, JobStates
from isaac_deploy.model.cluster import KEY, path_variables, resolve
from isaac_deploy.model.ledger import listing
from isaac_deploy.model.runs import logs_tree
from isaac_deploy.operations.scheduler import job_cancelled
from isaac_deploy.render.attempts_table import attempt_lines
from isaac_deploy.render.ledger_table import table, unreadable_lines

UNRECORDED = (
    "UNRECORDED: the submission's job id was never written; the next roll-out of that run key "
    "records the job the scheduler knows by its name (or says that none ran)"
)


@deploy("Cluster jobs")
def jobs(project_root: str | Path) -> None:
    """Print each login node's ledger with the scheduler's job states (a submission once, also
    one without a job id), the run folders each ended job made in the extension's logs tree, and
    the ledger's unreadable lines; with ``--data isaac_cancel=<run key>`` cancel that run's
    queued or running jobs."""
    if host.name == "@local":
        return
    cluster = this_cluster()
    if standing_by(cluster):
        return
    ext = extension_config(project_root, "isaac_cancel").extension_name
    env = host.get_fact(ClusterEnv, names=path_variables(cluster.logs_dir))
    ledger = ledger_path(env["HOME"], ext)
    logs_dir = resolve(cluster.logs_dir, env, f"{cluster.name}: {KEY}[logs_dir]")
    tree = host.get_fact(LogsTree, tree=logs_tree(logs_dir, ext))
    records = host.get_fact(LedgerEntries, path=ledger)
    entries = listing(records.entries)
    ids = tuple(sorted({entry.job_id for entry in entries if entry.job_id}))
    states = host.get_fact(JobStates, scheduler=cluster.scheduler, job_ids=ids) if ids else {}
    active = host.get_fact(ActiveJobs, scheduler=cluster.scheduler)
    lines = table(entries, states, active, tree.records) if entries else ["no submissions yet"]
    lines += attempt_lines(entries, host.get_fact(Attempts, tree=logs_tree(logs_dir, ext)))
    if any(not entry.job_id and entry.status == "pending" for entry in entries):
        lines.append(UNRECORDED)
    logger.info("\n".join(f"{host.print_prefix}{line}" for line in lines))
    for line in unreadable_lines(ledger, records):
        logger.warning(f"{host.print_prefix}{line}")
    cancel = host.data.get("isaac_cancel")
    if cancel:
        job_cancelled(
            name=f"{cluster.name}: cancel {cancel}",
            run_key=str(cancel),
            ledger=ledger,
            scheduler=cluster.scheduler,
        )
