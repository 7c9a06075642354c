"""OpenSSH options from a host's pyinfra ``ssh_*`` data: one definition for the connector's
master connection, the results pull's rsync and ``doctor``'s reachability check."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def ssh_options(data: Mapping[str, Any]) -> list[str]:
    """The ``ssh`` argv words (options only, no ``ssh`` and no host) for ``ssh_config_file``,
    ``ssh_known_hosts_file``, ``ssh_strict_host_key_checking`` (default ``yes``: unknown host
    keys are refused), ``ssh_port``, ``ssh_user`` and ``ssh_key``; in batch mode (no prompt),
    ``~`` expanded in the key and known hosts paths."""
    options = ["-o", "BatchMode=yes", "-o", "ServerAliveInterval=30"]
    if data.get("ssh_config_file"):
        options += ["-F", str(data["ssh_config_file"])]
    if data.get("ssh_known_hosts_file"):
        known = os.path.expanduser(str(data["ssh_known_hosts_file"]))
        options += ["-o", f"UserKnownHostsFile={known}"]
    options += ["-o", f"StrictHostKeyChecking={data.get('ssh_strict_host_key_checking') or 'yes'}"]
    if data.get("ssh_port"):
        options += ["-p", str(int(data["ssh_port"]))]
    if data.get("ssh_user"):
        options += ["-l", str(data["ssh_user"])]
    if data.get("ssh_key"):
        options += ["-i", os.path.expanduser(str(data["ssh_key"]))]
    return options
