"""External mounts (``.mount.config``) on a cluster: each enabled mount is either synced from
this workstation to its cluster path, or (mount-only) expected to exist there already; jobs
bind it where the dev container mounts it.

The cluster path comes from the cluster's ``mount_paths`` (per cluster) or the mount's
``cluster_path``; it mirrors the checkout's root (a ``source`` mount syncs and binds only
``source/``).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from dataclasses import dataclass

from .cluster import KEY, ClusterConfig
from .errors import ConfigError
from .mounts import FILE, MountConfig, expand_home

# never synced: version control, caches, environments, outputs
EXCLUDES = (
    ".git/", "__pycache__/", "*.pyc", ".venv/", "venv/", ".mypy_cache/", ".pytest_cache/",
    ".ruff_cache/", "*.egg-info/", "logs/", "outputs/", "wandb/",
)  # fmt: skip
MARKER = ".isaac-deploy-mirror"  # in a synced folder: the digest of what was sent


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
        result.append(ClusterMount(
            name=name, cluster_path=path, container_path=mount.container_path,
            subdir="source" if mount.mount_type == "source" else "", local_path=local,
            read_only=mount.read_only,
        ))  # fmt: skip
    return result


def excluded(rel: str, is_dir: bool) -> bool:
    """Whether ``rel`` (a path below the synced folder) matches :data:`EXCLUDES`."""
    base = posixpath.basename(rel)
    for pattern in EXCLUDES:
        if pattern.endswith("/"):
            if is_dir and (base == pattern[:-1] or (pattern.startswith("*") and
                                                   base.endswith(pattern[1:-1]))):  # fmt: skip
                return True
        elif pattern.startswith("*") and base.endswith(pattern[1:]):
            return True
    return False


def tree_digest(folder: str) -> str:
    """A digest of the names, sizes, modes and modification times below ``folder`` (what
    rsync's quick check looks at), excludes applied: equal digests, nothing to send."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        rel_root = os.path.relpath(root, folder)
        rel_root = "" if rel_root == "." else rel_root
        dirs[:] = sorted(d for d in dirs if not excluded(posixpath.join(rel_root, d), True))
        for name in sorted(files):
            rel = posixpath.join(rel_root, name)
            if excluded(rel, False):
                continue
            info = os.lstat(os.path.join(root, name))
            kind = "l" if stat.S_ISLNK(info.st_mode) else "f"
            digest.update(f"{kind}\0{rel}\0{info.st_size}\0{info.st_mode:o}\0"
                          f"{info.st_mtime_ns // 10**9}\n".encode())  # fmt: skip
    return "sha256:" + digest.hexdigest()
