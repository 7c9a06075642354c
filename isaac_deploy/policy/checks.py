"""Toolkit checks: each gives OK / WARN / FAIL / SKIPPED with one actionable line.

Shared by the workstation deploy and the CLI's ``doctor``; they read the ``WorkstationToolkit``
fact and never run commands themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from isaac_deploy.facts.toolkit import DockerEndpoint, Toolkit

Status = Literal["OK", "WARN", "FAIL", "SKIPPED"]
# The seed's tested combinations: (docker, apptainer) exact pair, or both at least these.
TESTED_EXACT = (("24.0.7", "1.2.5"),)
TESTED_MINIMUM = (("27.0.0", "1.3.4"),)
DOCKER_GROUP_FIX = "log out and in again (or run `newgrp docker`) so the new group applies"
# how to go back to this machine's engine, by what chose the one asked
BACK_TO_DEFAULT = {
    "DOCKER_HOST": "unset DOCKER_HOST",
    "DOCKER_CONTEXT": "unset DOCKER_CONTEXT",
    "context": "run `docker context use default`",
}


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str
    fix: str = ""

    def sentence(self) -> str:
        """The message and, for WARN and FAIL, its fix: ``message -> fix``."""
        tail = f" -> {self.fix}" if self.fix and self.status in ("WARN", "FAIL") else ""
        return f"{self.message}{tail}"

    def line(self) -> str:
        return f"[{self.status}] {self.name}: {self.sentence()}"


def version_tuple(version: str | None) -> tuple[int, ...]:
    """``"20.10.24+dfsg1"`` -> ``(20, 10, 24)``: leading digits of each dotted part."""
    if not version:
        return ()
    parts = [
        int(m.group()) if (m := re.match(r"\d+", part)) else 0 for part in version.split(".")[:3]
    ]
    return tuple(parts + [0] * (3 - len(parts)))


def is_tested_combination(docker: str | None, apptainer: str | None) -> bool:
    d, a = version_tuple(docker), version_tuple(apptainer)
    exact = any(d == version_tuple(x) and a == version_tuple(y) for x, y in TESTED_EXACT)
    minimum = any(d >= version_tuple(x) and a >= version_tuple(y) for x, y in TESTED_MINIMUM)
    return exact or minimum


def check_gpu(tk: Toolkit) -> Check:
    if tk.nvidia_smi_error and not tk.gpus:
        return Check(
            "NVIDIA driver",
            "FAIL",
            f"nvidia-smi failed: {tk.nvidia_smi_error}",
            "reinstall or update the NVIDIA driver (e.g. `sudo ubuntu-drivers install`) and reboot",
        )
    if not tk.gpus:
        return Check(
            "NVIDIA driver",
            "SKIPPED",
            "no NVIDIA GPU or driver found (nvidia-smi missing): "
            "CPU-only mode, containers start without GPU reservation",
        )
    names = ", ".join(f"{g.index}: {g.name}" for g in tk.gpus)
    return Check("NVIDIA driver", "OK", f"driver {tk.nvidia_driver}, GPUs {names}")


def missing(name: str, message: str, will_install: bool, deploy_does: str, admin_fix: str) -> Check:
    """Something the deploy installs (WARN) or, in check-only mode, an admin must (FAIL)."""
    return Check(
        name,
        "WARN" if will_install else "FAIL",
        message,
        deploy_does if will_install else admin_fix,
    )


def check_nvidia_toolkit(tk: Toolkit, will_install: bool) -> Check:
    name = "NVIDIA Container Toolkit"
    if not tk.gpus:
        return Check(name, "SKIPPED", "not needed without an NVIDIA GPU")
    if not tk.nvidia_ctk:
        how = (
            "apt-get install nvidia-container-toolkit (NVIDIA's apt repository), then "
            "`nvidia-ctk runtime configure --runtime=docker`"
        )
        return missing(
            name,
            "nvidia-ctk is missing",
            will_install,
            f"the deploy installs it: {how}",
            f"ask an admin to install it: {how}",
        )
    if not tk.nvidia_runtime_configured:
        return missing(
            name,
            f"nvidia-ctk {tk.nvidia_ctk} installed, but Docker has no nvidia runtime",
            will_install,
            "the deploy configures it",
            "ask an admin to run `sudo nvidia-ctk runtime configure --runtime=docker` "
            "and restart Docker",
        )
    return Check(name, "OK", f"nvidia-ctk {tk.nvidia_ctk}, nvidia runtime configured")


def endpoint_origin(endpoint: DockerEndpoint) -> str:
    """Which engine was asked, other than the default socket, and what chose it, e.g.
    ``DOCKER_HOST points to tcp://h:2376``."""
    if endpoint.source == "DOCKER_HOST":
        return f"DOCKER_HOST points to {endpoint.host}"
    chosen_by = "DOCKER_CONTEXT" if endpoint.source == "DOCKER_CONTEXT" else "`docker context use`"
    target = f"points to {endpoint.host}" if endpoint.host else "has no Docker endpoint here"
    return f'the Docker context "{endpoint.context}" (chosen by {chosen_by}) {target}'


