"""The lab PCs (``deploy/lab_pcs.py`` on ``inventories/lab_pcs.py``): every PC at once, each over
its own SSH connection (pyinfra's parallelism), in two parts, and a report at the end.

- **The admin's part, once per PC**, as the SSH user (sudo where it needs root): the workstation
  deploy's toolkit checks and provisioning (``workstation.check_toolkit`` and ``provision``:
  Docker engine and Compose v2 for every user, the NVIDIA driver check and Container Toolkit
  where a GPU is present, the daemon running, the disk check), the lab members in the ``docker``
  group, git for their checkouts, the registries' CAs for Docker and the base images pulled once
  per PC for all members.
- **Each member's part, per member on each PC**, as that member (``sudo -u``), never as root on
  their files: their checkout of the project (cloned once, then theirs), then the workstation
  deploy's own steps for them (``workstation.load``, ``project_files``, ``images``): the env files
  for their uid, gid and home, their images. It runs when the PC gets to it, after the admin's
  part and the checkout, so the workstation deploy sees what they made (its operations run
  nested, and show in the results as their own).
- **The report**: one line per PC once every PC is done (ready, or what failed and the fix), and
  the command that re-runs only the PCs that are not ready (``--limit``). A PC that cannot be
  reached, that its checks refuse, or where a step fails is reported; the others complete.
"""

from __future__ import annotations

import os
import sys
from contextlib import suppress
from dataclasses import dataclass, replace

from pyinfra import host, logger, state
from pyinfra.api import deploy, operation
from pyinfra.api.exceptions import NestedOperationError, PyinfraError
from pyinfra.api.hiddenvalue import HiddenValue
from pyinfra.api.host import Host
from pyinfra.api.operation import OperationMeta
from pyinfra.api.state import BaseStateCallback, State
from pyinfra.operations import files

from isaac_deploy.deploys import workstation
from isaac_deploy.facts.files import FileSha256WithMode
from isaac_deploy.facts.fleet import Accounts
from isaac_deploy.facts.toolkit import WorkstationToolkit
from isaac_deploy.model.errors import ConfigError, IsaacDeployError, ToolkitError
from isaac_deploy.model.fleet import (
    GIT,
    GROUP_FILE,
    MEMBERS,
    FleetConfig,
    PcOutcome,
    declared_extension,
    group_members,
)
from isaac_deploy.model.mounts import MountConfig
from isaac_deploy.model.registries import KEY as REGISTRIES
from isaac_deploy.model.registries import Registry, parse_registries, password_of
from isaac_deploy.model.workstation import HostUser, WorkstationConfig
from isaac_deploy.operations import fleet as fleet_ops
from isaac_deploy.operations import packages as package_ops
from isaac_deploy.operations import pull as pull_ops
from isaac_deploy.operations.util import barrier, fail
from isaac_deploy.policy.fleet import UNREACHABLE_FIX, failure_fix
from isaac_deploy.render.fleet import report_lines
from isaac_deploy.render.templates import TEMPLATES

REPORT = "Lab PCs: report"


@dataclass(frozen=True)
class LabPc:
    """One PC, validated: the admin's view of it (toolkit as the SSH user, the settings), the
    fleet's settings, the members' accounts and the base images it pulls."""

    ws: workstation.Workstation
    fleet: FleetConfig
    members: dict[str, HostUser]
    pulls: tuple[str, ...]
    registries: tuple[Registry, ...]
    passwords: dict[str, HiddenValue]


def _pull_sources(
    config: WorkstationConfig, pulls: tuple[str, ...]
) -> tuple[tuple[Registry, ...], dict[str, HiddenValue]]:
    """The registries the base images come from, with their passwords (from this shell); each
    must speak TLS and its CA file must be here."""
    found = (pull_ops.registry_of(ref, config.registries) for ref in pulls)
    registries = tuple(dict.fromkeys(registry for registry in found if registry is not None))
    passwords = {}
    for registry in registries:
        field = f"{REGISTRIES}[{registry.name}]"
        if registry.plain_http:
            raise ConfigError(
                f"{field}[plain_http]",
                "the lab PCs pull over TLS only: give the registry's CA in ca_file",
            )
        if registry.ca_file and not os.path.isfile(os.path.expanduser(registry.ca_file)):
            raise ConfigError(f"{field}[ca_file]", f"{registry.ca_file} does not exist here")
        password = password_of(registry, os.environ)
        if password is not None:
            passwords[registry.name] = HiddenValue(password)
    return registries, passwords


