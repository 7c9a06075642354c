"""The project the CLI works on: found from any directory inside it, configured by the same
model and inventory data as the workstation deploy, with this machine's user detected."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from isaac_deploy.cli.inventory import hosts_data
from isaac_deploy.facts.toolkit import local_user
from isaac_deploy.model import paths
from isaac_deploy.model.errors import IsaacDeployError
from isaac_deploy.model.workstation import WorkstationConfig

PROFILES = {"ext": "ext", "ext-dev": "ext-dev", "ext-dev-rootless": "ext-dev"}
"""Compose service -> the profile whose env file and image it uses."""


class ProjectError(IsaacDeployError):
    """The CLI cannot work here; the message says what to do."""


def find_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding ``docker/docker-compose.yaml``."""
    for folder in [start, *start.parents]:
        if (folder / paths.DOCKER_DIR / paths.COMPOSE_FILE).is_file():
            return folder
    raise ProjectError(
        f"no extension project here: neither {start} nor a folder above it has "
        "docker/docker-compose.yaml (run inside your isaac-deploy checkout)"
    )


def inventory_data(root: Path, data: Sequence[str] = ()) -> dict[str, Any]:
    """The ``@local`` host's data in ``inventories/local.py`` as the workstation deploy run in
    ``root`` reads it (group data and ``group_data/`` included; ``data``: pyinfra's ``--data``
    overrides); without the file, as ``pyinfra @local`` reads it."""
    inventory = root / "inventories" / "local.py"
    found = hosts_data(str(inventory) if inventory.is_file() else "@local", root, data)
    return found.get("@local", {})


@dataclass
class Project:
    root: Path
    config: WorkstationConfig
    data: tuple[str, ...] = ()
    """The ``--data`` overrides (``KEY=VALUE``) it was loaded with, for other inventories too."""

    @property
    def folder(self) -> Path:
        return Path(self.config.extension_folder)

    def env_file(self, service: str) -> Path:
        return Path(paths.env_file(self.folder, self.config.extension_name, PROFILES[service]))

    @property
    def compose_file(self) -> Path:
        return self.folder / paths.DOCKER_DIR / paths.COMPOSE_FILE

    @property
    def override_file(self) -> Path:
        return Path(paths.override_file(self.folder))

    @property
    def mount_config_file(self) -> Path:
        return Path(paths.mount_config(self.folder))

    def container(self, service: str) -> str:
        return f"{self.config.compose_project}-{service}"

    @cached_property
    def env(self) -> dict[str, str]:
        """Values of the dev env file (as written by the deploy), for the CLI's own use."""
        return read_env_file(self.env_file("ext-dev"))

    def compose(self, service: str, *args: str, extra_files: tuple[Path, ...] = ()) -> list[str]:
        """``docker compose`` for ``service``: its env file, the override, ``extra_files``."""
        env_file = self.env_file(service)
        if not env_file.is_file():
            raise ProjectError(
                f"{env_file} is missing: run the workstation deploy first "
                "(./dev-setup.sh or pyinfra inventories/local.py deploy/dev.py)"
            )
        files = [self.compose_file]
        if self.override_file.is_file():
            files.append(self.override_file)
        argv = ["docker", "compose"]
        for file in (*files, *extra_files):
            argv += ["-f", str(file)]
        return [*argv, "--env-file", str(env_file), "--profile", service, *args]


def read_env_file(path: Path) -> dict[str, str]:
    """Parse an env file as the deploy writes it (single- or double-quoted values)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\$", "$").replace("\\\\", "\\")
        values[key.strip()] = value
    return values


def load(start: Path | None = None, overrides: Sequence[str] = ()) -> Project:
    """The project around ``start``, with pyinfra's ``--data`` ``overrides`` (``KEY=VALUE``);
    the uid/gid the deploy rendered (e.g. ``--data isaac_uid=2000``) win over the inventory's
    and the overrides, so the CLI matches the built image."""
    root = find_root((start or Path.cwd()).resolve())
    data = inventory_data(root, overrides)
    config = WorkstationConfig.from_host_data(data, local_user(), str(root))
    rendered = read_env_file(
        Path(paths.env_file(config.extension_folder, config.extension_name, "ext-dev"))
    )
    if rendered.get("HOST_UID", "").isdigit() and rendered.get("HOST_GID", "").isdigit():
        data = {**data, "isaac_uid": rendered["HOST_UID"], "isaac_gid": rendered["HOST_GID"]}
        config = WorkstationConfig.from_host_data(data, local_user(), str(root))
    if not Path(config.extension_folder).is_dir():
        raise ProjectError(f"isaac_extension_folder: {config.extension_folder} does not exist")
    return Project(root, config, tuple(overrides))
