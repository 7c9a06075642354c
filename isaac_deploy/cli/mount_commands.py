"""The mount commands: read and change ``.mount.config`` and regenerate the override next to
the compose file, whatever the current directory (the same files the deploy writes)."""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable
from dataclasses import asdict, replace

import yaml

from isaac_deploy.cli.project import Project, ProjectError
from isaac_deploy.facts.toolkit import local_toolkit
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.mounts import Mount, MountConfig, validate, volumes
from isaac_deploy.model.paths import LOCALTIME, X11_SOCKETS
from isaac_deploy.probes.local import atomic_write, path_kind
from isaac_deploy.render.compose_override import override_yaml
from isaac_deploy.render.managed import decide

FORMATS = ("text", "json", "yaml", "docker", "singularity")


def load(project: Project) -> MountConfig:
    path = project.mount_config_file
    return MountConfig.loads(path.read_text() if path.is_file() else None)


def override_text(project: Project, mounts: MountConfig) -> str:
    """What the deploy would write to the override on this machine right now."""
    toolkit = local_toolkit((X11_SOCKETS, LOCALTIME))
    key_file = project.env.get("WANDB_API_KEY_FILE", "")
    return override_yaml(
        mounts,
        project.config.user.home,
        gpu=bool(toolkit.gpus),
        x11=project.config.x11 and toolkit.path_kind(X11_SOCKETS) == "dir",
        secret_files={"wandb_api_key": key_file} if key_file else None,
        ros2=project.config.ros2,
        localtime=toolkit.path_kind(LOCALTIME) == "file",
    )


def save(project: Project, mounts: MountConfig) -> None:
    """Validate, then write ``.mount.config`` and the override (an edited override is kept)."""
    validate(mounts, path_kind, project.config.user.home)
    override = project.override_file
    current = override.read_text().splitlines() if override.is_file() else None
    decision = decide(current, override_text(project, mounts))
    if decision.action == "keep-edited":
        raise ProjectError(
            f"{override} was edited by hand: .mount.config is unchanged; delete the override "
            "(it is generated) and run the command again"
        )
    atomic_write(str(project.mount_config_file), mounts.dumps(), 0o644)
    atomic_write(str(override), decision.desired, 0o644)


def change(project: Project, name: str, update: Callable[[Mount], Mount]) -> Mount:
    mounts = load(project)
    if name not in mounts.mounts:
        known = ", ".join(sorted(mounts.mounts))
        raise ConfigError(f".mount.config: mounts.{name}", f"no such mount (known: {known})")
    updated = Mount.parse(f".mount.config: mounts.{name}", asdict(update(mounts.mounts[name])))
    save(project, replace(mounts, mounts={**mounts.mounts, name: updated}))
    return updated


def add(project: Project, name: str, mount: Mount) -> None:
    mounts = load(project)
    parsed = MountConfig.loads(json.dumps({"mounts": {name: asdict(mount)}}))  # validates the name
    save(project, replace(mounts, mounts={**mounts.mounts, name: parsed.mounts[name]}))


def show(project: Project, fmt: str) -> str:
    mounts = load(project)
    home = project.config.user.home
    if fmt == "json":
        return mounts.dumps().rstrip("\n")
    if fmt == "yaml":
        return yaml.safe_dump(asdict(mounts), sort_keys=False).rstrip("\n")
    binds = volumes(mounts, home)
    if fmt == "docker":
        return " ".join(
            f"-v {b['source']}:{b['target']}{':ro' if b['read_only'] else ''}" for b in binds
        )
    if fmt == "singularity":
        return " ".join(
            f"--bind {b['source']}:{b['target']}{':ro' if b['read_only'] else ''}" for b in binds
        )
    lines = [f"mounts of {project.folder} ({project.mount_config_file.name}):"]
    for name, mount in sorted(mounts.mounts.items()):
        state = "enabled " if mount.enabled else "disabled"
        local = mount.local_path or "(no local path)"
        sync = (
            f", synced to {mount.cluster_path or '(cluster path unset)'}"
            if mount.sync_to_cluster
            else ""
        )
        lines.append(
            f"  {name:<12} {state} {local} -> {mount.container_path} ({mount.mount_type}{sync})"
        )
    return "\n".join(lines)


def expand(path: str) -> str:
    """Keep ``~/...`` (portable between machines), make anything else absolute."""
    return path if path.startswith("~") or posixpath.isabs(path) else os.path.abspath(path)
