"""Operations: a code snapshot per submission on the login node, sent with rsync; old
snapshots pruned, never one whose job is queued or running.

The files are exactly those the image build sees (``.dockerignore`` honoured, by the same
matcher), so the cluster runs what the image was built from; ``--link-dest`` against the
previous snapshot hard-links unchanged files instead of sending them again.
"""

from __future__ import annotations

import posixpath
import shlex

from pyinfra import host
from pyinfra.api import QuoteString, RsyncCommand, StringCommand, operation

from isaac_deploy.facts.cluster import Snapshots
from isaac_deploy.facts.ledger import LedgerEntries
from isaac_deploy.model.ledger import Entry
from isaac_deploy.operations.util import busy
from isaac_deploy.probes import local
from isaac_deploy.render.job_script import run_prefix


@operation()
def snapshot_synced(folder: str, snapshots: str, snapshot: str):
    """``snapshots/snapshot`` holds the extension's files; a snapshot, once made, is not changed.

    The files are those the image build sees (``.dockerignore`` honoured); files unchanged
    since the newest previous snapshot are hard-linked to it (``--link-dest``), not sent.

    + folder: the extension project on this workstation
    + snapshots: the folder of all snapshots on the login node (absolute)
    + snapshot: this snapshot's name (the run key)

    **Example:**

    .. code:: python

        code.snapshot_synced(
            name="euler: code snapshot 3f2a9c1-5d41402a",
            folder="/home/alice/ext_template",
            snapshots="/cluster/scratch/jdoe/isaac/code/ext_template",
            snapshot="3f2a9c1-5d41402a",
        )
    """
    existing = host.get_fact(Snapshots, folder=snapshots)
    if snapshot in existing:
        host.noop(f"snapshot {snapshot} exists (queued jobs keep their code)")
        return
    flags = ["-a", f"--files-from={shlex.quote(local.context_file_list(folder))}"]
    previous = [other for other in existing if other != snapshot]
    if previous:
        flags.append(f"--link-dest={shlex.quote(posixpath.join(snapshots, previous[-1]))}")
    destination = posixpath.join(snapshots, snapshot) + "/"
    yield StringCommand("mkdir -p", QuoteString(destination))  # rsync < 3.2.3 has no --mkpath
    yield RsyncCommand(shlex.quote(folder.rstrip("/") + "/"), shlex.quote(destination), flags)


@operation()
def snapshots_pruned(
    snapshots: str, keep: int, current: str, ledger: str, scheduler: str, extension: str
):
    """At most ``keep`` snapshots (``current`` included) beyond those whose jobs are active.

    Older snapshots go, oldest first, unless a job of theirs is queued or running (or the
    scheduler cannot tell): queued jobs keep their code. A job is the snapshot's when the
    ledger says so, or, ledger or not, when its name is one of the snapshot's run.

    + snapshots: the folder of all snapshots on the login node (absolute)
    + keep: how many snapshots to keep (the cluster's ``snapshot_retention``)
    + current: this roll-out's snapshot, never removed
    + ledger: the login node's ledger (which jobs ran from which snapshot)
    + scheduler: ``slurm`` or ``pbs``, asked which of those jobs are queued or running
    + extension: the extension, which names its jobs (``<extension>.<run key>.<plan time>``)

    **Example:**

    .. code:: python

        code.snapshots_pruned(
            name="euler: old code snapshots",
            snapshots="/cluster/scratch/jdoe/isaac/code/ext_template",
            keep=5,
            current="3f2a9c1-5d41402a",
            ledger="/cluster/home/jdoe/.isaac-deploy/ext_template-ledger.jsonl",
            scheduler="slurm",
            extension="ext_template",
        )
    """
    older = [s for s in host.get_fact(Snapshots, folder=snapshots) if s != current]
    candidates = older[: max(0, len(older) - (keep - 1))]
    if not candidates:
        host.noop(f"{len(older) + 1} snapshot(s), retention {keep}")
        return
    records: dict[str, list[Entry]] = {}
    for entry in host.get_fact(LedgerEntries, path=ledger).entries:
        if entry.snapshot and posixpath.dirname(entry.snapshot.rstrip("/")) == snapshots:
            records.setdefault(posixpath.basename(entry.snapshot.rstrip("/")), []).append(entry)
    # a snapshot is named after its run, and so are the run's jobs
    prefixes = {snapshot: run_prefix(extension, snapshot) for snapshot in candidates}
    kept = busy(records, candidates, scheduler, prefixes)
    removable = []
    for snapshot in candidates:
        if snapshot in kept:
            host.noop(f"kept snapshot {snapshot}: {kept[snapshot]}")
        else:
            removable.append(QuoteString(posixpath.join(snapshots, snapshot)))
    if removable:
        yield StringCommand("rm -rf --", *removable)
