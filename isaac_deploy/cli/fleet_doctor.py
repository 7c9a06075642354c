"""``doctor --fleet``: the workstation's checks on every lab PC of ``inventories/lab_pcs.py``, in
parallel over SSH with the inventory's own options (host keys checked), as one table (PC x
check), then the fix for each check that is not OK.

On each PC the very probe of the deploy's toolkit fact runs as the SSH user (one ``ssh`` each);
besides the toolkit checks the table says whether the PC's members are in the ``docker`` group,
its base images are pulled and each member's images built.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from isaac_deploy.cli.cluster_doctor import CONNECT_TIMEOUT, EXAMPLE_DOMAINS, ssh_fix, ssh_run
from isaac_deploy.cli.inventory import hosts_data
from isaac_deploy.facts.toolkit import Toolkit, WorkstationToolkit, parse_toolkit
from isaac_deploy.model.errors import IsaacDeployError
from isaac_deploy.model.fleet import GROUP_FILE, FleetConfig, declared_extension, group_members
from isaac_deploy.model.workstation import HostUser, WorkstationConfig
from isaac_deploy.policy.checks import Check, toolkit_checks
from isaac_deploy.render.fleet import table

RERUN = "run deploy/lab_pcs.py for it (--limit)"
SHORT = {"SKIPPED": "skip"}


def address_of(host: str, data: dict[str, Any]) -> str:
    return str(data.get("ssh_hostname") or host.split("/", 1)[-1])


def probe(host: str, data: dict[str, Any]) -> Toolkit | Check:
    """The toolkit of the PC (the deploy's probe, as the SSH user), or the check that says why
    it could not be asked."""
    address = address_of(host, data)
    command = WorkstationToolkit().command(read=(GROUP_FILE,)).get_raw_value()
    result = ssh_run(data, address, command, 6 * CONNECT_TIMEOUT)
    if result == "no answer":
        return Check("SSH", "FAIL", "no answer", "check that the PC is on, its address and port")
    if isinstance(result, str):
        user = str(data.get("ssh_user") or "your user")
        return Check("SSH", "FAIL", result, ssh_fix(result, data, address, user))
    toolkit = parse_toolkit(result.stdout)
    if toolkit.user is None:
        return Check("SSH", "FAIL", "the probe did not answer", "install python3 on the PC")
    return toolkit


def fleet_checks(
    toolkit: Toolkit, fleet: FleetConfig, config: WorkstationConfig, data: dict[str, Any]
) -> list[Check]:
    """The lab PC's own checks: members in the docker group, base images, members' images."""
    in_group = group_members(toolkit.files.get(GROUP_FILE), "docker") or ()
    outside = [member for member in fleet.members if member not in in_group]
    checks = [
        Check("Members", "FAIL", f"not in the docker group: {', '.join(outside)}", RERUN)
        if outside
        else Check("Members", "OK", f"{len(fleet.members)} in the docker group")
    ]
    if fleet.pull_base_images:
        bases = list(dict.fromkeys(config.base_images[p] for p in config.profiles))
        absent = [ref for ref in bases if not toolkit.has_image(ref)]
        checks.append(
            Check("Base images", "FAIL", f"missing: {', '.join(absent)}", RERUN)
            if absent
            else Check("Base images", "OK", ", ".join(bases))
        )
    if fleet.project is not None and fleet.members:
        images = [
            WorkstationConfig.from_host_data(
                data, HostUser(member, 0, 0, "/"), "/", declared_extension(data)
            ).image_name(profile)
            for member in fleet.members
            for profile in config.profiles
        ]
        unbuilt = [image for image in images if not toolkit.has_image(image)]
        checks.append(
            Check("Member images", "WARN", f"not built: {', '.join(unbuilt)}", RERUN)
            if unbuilt
            else Check("Member images", "OK", f"{len(images)} built")
        )
    return checks


def pc_checks(host: str, data: dict[str, Any]) -> list[Check]:
    """Every check of one PC, the first saying whether it was reached."""
    address = address_of(host, data)
    if address.endswith(EXAMPLE_DOMAINS) and not data.get("ssh_config_file"):
        return [
            Check(
                "SSH",
                "SKIPPED",
                "an example host (no ssh_config_file says where it is): put your PCs in "
                "inventories/lab_pcs.py",
            )
        ]
    toolkit = probe(host, data)
    if isinstance(toolkit, Check):
        return [toolkit]
    assert toolkit.user is not None
    try:
        fleet = FleetConfig.from_host_data(data)
        config = WorkstationConfig.from_host_data(
            data, toolkit.user, toolkit.user.home, declared_extension(data)
        )
    except IsaacDeployError as error:
        return [Check("Inventory", "FAIL", str(error), "correct it in the inventory")]
    return [
        Check("SSH", "OK", f"reached as {toolkit.user.name}"),
        *toolkit_checks(toolkit, will_install=False, min_free_gb=config.min_free_gb),
        *fleet_checks(toolkit, fleet, config, data),
    ]


def fleet_doctor(inventory: Path, cwd: Path, data: Sequence[str] = ()) -> tuple[list[str], bool]:
    """The table and the fixes for the PCs of ``inventory`` (loaded as the deploy run in ``cwd``
    loads it, ``data``: ``--data`` overrides); whether any check failed."""
    if not inventory.is_file():
        return [f"[SKIPPED] Lab PCs: {inventory} does not exist"], False
    pcs = hosts_data(str(inventory), cwd, data)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(pcs)))) as pool:
        results = dict(zip(pcs, pool.map(lambda item: pc_checks(*item), pcs.items()), strict=True))
    names = {host: address_of(host, pcs[host]) for host in pcs}
    columns = list(dict.fromkeys(check.name for checks in results.values() for check in checks))
    cells = {
        (names[host], check.name): SHORT.get(check.status, check.status)
        for host, checks in results.items()
        for check in checks
    }
    lines = [f"Lab PCs ({inventory}):", table(list(names.values()), columns, cells)]
    failed = False
    for host, checks in results.items():
        for check in checks:
            if check.status in ("WARN", "FAIL"):
                lines.append(f"{names[host]}: {check.line()}")
            failed = failed or check.status == "FAIL"
    bad = sum(any(c.status == "FAIL" for c in checks) for checks in results.values())
    lines.append(f"{len(results)} PCs, {bad} with failed checks")
    return lines, failed
