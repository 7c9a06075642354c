"""Operations: a large file (an Apptainer image) on a login node, complete or not at all, sent
by its changes when an earlier one is there; old images pruned, never one a queued or running
job uses nor the basis of a delivery in progress.

rsync sends it to ``.incoming/`` (an interrupted upload resumes), the checksum is verified on
the login node, and only then is it renamed into place, with a ``.sha256`` sidecar: a job can
never pick up a half-written image. When the folder holds an earlier complete image, that one
is the basis of rsync's delta algorithm: only the blocks the new image does not share with it
travel (an image whose one layer changed sends about that layer).
"""

from __future__ import annotations

import posixpath
import time

from pyinfra import host, logger
from pyinfra import state as pyinfra_state
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, operation

from isaac_deploy.facts.delivery import INCOMING, PARTIAL, DeliveredFile, Delivery, StoredFiles
from isaac_deploy.facts.ledger import LedgerEntries
from isaac_deploy.model.images import sandbox_name, sif_name
from isaac_deploy.model.ledger import Entry
from isaac_deploy.operations.util import busy, fail, remote
from isaac_deploy.policy.retention import basis_reason
from isaac_deploy.probes import local

# no basis: the upload resumes in place; with a basis, rsync writes a new file from it and what
# arrives (the basis, hard-linked, is never written), keeping an interrupted one in .partial/
FULL_FLAGS = ("--partial", "--inplace", "--times")
DELTA_FLAGS = (f"--partial-dir={PARTIAL}", "--times", "--ignore-times")


def send(state, host, local_path: str, path: str, flags: tuple[str, ...], basis: str | None):
    """rsync ``local_path`` to ``path`` on the login node (its master connection when it has
    one), progress on the terminal; then one line with what travelled: bytes, seconds, the
    share of the file, and the path (a delta against ``basis``, or the full copy)."""
    rsh, destination = remote(host, path)
    started = time.monotonic()
    ok, sent, error = local.rsync_push(rsh, local_path, destination, flags)
    if not ok:
        logger.error(f"{host.print_prefix}sending {local_path} failed: {error}")
        return False
    size = local.file_size(local_path)
    how = f"delta against {basis}" if basis else "full copy"
    logger.info(
        f"{host.print_prefix}{posixpath.basename(path)}: sent {sent:,} bytes in "
        f"{time.monotonic() - started:.1f} s, {sent / max(size, 1):.2%} of its {size:,} bytes "
        f"({how})"
    )
    return True


