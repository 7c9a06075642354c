#!/usr/bin/env bash
# Set up this machine as an Isaac Lab extension dev box: installs isaac-deploy into .venv, then
# runs `pyinfra inventories/local.py deploy/dev.py`. Arguments go to pyinfra, e.g. --dry (show
# the plan, change nothing) or --data isaac_provision=check (never install, only report).
set -euo pipefail
cd "$(dirname "$0")"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || { echo "dev-setup: python3 is missing: sudo apt-get install python3 python3-venv" >&2; exit 1; }
if ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
    SUDO=
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "dev-setup: Python's venv module is missing: ask an admin to install python3-venv (apt)" >&2; exit 1; }
        SUDO=sudo
    fi
    echo "dev-setup: installing python3-venv (apt${SUDO:+, with sudo})"
    $SUDO apt-get update -q >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
fi
if [ ! -x .venv/bin/pyinfra ] || ! .venv/bin/python -c 'import isaac_deploy' 2>/dev/null; then
    echo "dev-setup: installing isaac-deploy and its dependencies into .venv (pip, about a minute)"
    "$PY" -m venv .venv
    .venv/bin/pip install --progress-bar off --disable-pip-version-check -e .
fi
if [ "$#" -eq 0 ]; then set -- -y; fi
exec .venv/bin/pyinfra "$@" inventories/local.py deploy/dev.py