def engine_elsewhere_down(tk: Toolkit) -> Check | None:
    """FAIL when the engine asked is not this machine's default socket (``DOCKER_HOST``, a Docker
    context) and does not answer: a dockerd started here would not be the one asked."""
    endpoint = tk.docker_endpoint
    answered = tk.docker_server or tk.docker_permission_denied
    if endpoint.local_default or not tk.docker_client or answered:
        return None
    back = f"{BACK_TO_DEFAULT[endpoint.source]} to use this machine's engine"
    if not endpoint.host:
        return Check(
            "Docker", "FAIL", f"{endpoint_origin(endpoint)} ({tk.docker_server_error})", back
        )
    return Check(
        "Docker",
        "FAIL",
        f"{endpoint_origin(endpoint)}, where no Docker engine answers ({tk.docker_server_error})",
        f"{back}, or start the Docker daemon at {endpoint.host}",
    )


def check_docker(tk: Toolkit, will_install: bool) -> list[Check]:
    if not tk.docker_client:
        return [
            missing(
                "Docker",
                "docker is not installed",
                will_install,
                "the deploy installs it",
                "ask an admin to run `sudo apt-get install docker.io`, or set "
                "isaac_provision='install' on a host where you may use sudo",
            )
        ]
    elsewhere_down = engine_elsewhere_down(tk)
    if elsewhere_down:
        engine = elsewhere_down
    elif tk.docker_engine_missing:
        engine = missing(
            "Docker",
            f"client {tk.docker_client}, but no Docker engine (dockerd) is installed",
            will_install,
            "the deploy installs it",
            "ask an admin to run `sudo apt-get install docker.io`",
        )
    elif tk.docker_server:
        where = (
            "" if tk.docker_endpoint.local_default else f" ({endpoint_origin(tk.docker_endpoint)})"
        )
        engine = Check(
            "Docker", "OK", f"client {tk.docker_client}, engine {tk.docker_server}{where}"
        )
    elif tk.docker_permission_denied:
        engine = Check(
            "Docker",
            "FAIL",
            f"client {tk.docker_client}; this user may not use the engine",
            f"the user must be in the docker group: {DOCKER_GROUP_FIX}"
            if will_install
            else "ask an admin to run `sudo usermod -aG docker $USER`, then " + DOCKER_GROUP_FIX,
        )
    else:
        engine = missing(
            "Docker",
            f"client {tk.docker_client}; engine not reachable ({tk.docker_server_error})",
            will_install,
            "the deploy starts it",
            "ask an admin to start it: `sudo systemctl start docker`",
        )
    if tk.compose:
        compose = Check("Docker Compose", "OK", f"v{tk.compose}")
    else:
        standalone = tk.compose_standalone
        legacy = f" (only a standalone docker-compose {standalone} is there)" if standalone else ""
        compose = missing(
            "Docker Compose",
            f"Compose v2 (`docker compose`) is missing{legacy}",
            will_install,
            "the deploy installs it",
            "install `docker-compose-plugin` or `docker-compose-v2`",
        )
    return [engine, compose]


def check_apptainer(tk: Toolkit) -> list[Check]:
    version = tk.apptainer or tk.singularity
    tool = "Apptainer" if tk.apptainer else "Singularity"
    if not version:
        return [
            Check(
                "Apptainer",
                "WARN",
                "apptainer is not installed: needed to turn images into cluster images",
                "install Apptainer >= 1.3.4 (see apptainer.org/docs)",
            )
        ]
    checks = [Check("Apptainer", "OK", f"{tool} {version}")]
    if tk.docker_server and not is_tested_combination(tk.docker_server, version):
        checks.append(
            Check(
                "Docker/Apptainer",
                "WARN",
                f"Docker {tk.docker_server} with {tool} {version} is not a tested combination",
                "tested: Docker 24.0.7 + Apptainer 1.2.5; Docker >= 27.0.0 + Apptainer >= 1.3.4",
            )
        )
    else:
        checks.append(Check("Docker/Apptainer", "OK", "tested combination"))
    return checks


def check_disk(tk: Toolkit, min_free_gb: int) -> Check:
    if tk.free_kib is None:
        return Check("Disk", "SKIPPED", "free space under Docker's data root unknown")
    free_gb = tk.free_kib / 1024 / 1024
    where = tk.docker_root or "/var/lib/docker"
    if free_gb < min_free_gb:
        return Check(
            "Disk",
            "WARN",
            f"{free_gb:.1f} GiB free under {where}, images need {min_free_gb} GiB",
            "free space (`docker system prune`) or move Docker's data-root",
        )
    return Check("Disk", "OK", f"{free_gb:.1f} GiB free under {where}")


def toolkit_checks(tk: Toolkit, *, will_install: bool, min_free_gb: int = 20) -> list[Check]:
    return [
        check_gpu(tk),
        *check_docker(tk, will_install),
        check_nvidia_toolkit(tk, will_install),
        *check_apptainer(tk),
        check_disk(tk, min_free_gb),
    ]
