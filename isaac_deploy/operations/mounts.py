"""Operations: external mounts on a login node, synced from this workstation (only when
they changed) or, for mount-only mounts, checked to be there."""

from __future__ import annotations

import posixpath
import shlex

from pyinfra import host
from pyinfra.api import QuoteString, RsyncCommand, StringCommand, operation

from isaac_deploy.facts.cluster import Mirror
from isaac_deploy.operations.util import fail
from isaac_deploy.probes.mirror import EXCLUDES, MARKER


@operation()
def mount_synced(local: str, remote: str, digest: str):
    """``remote`` on the login node mirrors the folder ``local`` of this workstation.

    A folder isaac-deploy did not sync (no marker) is never overwritten; version control,
    caches and outputs are not sent (nor deleted there).

    + local: the folder here
    + remote: its mirror on the login node (absolute)
    + digest: what ``local`` holds (``probes.mirror.tree_digest``); equal to the marker there:
      nothing to send

    **Example:**

    .. code:: python

        mounts.mount_synced(
            name="euler: mount assets",
            local="/data/assets",
            remote="/cluster/scratch/jdoe/assets",
            digest=tree_digest("/data/assets"),
        )
    """
    state = host.get_fact(Mirror, path=remote, marker=MARKER)
    if state.kind == "file":
        yield fail(f"{remote} on the login node is a file, not a folder")
        return
    if state.kind == "dir" and not state.empty and state.marker is None:
        yield fail(
            f"{remote} exists on the login node and was not synced by isaac-deploy: "
            "choose another cluster path, or make the mount mount-only (no sync)"
        )
        return
    if state.marker == digest:
        host.noop(f"{remote} is up to date")
        return
    flags = [
        "-a",
        "--delete",
        "--filter=" + shlex.quote(f"P /{MARKER}"),
        *("--exclude=" + shlex.quote(pattern) for pattern in EXCLUDES),
    ]
    yield StringCommand("mkdir -p", QuoteString(remote))
    yield RsyncCommand(shlex.quote(local.rstrip("/") + "/"), shlex.quote(remote + "/"), flags)
    yield StringCommand(
        "printf '%s\\n'", QuoteString(digest), ">", QuoteString(posixpath.join(remote, MARKER))
    )


@operation()
def mount_present(path: str, mount: str):
    """A mount-only mount's folder exists on the login node (nothing is sent).

    + path: the folder on the login node (absolute)
    + mount: the mount's name, for the message

    **Example:**

    .. code:: python

        mounts.mount_present(
            name="euler: mount isaaclab (mount-only)",
            path="/cluster/home/jdoe/IsaacLab",
            mount="isaaclab",
        )
    """
    state = host.get_fact(Mirror, path=path, marker=MARKER)
    if state.kind != "dir":
        yield fail(
            f"mount {mount}: {path} is not a folder on the login node (mount-only: put "
            "the checkout there, or let isaac-deploy sync it: sync_to_cluster)"
        )
        return
    host.noop(f"mount {mount}: {path} is there")
