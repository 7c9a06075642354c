"""Operations: a large file (an Apptainer image) on a login node, complete or not at all; old
images pruned, never one a queued or running job uses.

rsync sends it to ``.incoming/`` with ``--partial`` (an interrupted upload resumes), the
checksum is verified on the login node, and only then is it renamed into place, with a
``.sha256`` sidecar: a job can never pick up a half-written image.
"""

from __future__ import annotations

import posixpath
import shlex
import time

from pyinfra import host
from pyinfra import state as pyinfra_state
from pyinfra.api import QuoteString, RsyncCommand, StringCommand, operation

from isaac_deploy.facts.delivery import INCOMING, DeliveredFile, StoredFiles
from isaac_deploy.facts.ledger import LedgerEntries
from isaac_deploy.model.images import sandbox_name, sif_name
from isaac_deploy.model.ledger import Entry
from isaac_deploy.operations.util import busy, fail
from isaac_deploy.probes import local


@operation()
def file_delivered(
    local_path: str, sha256: str | None, folder: str, filename: str, reserve_kib: int = 1024
):
    """A file of this workstation (an Apptainer image) on a login node, complete or not at all.

    ``folder/filename`` is the file at ``local_path`` (whose SHA-256 is ``sha256``, or, when
    ``None``, in the ``<local_path>.sha256`` sidecar). It is sent to ``folder/.incoming/``
    (an interrupted upload resumes), verified there and renamed into place; refused before
    anything is sent when the folder lacks the space. A file this deploy builds has no sidecar
    while the plan is made: the plan shows the upload, and the operation decides again when it
    runs (and fails if the sidecar is still missing then).

    + local_path: the file on this workstation
    + sha256: its SHA-256 (hex), or ``None``: read from ``<local_path>.sha256``
    + folder: absolute folder on the login node
    + filename: the name there, e.g. the image digest + ``.sif``
    + reserve_kib: free space to leave on the target beyond the file

    **Example:**

    .. code:: python

        delivery.file_delivered(
            name="euler: image sha256-ab12.sif",
            local_path="/home/alice/.cache/isaac-deploy/sif/sha256-ab12.sif",
            sha256=None,
            folder="/cluster/scratch/jdoe/isaac/images",
            filename="sha256-ab12.sif",
        )
    """
    incoming = posixpath.join(folder, INCOMING)
    send = RsyncCommand(
        shlex.quote(local_path),
        shlex.quote(posixpath.join(incoming, filename)),
        ["--partial", "--inplace", "--times"],
    )
    if sha256 is None:  # made earlier in this deploy: its checksum is in the sidecar by then
        sha256 = local.sidecar_sha256(local_path)
        if sha256 is None:
            if pyinfra_state.is_executing:
                yield fail(f"{local_path} was not built (no {local_path}.sha256)")
            else:  # the plan, before this deploy builds the file: decided again when it runs
                yield send
            return
    state = host.get_fact(DeliveredFile, folder=folder, filename=filename)
    if state.present and state.sha256 == sha256:
        host.noop(f"{filename} is present and verified")
        return
    needed = local.file_size(local_path) // 1024 + 1 - state.partial_bytes // 1024 + reserve_kib
    if state.free_kib is not None and state.free_kib < needed:
        yield fail(
            f"not enough space in {folder} for {filename}: {state.free_kib} KiB free, "
            f"{needed} KiB needed"
        )
        return
    yield StringCommand("mkdir -p", QuoteString(incoming))
    yield send
    yield StringCommand(
        "cd",
        QuoteString(folder),
        "&& echo",
        QuoteString(f"{sha256}  {INCOMING}/{filename}"),
        "| sha256sum -c --status || { echo",
        QuoteString(f"error: {filename} arrived damaged (checksum mismatch); run again to resend"),
        ">&2; exit 1; };",
        "mv -f",
        QuoteString(f"{INCOMING}/{filename}"),
        QuoteString(filename),
        "&& echo",
        QuoteString(sha256),
        ">",
        QuoteString(f"{filename}.sha256"),
    )


@operation()
def images_pruned(
    folder: str,
    keep: int,
    current: str,
    ledger: str,
    scheduler: str,
    extension: str,
    partial_age: int = 86400,
):
    """Old Apptainer images of this extension removed from a login node's image folder.

    At most ``keep`` of this extension's images in ``folder`` (``current`` included) beyond
    those a queued or running job uses; images no job of the ledger used are not touched (the
    folder may be shared); partial uploads older than ``partial_age`` seconds go too. An image
    goes with its ``.sha256`` sidecar and its sandbox folder. While a job of this extension
    that the ledger does not name is queued or running, no image goes (its image is unknown).

    + folder: the cluster's image folder (absolute)
    + keep: how many images to keep (the cluster's ``image_retention``)
    + current: this roll-out's image file name, never removed
    + ledger: the login node's ledger (which jobs run which image)
    + scheduler: ``slurm`` or ``pbs``, asked which of those jobs are queued or running
    + extension: the extension, which names its jobs (``<extension>.<run key>.<plan time>``)
    + partial_age: seconds after which a partial upload in ``.incoming/`` is removed

    **Example:**

    .. code:: python

        delivery.images_pruned(
            name="euler: old images",
            folder="/cluster/scratch/jdoe/isaac/images",
            keep=2,
            current="sha256-ab12.sif",
            ledger="/cluster/home/jdoe/.isaac-deploy/ext_template-ledger.jsonl",
            scheduler="slurm",
            extension="ext_template",
        )
    """
    jobs: dict[str, list[Entry]] = {}
    for entry in host.get_fact(LedgerEntries, path=ledger).entries:
        if entry.image:
            jobs.setdefault(sif_name(entry.image), []).append(entry)
    files = host.get_fact(StoredFiles, folder=folder, suffix=".sif")
    # only images this extension's jobs used: the folder may be shared with other projects
    older = [name for name, _ in files if name in jobs and name != current]
    candidates = older[: max(0, len(older) - (keep - 1))]
    now = time.time()
    stale = [
        name
        for name, stamp in files
        if name.startswith(f"{INCOMING}/")
        and name != f"{INCOMING}/{current}"
        and now - stamp > partial_age
    ]
    if not candidates and not stale:
        host.noop(f"{len(older) + 1} image(s) of this extension, retention {keep}")
        return
    kept = busy(jobs, candidates, scheduler, unknown=f"{extension}.")  # its jobs' names
    removable = list(stale)
    for name in candidates:
        if name in kept:
            host.noop(f"kept image {name}: {kept[name]}")
        else:  # with its checksum and, when the cluster unpacks images, its sandbox folder
            removable += [name, f"{name}.sha256", sandbox_name(name)]
    if removable:
        yield StringCommand(
            "cd", QuoteString(folder), "&& rm -rf --", *(QuoteString(name) for name in removable)
        )