def load() -> LabPc:
    """Gather this PC's facts and validate its data before anything changes there."""
    data = host.data.dict()
    fleet = FleetConfig.from_host_data(data)
    cas = tuple(workstation.ca_path(r) for r in parse_registries(data.get(REGISTRIES)) if r.ca_file)
    # one command for what the admin's part decides from: the tools, git, the docker group's
    # members and the registries' CAs there
    toolkit = host.get_fact(WorkstationToolkit, paths=(GIT,), read=(GROUP_FILE,), digest=cas)
    if toolkit.user is None:
        raise ToolkitError(
            "could not inspect the PC: python3 is needed there (`sudo apt-get install python3`)"
        )
    config = WorkstationConfig.from_host_data(
        data, toolkit.user, toolkit.user.home, declared_extension(data)
    )
    accounts = host.get_fact(Accounts, names=fleet.members) if fleet.members else {}
    missing = [member for member in fleet.members if member not in accounts]
    if missing:
        raise ConfigError(
            MEMBERS,
            f"{', '.join(missing)}: no such account on this PC: create "
            f"{'it' if len(missing) == 1 else 'them'} there (the deploy never makes accounts), "
            "or leave them out of isaac_members for this PC",
        )
    pulls = (
        tuple(dict.fromkeys(config.base_images[profile] for profile in config.profiles))
        if fleet.pull_base_images
        else ()
    )
    registries, passwords = _pull_sources(config, pulls)
    ws = workstation.Workstation(
        config, toolkit, MountConfig.loads(None), TEMPLATES, None, None, for_all_users=True
    )
    members = {member: accounts[member] for member in fleet.members}
    return LabPc(ws, fleet, members, pulls, registries, passwords)


@deploy("Lab PC: members, git, registries, base images")
def lab_pc(pc: LabPc) -> None:
    """The admin's part beyond the workstation's provisioning, decided from the toolkit fact
    (one command): what is in place already costs nothing more."""
    admin = pc.ws.admin
    if pc.members:
        fleet_ops.group_members(
            name="Lab members in the docker group",
            group="docker",
            users=list(pc.members),
            members=group_members(pc.ws.toolkit.files.get(GROUP_FILE), "docker"),
            **admin,
        )
    if pc.members and pc.fleet.project is not None and pc.ws.toolkit.path_kind(GIT) != "file":
        package_ops.apt_installed(name="git (the members' checkouts)", packages=["git"], **admin)
    for registry in pc.registries:
        if registry.ca_file and not workstation.ca_current(pc.ws.toolkit, registry):
            files.put(
                name=f"{registry.name}: CA for Docker",
                src=os.path.expanduser(registry.ca_file),
                dest=workstation.ca_path(registry),
                mode="644",
                create_remote_dir=True,
                **admin,
            )
    if pc.pulls:
        pull_ops.images_pulled(
            name="Base images, pulled once for every member",
            images=list(pc.pulls),
            toolkit=pc.ws.toolkit,
            registries=pc.registries,
            passwords=pc.passwords,
            **admin,
        )


@deploy("Member's part")
def member_steps(project_root: str) -> None:
    """The workstation deploy's steps for one member (run as the caller's ``_sudo_user``). A W&B
    key from the environment is the admin's (this shell's), never a member's: it is not used,
    and the member's own stored key, if any, stays as it is."""
    ws = workstation.load(project_root=project_root)
    if ws.wandb_key is not None and ws.wandb_key_file:
        stored = host.get_fact(FileSha256WithMode, path=ws.wandb_key_file) is not None
        ws = replace(ws, wandb_key=None, wandb_key_file=ws.wandb_key_file if stored else None)
    workstation.project_files(ws)
    workstation.images(ws)


def _step(run: State, op_hash: str) -> str:
    """An operation's name: ``DEPLOY | OPERATION``. One operation may have a name per PC (a
    member's image on one, another's on the next); then the part they share."""
    names = [name.split(" | ") for name in sorted(run.get_op_meta(op_hash).names)]
    shared = []
    for parts in zip(*names, strict=False):
        if len(set(parts)) > 1:
            break
        shared.append(parts[0])
    return " | ".join(shared) or "a step"


def _error_line(meta: OperationMeta) -> str:
    """The line that says why an operation failed: apt's first error (``E: ...``), else the
    last line it wrote to stderr (an operation's own one-line error), else to stdout."""
    errors = [line.strip() for line in meta.stderr_lines if line.strip()]
    output = [line.strip() for line in meta.stdout_lines if line.strip()]
    apt = next((line for line in errors if line.startswith("E: ")), None)
    line = apt or (errors or output or ["see the errors above"])[-1]
    return line.removeprefix("error: ")


