"""Operation: a large file (an Apptainer image) on a login node, complete or not at all.

rsync sends it to ``.incoming/`` with ``--partial`` (an interrupted upload resumes), the
checksum is verified on the login node, and only then is it renamed into place, with a
``.sha256`` sidecar: a job can never pick up a half-written image.
"""

from __future__ import annotations

import os
import posixpath
import shlex

from pyinfra import host
from pyinfra import state as pyinfra_state
from pyinfra.api import QuoteString, RsyncCommand, StringCommand, operation

from ..facts.delivery import INCOMING, DeliveredFile
from .util import fail


@operation()
def file_delivered(
    local_path: str, sha256: str | None, folder: str, filename: str, reserve_kib: int = 1024
):
    """``folder/filename`` is the file at ``local_path`` (whose SHA-256 is ``sha256``, or, when
    ``None``, in the ``<local_path>.sha256`` sidecar).

    + folder: absolute folder on the login node
    + filename: the name there, e.g. the image digest + ``.sif``
    + reserve_kib: free space to leave on the target beyond the file
    """
    incoming = posixpath.join(folder, INCOMING)
    send = RsyncCommand(shlex.quote(local_path), shlex.quote(posixpath.join(incoming, filename)),
                        ["--partial", "--inplace", "--times"])  # fmt: skip
    if sha256 is None:  # made earlier in this deploy: its checksum is in the sidecar by then
        sidecar = f"{local_path}.sha256"
        if not os.path.exists(sidecar):
            if pyinfra_state.is_executing:
                yield fail(f"{local_path} was not built (no {sidecar})")
            else:  # the plan, before this deploy builds the file: decided again when it runs
                yield send
            return
        with open(sidecar) as handle:
            sha256 = handle.read().split()[0]
    state = host.get_fact(DeliveredFile, folder=folder, filename=filename)
    if state.present and state.sha256 == sha256:
        host.noop(f"{filename} is present and verified")
        return
    needed = os.path.getsize(local_path) // 1024 + 1 - state.partial_bytes // 1024 + reserve_kib
    if state.free_kib is not None and state.free_kib < needed:
        yield fail(f"not enough space in {folder} for {filename}: {state.free_kib} KiB free, "
                   f"{needed} KiB needed")  # fmt: skip
        return
    yield StringCommand("mkdir -p", QuoteString(incoming))
    yield send
    yield StringCommand(
        "cd", QuoteString(folder), "&& echo", QuoteString(f"{sha256}  {INCOMING}/{filename}"),
        "| sha256sum -c --status || { echo", QuoteString(f"error: {filename} arrived damaged "
        "(checksum mismatch); run again to resend"), ">&2; exit 1; };",
        "mv -f", QuoteString(f"{INCOMING}/{filename}"), QuoteString(filename),
        "&& echo", QuoteString(sha256), ">", QuoteString(f"{filename}.sha256"),
    )  # fmt: skip
