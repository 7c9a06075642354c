"""The lab's ROS 2 stand-in: ROS 2 cannot be installed here (its apt repository is out of reach
and Debian does not ship Humble), so the stand-in base image carries a small apt repository of
``.deb`` packages named and laid out like ROS's (``ros-humble-ros-base``,
``ros-humble-rmw-fastrtps-cpp``, ``ros-humble-rmw-cyclonedds-cpp``), offered by an apt source of
the image, as a lab's mirror would offer the real ones. The dev image's ROS 2 layer installs
them with the real apt and dpkg.

What they hold: ``/opt/ros/humble/setup.sh`` and ``setup.bash`` that set what the real ones set
for a binary install (``ROS_DISTRO``, ``ROS_VERSION``, ``ROS_PYTHON_VERSION``,
``AMENT_PREFIX_PATH``, ``PATH``, ``LD_LIBRARY_PATH``, ``PYTHONPATH``; idempotent), the ament
index of the packages, and a ``ros2`` command that answers ``pkg list``, ``pkg prefix``,
``doctor --report`` and ``topic list`` from that index and the environment, failing as the real
one does when ``RMW_IMPLEMENTATION`` names a middleware that is not installed. Not emulated:
nodes, DDS discovery and traffic, rclpy/rclcpp, launch, colcon, message types.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

DISTRO = "humble"
PREFIX = f"/opt/ros/{DISTRO}"
REPO = "/opt/isaac-lab-standin/ros2-apt"
SOURCE_LIST = "/etc/apt/sources.list.d/isaac-lab-standin-ros2.list"
SOURCE_LINE = f"deb [trusted=yes] file:{REPO} ./\n"
INDEX = "share/ament_index/resource_index/packages"

SETUP_SH = f"""# ROS 2 {DISTRO} stand-in (isaac-deploy's test lab): sets what the real setup.sh of a
# binary install sets; sourcing it twice changes nothing.
_ros_prepend() {{
    eval "_ros_value=\\${{$1:-}}"
    case ":$_ros_value:" in
        *":$2:"*) ;;
        "::") eval "export $1=\\"\\$2\\"" ;;
        *) eval "export $1=\\"\\$2:\\$_ros_value\\"" ;;
    esac
}}
export ROS_VERSION=2 ROS_PYTHON_VERSION=3 ROS_DISTRO={DISTRO}
_ros_prepend AMENT_PREFIX_PATH {PREFIX}
_ros_prepend PATH {PREFIX}/bin
_ros_prepend LD_LIBRARY_PATH {PREFIX}/lib
_ros_prepend PYTHONPATH {PREFIX}/lib/python3.10/site-packages
unset _ros_value
unset -f _ros_prepend
"""
SETUP_BASH = f"""# ROS 2 {DISTRO} stand-in: setup.sh and the ros2 command's completion
. {PREFIX}/setup.sh
complete -W "pkg doctor topic --help" ros2
"""
ROS2 = f"""#!/bin/sh
# ros2 stand-in (isaac-deploy's test lab): answers a few verbs from the ament index and the
# environment; nodes, topics' traffic and DDS are not emulated.
set -eu
index() {{
    for prefix in $(printf '%s' "${{AMENT_PREFIX_PATH:-}}" | tr ':' ' '); do
        [ -d "$prefix/{INDEX}" ] && ls "$prefix/{INDEX}"
    done | sort -u
}}
middleware() {{
    rmw=${{RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}}
    if ! index | grep -qx "$rmw"; then
        echo "RMW implementation not installed (expected identifier of '$rmw')" >&2
        exit 1
    fi
}}
case "${{1:-}}" in
    ""|-h|--help) echo "usage: ros2 <command> (stand-in: pkg list|prefix, doctor --report, topic list)" ;;
    pkg)
        case "${{2:-}}" in
            list) index ;;
            prefix)
                for prefix in $(printf '%s' "${{AMENT_PREFIX_PATH:-}}" | tr ':' ' '); do
                    if [ -e "$prefix/{INDEX}/${{3:-}}" ]; then echo "$prefix"; exit 0; fi
                done
                echo "Package not found" >&2; exit 1 ;;
            *) echo "ros2 pkg stand-in: only list and prefix" >&2; exit 2 ;;
        esac ;;
    doctor)
        middleware
        echo "distribution name    : ${{ROS_DISTRO:-}}"
        echo "middleware name      : $rmw"
        echo "ROS_DOMAIN_ID        : ${{ROS_DOMAIN_ID:-0}}" ;;
    topic)
        [ "${{2:-}}" = list ] || {{ echo "ros2 topic stand-in: only list" >&2; exit 2; }}
        middleware
        printf '/parameter_events\\n/rosout\\n' ;;
    *) echo "ros2 stand-in: '$1' is not emulated" >&2; exit 2 ;;
esac
"""
PACKAGES = {
    "ros-base": (
        ["ros_base", "ros_environment", "ros2cli", "rclpy"],
        {"setup.sh": SETUP_SH, "setup.bash": SETUP_BASH, "bin/ros2": ROS2},
        "",
    ),
    "rmw-fastrtps-cpp": (["rmw_fastrtps_cpp"], {}, f"ros-{DISTRO}-ros-base"),
    "rmw-cyclonedds-cpp": (["rmw_cyclonedds_cpp"], {}, f"ros-{DISTRO}-ros-base"),
}


def _deb(folder: Path, name: str, index: list[str], files: dict[str, str], depends: str) -> None:
    root = folder / name
    for entry in index:
        path = root / PREFIX.lstrip("/") / INDEX / entry
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    for rel, text in files.items():
        path = root / PREFIX.lstrip("/") / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755 if rel.startswith("bin/") else 0o644)
    control = root / "DEBIAN" / "control"
    control.parent.mkdir(parents=True)
    control.write_text(
        f"Package: {name}\nVersion: 0.0.1-standin\nArchitecture: all\n"
        "Maintainer: isaac-deploy test lab <lab@localhost>\n"
        + (f"Depends: {depends}\n" if depends else "")
        + f"Description: ROS 2 {DISTRO} stand-in of {name} (isaac-deploy's test lab)\n"
    )
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(folder / f"{name}.deb")],
        check=True,
        capture_output=True,
    )


def image_files() -> dict[str, bytes]:
    """The stand-in's files in the base image: the repository (``.deb`` files and their
    ``Packages`` index) and its apt source, by their paths in the image."""
    with tempfile.TemporaryDirectory(prefix="ros2-standin-") as tmp:
        folder = Path(tmp)
        for short, (index, files, depends) in PACKAGES.items():
            _deb(folder, f"ros-{DISTRO}-{short}", index, files, depends)
        packages = subprocess.run(
            ["dpkg-scanpackages", "--multiversion", "."],
            cwd=folder,
            check=True,
            capture_output=True,
        ).stdout
        found = {f"{REPO}/{deb.name}": deb.read_bytes() for deb in sorted(folder.glob("*.deb"))}
    return {**found, f"{REPO}/Packages": packages, SOURCE_LIST: SOURCE_LINE.encode()}
