"""The one configuration model shared by the deploys, the CLI and the cluster roll-out.

Values come from inventory data (keys prefixed ``isaac_``); the host user is detected by a fact,
never typed by hand. Every invalid value is refused with a :class:`ConfigError` naming its key.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from isaac_deploy.model import validate as v
from isaac_deploy.model.base_images import CHECKOUT_KEY, BaseSource, parse_images, parse_source
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.fleet import KEYS as FLEET_KEYS
from isaac_deploy.model.paths import PROFILES
from isaac_deploy.model.registries import Registry, parse_registries
from isaac_deploy.model.ros2 import Ros2Settings

PREFIX = "isaac_"
NAME_RE = r"[A-Za-z_][A-Za-z0-9_]*"
# Image references as Docker accepts them: [registry[:port]/]path[:tag][@digest]
IMAGE_RE = (
    r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
WANDB_MODES = ("online", "offline", "disabled")
ID_MAX = 2**31 - 1
"""The largest uid/gid the Docker engine runs a container as ("uids and gids must be in range
0-2147483647"). useradd and groupadd take more (up to 4294967294), and /etc/login.defs'
UID_MIN..UID_MAX (GID_MIN..GID_MAX) only bound the ids they choose themselves: an explicit id
outside is a warning there, not a limit."""
NAME_MAX = 255
"""Bytes in a file or folder name (ext4, xfs, btrfs); Docker's local volumes are folders."""
PROJECT_NAME_MAX = NAME_MAX - len(".-runtime.yaml.XXXXXXXX.isaac-deploy.tmp")
"""The longest Compose project name, ``<extension>-<user>``. It starts the names of the
containers (``-ext-dev-rootless``), of the volumes (``_user-cache-compute``) and of the CLI's
files, the longest of which is its SSH agent's compose file while it is written (mkstemp's name
for ``<project>-runtime.yaml``); every other name made from the extension's name is shorter."""


@dataclass(frozen=True)
class HostUser:
    """The user the deploy runs as on the target, as detected by the toolkit fact."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str = "/bin/sh"
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class WandbSettings:
    """Weights & Biases settings; the API key itself never appears here."""

    username: str | None = None
    entity: str | None = None
    project: str | None = None
    mode: str = "online"
    api_key_file: str | None = None
    api_key_env: str = "WANDB_API_KEY"

    @classmethod
    def parse(cls, key: str, raw: Any) -> WandbSettings:
        raw = v.mapping(key, raw or {}, (f.name for f in fields(cls)))
        key_file = raw.get("api_key_file")
        return cls(
            username=v.optional_text(f"{key}[username]", raw.get("username")),
            entity=v.optional_text(f"{key}[entity]", raw.get("entity")),
            project=v.optional_text(f"{key}[project]", raw.get("project")),
            mode=v.choice(f"{key}[mode]", raw.get("mode", "online"), WANDB_MODES),
            api_key_file=None
            if not key_file
            else v.absolute_path(f"{key}[api_key_file]", key_file, also=("~",)),
            api_key_env=v.text(
                f"{key}[api_key_env]",
                raw.get("api_key_env", "WANDB_API_KEY"),
                r"[A-Za-z_][A-Za-z0-9_]*",
                "must be an environment variable name",
            ),
        )


@dataclass(frozen=True)
class WorkstationConfig:
    """Everything the workstation deploy needs to know about one extension project on one host."""

    extension_folder: str
    uid: int
    gid: int
    user: HostUser
    extension_name: str = "ext_template"
    profiles: tuple[str, ...] = ("ext-dev",)
    user_mode: str = "user"
    base_images: dict[str, str] = field(
        default_factory=lambda: parse_images({}, BaseSource(), IMAGE_RE)
    )
    base_source: BaseSource = field(default_factory=BaseSource)
    """Where missing base images come from (``model.base_images``)."""
    provision: str = "install"
    docker_source: str = "distro"
    env_overwrite_edited: bool = False
    wandb: WandbSettings = field(default_factory=WandbSettings)
    isaacsim_root: str = "/isaac-sim"
    isaaclab_path: str = "/workspace/isaaclab"
    min_free_gb: int = 20
    dev_pip_packages: str = "pytest ruff"
    registries: tuple[Registry, ...] = ()
    push_profiles: tuple[str, ...] = ("ext",)
    image_paths: tuple[str, ...] = ()
    """Project-relative paths that enter the images and code snapshots besides ``source/`` and
    ``scripts/`` (``probes.context_digest``)."""
    devcontainer: bool = True
    """Render ``.devcontainer/isaac-deploy/devcontainer.json`` for VS Code
    (``render.devcontainer``)."""
    x11: bool = True
    """GUI apps of the dev containers on the host's display (``model.x11``), when it has one."""
    ros2: Ros2Settings = field(default_factory=Ros2Settings)

    # derived values, one definition each
    @property
    def docker_ext_path(self) -> str:
        return f"/workspace/{self.extension_name}"

    @property
    def user_slug(self) -> str:
        """The user's name as it may appear in image tags and Compose project names."""
        return re.sub(r"[^a-z0-9_.-]+", "-", self.user.name.lower()).strip("-.") or f"uid{self.uid}"

    @property
    def compose_project(self) -> str:
        """Per user, so that lab members sharing a machine never share containers or volumes."""
        return f"{self.extension_name.lower().replace('_', '-')}-{self.user_slug}"

    def image_name(self, profile: str) -> str:
        """``isaac-lab-<extension>[-dev]:<user>``: the dev image carries the user's uid."""
        suffix = "" if profile == "ext" else "-dev"
        return f"isaac-lab-{self.extension_name.lower().replace('_', '-')}{suffix}:{self.user_slug}"

    @classmethod
    def from_host_data(
        cls,
        data: Mapping[str, Any],
        user: HostUser,
        default_folder: str,
        extensions: tuple[str, ...],
    ) -> WorkstationConfig:
        """Build the model from inventory data (``isaac_*`` keys), the detected user and the
        ``extensions`` found in the project folder's ``source/`` (``probes.extensions``), which
        give the extension's name when the data does not."""
        # the lab PCs' own keys (model.fleet) may stand beside a project's
        known = (
            {f"{PREFIX}{f.name}" for f in fields(cls) if f.name != "user"}
            | set(FLEET_KEYS)
            | {CHECKOUT_KEY}
        )
        values: dict[str, Any] = {}
        for key, value in data.items():
            if not key.startswith(PREFIX):
                continue
            if key not in known:
                raise ConfigError(
                    key, f"unknown setting; known settings: {', '.join(sorted(known))}"
                )
            if value is not None:
                values[key[len(PREFIX) :]] = value

        def get(name: str, default: Any) -> tuple[str, Any]:
            return PREFIX + name, values.get(name, default)

        uid, gid = container_ids(values.get("uid"), values.get("gid"), (user.uid, user.gid))
        folder = v.absolute_path(*get("extension_folder", default_folder))
        source = parse_source(values.get("base_source"), values.get("isaaclab_checkout"))
        config = cls(
            extension_name=extension_name(values.get("extension_name"), extensions, folder),
            extension_folder=folder,
            profiles=_profiles(*get("profiles", ("ext-dev",))),
            user_mode=v.choice(*get("user_mode", "user"), ("user", "rootless")),
            uid=uid,
            gid=gid,
            user=user,
            base_images=parse_images(values.get("base_images"), source, IMAGE_RE),
            base_source=source,
            provision=v.choice(*get("provision", "install"), ("install", "check")),
            docker_source=v.choice(*get("docker_source", "distro"), ("distro", "docker-repo")),
            env_overwrite_edited=v.boolean(*get("env_overwrite_edited", False)),
            wandb=WandbSettings.parse(*get("wandb", {})),
            isaacsim_root=v.absolute_path(*get("isaacsim_root", "/isaac-sim")),
            isaaclab_path=v.absolute_path(*get("isaaclab_path", "/workspace/isaaclab")),
            min_free_gb=v.integer(*get("min_free_gb", 20)),
            dev_pip_packages=v.text(
                *get("dev_pip_packages", "pytest ruff"),
                r"[A-Za-z0-9_.=<>~!,\[\] -]*",
                "must be pip requirement specifiers separated by spaces",
            ),
            registries=tuple(parse_registries(values.get("registries"))),
            push_profiles=_profiles(*get("push_profiles", ("ext",))),
            image_paths=_image_paths(*get("image_paths", ())),
            devcontainer=v.boolean(*get("devcontainer", True)),
            x11=v.boolean(*get("x11", True)),
            ros2=Ros2Settings.parse(*get("ros2", {})),
        )
        _check_name_length(config)
        return config


def extension_name(value: Any, found: tuple[str, ...], folder: str) -> str:
    """The extension's name: ``value`` (``isaac_extension_name``) when given, which must be one
    of the packages ``found`` in ``folder``'s ``source/``; else the one package found there."""
    key = f"{PREFIX}extension_name"
    if value is not None:
        name = v.text(
            key,
            value,
            NAME_RE,
            (
                f"{value!r} is not a valid extension name: use letters, digits and _ only (it "
                "names a Python package, an image and a folder; no '/', '-' or spaces)"
            ),
        )
        if name not in found:
            have = f"source/ holds {', '.join(found)}" if found else "source/ holds none"
            raise ConfigError(key, f"{folder}/source/{name} is not an extension package ({have})")
        return name
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConfigError(
            key,
            f"no extension package in {folder}/source/ (no source/<name>/config/extension.toml):"
            " is it an Isaac Lab extension project? Set isaac_extension_folder to one",
        )
    raise ConfigError(
        key,
        f"{folder}/source/ holds several extensions ({', '.join(found)}): choose one "
        "(isaac-deploy init --name NAME, or set isaac_extension_name)",
    )


def container_ids(
    uid: Any, gid: Any, default: tuple[int, int], keys: tuple[str, str] = ("isaac_uid", "isaac_gid")
) -> tuple[int, int]:
    """The uid and gid the dev container runs as, each from 0 to ``ID_MAX``: both given, a uid
    alone (with the ``default`` gid) or neither (``default``). A gid alone is refused: it would
    pair with the default uid without saying so, which is root's when the deploy runs as root."""
    uid_key, gid_key = keys
    if uid is None and gid is not None:
        raise ConfigError(
            gid_key,
            f"set {uid_key} too: a gid alone would run the container as uid {default[0]} "
            f"without saying so; e.g. {uid_key}={default[0]} {gid_key}={gid}",
        )
    return (
        v.integer(uid_key, default[0] if uid is None else uid, maximum=ID_MAX),
        v.integer(gid_key, default[1] if gid is None else gid, maximum=ID_MAX),
    )


SUFFIX_RE = r"[a-z0-9][a-z0-9_-]*"
"""A stack's suffix: what Compose takes in a project name (lowercase letters, digits, ``-`` and
``_``, starting with a letter or a digit), so it names containers and volumes unchanged."""


def stack_project(config: WorkstationConfig, suffix: str | None, key: str = "--suffix") -> str:
    """The Compose project of one stack of the project: ``<extension>-<user>`` without a
    ``suffix`` (the default stack), ``<extension>-<user>-<suffix>`` with one. It starts the names
    of the stack's containers and volumes, so stacks never share either; a suffix Compose or the
    file system would refuse is one error naming ``key``."""
    if not suffix:
        return config.compose_project
    if not re.fullmatch(SUFFIX_RE, suffix):
        raise ConfigError(
            key,
            f"{suffix!r} is not a valid stack name: use lowercase letters, digits, - and _, "
            "starting with a letter or a digit (e.g. --suffix exp2)",
        )
    project = f"{config.compose_project}-{suffix}"
    if len(project) > PROJECT_NAME_MAX:
        longest = PROJECT_NAME_MAX - len(config.compose_project) - 1
        raise ConfigError(
            key,
            f"{len(suffix)} characters is too long: at most {longest} here (with the extension's "
            f"and the user's names it names the stack's containers and volumes, each at most "
            f"{NAME_MAX} bytes)",
        )
    return project


def _check_name_length(config: WorkstationConfig) -> None:
    """The extension's name must leave room for the user's in every name made from both."""
    length = len(config.extension_name)
    longest = PROJECT_NAME_MAX - len(config.compose_project) + length
    if length > longest:
        raise ConfigError(
            f"{PREFIX}extension_name",
            f"{length} characters is too long for the user {config.user.name}: at most "
            f"{longest} (with the user name it names the Compose project, its containers and "
            f"volumes, and files, each at most {NAME_MAX} bytes)",
        )


def _profiles(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [p for p in re.split(r"[,\s]+", value) if p]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(key, f"must name at least one profile of {', '.join(PROFILES)}")
    for index, profile in enumerate(value):
        v.choice(f"{key}[{index}]", profile, PROFILES)
    return tuple(dict.fromkeys(value))


def _image_paths(key: str, value: Any) -> tuple[str, ...]:
    """Paths inside the extension project (a list, or one string of comma-separated paths):
    relative, never leaving it; normalized (``config/``, ``./config`` -> ``config``)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(key, f"must be a list of paths inside the project, got {value!r}")
    paths = []
    for index, raw in enumerate(value):
        path = v.text(f"{key}[{index}]", raw)
        norm = posixpath.normpath(path)
        if not path.strip() or path.startswith(("/", "~")) or ".." in norm.split("/"):
            raise ConfigError(
                f"{key}[{index}]",
                f"{path!r} must be a path inside the extension project, relative to it "
                "(no leading / or ~, no ..), e.g. 'config' or 'assets/robot.usd'",
            )
        paths.append(norm)
    return tuple(dict.fromkeys(paths))
