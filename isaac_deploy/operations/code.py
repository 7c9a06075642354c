"""Operation: a code snapshot per submission on the login node, sent with rsync.

The files are exactly those the image build sees (``.dockerignore`` honoured, by the same
matcher), so the cluster runs what the image was built from; ``--link-dest`` against the
previous snapshot hard-links unchanged files instead of sending them again.
"""

from __future__ import annotations

import atexit
import os
import posixpath
import shlex
import tempfile

from pyinfra import host
from pyinfra.api import RsyncCommand, operation

from ..facts.cluster import Snapshots
from ..remote.context_digest import DockerIgnore, walk


def file_list(folder: str) -> str:
    """A temporary ``--files-from`` list of the build context's files (removed at exit)."""
    ignore = DockerIgnore.from_file(os.path.join(folder, ".dockerignore"))
    fd, path = tempfile.mkstemp(prefix="isaac-deploy-files-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        for rel, _ in sorted(walk(folder, ignore)):
            handle.write(rel + "\n")
    atexit.register(lambda: os.path.exists(path) and os.unlink(path))
    return path


@operation()
def snapshot_synced(folder: str, snapshots: str, snapshot: str):
    """``snapshots/snapshot`` holds the extension's files; a snapshot, once made, is not changed.

    + folder: the extension project on this workstation
    + snapshots: the folder of all snapshots on the login node (absolute)
    + snapshot: this snapshot's name (the run key)
    """
    existing = host.get_fact(Snapshots, folder=snapshots)
    if snapshot in existing:
        host.noop(f"snapshot {snapshot} exists (queued jobs keep their code)")
        return
    flags = ["-a", "--mkpath", f"--files-from={shlex.quote(file_list(folder))}"]
    previous = [other for other in existing if other != snapshot]
    if previous:
        flags.append(f"--link-dest={shlex.quote(posixpath.join(snapshots, previous[-1]))}")
    destination = posixpath.join(snapshots, snapshot) + "/"
    yield RsyncCommand(shlex.quote(folder.rstrip("/") + "/"), shlex.quote(destination), flags)
