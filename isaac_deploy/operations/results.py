"""Operation: the runs of an extension's logs tree on a cluster are in the project's ``logs/``
on this workstation, pulled incrementally, where local runs are (``logs/rsl_rl/<exp>/<run>``).

rsync runs here (the workstation pulls from the login node, through its master connection or
with the host's SSH settings). Nothing local is deleted, and a local file is overwritten only
when it is what an earlier pull from that cluster wrote (``probes/pull.py``). isaac-deploy's
bookkeeping (job outputs, which runs each job made) goes to ``logs/isaac-deploy/<cluster>/``.

Removing on the cluster (``remove``): only while no job of the extension is queued or running
(in a shared tree a queued job may resume from any run, and a running one may write into a run
folder recorded for a job that ran beside it), each run key the ledger knows loses its
bookkeeping folder and the run folders its jobs recorded, once all of them came back whole; a
folder no job recorded stays, and so does every folder of a run key one of whose did not come
back whole.
"""

from __future__ import annotations

import posixpath

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, operation

from isaac_deploy.facts.cluster import LogsTree
from isaac_deploy.facts.ledger import LedgerEntries
from isaac_deploy.facts.scheduler import ActiveJobs
from isaac_deploy.model.runs import BOOKKEEPING
from isaac_deploy.operations.util import remote
from isaac_deploy.probes import local
from isaac_deploy.probes.pull import pull_tree, unpulled

MANIFEST = ".pulled.json"  # in the cluster's local bookkeeping folder: what pulls wrote
SHOWN = 20  # kept local files named one by one (then a count)


def pull(state, host, path: str, destination: str) -> bool:
    """rsync ``path`` from the login node (through its connection, when it has one that rsync
    can share); progress goes to the terminal, a failure is logged in one line."""
    rsh, source = remote(host, path)
    ok, error = local.rsync_pull(rsh, source, destination)
    if not ok:
        logger.error(f"{host.print_prefix}pulling {source} failed: {error}")
    return ok


def pull_runs(state, host, tree: str, local_dir: str, manifest: str) -> bool:
    """The tree's runs (not the bookkeeping) into ``local_dir``; the local files that were kept
    instead of the cluster's are named in warnings."""
    rsh, source = remote(host, tree.rstrip("/") + "/")
    report = pull_tree(rsh, source, local_dir, manifest, excludes=(f"/{BOOKKEEPING}/",))
    for path in report.conflicts[:SHOWN]:
        logger.warning(
            f"{host.print_prefix}kept {posixpath.join(local_dir, path)}: it differs from the "
            "cluster's and no earlier sync wrote it; the cluster's copy stays there (move yours "
            "away and sync again to get it)"
        )
    if len(report.conflicts) > SHOWN:
        logger.warning(f"{host.print_prefix}... and {len(report.conflicts) - SHOWN} more kept")
    if not report.ok:
        logger.error(f"{host.print_prefix}pulling {source} failed: {report.error}")
    return report.ok


def remove_pulled(state, host, tree: str, runs: list[tuple[str, list[tuple[str, str]]]]) -> bool:
    """Remove on the cluster, for each of ``runs`` (``(run key, [(path in the tree, local
    copy), ...])``), all its paths once every local copy is whole; a run key with one that is
    not keeps them all (its record of what it made stays beside them), with the reason."""
    gone = []
    for run_key, places in runs:
        reasons = []
        for path, copy in places:
            rsh, source = remote(host, posixpath.join(tree, path).rstrip("/") + "/")
            ok, error, missing = unpulled(rsh, source, copy)
            if not ok or missing:
                reasons.append(f"{path}: {error or f'{len(missing)} files differ from here'}")
        if reasons:
            logger.warning(
                f"{host.print_prefix}kept the runs of {run_key} on the cluster: not all came back "
                f"whole ({'; '.join(reasons)})"
            )
        else:
            gone += [posixpath.join(tree, path) for path, _ in places]
    if not gone:
        return True
    command = StringCommand("rm -rf --", *(QuoteString(path) for path in gone))
    ok, output = host.run_shell_command(command, print_output=state.print_output)
    if ok:
        logger.info(f"{host.print_prefix}removed {len(gone)} pulled folders on the cluster")
    else:
        logger.error(f"{host.print_prefix}removing on the cluster failed: {output.stderr}")
    return ok


