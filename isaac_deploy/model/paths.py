"""Where things live inside an extension project (one place, used by deploys, CLI and tests)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

PROFILES = ("ext", "ext-dev")
TOOL_DIR = ".isaac-deploy"
"""isaac-deploy's own folder in an adopted extension project: its inventories and deploy files
(``isaac-deploy init`` writes them) and ``state/``. Nothing of the user's lives there."""
STATE_DIR = f"{TOOL_DIR}/state"
"""What the workstation deploy renders for this host's user (env files, the compose override):
per user and host, so git-ignored by the folder's own ``.gitignore`` (the user's stays as it is)."""
STATE_GITIGNORE = "# rendered by isaac-deploy for this host's user: never committed\n*\n"
OVERRIDE_FILE = "docker-compose.override.yaml"
MOUNT_CONFIG = ".mount.config"
EXTENSION_TOML = "config/extension.toml"
"""The extension's metadata in ``source/<extension>/`` (the Isaac Lab extension template's)."""


def state_dir(folder: str | PurePosixPath) -> PurePosixPath:
    return PurePosixPath(folder) / STATE_DIR


def env_file(folder: str | PurePosixPath, extension: str, profile: str) -> PurePosixPath:
    """``<state>/<extension>.env`` (``ext``) or ``<state>/<extension>-dev.env`` (``ext-dev``)."""
    suffix = "" if profile == "ext" else "-dev"
    return state_dir(folder) / f"{extension}{suffix}.env"


def override_file(folder: str | PurePosixPath) -> PurePosixPath:
    return state_dir(folder) / OVERRIDE_FILE


DEVCONTAINER_DIR = ".devcontainer/isaac-deploy"
"""VS Code's dev container of this host's user, one of the places the Dev Container spec looks
(``.devcontainer/<folder>/devcontainer.json``): beside a project's own
``.devcontainer/devcontainer.json``, never over it; git-ignored by its own ``.gitignore``."""
DEVCONTAINER_COMPOSE = "devcontainer-compose.yaml"
"""In the state folder: the Compose file the dev container names (the project, the env file)."""


def devcontainer_file(folder: str | PurePosixPath) -> PurePosixPath:
    return PurePosixPath(folder) / DEVCONTAINER_DIR / "devcontainer.json"


def devcontainer_compose(folder: str | PurePosixPath) -> PurePosixPath:
    return state_dir(folder) / DEVCONTAINER_COMPOSE


def mount_config(folder: str | PurePosixPath) -> PurePosixPath:
    return PurePosixPath(folder) / MOUNT_CONFIG


def expand_home(path: str, home: str) -> str:
    return home + path[1:] if path == "~" or path.startswith("~/") else path


X11_SOCKETS = "/tmp/.X11-unix"  # noqa: S108 - the X server's socket folder
LOCALTIME = "/etc/localtime"
"""The host's time zone, which the containers share (read-only)."""


PACKAGE_DOCKER = Path(__file__).resolve().parent.parent / "data" / "docker"
"""isaac-deploy's Dockerfiles, entrypoint and compose file, used in place from the installed
package (``docker/`` of the checkout): never copied into an extension project."""
COMPOSE_FILE = PACKAGE_DOCKER / "docker-compose.yaml"
