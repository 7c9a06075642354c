"""Operations: a code snapshot per submission on the login node, sent with rsync, complete or
not at all; old snapshots pruned, never one whose job is queued or running.

The files are exactly those that enter the images (``probes.context_digest``'s selection), so
the cluster runs what the image was built from; ``--link-dest`` against the
previous snapshot hard-links unchanged files instead of sending them again. They are sent to
``.incoming/``, checked against the checksums taken when they were read and only then renamed
into place with the digest of the code they hold, so a job never runs a partial copy and a run
key never names two versions of the code.
"""

from __future__ import annotations

import posixpath
import secrets
import shlex
import time
from io import StringIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, RsyncCommand, StringCommand, operation

from isaac_deploy.facts.cluster import (
    SNAPSHOT_DIGEST,
    SNAPSHOT_SUMS,
    Folders,
    SnapshotDigest,
    Snapshots,
    SnapshotState,
)
from isaac_deploy.facts.delivery import INCOMING
from isaac_deploy.facts.ledger import LedgerEntries
from isaac_deploy.model.ledger import Entry
from isaac_deploy.operations.util import busy, fail
from isaac_deploy.probes import local
from isaac_deploy.render.job_script import run_prefix


def short(digest: str) -> str:
    """``sha256:`` and the first 12 hex digits: enough to tell two versions of the code apart."""
    return digest[: len("sha256:") + 12]


def snapshot_refusal(state: SnapshotState, digest: str) -> str | None:
    """Why a run whose snapshot is ``state`` cannot run the code whose digest is ``digest``
    (``None``: there is no snapshot yet, or it holds that code)."""
    if not state.present or state.digest == digest:
        return None
    recorded = short(state.digest) if state.digest else "no recorded digest"
    return (
        f"its code snapshot on the login node holds other code ({recorded}) than this tree "
        f"({short(digest)}): choose a new run key, or commit and leave the run key unset "
        "(the default run key follows the code)"
    )


def copy_token() -> str:
    """A name part no other roll-out's copy has."""
    return secrets.token_hex(4)


@operation()
def snapshot_synced(folder: str, snapshots: str, snapshot: str, include: tuple[str, ...] = ()):
    """``snapshots/snapshot`` holds the extension's files as they are now, complete and checked.

    The files are those that enter the images (``source/``, ``scripts/``, the ``include``
    paths; never env files, keys, logs or caches; ``.dockerignore`` honoured). They go to
    ``snapshots/.incoming/<snapshot>.<token>``, a folder of this roll-out's own (a partial copy
    an interrupted roll-out left is never used, and pruned after a day; a concurrent roll-out of
    the same run key fills its own); files unchanged since the newest previous snapshot are
    hard-linked to it (``--link-dest``), not sent. Checked there against the checksums taken
    when they were read, they are renamed into place with the digest of the code
    (``.isaac-deploy-snapshot``); when another roll-out made the snapshot meanwhile with the same
    code, that one is kept. A snapshot, once made, is not changed: one that holds other code is
    refused.

    + folder: the extension project on this workstation
    + snapshots: the folder of all snapshots on the login node (absolute)
    + snapshot: this snapshot's name (the run key)
    + include: project-relative paths that enter the images besides ``source/`` and ``scripts/``

    **Example:**

    .. code:: python

        code.snapshot_synced(
            name="euler: code snapshot 3f2a9c1-5d41402a",
            folder="/home/alice/ext_template",
            snapshots="/cluster/scratch/jdoe/isaac/code/ext_template",
            snapshot="3f2a9c1-5d41402a",
        )
    """
    files = local.snapshot_files(folder, include)
    state = host.get_fact(SnapshotDigest, folder=snapshots, snapshot=snapshot)
    if state.present:
        refusal = snapshot_refusal(state, files.digest)
        if refusal:
            yield fail(f"run key {snapshot}: {refusal}")
        else:
            host.noop(f"snapshot {snapshot} holds this code ({short(files.digest)})")
        return
    # a folder of this roll-out's own: a concurrent roll-out of the same run key (another
    # terminal) fills its own, and an interrupted copy is never resumed half-way
    incoming = posixpath.join(snapshots, INCOMING, f"{snapshot}.{copy_token()}")
    target = posixpath.join(snapshots, snapshot)
    flags = ["-a", f"--files-from={shlex.quote(files.files_from)}"]
    previous = host.get_fact(Snapshots, folder=snapshots)
    if previous:
        flags.append(f"--link-dest={shlex.quote(posixpath.join(snapshots, previous[-1]))}")
    yield StringCommand("mkdir -p", QuoteString(incoming))  # rsync < 3.2.3 has no --mkpath
    yield RsyncCommand(shlex.quote(folder.rstrip("/") + "/"), shlex.quote(incoming + "/"), flags)
    yield FileUploadCommand(StringIO(files.sha256sums), posixpath.join(incoming, SNAPSHOT_SUMS))
    yield StringCommand(
        "cd",
        QuoteString(incoming),
        "&& sha256sum -c --quiet --strict",
        SNAPSHOT_SUMS,
        "|| { echo",
        QuoteString(
            f"error: snapshot {snapshot} arrived different from the files here "
            "(edited while it was sent?): run the roll-out again"
        ),
        ">&2; exit 1; };",
        "echo",
        QuoteString(files.digest),
        ">",
        SNAPSHOT_DIGEST,
        "&& { mv -T",
        QuoteString(incoming),
        QuoteString(target),
        # another roll-out of this run key was first: the same code is this snapshot too
        '2>/dev/null || { [ "$(cat',
        QuoteString(posixpath.join(target, SNAPSHOT_DIGEST)),
        '2>/dev/null)" =',
        QuoteString(files.digest),
        "] && rm -rf --",
        QuoteString(incoming),
        "; } || { echo",
        QuoteString(f"error: snapshot {snapshot} was made meanwhile with other code"),
        ">&2; exit 1; }; }",
    )