@operation(is_idempotent=False)
def results_pulled(
    tree: str,
    local_dir: str,
    book_dir: str,
    ledger: str,
    scheduler: str,
    extension: str,
    remove: bool = False,
):
    """``local_dir`` holds the runs of the logs tree ``tree`` on the login node, ``book_dir``
    its bookkeeping (job outputs and run records).

    No local file is deleted; a local file that differs from the cluster's is replaced only when
    an earlier pull from this cluster wrote it and it was not changed since (else it is kept and
    named). With ``remove``, the pulled runs of finished run keys go on the cluster (see the
    module's text).

    + tree: the extension's logs tree on the cluster (absolute), ``<logs_dir>/<extension>``
    + local_dir: where the runs go on this workstation (the project's ``logs/``)
    + book_dir: where the tree's ``isaac-deploy/`` goes (``logs/isaac-deploy/<cluster>``)
    + ledger: the login node's ledger (which run keys are isaac-deploy's)
    + scheduler: ``slurm`` or ``pbs``, asked whether a job of the extension is queued or running
    + extension: the extension's name (its jobs' names start with it)
    + remove: remove the pulled runs of finished run keys on the cluster

    **Example:**

    .. code:: python

        results.results_pulled(
            name="euler: results",
            tree="/cluster/scratch/jdoe/isaac/logs/ext_template",
            local_dir="/home/alice/ext_template/logs",
            book_dir="/home/alice/ext_template/logs/isaac-deploy/euler",
            ledger="/cluster/home/jdoe/.isaac-deploy/ext_template-ledger.jsonl",
            scheduler="slurm",
            extension="ext_template",
            remove=True,
        )
    """
    state = host.get_fact(LogsTree, tree=tree)
    if not state.present:
        host.noop(f"no runs on the cluster yet ({tree} does not exist)")
        return
    # decided before the pull: a job that starts during the pull may still write
    runs = removable(state, local_dir, book_dir, ledger, scheduler, extension) if remove else []
    manifest = posixpath.join(book_dir, MANIFEST)
    yield FunctionCommand(pull_runs, (tree, local_dir, manifest), {})
    yield FunctionCommand(
        pull, (posixpath.join(tree, BOOKKEEPING) + "/", book_dir.rstrip("/") + "/"), {}
    )
    if runs:
        yield FunctionCommand(remove_pulled, (tree, runs), {})


def removable(
    state, local_dir: str, book_dir: str, ledger: str, scheduler: str, extension: str
) -> list[tuple[str, list[tuple[str, str]]]]:
    """What a removal may take: for each run key the ledger knows, ``(path in the tree, its
    local copy)`` of its bookkeeping folder and of the run folders its jobs recorded; nothing
    while a job of the extension is queued or running."""
    entries = host.get_fact(LedgerEntries, path=ledger).entries
    active = host.get_fact(ActiveJobs, scheduler=scheduler)
    if active is None:
        host.noop("kept every run on the cluster: the scheduler could not be asked which jobs run")
        return []
    ids = {entry.job_id.split(".", 1)[0] for entry in entries if entry.job_id}
    mine = sorted(j for j, name in active.items() if name.startswith(f"{extension}.") or j in ids)
    if mine:
        host.noop(
            f"kept every run on the cluster: job {', '.join(mine)} of {extension} is queued or "
            "running (it may resume from or write into any run of the shared logs tree)"
        )
        return []
    known = {entry.run_key for entry in entries}
    runs = []
    for run_key, jobs in sorted(state.records.items()):
        if run_key not in known:
            host.noop(f"kept the runs of {run_key} on the cluster: the ledger does not know it")
            continue
        places = [(posixpath.join(BOOKKEEPING, run_key), posixpath.join(book_dir, run_key))]
        for folder in sorted({f for folders in jobs.values() for f in folders}):
            places.append((folder, posixpath.join(local_dir, folder)))
        runs.append((run_key, places))
    return runs
