#!/bin/sh
# install-ros2.sh: the dev image's ROS 2 layer, run as root while the image is built, from the
# build arguments ROS_DISTRO, ROS_INSTALL (empty: the layer is off), ROS_APT_PACKAGES,
# ROS_APT_SOURCE and ROS_APT_KEY_URL (isaac_ros2 in the inventory). As Isaac Lab's own ros2
# profile does (docker/Dockerfile.ros2), on top of a base image that lacks ROS 2:
#   1. a base image that has /opt/ros/$ROS_DISTRO gets nothing;
#   2. the packages come from the base image's apt sources when they offer them (a lab's
#      mirror), else from ROS's apt repository, added for the base's Ubuntu release with its
#      signing key;
#   3. the image's interactive shells source ROS 2's setup (bashrc.sh), its entrypoint for every
#      other command.
# Any failure stops the build with one line saying what failed.
set -eu
fail() {
    echo "isaac-deploy: ROS 2 layer: $*" >&2
    exit 1
}
[ -n "${ROS_DISTRO:-}" ] || fail "no ROS_DISTRO"
if [ -f "/opt/ros/$ROS_DISTRO/setup.sh" ]; then
    echo "isaac-deploy: ROS 2 $ROS_DISTRO is in the base image (/opt/ros/$ROS_DISTRO): nothing to add"
    exit 0
fi
if [ -z "${ROS_INSTALL:-}" ]; then
    echo "isaac-deploy: the ROS 2 layer is off (isaac_ros2: layer: false): the image has no ROS 2"
    exit 0
fi
[ -n "${ROS_APT_PACKAGES:-}" ] || fail "no packages to install"
first=${ROS_APT_PACKAGES%% *}
export DEBIAN_FRONTEND=noninteractive
apt-get update -q || fail "apt-get update failed: see above"
candidate=$(apt-cache policy "$first" | sed -n 's/^ *Candidate: *//p')
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
    # shellcheck disable=SC1091 # the base image's own release file
    codename=$(. /etc/os-release && echo "${UBUNTU_CODENAME:-${VERSION_CODENAME:-}}")
    [ -n "$codename" ] || fail "the base image names no release in /etc/os-release: cannot choose ROS's apt suite"
    echo "isaac-deploy: adding ROS's apt source $ROS_APT_SOURCE ($codename) with the key $ROS_APT_KEY_URL"
    if ! command -v curl >/dev/null; then  # as Isaac Lab's ros2 profile does
        apt-get install -y -q --no-install-recommends curl ca-certificates \
            || fail "curl is needed to fetch ROS's key and cannot be installed: see above"
    fi
    key=$(mktemp)
    curl -fsSL --retry 3 "$ROS_APT_KEY_URL" -o "$key" \
        || { rm -f "$key"; fail "cannot download the key $ROS_APT_KEY_URL (no network in the build? set isaac_ros2: layer: false, or use a base image with ROS 2)"; }
    # apt reads an ASCII-armored key from a .asc file, a binary one from a .gpg file
    if head -c 64 "$key" | grep -q "BEGIN PGP PUBLIC KEY"; then
        keyring=/usr/share/keyrings/ros-archive-keyring.asc
    else
        keyring=/usr/share/keyrings/ros-archive-keyring.gpg
    fi
    install -m 0644 "$key" "$keyring" && rm -f "$key"
    echo "deb [arch=$(dpkg --print-architecture) signed-by=$keyring] $ROS_APT_SOURCE $codename main" \
        >/etc/apt/sources.list.d/ros2.list
    apt-get update -q || fail "apt-get update with ROS's source failed: see above"
fi
echo "isaac-deploy: installing ROS 2 $ROS_DISTRO: $ROS_APT_PACKAGES"
# shellcheck disable=SC2086 # one word per package name (checked by isaac-deploy)
apt-get install -y -q --no-install-recommends $ROS_APT_PACKAGES \
    || fail "installing $ROS_APT_PACKAGES failed: see apt-get's output above"
rm -rf /var/lib/apt/lists/*
[ -f "/opt/ros/$ROS_DISTRO/setup.sh" ] || fail "the packages did not install /opt/ros/$ROS_DISTRO/setup.sh"
