"""The one configuration model shared by the deploys, the CLI and the cluster roll-out.

Values come from inventory data (keys prefixed ``isaac_``); the host user is detected by a fact,
never typed by hand. Every invalid value is refused with a :class:`ConfigError` naming its key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError
from .paths import PROFILES

Profile = Literal["ext", "ext-dev"]
PREFIX = "isaac_"
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Image references as Docker accepts them: [registry[:port]/]path[:tag][@digest]
IMAGE_RE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
DEFAULT_BASE_IMAGES: dict[str, str] = {
    "ext": "isaac-lab-base:latest",
    "ext-dev": "isaac-lab-ros2:latest",
}


class HostUser(BaseModel):
    """The user the deploy runs as on the target, as detected by the toolkit fact."""

    model_config = ConfigDict(frozen=True)

    name: str
    uid: int = Field(ge=0)
    gid: int = Field(ge=0)
    home: str
    shell: str = "/bin/sh"
    groups: tuple[str, ...] = ()


class WandbSettings(BaseModel):
    """Weights & Biases settings; the API key itself never appears here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str | None = None
    entity: str | None = None
    project: str | None = None
    mode: Literal["online", "offline", "disabled"] = "online"
    api_key_file: str | None = None
    api_key_env: str = "WANDB_API_KEY"

    @field_validator("api_key_file")
    @classmethod
    def _absolute_key_file(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("/", "~")):
            raise ValueError("must be an absolute path (or start with ~)")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("must be an environment variable name")
        return value


class WorkstationConfig(BaseModel):
    """Everything the workstation deploy needs to know about one extension project on one host."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    extension_name: str = "ext_template"
    extension_folder: str
    profiles: tuple[Profile, ...] = ("ext-dev",)
    user_mode: Literal["user", "rootless"] = "user"
    uid: int = Field(ge=0)
    gid: int = Field(ge=0)
    user: HostUser
    base_images: dict[Profile, str] = Field(default_factory=lambda: dict(DEFAULT_BASE_IMAGES))
    provision: Literal["install", "check"] = "install"
    docker_source: Literal["distro", "docker-repo"] = "distro"
    env_overwrite_edited: bool = False
    wandb: WandbSettings = Field(default_factory=WandbSettings)
    isaacsim_root: str = "/isaac-sim"
    isaaclab_path: str = "/workspace/isaaclab"
    min_free_gb: int = Field(default=20, ge=0)
    dev_pip_packages: str = Field(default="pytest ruff", pattern=r"^[A-Za-z0-9_.=<>~!,\[\] -]*$")

    @field_validator("extension_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(
                f"{value!r} is not a valid extension name: use letters, digits and _ only "
                "(it names a Python package, an image and a folder; no '/', '-' or spaces)"
            )
        return value

    @field_validator("extension_folder", "isaacsim_root", "isaaclab_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must be an absolute path")
        if "\n" in value or "\x00" in value:
            raise ValueError("must not contain newlines or NUL bytes")
        return value.rstrip("/") or "/"

    @field_validator("profiles", mode="before")
    @classmethod
    def _profiles(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [p for p in re.split(r"[,\s]+", value) if p]
        if not value:
            raise ValueError(f"must name at least one profile of {', '.join(PROFILES)}")
        return tuple(dict.fromkeys(value))

    @field_validator("base_images")
    @classmethod
    def _images(cls, value: dict[str, str]) -> dict[str, str]:
        for profile, image in value.items():
            if not IMAGE_RE.match(image):
                raise ValueError(f"{profile}: {image!r} is not a valid image reference")
        return {**DEFAULT_BASE_IMAGES, **value}

    # derived values, one definition each
    @property
    def docker_ext_path(self) -> str:
        return f"/workspace/{self.extension_name}"

    @property
    def container_home(self) -> str:
        """Home of the container user: the host user's home in user mode, ``/root`` rootless."""
        return "/root" if self.user_mode == "rootless" else self.user.home

    @property
    def container_user_name(self) -> str:
        return "root" if self.user_mode == "rootless" else self.user.name

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
        cls, data: Mapping[str, Any], user: HostUser, default_folder: str
    ) -> WorkstationConfig:
        """Build the model from inventory data (``isaac_*`` keys) and the detected user."""
        known = {f"{PREFIX}{name}" for name in cls.model_fields if name != "user"}
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
        values.setdefault("extension_folder", default_folder)
        values.setdefault("uid", user.uid)
        values.setdefault("gid", user.gid)
        values["user"] = user
        return parse_model(cls, values)


def parse_model(model: type[BaseModel], values: Mapping[str, Any], prefix: str = PREFIX) -> Any:
    """Validate ``values`` into ``model``; the first problem is a ConfigError naming its key."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(part) for part in error["loc"]]
        field = (
            prefix + loc[0] + "".join(f"[{part}]" for part in loc[1:])
            if loc
            else prefix.rstrip("_")
        )
        message = error["msg"].removeprefix("Value error, ")
        given = error.get("input")
        if error["type"] not in ("value_error", "missing") and not isinstance(given, (dict, list)):
            message = f"{message}, got {given!r}"
        raise ConfigError(field, message) from None
