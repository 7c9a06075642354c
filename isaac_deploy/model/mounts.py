"""External mounts (``.mount.config``) and the ``docker-compose.override.yaml`` made from them.

A missing ``.mount.config`` means "no external mounts". Validation needs to know what exists on
the target; callers pass a ``probe(path) -> "dir" | "file" | "missing"`` (a fact in deploys,
``os.path`` in the CLI).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from isaac_deploy.model import validate as v
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.paths import expand_home

Probe = Callable[[str], str]
MOUNT_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
RSL_RL_IN_IMAGE = "/workspace/isaaclab/_isaac_sim/kit/python/lib/python3.11/site-packages/rsl_rl"
FILE = ".mount.config"


@dataclass(frozen=True)
class Mount:
    """One external checkout mounted into the containers (and optionally synced to clusters)."""

    container_path: str
    enabled: bool = False
    local_path: str = ""
    mount_type: str = "full"  # "full": the folder; "source": only its source/ folder
    read_only: bool = False
    sync_to_cluster: bool = False
    cluster_path: str = ""

    @classmethod
    def parse(cls, key: str, raw: Any) -> Mount:
        raw = v.mapping(key, raw, (f.name for f in fields(cls)))
        if "container_path" not in raw:
            raise ConfigError(f"{key}[container_path]", "is required")
        cluster_path = raw.get("cluster_path") or ""
        return cls(
            container_path=v.absolute_path(f"{key}[container_path]", raw["container_path"]),
            enabled=v.boolean(f"{key}[enabled]", raw.get("enabled", False)),
            local_path=v.text(f"{key}[local_path]", raw.get("local_path") or ""),
            mount_type=v.choice(
                f"{key}[mount_type]", raw.get("mount_type", "full"), ("full", "source")
            ),
            read_only=v.boolean(f"{key}[read_only]", raw.get("read_only", False)),
            sync_to_cluster=v.boolean(f"{key}[sync_to_cluster]", raw.get("sync_to_cluster", False)),
            cluster_path=v.absolute_path(f"{key}[cluster_path]", cluster_path, also=("~", "$"))
            if cluster_path
            else "",
        )


def default_mounts(isaaclab_path: str = "/workspace/isaaclab") -> dict[str, Mount]:
    return {
        "isaaclab": Mount(container_path=isaaclab_path, mount_type="source"),
        "rsl_rl": Mount(container_path=RSL_RL_IN_IMAGE),
    }


@dataclass(frozen=True)
class MountConfig:
    mounts: dict[str, Mount] = field(default_factory=default_mounts)
    version: int = 1

    @classmethod
    def loads(cls, text: str | None) -> MountConfig:
        """Parse ``.mount.config`` text; ``None`` (no file) gives the defaults, all disabled."""
        if text is None or not text.strip():
            return cls()
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(FILE, f"is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(FILE, "must hold a JSON object")
        v.mapping(FILE, data, ("version", "mounts"))
        raw_mounts = v.mapping(
            f"{FILE}: mounts", data.get("mounts") or {}, data.get("mounts") or {}
        )
        mounts = default_mounts()
        for name, raw in raw_mounts.items():
            if not isinstance(name, str) or not re.fullmatch(MOUNT_NAME_RE, name):
                raise ConfigError(
                    f"{FILE}: mounts",
                    f"{name!r} is not a valid mount name (letters, digits, _ . -)",
                )
            mounts[name] = Mount.parse(f"{FILE}: mounts.{name}", raw)
        return cls(mounts=mounts, version=v.integer(f"{FILE}: version", data.get("version", 1)))

    def dumps(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def enabled(self) -> dict[str, Mount]:
        return {name: m for name, m in self.mounts.items() if m.enabled}


def required_paths(config: MountConfig, home: str) -> list[str]:
    """Every path validation looks at, so a fact can probe them all in one command."""
    paths = []
    for name, mount in config.enabled().items():
        local = expand_home(mount.local_path, home)
        paths.append(local)
        if name == "isaaclab" or mount.mount_type == "source":
            paths.append(posixpath.join(local, "source"))
        if name == "rsl_rl":
            paths.append(posixpath.join(local, "__init__.py"))
    return paths


def validate(config: MountConfig, probe: Probe, home: str) -> None:
    """Raise ConfigError (naming the mount) for the first enabled mount that cannot work."""
    for name, mount in config.enabled().items():
        field = f"{FILE}: mounts.{name}"
        if not mount.local_path:
            raise ConfigError(field, "is enabled but has no local_path (mount-set NAME PATH)")
        local = expand_home(mount.local_path, home)
        if not local.startswith("/"):
            raise ConfigError(field, f"local_path {mount.local_path!r} must be absolute")
        if probe(local) != "dir":
            raise ConfigError(field, f"local_path {local} is not a directory")
        if (name == "isaaclab" or mount.mount_type == "source") and probe(
            posixpath.join(local, "source")
        ) != "dir":
            raise ConfigError(field, f"{local} has no source/ folder: is it an Isaac Lab checkout?")
        if name == "rsl_rl" and probe(posixpath.join(local, "__init__.py")) != "file":
            raise ConfigError(
                field, f"{local} has no __init__.py: point it at the rsl_rl package folder"
            )


def volumes(config: MountConfig, home: str) -> list[dict[str, Any]]:
    """Compose long-syntax bind mounts for the enabled mounts."""
    result = []
    for _name, mount in sorted(config.enabled().items()):
        local = expand_home(mount.local_path, home)
        source, target = local, mount.container_path
        if mount.mount_type == "source":
            source, target = posixpath.join(local, "source"), posixpath.join(target, "source")
        result.append(
            {"type": "bind", "source": source, "target": target, "read_only": mount.read_only}
        )
    return result
