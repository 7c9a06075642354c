"""Operation: the experiment logs of a cluster are on this workstation, pulled incrementally.

rsync runs here (the workstation pulls from the login node, with the host's SSH settings:
port, key, known hosts, host key checking). The remove option deletes a run's logs on the
cluster only after they were pulled, only for runs the ledger knows, and never while the run's
job is queued or running.
"""

from __future__ import annotations

import posixpath

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, operation

from isaac_deploy.facts.cluster import Snapshots
from isaac_deploy.facts.ledger import LedgerEntries
from isaac_deploy.model.ledger import Entry
from isaac_deploy.operations.util import busy, remote
from isaac_deploy.probes import local


def pull(state, host, path: str, destination: str) -> bool:
    """rsync ``path`` from the login node (through its connection, when it has one that rsync
    can share); progress goes to the terminal, a failure is logged in one line."""
    rsh, source = remote(host, path)
    ok, error = local.rsync_pull(rsh, source, destination)
    if not ok:
        logger.error(f"{host.print_prefix}pulling {source} failed: {error}")
    return ok


@operation(is_idempotent=False)
def results_pulled(
    logs_dir: str, local_dir: str, ledger: str, scheduler: str, remove: bool = False
):
    """``local_dir`` holds everything under ``logs_dir`` on the login node.

    rsync runs on this workstation, through the login node's master connection (``@openssh``)
    or with the host's SSH settings; a run is removed on the cluster only after the pull, only
    when the ledger knows it, and only when its jobs had ended before the pull started.

    + logs_dir: the cluster's logs folder (absolute), one sub-folder per run key
    + local_dir: where the runs go on this workstation
    + ledger: the login node's ledger (which runs exist, and their jobs)
    + scheduler: ``slurm`` or ``pbs``, asked which of those jobs are queued or running
    + remove: delete pulled runs on the cluster whose jobs are finished

    **Example:**

    .. code:: python

        results.results_pulled(
            name="euler: results",
            logs_dir="/cluster/home/jdoe/isaac/logs",
            local_dir="/home/alice/ext_template/logs/cluster/euler",
            ledger="/cluster/home/jdoe/.isaac-deploy/ext_template-ledger.jsonl",
            scheduler="slurm",
            remove=True,
        )
    """
    removable = finished_runs(logs_dir, ledger, scheduler) if remove else []  # before the pull:
    # a job that ends during the pull may still write; only runs already finished are removed
    yield FunctionCommand(pull, (logs_dir.rstrip("/") + "/", local_dir.rstrip("/") + "/"), {})
    if removable:
        paths = [QuoteString(posixpath.join(logs_dir, run)) for run in removable]
        yield StringCommand("rm -rf --", *paths)


def finished_runs(logs_dir: str, ledger: str, scheduler: str) -> list[str]:
    """Run folders on the cluster whose ledger jobs have all ended (the others are kept)."""
    jobs: dict[str, list[Entry]] = {}
    for entry in host.get_fact(LedgerEntries, path=ledger).entries:
        jobs.setdefault(entry.run_key, []).append(entry)
    runs = sorted(host.get_fact(Snapshots, folder=logs_dir))
    kept = busy(jobs, runs, scheduler)
    removable = []
    for run in runs:
        reason = kept.get(run) if run in jobs else "no job of it in the ledger"
        if reason:
            host.noop(f"kept {run} on the cluster: {reason}")
        else:
            removable.append(run)
    return removable
