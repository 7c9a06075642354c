"""Exact apt sources for Docker's and NVIDIA's repositories (files the deploy writes)."""

from __future__ import annotations

NVIDIA_KEY_URL = "https://nvidia.github.io/libnvidia-container/gpgkey"
NVIDIA_KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.asc"
NVIDIA_LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
DOCKER_KEYRING = "/etc/apt/keyrings/docker.asc"
DOCKER_LIST = "/etc/apt/sources.list.d/docker.list"
DOCKER_REPO_PACKAGES = (
    "docker-ce",
    "docker-ce-cli",
    "containerd.io",
    "docker-buildx-plugin",
    "docker-compose-plugin",
)
DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "ppc64le": "ppc64el"}


def deb_arch(machine: str) -> str:
    return DEB_ARCH.get(machine, machine or "amd64")


def nvidia_list() -> str:
    """NVIDIA's toolkit repository (one list for every Debian/Ubuntu release; apt fills $(ARCH))."""
    return (
        f"deb [signed-by={NVIDIA_KEYRING}] "
        "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n"
    )


def docker_key_url(os_id: str) -> str:
    return f"https://download.docker.com/linux/{os_id}/gpg"


def docker_list(os_id: str, codename: str, machine: str) -> str:
    return (
        f"deb [arch={deb_arch(machine)} signed-by={DOCKER_KEYRING}] "
        f"https://download.docker.com/linux/{os_id} {codename} stable\n"
    )


def docker_packages(source: str, os_id: str, version: str) -> tuple[list[str], str | None]:
    """Packages for Docker + Compose v2, and which of them is Compose v2 (``None``: none is).

    Docker's repository has ``docker-compose-plugin``; Ubuntu packages Compose v2 as
    ``docker-compose-v2``, Debian >= 13 as ``docker-compose``; Debian 12 has only Compose v1, so
    the caller installs the Compose v2 CLI plugin itself.
    """
    if source == "docker-repo":
        return list(DOCKER_REPO_PACKAGES), "docker-compose-plugin"
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    if os_id == "ubuntu":
        return ["docker.io", "docker-compose-v2"], "docker-compose-v2"
    if os_id == "debian" and major >= 13:
        return ["docker.io", "docker-compose"], "docker-compose"
    return ["docker.io"], None
