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
from isaac_deploy.model.workstation import WorkstationConfig, stack_project
from isaac_deploy.probes.extensions import extension_names

PROFILES = {"ext": "ext", "ext-dev": "ext-dev", "ext-dev-rootless": "ext-dev"}
"""Compose service -> the profile whose env file and image it uses."""


class ProjectError(IsaacDeployError):
    """The CLI cannot work here; the message says what to do."""


@dataclass(frozen=True)
class Layout:
    """Where isaac-deploy's files of a project are: ``tools`` holds ``inventories/`` and
    ``deploy/``; it is ``root`` in a checkout of isaac-deploy (this repository, or a fork of it)
    and ``root/.isaac-deploy`` in an extension project adopted by ``isaac-deploy init``."""

    root: Path
    tools: Path

    def inventory(self, name: str) -> Path:
        return self.tools / "inventories" / f"{name}.py"

    def deploy(self, name: str) -> Path:
        return self.tools / "deploy" / f"{name}.py"

    def shown(self, path: Path) -> str:
        """``path`` as the user types it from the project's root."""
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)


def adopted(folder: Path) -> bool:
    return (folder / paths.TOOL_DIR / "inventories").is_dir()


def checkout(folder: Path) -> bool:
    return (folder / "inventories" / "local.py").is_file() and (
        folder / "deploy" / "dev.py"
    ).is_file()


def find_layout(start: Path) -> Layout:
    """The project at or above ``start``: the nearest folder adopted by ``isaac-deploy init``
    (``.isaac-deploy/inventories/``) or holding a checkout's ``inventories/local.py`` and
    ``deploy/dev.py``. An extension project not adopted yet is named, with the command."""
    for folder in [start, *start.parents]:
        if adopted(folder):
            return Layout(folder, folder / paths.TOOL_DIR)
        if checkout(folder):
            return Layout(folder, folder)
        if extension_names(str(folder)):
            raise ProjectError(
                f"{folder} is an extension project isaac-deploy does not know yet: run "
                f"`isaac-deploy init` there (it adds {paths.TOOL_DIR}/ and changes nothing else)"
            )
    raise ProjectError(
        f"no extension project here: neither {start} nor a folder above it has source/<name>/ "
        "with config/extension.toml (run inside your extension project)"
    )


def inventory_data(layout: Layout, data: Sequence[str] = ()) -> dict[str, Any]:
    """The ``@local`` host's data in the project's ``local`` inventory as the workstation deploy
    reads it (group data and ``group_data/`` included; ``data``: pyinfra's ``--data``
    overrides); without the file, as ``pyinfra @local`` reads it."""
    inventory = layout.inventory("local")
    found = hosts_data(str(inventory) if inventory.is_file() else "@local", layout.root, data)
    return found.get("@local", {})


@dataclass
class Project:
    layout: Layout
    config: WorkstationConfig
    data: tuple[str, ...] = ()
    """The ``--data`` overrides (``KEY=VALUE``) it was loaded with, for other inventories too."""
    suffix: str = ""
    """The stack (``--suffix NAME``): its own containers and volumes; empty: the default one."""

    @property
    def compose_project(self) -> str:
        """The stack's Compose project: ``<extension>-<user>[-<suffix>]``."""
        return stack_project(self.config, self.suffix)

    @property
    def suffix_flag(self) -> str:
        """``--suffix NAME`` and a space for commands shown to the user; empty without one."""
        return f"--suffix {self.suffix} " if self.suffix else ""

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def folder(self) -> Path:
        return Path(self.config.extension_folder)

    def env_file(self, service: str) -> Path:
        return Path(paths.env_file(self.folder, self.config.extension_name, PROFILES[service]))

    @property
    def compose_file(self) -> Path:
        return paths.COMPOSE_FILE

    @property
    def override_file(self) -> Path:
        return Path(paths.override_file(self.folder))

    @property
    def mount_config_file(self) -> Path:
        return Path(paths.mount_config(self.folder))

    def container(self, service: str) -> str:
        return f"{self.compose_project}-{service}"

    @cached_property
    def env(self) -> dict[str, str]:
        """Values of the dev env file (as written by the deploy), for the CLI's own use."""
        return read_env_file(self.env_file("ext-dev"))

    def compose(self, service: str, *args: str, extra_files: tuple[Path, ...] = ()) -> list[str]:
        """``docker compose`` for ``service``: its env file, the override, ``extra_files``."""
        env_file = self.env_file(service)
        if not env_file.is_file():
            setup = setup_command(self.layout)
            raise ProjectError(f"{env_file} is missing: run the workstation deploy first ({setup})")
        files = [self.compose_file]
        if self.override_file.is_file():
            files.append(self.override_file)
        argv = ["docker", "compose"]
        if self.suffix:  # the project name, which Compose also interpolates in the file
            argv += ["--project-name", self.compose_project]
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


def setup_command(layout: Layout) -> str:
    """How the user runs the workstation deploy of ``layout``'s project."""
    inventory, deploy = (layout.shown(p) for p in (layout.inventory("local"), layout.deploy("dev")))
    return f"isaac-deploy setup, i.e. pyinfra {inventory} {deploy}"


def load(start: Path | None = None, overrides: Sequence[str] = (), suffix: str = "") -> Project:
    """The project around ``start``, with pyinfra's ``--data`` ``overrides`` (``KEY=VALUE``),
    for the stack ``suffix`` (checked here, before anything runs); the uid/gid the deploy
    rendered (e.g. ``--data isaac_uid=2000``) win over the inventory's and the overrides, so the
    CLI matches the built image."""
    layout = find_layout((start or Path.cwd()).resolve())
    data = inventory_data(layout, overrides)
    folder = str(data.get("isaac_extension_folder") or layout.root)
    if not Path(folder).is_dir():
        raise ProjectError(f"isaac_extension_folder: {folder} does not exist")
    found = tuple(extension_names(folder))
    config = WorkstationConfig.from_host_data(data, local_user(), str(layout.root), found)
    rendered = read_env_file(
        Path(paths.env_file(config.extension_folder, config.extension_name, "ext-dev"))
    )
    if rendered.get("HOST_UID", "").isdigit() and rendered.get("HOST_GID", "").isdigit():
        data = {**data, "isaac_uid": rendered["HOST_UID"], "isaac_gid": rendered["HOST_GID"]}
        config = WorkstationConfig.from_host_data(data, local_user(), str(layout.root), found)
    stack_project(config, suffix)  # a bad suffix: one error line before anything runs
    return Project(layout, config, tuple(overrides), suffix)
