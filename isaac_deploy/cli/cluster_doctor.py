"""``doctor``'s cluster part: ``inventories/cluster.py`` loads (its values are checked while it
loads), and each login node is reachable with its host key known, with the scheduler's and
Apptainer's commands there, over the same OpenSSH options the roll-out uses."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from isaac_deploy.cli.inventory import hosts_data
from isaac_deploy.cli.project import Layout
from isaac_deploy.model.cluster import KEY, ClusterConfig
from isaac_deploy.model.errors import IsaacDeployError
from isaac_deploy.model.ssh import ssh_options
from isaac_deploy.policy.checks import Check
from isaac_deploy.render.login_shell import login_shell
from isaac_deploy.render.templates import shell_path

EXAMPLE_DOMAINS = ("example.org", "example.com", "example.net", "example.edu")
SUBMIT = {"slurm": "sbatch", "pbs": "qsub"}
CONNECT_TIMEOUT = 8


def clusters(path: Path, cwd: Path, data: Sequence[str] = ()) -> list[tuple[str, str, dict]]:
    """``(cluster name, host, data)`` for each login node of the inventory file, its data as a
    roll-out run in ``cwd`` reads it (``data``: pyinfra's ``--data`` overrides)."""
    return [
        (host_data[KEY].name, host, host_data)
        for host, host_data in hosts_data(str(path), cwd, data).items()
        if isinstance(host_data.get(KEY), ClusterConfig)
    ]


def ssh_fix(reason: str, data: dict, address: str, user: str) -> str:
    """What to do about ``ssh`` failing with ``reason`` (its last line) to ``address``."""
    if "Host key verification failed" in reason or "host key" in reason.lower():
        port = f" -p {data['ssh_port']}" if data.get("ssh_port") else ""
        return (
            f"log in once with ssh{port} {address} and compare the fingerprint with the one "
            "its admins publish (host keys are never accepted blindly)"
        )
    if "Permission denied" in reason:
        return f"install your key for {user} (ssh-copy-id) or set ssh_key in the inventory"
    return "check the address, the VPN and the ssh port"


def ssh_run(
    data: dict, address: str, command: str, timeout: float
) -> subprocess.CompletedProcess[str] | str:
    """``command`` on ``address`` over SSH with the inventory's options (host keys checked);
    the finished process, or why there was none: ``"no answer"`` within ``timeout`` seconds,
    or ssh's own last line when it could not log in."""
    argv = ["ssh", *ssh_options(data), "-o", f"ConnectTimeout={CONNECT_TIMEOUT}", address, command]
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return "no answer"
    if result.returncode != 0:
        return (result.stderr.strip().splitlines() or ["ssh failed"])[-1]
    return result


def login_check(cluster: str, host: str, data: dict) -> Check:
    config: ClusterConfig = data[KEY]
    address = str(data.get("ssh_hostname") or host.split("/", 1)[-1])
    name = f"Cluster {cluster}: {address}"
    if address.endswith(EXAMPLE_DOMAINS):
        return Check(
            name, "SKIPPED", "an example host: put your login nodes in inventories/cluster.py"
        )
    # flock: the exactly-once submission holds the ledger's lock with it
    tools = [SUBMIT[config.scheduler], "apptainer", "rsync", "flock"]
    probe = "; ".join(
        f"command -v {tool} >/dev/null || echo missing={tool}"
        for tool in tools
        if tool != "apptainer"
    )
    # Apptainer as builds and jobs find it: the login environment, the cluster's modules loaded
    apptainer = login_shell(f"command -v {shell_path(config.apptainer)} >/dev/null", config.modules)
    probe += f"; {apptainer} </dev/null >/dev/null 2>&1 || echo missing=apptainer"
    result = ssh_run(data, address, probe, 3 * CONNECT_TIMEOUT)
    if result == "no answer":
        return Check(name, "FAIL", "no answer", "check the address, the VPN and the ssh port")
    if isinstance(result, str):
        return Check(name, "FAIL", result, ssh_fix(result, data, address, config.user))
    missing = [line.split("=", 1)[1] for line in result.stdout.splitlines() if "=" in line]
    if missing:
        return Check(
            name,
            "WARN",
            f"reached as {config.user}, but {', '.join(missing)} not found",
            "ask the admins, add the module that provides it to modules, or set apptainer "
            "to its path",
        )
    return Check(name, "OK", f"reached as {config.user}; {', '.join(tools)} found")


def cluster_checks(layout: Layout, data: Sequence[str] = ()) -> list[Check]:
    path, root = layout.inventory("cluster"), layout.root
    if not path.is_file():
        return [Check("Cluster inventory", "SKIPPED", f"{path} does not exist")]
    try:
        found = clusters(path, root, data)
    except IsaacDeployError as exc:  # a broken inventory file is what is being reported
        return [Check("Cluster inventory", "FAIL", str(exc), f"correct it in {path}")]
    if not found:
        return [Check("Cluster inventory", "SKIPPED", f"{path} defines no cluster()")]
    return [login_check(cluster, host, host_data) for cluster, host, host_data in found]
