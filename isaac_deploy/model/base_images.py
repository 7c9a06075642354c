"""Where the Isaac Lab base images come from (``isaac_base_source``), and which images each
source gives by default.

- ``pull`` (the default): each base image is pulled from the registry its reference names,
  NVIDIA's NGC (``nvcr.io/nvidia/isaac-lab:<version>``) unless ``isaac_base_images`` names a lab
  mirror; the login of ``isaac_registries`` with that address is used (NGC: ``$oauthtoken`` and
  the API key from ``$NGC_API_KEY`` or a 0600 file), a public image needs none.
- ``build``: built with the Isaac Lab checkout ``isaac_isaaclab_checkout`` names, by its own
  ``docker/container.py build <profile>`` (or, without it, the Compose service its
  ``docker/docker-compose.yaml`` defines), which tags ``isaac-lab-<profile>:latest``.
- ``given``: the images exist in the engine already; nothing pulls or builds them.

A base image already in the engine is used as it is, whatever the source. NVIDIA's image has
no ROS 2: it is the base of both profiles like any other.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from isaac_deploy.model import validate as v
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.paths import PROFILES
from isaac_deploy.model.registries import Registry

SOURCE_KEY = "isaac_base_source"
CHECKOUT_KEY = "isaac_isaaclab_checkout"
IMAGES_KEY = "isaac_base_images"
SOURCES = ("pull", "build", "given")
ISAACLAB_VERSION = "2.1.0"
"""The Isaac Lab release pulled by default (NGC's tag); ``isaac_base_images`` picks another."""
NVIDIA_IMAGE = f"nvcr.io/nvidia/isaac-lab:{ISAACLAB_VERSION}"
DEFAULTS: dict[str, dict[str, str]] = {
    "pull": {"ext": NVIDIA_IMAGE, "ext-dev": NVIDIA_IMAGE},
    "build": {"ext": "isaac-lab-base:latest", "ext-dev": "isaac-lab-ros2:latest"},
    "given": {"ext": "isaac-lab-base:latest", "ext-dev": "isaac-lab-ros2:latest"},
}
NGC = Registry(
    name="ngc",
    address="nvcr.io",
    username="$oauthtoken",
    password_env="NGC_API_KEY",  # noqa: S106 - a variable's name
    password_file="~/.config/isaac-deploy/ngc_api_key",  # noqa: S106 - a path
)
"""NVIDIA's registry when ``isaac_registries`` does not name ``nvcr.io``: NGC's login is the
literal user ``$oauthtoken`` and an API key; without one (no variable, no file) it pulls
anonymously, as NGC serves public images."""
CONTAINER_PY = "docker/container.py"
COMPOSE_YAML = "docker/docker-compose.yaml"
BUILT_RE = re.compile(r"isaac-lab-([a-z0-9]+(?:[._-][a-z0-9]+)*)(?::latest)?")
"""The images Isaac Lab's ``container.py build <profile>`` tags: ``isaac-lab-<profile>:latest``."""


def registry_host(ref: str) -> str | None:
    """The registry an image reference names (``host[:port]/...``), ``None`` for a bare name
    (Docker Hub's, which holds no Isaac Lab image)."""
    first, slash, _ = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def built_profile(ref: str) -> str | None:
    """Isaac Lab's container profile that builds ``ref`` (``isaac-lab-ros2:latest`` -> ``ros2``),
    ``None`` when ``container.py`` does not make that image."""
    match = BUILT_RE.fullmatch(ref)
    return match.group(1) if match else None


@dataclass(frozen=True)
class BaseSource:
    """How missing base images are obtained: ``kind`` of :data:`SOURCES`; ``checkout``, the
    Isaac Lab checkout that builds them (``build`` only)."""

    kind: str = "pull"
    checkout: str | None = None

    def build_argv(self, ref: str, has_container_py: bool) -> list[str]:
        """The command, run in ``checkout``, that builds the base image ``ref``: Isaac Lab's own
        ``docker/container.py build <profile>``, else its Compose service."""
        profile = built_profile(ref)
        assert profile is not None and self.checkout is not None
        if has_container_py:
            return ["python3", CONTAINER_PY, "build", profile]
        return [
            "docker",
            "compose",
            "--file",
            COMPOSE_YAML,
            "--env-file",
            "docker/.env.base",
            "build",
            f"isaac-lab-{profile}",
        ]


def parse_source(raw_source: Any, raw_checkout: Any) -> BaseSource:
    """``isaac_base_source`` and ``isaac_isaaclab_checkout``, validated together."""
    kind = v.choice(SOURCE_KEY, raw_source if raw_source is not None else "pull", SOURCES)
    if kind != "build":
        if raw_checkout:
            raise ConfigError(
                CHECKOUT_KEY,
                f"is only used with {SOURCE_KEY}='build' (it is {kind!r}): set both, or remove it",
            )
        return BaseSource(kind)
    if not raw_checkout:
        raise ConfigError(
            CHECKOUT_KEY,
            f"{SOURCE_KEY}='build' needs your Isaac Lab checkout, e.g. "
            f"{CHECKOUT_KEY}='~/IsaacLab' (git clone https://github.com/isaac-sim/IsaacLab)",
        )
    checkout = v.absolute_path(CHECKOUT_KEY, raw_checkout, also=("~",))
    return BaseSource(kind, posixpath.normpath(checkout) if checkout != "~" else checkout)


def parse_images(value: Any, source: BaseSource, image_re: str) -> dict[str, str]:
    """``isaac_base_images`` over the source's defaults; with ``build`` each one must be an image
    Isaac Lab's ``container.py`` makes."""
    value = v.mapping(IMAGES_KEY, value or {}, PROFILES)
    images = dict(DEFAULTS[source.kind])
    for profile, image in value.items():
        images[profile] = v.text(
            f"{IMAGES_KEY}[{profile}]", image, image_re, f"{image!r} is not a valid image reference"
        )
    if source.kind == "build":
        for profile, image in images.items():
            if built_profile(image) is None:
                raise ConfigError(
                    f"{IMAGES_KEY}[{profile}]",
                    f"{image!r} is not an image Isaac Lab's docker/container.py builds: with "
                    f"{SOURCE_KEY}='build' name isaac-lab-base:latest or isaac-lab-ros2:latest",
                )
    return images


def missing_fix(source: BaseSource, ref: str) -> str:
    """The one thing to do about the base image ``ref`` missing from the engine."""
    if source.kind == "pull" and registry_host(ref):
        return f"run the workstation deploy (`isaac-deploy setup`): it pulls {ref}"
    if source.kind == "build":
        return (
            f"run the workstation deploy (`isaac-deploy setup`): it builds {ref} with "
            f"{source.checkout}/{CONTAINER_PY}"
        )
    return (
        f"build it from your Isaac Lab checkout (`./{CONTAINER_PY} build base` makes "
        f"isaac-lab-base:latest), or let the deploy get one: {SOURCE_KEY}='pull' (NVIDIA's "
        f"{NVIDIA_IMAGE}) or 'build' with {CHECKOUT_KEY}"
    )
