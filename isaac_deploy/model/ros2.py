"""ROS 2 in the dev image and container (``isaac_ros2``): the layer the dev image adds on top
of a base image that lacks it (as Isaac Lab's own ``ros2`` profile does) and the middleware
settings the dev containers get.

The layer installs ``ros-<distro>-<package>`` with apt. Where the base image's apt sources do
not offer them, it adds ROS's own apt repository first (``apt_source``, for the base image's
Ubuntu release, signed by the key at ``apt_key_url``); a base image that already has
``/opt/ros/<distro>`` gets nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from isaac_deploy.model import validate as v
from isaac_deploy.model.errors import ConfigError

ROS_APT_SOURCE = "http://packages.ros.org/ros2/ubuntu"
ROS_APT_KEY_URL = "https://raw.githubusercontent.com/ros/rosdistro/master/ros.key"
DISTROS = ("humble", "jazzy", "kilted", "rolling")
RMW_RE = r"rmw_[a-z0-9_]+"
PACKAGE_RE = r"[a-z0-9][a-z0-9-]*"
DOMAIN_ID_MAX = 232
"""The largest ROS_DOMAIN_ID the DDS port formula leaves room for (ROS 2 docs)."""
DDS_PROFILE_TARGET = "/run/isaac-deploy/dds-profile.xml"
"""Where the dev containers see the DDS profile file (``dds_profile``), read-only."""
PROFILE_VARIABLES = {
    "rmw_fastrtps_cpp": ("FASTRTPS_DEFAULT_PROFILES_FILE", DDS_PROFILE_TARGET),
    "rmw_cyclonedds_cpp": ("CYCLONEDDS_URI", f"file://{DDS_PROFILE_TARGET}"),
    "rmw_connextdds": ("NDDS_QOS_PROFILES", DDS_PROFILE_TARGET),
}
"""The variable each middleware reads its profile file from."""


@dataclass(frozen=True)
class Ros2Settings:
    """``isaac_ros2``: ``layer`` off builds the dev image without adding ROS 2 (a base image
    that has it still gets it sourced)."""

    layer: bool = True
    distro: str = "humble"
    packages: tuple[str, ...] = ("ros-base", "rmw-fastrtps-cpp", "rmw-cyclonedds-cpp")
    apt_source: str = ROS_APT_SOURCE
    apt_key_url: str = ROS_APT_KEY_URL
    rmw_implementation: str = "rmw_fastrtps_cpp"
    domain_id: int = 0
    dds_profile: str = ""

    @classmethod
    def parse(cls, key: str, raw: Any) -> Ros2Settings:
        raw = v.mapping(key, raw or {}, (f.name for f in fields(cls)))
        default = cls()
        packages = raw.get("packages", default.packages)
        if isinstance(packages, str):
            packages = [p for p in re.split(r"[,\s]+", packages) if p]
        if not isinstance(packages, (list, tuple)) or not packages:
            raise ConfigError(f"{key}[packages]", "must name at least one package, e.g. ros-base")
        rmw = v.text(
            f"{key}[rmw_implementation]",
            raw.get("rmw_implementation", default.rmw_implementation),
            RMW_RE,
            "must name an RMW implementation, e.g. rmw_fastrtps_cpp or rmw_cyclonedds_cpp",
        )
        profile = raw.get("dds_profile") or ""
        if profile:
            profile = v.absolute_path(f"{key}[dds_profile]", profile, also=("~/",))
            if rmw not in PROFILE_VARIABLES:
                raise ConfigError(
                    f"{key}[dds_profile]",
                    f"no known profile variable for {rmw}: use one of "
                    f"{', '.join(PROFILE_VARIABLES)} or leave dds_profile empty",
                )
        return cls(
            layer=v.boolean(f"{key}[layer]", raw.get("layer", default.layer)),
            distro=v.choice(f"{key}[distro]", raw.get("distro", default.distro), DISTROS),
            packages=tuple(
                v.text(f"{key}[packages][{i}]", p, PACKAGE_RE, f"{p!r} is not a ROS package name")
                for i, p in enumerate(packages)
            ),
            apt_source=v.text(
                f"{key}[apt_source]",
                raw.get("apt_source", default.apt_source),
                r"https?://[A-Za-z0-9.:/_~%+-]+",
                "must be the URL of an apt repository with ROS 2 packages for the base image's "
                "Ubuntu release, e.g. http://packages.ros.org/ros2/ubuntu",
            ),
            apt_key_url=v.text(
                f"{key}[apt_key_url]",
                raw.get("apt_key_url", default.apt_key_url),
                r"https://[A-Za-z0-9.:/_~%+-]+",
                "must be the https:// URL of the apt repository's signing key",
            ),
            rmw_implementation=rmw,
            domain_id=v.integer(
                f"{key}[domain_id]", raw.get("domain_id", 0), maximum=DOMAIN_ID_MAX
            ),
            dds_profile=profile,
        )

    def apt_packages(self) -> str:
        """The apt packages of the layer: ``ros-humble-ros-base ...``."""
        return " ".join(f"ros-{self.distro}-{package}" for package in self.packages)

    def build_args(self) -> dict[str, str]:
        """The dev image's build arguments of the layer (``ROS_INSTALL`` empty: off)."""
        return {
            "ROS_DISTRO": self.distro,
            "ROS_INSTALL": "1" if self.layer else "",
            "ROS_APT_PACKAGES": self.apt_packages(),
            "ROS_APT_SOURCE": self.apt_source,
            "ROS_APT_KEY_URL": self.apt_key_url,
        }

    def environment(self) -> dict[str, str]:
        """The middleware settings of the dev containers."""
        env = {"RMW_IMPLEMENTATION": self.rmw_implementation, "ROS_DOMAIN_ID": str(self.domain_id)}
        if self.dds_profile:
            name, value = PROFILE_VARIABLES[self.rmw_implementation]
            env[name] = value
        return env
