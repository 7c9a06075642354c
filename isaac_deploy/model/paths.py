"""Where things live inside an extension project (one place, used by deploys, CLI and tests)."""

from __future__ import annotations

from pathlib import PurePosixPath

PROFILES = ("ext", "ext-dev")
DOCKER_DIR = "docker"
COMPOSE_FILE = "docker-compose.yaml"
OVERRIDE_FILE = "docker-compose.override.yaml"
MOUNT_CONFIG = ".mount.config"


def docker_dir(folder: str | PurePosixPath) -> PurePosixPath:
    return PurePosixPath(folder) / DOCKER_DIR


def env_file(folder: str | PurePosixPath, extension: str, profile: str) -> PurePosixPath:
    """``docker/.env.<extension>`` (``ext``) or ``docker/.env.<extension>-dev`` (``ext-dev``)."""
    suffix = "" if profile == "ext" else "-dev"
    return docker_dir(folder) / f".env.{extension}{suffix}"


def override_file(folder: str | PurePosixPath) -> PurePosixPath:
    return docker_dir(folder) / OVERRIDE_FILE


def mount_config(folder: str | PurePosixPath) -> PurePosixPath:
    return PurePosixPath(folder) / MOUNT_CONFIG


def expand_home(path: str, home: str) -> str:
    return home + path[1:] if path == "~" or path.startswith("~/") else path


X11_SOCKETS = "/tmp/.X11-unix"  # noqa: S108 - the X server's socket folder
