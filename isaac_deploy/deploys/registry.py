"""The push deploy: each configured registry holds the current images, under the commit, the
extension's version and ``latest``; only what changed is sent."""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.hiddenvalue import HiddenValue
from pyinfra.operations import files

from isaac_deploy.facts.files import FileWithMode
from isaac_deploy.facts.toolkit import WorkstationToolkit
from isaac_deploy.model import paths
from isaac_deploy.model.errors import ConfigError, ToolkitError
from isaac_deploy.model.paths import expand_home
from isaac_deploy.model.registries import KEY, Registry, password_of, skopeo_flags
from isaac_deploy.model.workstation import WorkstationConfig
from isaac_deploy.operations.registry import image_pushed, login_saved


@dataclass(frozen=True)
class PushPlan:
    config: WorkstationConfig
    version: str
    passwords: dict[str, HiddenValue]

    def state_dir(self, registry: Registry) -> str:
        home = self.config.user.home
        return posixpath.join(home, ".config", "isaac-deploy", "registries", registry.name)

    def auth_file(self, registry: Registry) -> str | None:
        return posixpath.join(self.state_dir(registry), "auth.json") if registry.has_login else None

    def cert_dir(self, registry: Registry) -> str | None:
        return posixpath.join(self.state_dir(registry), "certs") if registry.ca_file else None

    def repository(self, registry: Registry, profile: str) -> str:
        """Where the image of ``profile`` goes in ``registry``: ``address/prefix/name``."""
        return registry.repository(self.config.image_name(profile).split(":", 1)[0])


def _version_files(config: WorkstationConfig) -> tuple[str, str]:
    """Where the extension's version is: the template's ``config/extension.toml``, else
    ``pyproject.toml``."""
    package = posixpath.join(config.extension_folder, "source", config.extension_name)
    return posixpath.join(package, paths.EXTENSION_TOML), posixpath.join(package, "pyproject.toml")


def _version(text: str | None) -> str:
    """The first ``version = "..."`` of a toml file (``[package]`` of ``extension.toml``,
    ``[project]`` of ``pyproject.toml``), as an image tag ("" if none)."""
    match = re.search(r'^version\s*=\s*"([^"]+)"', text or "", re.M)
    return re.sub(r"[^A-Za-z0-9_.-]", "-", match.group(1)) if match else ""


def load(project_root: str | Path, data: dict[str, Any] | None = None) -> PushPlan:
    """Validate the registries, their CA files and credentials before anything changes.

    ``data`` replaces the host's data (the cluster roll-out pushes the production image to
    the registries its clusters use).
    """
    data = host.data.dict() if data is None else data
    folder = str(data.get("isaac_extension_folder") or project_root)
    raw = data.get(KEY) if isinstance(data.get(KEY), dict) else {}
    ca_files = [s.get("ca_file") for s in raw.values() if isinstance(s, dict) and s.get("ca_file")]
    toolkit = host.get_fact(
        WorkstationToolkit,
        digest=tuple(str(path) for path in ca_files),
        extensions=(folder,),
    )
    if toolkit.user is None:
        raise ToolkitError("could not inspect the target: python3 is needed there")
    config = WorkstationConfig.from_host_data(
        data, toolkit.user, str(project_root), toolkit.extensions.get(folder, ())
    )
    if not config.registries:
        raise ConfigError(KEY, "no registry configured (see inventories/registries.py)")
    if not toolkit.docker_server:
        raise ToolkitError(f"Docker is not usable here: {toolkit.docker_server_error}")
    passwords = {}
    for registry in config.registries:
        field = f"{KEY}[{registry.name}]"
        if registry.ca_file and toolkit.digests.get(registry.ca_file) is None:
            raise ConfigError(f"{field}[ca_file]", f"{registry.ca_file} does not exist")
        password = password_of(registry, os.environ)
        if password is not None:
            passwords[registry.name] = HiddenValue(password)
    version = ""
    for path in _version_files(config):
        found = host.get_fact(FileWithMode, path=path)
        version = _version("\n".join(found.lines) if found else None)
        if version:
            break
    return PushPlan(config, version, passwords)


@deploy("Push images")
def push(plan: PushPlan) -> None:
    config = plan.config
    for registry in config.registries:
        auth_file, cert_dir = plan.auth_file(registry), plan.cert_dir(registry)
        if auth_file or cert_dir:
            files.directory(
                name=f"{registry.name}: settings folder",
                path=plan.state_dir(registry),
                mode="700",
            )
        if cert_dir and registry.ca_file:
            ca_file = expand_home(registry.ca_file, config.user.home)
            files.directory(name=f"{registry.name}: CA folder", path=cert_dir, mode="700")
            files.put(
                name=f"{registry.name}: CA",
                src=ca_file,
                dest=posixpath.join(cert_dir, "ca.crt"),
                mode="644",
            )
        if auth_file:  # after the CA: the registry is asked whether it accepts the login
            login_saved(
                name=f"{registry.name}: credentials (auth file, not shown)",
                registry=registry,
                auth_file=auth_file,
                password=plan.passwords[registry.name],
                repository=plan.repository(registry, config.push_profiles[0]),
                cert_dir=cert_dir,
            )
        for profile in config.push_profiles:
            repository = plan.repository(registry, profile)
            image_pushed(
                name=f"{registry.name}: {repository}",
                registry=registry,
                local=config.image_name(profile),
                repository=repository,
                version=plan.version,
                folder=config.extension_folder,
                inspect_flags=skopeo_flags(registry, auth_file, cert_dir, ""),
                src_flags=skopeo_flags(registry, auth_file, cert_dir, "src"),
                dest_flags=skopeo_flags(registry, auth_file, cert_dir, "dest"),
            )
