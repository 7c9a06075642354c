"""``mount-setup``: an interactive wizard over ``.mount.config``; every answer is validated
before it is taken, and nothing is written until the end."""

from __future__ import annotations

import sys
from dataclasses import replace

from isaac_deploy.cli.mount_commands import expand, load, save, show
from isaac_deploy.cli.project import Project
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.mounts import Mount, MountConfig, validate
from isaac_deploy.probes.local import path_kind


def ask(prompt: str, default: str = "") -> str:
    suffix = f" [{default}]" if default else ""
    sys.stdout.write(f"{prompt}{suffix}: ")
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError("no answer (end of input)")
    return line.strip() or default


def yes(prompt: str, default: bool) -> bool:
    while True:
        answer = ask(f"{prompt} (y/n)", "y" if default else "n").lower()
        if answer in ("y", "yes", "n", "no"):
            return answer.startswith("y")
        print("  please answer y or n")


def setup_mount(name: str, mount: Mount, home: str) -> Mount:
    if not yes(f"Enable the {name} mount?", mount.enabled):
        return replace(mount, enabled=False)
    while True:
        path = expand(ask(f"  local path of {name}", mount.local_path))
        candidate = replace(mount, enabled=True, local_path=path)
        try:
            validate(MountConfig(mounts={name: candidate}), path_kind, home)
            break
        except ConfigError as error:
            print(f"  {error}")
    if yes(f"  sync {name} to the cluster (no: it is already there)?", mount.sync_to_cluster):
        candidate = replace(candidate, sync_to_cluster=True)
    while True:
        cluster = ask(f"  path of {name} on the cluster (empty: decide later)", mount.cluster_path)
        try:
            return Mount.parse(
                f"mounts.{name}",
                {
                    **candidate.__dict__,
                    "cluster_path": cluster,
                    "sync_to_cluster": candidate.sync_to_cluster,
                },
            )
        except ConfigError as error:
            print(f"  {error}")


def wizard(project: Project) -> int:
    print(f"External mounts of {project.folder}: Enter keeps the value in brackets.")
    current = load(project)
    mounts = dict(current.mounts)
    try:
        for name in sorted(mounts):
            mounts[name] = setup_mount(name, mounts[name], project.config.user.home)
    except EOFError:
        print("\nmount-setup: stopped, nothing written")
        return 1
    save(project, replace(current, mounts=mounts))
    print(show(project, "text"))
    print("written: .mount.config and docker/docker-compose.override.yaml")
    return 0
