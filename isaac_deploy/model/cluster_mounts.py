"""External mounts (``.mount.config``) on a cluster: each enabled mount is either synced from
this workstation to its cluster path, or (mount-only) expected to exist there already; jobs
bind it where the dev container mounts it.

The cluster path comes from the cluster's ``mount_paths`` (per cluster) or the mount's
``cluster_path``; it mirrors the checkout's root (a ``source`` mount syncs and binds only
``source/``).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

from isaac_deploy.model.cluster import KEY, ClusterConfig
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.mounts import FILE, MountConfig
from isaac_deploy.model.paths import expand_home


@dataclass(frozen=True)
class ClusterMount:
    name: str
    cluster_path: str  # the checkout's root on the cluster (may start with ~ or $VAR)
    container_path: str
    subdir: str = ""  # "source" for a source mount: only that folder is synced and bound
    local_path: str | None = None  # set when synced from this workstation
    read_only: bool = False

    def bind(self, resolved: str) -> str:
        """``SRC:DEST[:ro]`` for ``apptainer --bind``, with the cluster path resolved."""
        source = posixpath.join(resolved, self.subdir) if self.subdir else resolved
        target = (
            posixpath.join(self.container_path, self.subdir) if self.subdir else self.container_path
        )
        if ":" in source or ":" in target or "," in source or "," in target:
            reason = f"{source} or {target} holds ':' or ',' (apptainer --bind cannot take it)"
            raise ConfigError(f"{FILE}: mounts.{self.name}", reason)
        return f"{source}:{target}" + (":ro" if self.read_only else "")


def cluster_mounts(mounts: MountConfig, cluster: ClusterConfig, home: str) -> list[ClusterMount]:
    """The enabled mounts as this cluster sees them; a mount without a cluster path, or synced
    from a folder that is not there, is refused naming the mount."""
    result = []
    for name, mount in sorted(mounts.enabled().items()):
        field = f"{FILE}: mounts.{name}"
        path = cluster.mount_paths.get(name) or mount.cluster_path
        if not path:
            where = f"{cluster.name}: {KEY}[mount_paths][{name}]"
            reason = (
                f"has no path on cluster {cluster.name}: set cluster_path (mount-setup) or {where}"
            )
            raise ConfigError(field, reason)
        local = None
        if mount.sync_to_cluster:
            local = expand_home(mount.local_path, home)
            folder = posixpath.join(local, "source") if mount.mount_type == "source" else local
            if not local.startswith("/") or not os.path.isdir(folder):
                raise ConfigError(field, f"{folder} is not a folder on this workstation")
        result.append(
            ClusterMount(
                name=name,
                cluster_path=path,
                container_path=mount.container_path,
                subdir="source" if mount.mount_type == "source" else "",
                local_path=local,
                read_only=mount.read_only,
            )
        )
    return result
