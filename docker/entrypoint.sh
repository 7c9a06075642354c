#!/bin/sh
# Entrypoint of the extension images: prepares the environment, then runs the given command
# exactly as given (default: an interactive bash). Its exit code is the container's exit code.
set -eu

# W&B key from a Compose/Apptainer secret file, never from the image or the command line.
if [ -z "${WANDB_API_KEY:-}" ] && [ -r /run/secrets/wandb_api_key ]; then
    WANDB_API_KEY=$(cat /run/secrets/wandb_api_key)
    export WANDB_API_KEY
fi

# Running as a uid whose home is not writable (e.g. `--uid 2000` on a shared server):
# give it a private home so tools that write caches still work.
if [ ! -w "${HOME:-/nonexistent}" ]; then
    HOME="/tmp/home-$(id -u)"
    mkdir -p "$HOME"
    export HOME
fi

# ROS 2 of the dev image (ISAAC_ROS_DISTRO), for every command: `ros2 ...` runs as given.
if [ -n "${ISAAC_ROS_DISTRO:-}" ] && [ -f "/opt/ros/$ISAAC_ROS_DISTRO/setup.sh" ]; then
    # ROS's setup.sh reads unset variables: not under set -u
    set +u
    # shellcheck disable=SC1090 # the image's ROS 2 distribution
    . "/opt/ros/$ISAAC_ROS_DISTRO/setup.sh"
    set -u
fi

if [ "$#" -eq 0 ]; then
    set -- bash
fi
exec "$@"