@operation(_set_in_op=False)
def member_part(user: str, project_root: str):
    """A member's part of the workstation deploy on this PC, run as that member when the PC
    gets to it (call it with ``_sudo=True, _sudo_user=user``).

    ``workstation.load`` (as the member: their uid, gid, home and groups), then
    ``workstation.project_files`` and ``workstation.images``, whose operations run at once, nested
    in this one, and show in the results as their own: it changes nothing itself. It runs only
    when the deploy executes (after the admin's part and the member's checkout, which it needs);
    the plan (``--dry``) lists it without its steps. What the workstation deploy refuses, or a
    step that fails, fails this operation with that line.

    + user: the member
    + project_root: the member's checkout of the extension project

    **Example:**

    .. code:: python

        fleet.member_part(
            name="Member's part of the workstation deploy",
            user="alice",
            project_root="/home/alice/ext_template",
            _sudo=True,
            _sudo_user="alice",
        )
    """
    if not state.is_executing:
        host.noop(f"{user}: planned when the PC gets there (after the admin's part)")
        return
    try:
        member_steps(project_root=project_root, _sudo=True, _sudo_user=user)
    except NestedOperationError as error:
        op_hash = error.args[0]
        meta = state.ops[host][op_hash].operation_meta
        yield fail(f"{user}: {_step(state, op_hash)} failed: {_error_line(meta)}")
    except PyinfraError as error:
        yield fail(f"{user}: {error}")


def members_part(pc: LabPc) -> None:
    """Each member's checkout and their part of the workstation deploy, as that member."""
    project = pc.fleet.project
    if project is None:
        return
    for user, account in pc.members.items():
        folder = project.path(account.home)
        # named alike on every PC: the members differ, the step is the same
        fleet_ops.project_cloned(
            name="Member's checkout of the project",
            src=project.git,
            dest=folder,
            branch=project.branch,
            _sudo=True,
            _sudo_user=user,
        )
        member_part(
            name="Member's part of the workstation deploy",
            user=user,
            project_root=folder,
            _sudo=True,
            _sudo_user=user,
        )


class FleetReport(BaseStateCallback):
    """The report: what was refused before any operation (by PC), and the lines printed when
    the run's last step (:data:`REPORT`) ended on every PC."""

    def __init__(self) -> None:
        self.refused: dict[str, PcOutcome] = {}

    def operation_end(self, state: State, op_hash: str) -> None:  # type: ignore[override]
        if not any(name.endswith(REPORT) for name in state.get_op_meta(op_hash).names):
            return
        outcomes = [
            self.refused.get(pc.name) or outcome(state, pc)
            for pc in state.inventory
            if state.is_host_in_limit(pc)
        ]
        ready = [result.status == "ready" for result in outcomes]
        logger.info("--> Lab PCs:")
        for index, line in enumerate(report_lines(outcomes, sys.argv)):
            fine = ready[index] if index < len(ready) else all(ready)
            (logger.info if fine else logger.warning)(f"    {line}")


def outcome(state: State, pc: Host) -> PcOutcome:
    """What the run did on ``pc``: not reached, the first step that failed, or ready."""
    if pc not in state.activated_hosts:
        error = getattr(pc.connector, "connect_error", None) or "could not connect"
        return PcOutcome(pc.name, "unreachable", "", error, UNREACHABLE_FIX)
    changes = 0
    for op_hash in pc.op_hash_order:
        data = state.ops[pc].get(op_hash)
        if data is None or not data.operation_meta.is_complete():
            continue
        meta = data.operation_meta
        if meta.did_error():
            step = _step(state, op_hash)
            return PcOutcome(pc.name, "failed", step, _error_line(meta), failure_fix(step), changes)
        changes += int(meta.did_change())
    if pc in state.failed_hosts:
        return PcOutcome(pc.name, "failed", "", "a fact could not be gathered", failure_fix(""))
    return PcOutcome(pc.name, "ready", changes=changes)


def _report() -> FleetReport:
    for handler in state.callback_handlers:
        if isinstance(handler, FleetReport):
            return handler
    handler = FleetReport()
    state.add_callback_handler(handler)
    return handler


def setup() -> None:
    """The lab PCs' deploy on this PC (pyinfra runs it for every PC at once): what its checks
    refuse is reported for it and the others go on."""
    report = _report()
    try:
        pc = load()
        workstation.check_toolkit(pc.ws)
    except IsaacDeployError as error:
        logger.error(f"{host.print_prefix}{error}")
        report.refused[host.name] = PcOutcome(host.name, "failed", "checks", str(error))
        with suppress(PyinfraError):  # no PC remains: the report still says why, for each
            state.fail_hosts({host})
    else:
        workstation.provision(pc.ws)
        lab_pc(pc)
        members_part(pc)
    barrier(name=REPORT, what="this PC is done (the report follows when every PC is)")