@operation()
def snapshots_pruned(
    snapshots: str,
    keep: int,
    current: str,
    ledger: str,
    scheduler: str,
    extension: str,
    partial_age: int = 86400,
):
    """At most ``keep`` snapshots (``current`` included) beyond those whose jobs are active.

    Older snapshots go, oldest first, unless a job of theirs is queued or running (or the
    scheduler cannot tell): queued jobs keep their code. A job is the snapshot's when the
    ledger says so, or, ledger or not, when its name is one of the snapshot's run. Partial
    copies in ``.incoming/`` older than ``partial_age`` seconds go too.

    + snapshots: the folder of all snapshots on the login node (absolute)
    + keep: how many snapshots to keep (the cluster's ``snapshot_retention``)
    + current: this roll-out's snapshot, never removed
    + ledger: the login node's ledger (which jobs ran from which snapshot)
    + scheduler: ``slurm`` or ``pbs``, asked which of those jobs are queued or running
    + extension: the extension, which names its jobs (``<extension>.<run key>.<plan time>``)
    + partial_age: seconds after which a partial copy in ``.incoming/`` is removed

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
    incoming, now = posixpath.join(snapshots, INCOMING), time.time()
    stale = [
        QuoteString(posixpath.join(incoming, name))
        for name, stamp in host.get_fact(Folders, folder=incoming)
        if current not in (name, name.rpartition(".")[0]) and now - stamp > partial_age
    ]
    if not candidates and not stale:
        host.noop(f"{len(older) + 1} snapshot(s), retention {keep}")
        return
    records: dict[str, list[Entry]] = {}
    for entry in host.get_fact(LedgerEntries, path=ledger).entries:
        if entry.snapshot and posixpath.dirname(entry.snapshot.rstrip("/")) == snapshots:
            records.setdefault(posixpath.basename(entry.snapshot.rstrip("/")), []).append(entry)
    # a snapshot is named after its run, and so are the run's jobs
    prefixes = {snapshot: run_prefix(extension, snapshot) for snapshot in candidates}
    kept = busy(records, candidates, scheduler, prefixes)
    removable = stale
    for snapshot in candidates:
        if snapshot in kept:
            host.noop(f"kept snapshot {snapshot}: {kept[snapshot]}")
        else:
            removable.append(QuoteString(posixpath.join(snapshots, snapshot)))
    if removable:
        yield StringCommand("rm -rf --", *removable)