@operation()
def file_delivered(
    local_path: str, sha256: str | None, folder: str, filename: str, reserve_kib: int = 1024
):
    """A file of this workstation (an Apptainer image) on a login node, complete or not at all,
    sent by its changes when the folder holds an earlier one.

    ``folder/filename`` is the file at ``local_path`` (whose SHA-256 is ``sha256``, or, when
    ``None``, in the ``<local_path>.sha256`` sidecar). It is sent to ``folder/.incoming/``,
    verified there and renamed into place; refused before anything is sent when the folder
    lacks the space. A file this deploy builds has no sidecar while the plan is made: the plan
    shows the upload, and the operation decides again when it runs (and fails if the sidecar is
    still missing then). The run reports what it sent (bytes, seconds, share of the file) and
    how.

    The newest other complete file with the same suffix in ``folder`` is the basis: hard-linked
    as ``.incoming/<filename>`` (never written: rsync writes a new file from it and what
    arrives), so only the new file's own blocks travel. An interrupted transfer keeps what
    arrived in ``.incoming/.partial/``; the next run resumes from that and the basis together.
    Without a basis the whole file is sent, an interrupted upload resuming in place.

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
    state = host.get_fact(DeliveredFile, folder=folder, filename=filename)
    basis = state.basis
    flags = (*(DELTA_FLAGS if basis else FULL_FLAGS), "--info=progress2,stats1")
    target = posixpath.join(incoming, filename)
    transfer = FunctionCommand(send, (local_path, target, flags, basis), {})
    if sha256 is None:  # made earlier in this deploy: its checksum is in the sidecar by then
        sha256 = local.sidecar_sha256(local_path)
        if sha256 is None:
            if pyinfra_state.is_executing:
                yield fail(f"{local_path} was not built (no {local_path}.sha256)")
            else:  # the plan, before this deploy builds the file: decided again when it runs
                yield transfer
            return
    if state.present and state.sha256 == sha256:
        host.noop(f"{filename} is present and verified")
        return
    needed = space_needed(state, local.file_size(local_path)) + reserve_kib
    if state.free_kib is not None and state.free_kib < needed:
        yield fail(
            f"not enough space in {folder} for {filename}: {state.free_kib} KiB free, "
            f"{needed} KiB needed"
        )
        return
    yield StringCommand("mkdir -p", QuoteString(incoming))
    if basis:
        yield basis_linked(incoming, filename, basis)
    yield transfer
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
        "&& { rmdir",
        QuoteString(f"{INCOMING}/{PARTIAL}"),
        "2>/dev/null; true; }",
    )


def space_needed(state: Delivery, size: int) -> int:
    """KiB the upload still needs: in place, the file less what an earlier upload left; from a
    basis, the new file beside the basis' link, and, to resume, what arrived before plus the
    basis again (they are joined into the next transfer's basis)."""
    if not state.basis:
        return size // 1024 + 1 - state.partial_bytes // 1024
    resume = state.kept_bytes + state.basis_bytes if state.kept_bytes else 0
    return (size + resume) // 1024 + 1


def basis_linked(incoming: str, filename: str, basis: str) -> StringCommand:
    """``incoming/filename`` made the transfer's basis: a hard link to ``basis`` (a copy where
    the file system has no hard links), or, after an interrupted transfer, what arrived then
    followed by ``basis`` (rsync finds the blocks of either)."""
    kept, joined = f"{PARTIAL}/{filename}", f".{filename}.basis"
    return StringCommand(
        "cd",
        QuoteString(incoming),
        "&& if [ -s",
        QuoteString(kept),
        "]; then cat",
        QuoteString(kept),
        QuoteString(f"../{basis}"),
        ">",
        QuoteString(joined),
        "&& mv -f",
        QuoteString(joined),
        QuoteString(filename),
        "&& rm -f",
        QuoteString(kept),
        "; elif [ ! -e",
        QuoteString(filename),
        "]; then ln",
        QuoteString(f"../{basis}"),
        QuoteString(filename),
        "2>/dev/null || cp",
        QuoteString(f"../{basis}"),
        QuoteString(filename),
        "; fi",
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
    folder may be shared), nor is the basis of a delivery in progress (hard-linked into
    ``.incoming/``); what uploads left in ``.incoming/`` and did not write for ``partial_age``
    seconds goes too (a basis link counts from when it was made). An image goes with its
    ``.sha256`` sidecar and its sandbox folder. While a job of this extension
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
    links = {stored.name: stored.links for stored in files}
    # only images this extension's jobs used: the folder may be shared with other projects
    older = [stored.name for stored in files if stored.name in jobs and stored.name != current]
    candidates = older[: max(0, len(older) - (keep - 1))]
    now = time.time()
    stale = [
        stored.name
        for stored in files
        if stored.name.startswith(f"{INCOMING}/")
        and not posixpath.basename(stored.name).lstrip(".").startswith(current)
        and now - stored.stamp > partial_age
    ]
    if not candidates and not stale:
        host.noop(f"{len(older) + 1} image(s) of this extension, retention {keep}")
        return
    kept = busy(jobs, candidates, scheduler, unknown=f"{extension}.")  # its jobs' names
    removable = list(stale)
    for name in candidates:
        reason = kept.get(name) or basis_reason(links[name])
        if reason:
            host.noop(f"kept image {name}: {reason}")
        else:  # with its checksum and, when the cluster unpacks images, its sandbox folder
            removable += [name, f"{name}.sha256", sandbox_name(name)]
    if removable:
        yield StringCommand(
            "cd", QuoteString(folder), "&& rm -rf --", *(QuoteString(name) for name in removable)
        )
