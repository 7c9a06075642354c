"""The lab PCs: settings, facts, operations -> commands, the checks before anything changes, the
report and the fleet doctor's table (the lab runs the whole deploy: tests/integration/test_fleet.py)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.command import StringCommand
from pyinfra.connectors.util import CommandOutput, OutputLine
from pyinfra.context import ctx_host, ctx_state
from pyinfra.operations import server

from isaac_deploy.cli import fleet_doctor
from isaac_deploy.cli.inventory import hosts_data
from isaac_deploy.deploys import fleet
from isaac_deploy.facts.files import FileDigest
from isaac_deploy.facts.fleet import Accounts
from isaac_deploy.facts.toolkit import Toolkit, WorkstationToolkit
from isaac_deploy.model.errors import ConfigError, ToolkitError
from isaac_deploy.model.fleet import (
    FleetConfig,
    PcOutcome,
    ProjectSource,
    declared_extension,
    group_members,
)
from isaac_deploy.model.registries import parse_registries
from isaac_deploy.model.workstation import HostUser, WorkstationConfig
from isaac_deploy.operations import fleet as fleet_ops
from isaac_deploy.policy.checks import Check
from isaac_deploy.policy.fleet import UNREACHABLE_FIX, failure_fix
from isaac_deploy.render.fleet import outcome_line, report_lines, rerun_command, table
from tests.helpers import ROOT, FakeHost, fact_args, fixture_lines, run_op
from tests.unit.plan import plan

REGISTRY = "registry.lab.example.org:5000"
BASE = f"{REGISTRY}/isaac/isaac-lab-ros2:2.1.0"
ADMIN = HostUser("labadmin", 1000, 1000, "/home/labadmin", groups=("labadmin",))
ALICE = HostUser("alice", 3101, 3101, "/home/alice", "/bin/bash")


# ---------------------------------------------------------------- settings
class TestFleetConfig:
    def test_members_project_and_pulls(self):
        config = FleetConfig.from_host_data(
            {
                "isaac_members": ["alice", "bob", "alice"],
                "isaac_project": {"git": "https://git.lab.org/robotics/ext_template.git"},
                "isaac_pull_base_images": "yes",
            }
        )
        assert config.members == ("alice", "bob")
        assert config.project == ProjectSource(
            "https://git.lab.org/robotics/ext_template.git", "ext_template"
        )
        assert config.project.path("/home/alice") == "/home/alice/ext_template"
        assert config.pull_base_images is True

    def test_nothing_set_is_the_admins_part_only(self):
        assert FleetConfig.from_host_data({}) == FleetConfig((), None, False)

    def test_members_as_text(self):
        assert FleetConfig.from_host_data({"isaac_members": "alice, bob"}).members == (
            "alice",
            "bob",
        )

    @pytest.mark.parametrize(
        ("data", "field", "words"),
        [
            ({"isaac_members": ["Alice Smith"]}, "isaac_members[0]", "not a user name"),
            ({"isaac_members": {"alice": 1}}, "isaac_members", "must list user names"),
            ({"isaac_project": {"branch": "main"}}, "isaac_project[git]", "is required"),
            (
                {"isaac_project": {"git": "https://robot:s3cret@git.lab.org/ext.git"}},
                "isaac_project[git]",
                "secrets never go in the inventory",
            ),
            (
                {"isaac_project": {"git": "g", "folder": "/srv/ext"}},
                "isaac_project[folder]",
                "inside",
            ),
            (
                {"isaac_project": {"git": "g", "folder": "../bob/ext"}},
                "isaac_project[folder]",
                "inside",
            ),
            (
                {"isaac_project": {"git": "g", "branch": "main; rm"}},
                "isaac_project[branch]",
                "branch",
            ),
            ({"isaac_project": {"git": "g", "tag": "v1"}}, "isaac_project[tag]", "unknown setting"),
            (
                {"isaac_project": {"git": "g"}, "isaac_extension_folder": "/srv/ext"},
                "isaac_extension_folder",
                "isaac_project[folder]",
            ),
            ({"isaac_pull_base_images": "maybe"}, "isaac_pull_base_images", "true or false"),
        ],
    )
    def test_bad_values_name_their_key(self, data, field, words):
        with pytest.raises(ConfigError) as error:
            FleetConfig.from_host_data(data)
        assert error.value.field == field and words in str(error.value)

    def test_ssh_url_with_a_user_but_no_password_is_fine(self):
        source = ProjectSource.parse(
            {"git": "ssh://git@git.lab.org/robotics/ext.git", "folder": "w/ext"}
        )
        assert (source.git, source.folder) == ("ssh://git@git.lab.org/robotics/ext.git", "w/ext")

    def test_the_workstation_model_accepts_the_fleets_keys_and_still_refuses_unknown_ones(self):
        data = {
            "isaac_members": ["alice"],
            "isaac_project": {"git": "g"},
            "isaac_pull_base_images": True,
        }
        ext = ("ext_template",)
        assert WorkstationConfig.from_host_data(data, ALICE, "/home/alice/ext", ext).user == ALICE
        with pytest.raises(ConfigError, match="isaac_member: unknown setting"):
            WorkstationConfig.from_host_data({"isaac_member": ["alice"]}, ALICE, "/x", ext)

    def test_the_admins_part_needs_the_extensions_name_from_the_inventory(self):
        assert declared_extension({"isaac_extension_name": "my_ext"}) == ("my_ext",)
        with pytest.raises(ConfigError, match="isaac_extension_name: set it for the lab PCs"):
            declared_extension({"isaac_members": ["alice"]})


def test_example_inventory_loads_with_valid_settings_and_per_host_overrides():
    pcs = hosts_data(str(ROOT / "inventories" / "lab_pcs.py"), ROOT)
    assert list(pcs) == [f"@openssh/pc0{i}.lab.example.org" for i in (1, 2, 3)]
    members = {host: FleetConfig.from_host_data(data).members for host, data in pcs.items()}
    assert members["@openssh/pc01.lab.example.org"] == ("alice", "bob")
    assert members["@openssh/pc03.lab.example.org"] == ("alice", "carol")
    for data in pcs.values():
        config = WorkstationConfig.from_host_data(data, ADMIN, ADMIN.home, declared_extension(data))
        assert data["ssh_user"] == "labadmin" and FleetConfig.from_host_data(data).pull_base_images
        lab = config.registries[0]  # inventories/registries.py's
        assert config.base_images["ext-dev"].startswith(f"{lab.address}/")


# ---------------------------------------------------------------- facts
def test_accounts_from_the_name_service():
    out = [
        "alice:x:3101:3101:Alice,,,:/home/alice:/bin/bash",
        "garbage",
        "bob:x:3102:100::/srv/bob:",
    ]
    accounts = Accounts().process(out)
    assert accounts == {
        "alice": ALICE,
        "bob": HostUser("bob", 3102, 100, "/srv/bob", "/bin/sh"),
    }
    command = Accounts().command(("alice", "bob")).get_raw_value()
    assert command == "getent passwd alice bob || true"  # a missing account is no failure


# ---------------------------------------------------------------- operations
class TestGroupMembers:
    def test_only_missing_members_are_added_with_gpasswd(self):
        commands, _ = run_op(
            fleet_ops.group_members, {}, group="docker", users=["alice", "bob"], members=("alice",)
        )
        assert commands == ["gpasswd --add bob docker"]

    def test_a_missing_group_is_made_first_unless_a_package_made_it_meanwhile(self):
        commands, _ = run_op(
            fleet_ops.group_members, {}, group="docker", users=["alice"], members=None
        )
        assert commands == ["groupadd -f docker", "gpasswd --add alice docker"]

    def test_all_in_is_a_noop_without_asking_again(self):
        commands, host = run_op(
            fleet_ops.group_members,
            {},
            group="docker",
            users=["alice", "bob"],
            members=("bob", "alice", "labadmin"),
        )
        assert commands == [] and host.noops == ["alice, bob in the docker group"]
        assert host.fact_calls == []


def test_group_members_from_the_group_file():
    text = "root:x:0:\ndocker:x:999:alice,bob\ndockerish:x:5:carol\nempty:x:6:\n"
    assert group_members(text, "docker") == ("alice", "bob")
    assert group_members(text, "empty") == ()
    assert group_members(text, "podman") is None and group_members(None, "docker") is None


class TestProjectCloned:
    DEST = "/home/alice/ext template"
    PATHS = f"paths=['{DEST}', '{DEST}/.git']"

    def test_missing_checkout_is_cloned_beside_it_and_renamed_into_place(self):
        commands, _ = run_op(
            fleet_ops.project_cloned,
            {"PathKinds": {self.PATHS: {self.DEST: "missing", f"{self.DEST}/.git": "missing"}}},
            src="git://lab/ext.git",
            dest=self.DEST,
            branch="main",
        )
        partial = "'/home/alice/.ext template.isaac-deploy-clone'"
        assert commands == [
            f"rm -rf {partial} && mkdir -p /home/alice && GIT_TERMINAL_PROMPT=0 "
            "GIT_SSH_COMMAND='ssh -o BatchMode=yes' git clone --quiet --branch main "
            f"git://lab/ext.git {partial} && mv -T {partial} '{self.DEST}'"
        ]

    @pytest.mark.parametrize("git", ["dir", "file"])  # a worktree's .git is a file
    def test_an_existing_checkout_is_left_as_it_is(self, git):
        commands, host = run_op(
            fleet_ops.project_cloned,
            {"PathKinds": {self.PATHS: {self.DEST: "dir", f"{self.DEST}/.git": git}}},
            src="git://lab/ext.git",
            dest=self.DEST,
        )
        assert commands == [] and host.noops == [f"{self.DEST} is a checkout (left as it is)"]

    def test_something_else_in_the_way_fails_in_one_line_and_stays(self):
        commands, _ = run_op(
            fleet_ops.project_cloned,
            {"PathKinds": {self.PATHS: {self.DEST: "dir", f"{self.DEST}/.git": "missing"}}},
            src="git://lab/ext.git",
            dest=self.DEST,
        )
        assert len(commands) == 1 and commands[0].startswith("echo 'error: ")
        assert "exists but is no git checkout: move it away" in commands[0]
        assert "rm" not in commands[0] and "clone" not in commands[0]


# ---------------------------------------------------------------- the checks before anything changes
def toolkit(user: HostUser = ADMIN) -> Toolkit:
    base = WorkstationToolkit().process(fixture_lines("toolkit/debian12-root-docker20.json"))
    return Toolkit(**{**base.__dict__, "user": user})


def load_with(data: dict, accounts: dict, monkeypatch, environ: dict | None = None) -> fleet.LabPc:
    for name, value in (environ or {}).items():
        monkeypatch.setenv(name, value)
    facts = {
        "WorkstationToolkit": {toolkit_args(data): toolkit()},
        "Accounts": {f"names={tuple(FleetConfig.from_host_data(data).members)!r}": accounts},
    }
    with ctx_host.use(FakeHost(facts, data)):
        return fleet.load()


def toolkit_args(data: dict) -> str:
    """The admin's toolkit fact is asked about git, the group file and the registries' CAs."""
    registries = parse_registries(data.get("isaac_registries"))
    cas = tuple(f"/etc/docker/certs.d/{r.address}/ca.crt" for r in registries if r.ca_file)
    return fact_args({"digest": cas, "paths": ("/usr/bin/git",), "read": ("/etc/group",)})


PC_DATA = {
    "isaac_extension_name": "ext_template",
    "isaac_members": ["alice"],
    "isaac_project": {"git": "git://lab/ext.git"},
    "isaac_profiles": ("ext-dev",),
    "isaac_base_images": {"ext-dev": BASE},
    "isaac_pull_base_images": True,
    "isaac_registries": {
        "lab": {
            "address": REGISTRY,
            "ca_file": "/nowhere/ca.crt",
            "username": "robot",
            "password_env": "LAB_TOKEN",
        }
    },
}


def pc_data(tmp_path: Path) -> dict:
    ca = tmp_path / "ca.crt"
    ca.write_text("CA\n")
    registries = {"lab": {**PC_DATA["isaac_registries"]["lab"], "ca_file": str(ca)}}
    return {**PC_DATA, "isaac_registries": registries}


def test_load_gives_the_admins_view_the_members_and_what_to_pull(tmp_path, monkeypatch):
    pc = load_with(pc_data(tmp_path), {"alice": ALICE}, monkeypatch, {"LAB_TOKEN": "t0ken"})
    assert pc.ws.config.user == ADMIN and pc.ws.for_all_users and pc.ws.admin == {"_sudo": True}
    assert pc.members == {"alice": ALICE} and pc.pulls == (BASE,)
    assert [r.name for r in pc.registries] == ["lab"] and pc.passwords["lab"].unmask() == "t0ken"


def test_a_member_without_an_account_is_refused_and_none_is_made(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"alice: no such account on this PC: create it there"):
        load_with(pc_data(tmp_path), {}, monkeypatch, {"LAB_TOKEN": "t0ken"})


def test_an_unset_registry_password_is_refused_naming_its_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"\[lab\]\[password_env\]: \$LAB_TOKEN is not set"):
        load_with(pc_data(tmp_path), {"alice": ALICE}, monkeypatch)


def test_a_missing_ca_file_is_refused(tmp_path, monkeypatch):
    data = {
        **PC_DATA,
        "isaac_registries": {"lab": {"address": REGISTRY, "ca_file": str(tmp_path / "no.crt")}},
    }
    with pytest.raises(ConfigError, match=r"\[ca_file\]: .*no.crt does not exist here"):
        load_with(data, {"alice": ALICE}, monkeypatch)


def test_no_python_on_the_pc_is_one_line(monkeypatch):
    facts = {"WorkstationToolkit": {toolkit_args({}): Toolkit()}}
    with ctx_host.use(FakeHost(facts, {})), pytest.raises(ToolkitError, match="python3 is needed"):
        fleet.load()


def test_without_pulls_no_registry_is_needed(monkeypatch):
    data = {**PC_DATA, "isaac_pull_base_images": False}
    pc = load_with(data, {"alice": ALICE}, monkeypatch)
    assert pc.pulls == () and pc.registries == () and pc.passwords == {}


# ---------------------------------------------------------------- the report
def test_report_lines_and_the_limit_that_reruns_the_pcs_not_ready():
    outcomes = [
        PcOutcome("@openssh/pc01", "ready", changes=12),
        PcOutcome(
            "@openssh/pc02", "failed", "Install Docker | Docker engine", "E: broken", "fix it"
        ),
        PcOutcome("@openssh/pc04", "unreachable", "", "SSH error: no route", UNREACHABLE_FIX),
    ]
    argv = ["/v/bin/pyinfra", "-y", "inventories/lab_pcs.py", "deploy/lab_pcs.py", "--limit", "x"]
    assert report_lines(outcomes, argv) == [
        "@openssh/pc01: ready (12 changes)",
        "@openssh/pc02: FAILED at Install Docker | Docker engine: E: broken -> fix it",
        f"@openssh/pc04: UNREACHABLE: SSH error: no route -> {UNREACHABLE_FIX}",
        "1 of 3 PCs ready",
        "re-run the PCs that are not ready: /v/bin/pyinfra -y inventories/lab_pcs.py "
        "deploy/lab_pcs.py --limit @openssh/pc02 --limit @openssh/pc04",
    ]


def test_all_ready_has_no_rerun_line():
    lines = report_lines([PcOutcome("pc01", "ready", changes=1)], ["pyinfra"])
    assert lines == ["pc01: ready (1 change)", "1 of 1 PCs ready"]


def test_rerun_drops_the_runs_own_limits_in_both_spellings():
    argv = ["pyinfra", "--limit=pc01", "inv.py", "--limit", "pc02", "d.py"]
    assert rerun_command(argv, ["pc 03"]) == "pyinfra inv.py d.py --limit 'pc 03'"


def test_outcome_line_without_details():
    assert outcome_line(PcOutcome("pc02", "failed")) == "pc02: FAILED: see the errors above"


@pytest.mark.parametrize(
    ("step", "words"),
    [
        (
            "Install Docker, Compose and the NVIDIA Container Toolkit | Docker engine and Compose packages",
            "apt-get update",
        ),
        (
            "Lab PC: members, git, registries, base images | git (the members' checkouts)",
            "apt-get update",
        ),
        (
            "Install Docker, Compose and the NVIDIA Container Toolkit | Docker daemon running",
            "dockerd",
        ),
        (
            "Lab PC: members, git, registries, base images | Base images, pulled once for every member",
            "registry",
        ),
        ("Member's checkout of the project", "isaac_project"),
        ("Member's part of the workstation deploy", "fix what the error above names"),
    ],
)
def test_each_failed_step_has_its_fix_and_the_limit(step, words):
    fix = failure_fix(step)
    assert words in fix and fix.endswith("then re-run it with --limit")


def test_table_of_pcs_and_checks():
    cells = {("pc01", "SSH"): "OK", ("pc01", "Docker"): "OK", ("pc02", "SSH"): "FAIL"}
    assert table(["pc01", "pc02"], ["SSH", "Docker"], cells) == (
        "      SSH   Docker\npc01  OK    OK\npc02  FAIL  -"
    )


# ---------------------------------------------------------------- the report from pyinfra's state
def test_outcomes_from_the_run_state_unreachable_failed_and_ready():
    inventory = Inventory((["@openssh/pc01", "@openssh/pc02", "@openssh/pc04"], {}))
    state = State(inventory, Config())
    pc01, pc02, pc04 = (inventory.get_host(f"@openssh/{n}") for n in ("pc01", "pc02", "pc04"))
    pc04.connector.connect_error = (
        "SSH error: ssh: connect to host 10.0.0.4 port 22: No route to host"
    )
    with ctx_state.use(state):
        for pc in (pc01, pc02):
            state.activate_host(pc)
            with ctx_host.use(pc):
                server.shell(
                    name="Install Docker | Docker engine and Compose packages", commands=["true"]
                )
        for pc, ok in ((pc01, True), (pc02, False)):
            op_hash = pc.op_hash_order[0]
            lines = [] if ok else [OutputLine("stderr", "E: Unable to locate package docker.io")]
            state.ops[pc][op_hash].operation_meta.set_complete(
                ok, [StringCommand("true")], CommandOutput(lines)
            )
    assert fleet.outcome(state, pc01) == PcOutcome("@openssh/pc01", "ready", changes=1)
    failed = fleet.outcome(state, pc02)
    assert (failed.status, failed.step, failed.error) == (
        "failed",
        "Install Docker | Docker engine and Compose packages",
        "E: Unable to locate package docker.io",
    )
    assert "apt-get update" in failed.fix
    assert fleet.outcome(state, pc04) == PcOutcome(
        "@openssh/pc04", "unreachable", "", pc04.connector.connect_error, UNREACHABLE_FIX
    )


# ---------------------------------------------------------------- doctor --fleet
def test_doctor_table_skips_the_example_hosts_without_connecting():
    lines, failed = fleet_doctor.fleet_doctor(ROOT / "inventories" / "lab_pcs.py", ROOT)
    assert not failed and lines[-1] == "3 PCs, 0 with failed checks"
    rows = lines[1].splitlines()
    assert rows[0].split() == ["SSH"] and rows[1].split() == ["pc01.lab.example.org", "skip"]


def test_doctor_pc_checks_and_the_table(monkeypatch):
    group = "root:x:0:\ndocker:x:999:alice,labadmin\n"
    found = Toolkit(
        **{
            **toolkit().__dict__,
            "files": {fleet_doctor.GROUP_FILE: group},
            "images": {BASE: "sha256:1", "isaac-lab-ext-template-dev:alice:latest": "x"},
        }
    )
    answers = {"pc01.lab": found, "pc02.lab": Check("SSH", "FAIL", "No route to host", "check it")}
    monkeypatch.setattr(
        fleet_doctor, "probe", lambda host, data: answers[fleet_doctor.address_of(host, data)]
    )
    data = {**PC_DATA, "isaac_members": ["alice", "bob"]}
    checks = fleet_doctor.pc_checks("@openssh/pc01.lab", data)
    by_name = {check.name: check for check in checks}
    assert by_name["SSH"].status == "OK" and by_name["Docker"].status == "OK"
    assert by_name["Members"].sentence() == (
        "not in the docker group: bob -> run deploy/lab_pcs.py for it (--limit)"
    )
    assert by_name["Base images"].status == "OK"
    assert by_name["Member images"].status == "WARN"  # neither image is built
    assert "isaac-lab-ext-template-dev:bob" in by_name["Member images"].message
    assert fleet_doctor.pc_checks("@openssh/pc02.lab", data) == [answers["pc02.lab"]]


def test_the_admins_part_planned_for_a_new_pc(tmp_path, monkeypatch):
    """Members into the docker group, git, the registry's CA for Docker and the base image
    pulled with the login, every step with sudo (the admin is not root)."""
    pc = load_with(pc_data(tmp_path), {"alice": ALICE}, monkeypatch, {"LAB_TOKEN": "t0ken"})
    ca = f"/etc/docker/certs.d/{REGISTRY}/ca.crt"
    facts = {
        "DebPackages": {"": {}},
        "File": {"path=/var/lib/apt/periodic/update-success-stamp": None, f"path={ca}": None},
        "Directory": {f"path={ca}": None, f"path=/etc/docker/certs.d/{REGISTRY}": None},
        "WorkstationToolkit": {"": toolkit()},
        "TmpDir": {"": None},
    }
    ops = {op.name: op for op in plan(fleet.lab_pc, pc, facts)}  # type: ignore[arg-type]
    assert list(ops) == [
        "Lab members in the docker group",
        "git (the members' checkouts)",
        "lab: CA for Docker",
        "Base images, pulled once for every member",
    ]
    assert all(op.sudo for op in ops.values())
    assert ops["Lab members in the docker group"].commands == [
        "groupadd -f docker",  # the group file had none (docker.io makes it too)
        "gpasswd --add alice docker",
    ]
    assert "install -o Dpkg::Use-Pty=0 git" in " ".join(
        map(str, ops["git (the members' checkouts)"].commands)
    )
    uploads = [c for c in ops["lab: CA for Docker"].commands if isinstance(c, tuple)]
    assert [upload[1] for upload in uploads] == [ca]
    pull = ops["Base images, pulled once for every member"].commands
    assert pull[-1].startswith("( py=/usr/bin/python3;") and "/run/isaac-deploy/pull" in pull[-1]


def test_a_step_named_differently_on_each_pc_is_reported_by_what_the_names_share():
    inventory = Inventory((["@openssh/pc01", "@openssh/pc03"], {}))
    state = State(inventory, Config())
    with ctx_state.use(state):
        for pc, member in zip(inventory, ("bob", "carol"), strict=True):
            state.activate_host(pc)
            with ctx_host.use(pc):
                server.shell(
                    name=f"Member's part | Images isaac-lab-x-dev:{member}", commands=["false"]
                )
        op_hash = next(iter(inventory)).op_hash_order[0]
        for pc in inventory:
            state.ops[pc][op_hash].operation_meta.set_complete(False, [], CommandOutput([]))
    assert fleet.outcome(state, next(iter(inventory))).step == "Member's part"


def test_the_admins_part_of_a_ready_pc_asks_nothing_more(tmp_path, monkeypatch):
    """git there, the CA the same, the members in the group, the base image pulled: decided
    from the one toolkit fact, no step asks the PC again or changes anything."""
    data = pc_data(tmp_path)
    pc = load_with(data, {"alice": ALICE}, monkeypatch, {"LAB_TOKEN": "t0ken"})
    ca = (tmp_path / "ca.crt").read_bytes()
    found = replace(
        pc.ws.toolkit,
        paths={"/usr/bin/git": "file"},
        files={"/etc/group": "docker:x:999:labadmin,alice\n"},
        digests={
            f"/etc/docker/certs.d/{REGISTRY}/ca.crt": FileDigest(
                0o644, 0, hashlib.sha256(ca).hexdigest()
            )
        },
        images={BASE: "sha256:1"},
    )
    ready = replace(pc, ws=replace(pc.ws, toolkit=found))
    ops = plan(fleet.lab_pc, ready, {})  # type: ignore[arg-type]
    assert [(op.name, op.commands) for op in ops] == [
        ("Lab members in the docker group", []),
        ("Base images, pulled once for every member", []),
    ]
