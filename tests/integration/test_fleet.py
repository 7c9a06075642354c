"""The lab PCs (#17): the example inventory (``inventories/lab_pcs.py``) and ``deploy/lab_pcs.py``
provision the lab's three PCs (``tests/lab/fleet.py``: separate sshd, package database and Docker
engine each) over real SSH from the admin's checkout, with one PC's apt broken; the report names
it and the others complete; the report's ``--limit`` command re-runs only that PC once repaired;
a second run changes nothing anywhere. End state by testinfra over SSH on each PC, as the admin
(with sudo) and as the members. The site's specifics (registry, git remote, SSH settings) are
the admin's ``inventories/group_data/lab_pcs.py``, as pyinfra's conventions have it."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import pytest
import testinfra

from isaac_deploy.model import paths
from tests.lab import fleet as lab_pcs
from tests.lab import lab as lab_module
from tests.lab.project import PYINFRA, VENV_BIN, Result

pytestmark = pytest.mark.lab

EXAMPLE = "inventories/lab_pcs.py"
DEPLOY = "deploy/lab_pcs.py"
PASSWORD_ENV = "LAB_REGISTRY_PASSWORD"
BROKEN = "/etc/apt/sources.list.d/broken.list"
# in the admin's shell: never any member's (joined here: the members' checkouts hold this file)
ADMINS_WANDB_KEY = "-".join(("admins", "own", "wandb", "key", "0d5c"))


def host_name(pc: str) -> str:
    return f"@openssh/{pc}"


@pytest.fixture(scope="module")
def room(lab, tmp_path_factory):
    """The lab's PCs, the base images in the lab registry and the admin's checkout, which is
    also what the lab's git remote serves; the PCs go afterwards."""
    if lab["cluster"] is None:
        pytest.fail("the lab PCs need root")
    started = lab_module.load_started()
    try:
        info = lab_pcs.start(lab_module.LAB_DIR, started, lab_module.save_started)
        folder = tmp_path_factory.mktemp("admin") / "lab_ext"
        yield {**info, **lab_pcs.admin_site(lab, info, folder)}
    finally:
        lab_pcs.stop(started, lab_module.save_started)


def deploy(room, *args: str, inventory: str = EXAMPLE) -> Result:
    """The admin's command, in their checkout: ``pyinfra -y INVENTORY deploy/lab_pcs.py ARGS``."""
    env = {**os.environ, **room["env"], "WANDB_API_KEY": ADMINS_WANDB_KEY}
    proc = subprocess.run(
        [str(PYINFRA), "-y", inventory, DEPLOY, *args],
        cwd=room["project"].path,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    return Result(proc.returncode, proc.stdout + proc.stderr)


def report(result: Result) -> list[str]:
    """The report's lines (after ``--> Lab PCs:``)."""
    lines = result.out.split("--> Lab PCs:\n", 1)[1].split("\n--> ", 1)[0].splitlines()
    return [line.strip() for line in lines if line.strip()]


def pc(room, name: str, sudo: bool = True):
    """testinfra over SSH on PC ``name`` (``pc01``) as the admin, the lab's ssh_config."""
    return testinfra.get_host(
        f"ssh://{lab_pcs.address(name)}", ssh_config=room["ssh_config"], sudo=sudo
    )


def as_member(host, member: str, command: str):
    return host.run(f"sudo -n -u {member} -H sh -c {shlex.quote(command)}")


def pc_exec(name: str, command: str) -> None:
    """A hand on the PC's console (the lab's, not the deploy's)."""
    subprocess.run(["docker", "exec", lab_pcs.container(name), "sh", "-c", command], check=True)


@pytest.fixture(scope="module")
def first_run(room):
    """The first run, with pc03's apt broken (a source that does not exist)."""
    pc_exec("pc03", f"echo 'deb [trusted=yes] file:/srv/lab-apt-gone ./' > {BROKEN}")
    return deploy(room)


@pytest.fixture(scope="module")
def limit_run(room, first_run):
    """pc03 repaired by hand, then the report's own re-run command."""
    pc_exec("pc03", f"rm {BROKEN}")
    command = next(line for line in report(first_run) if line.startswith("re-run"))
    argv = shlex.split(command.split(": ", 1)[1])
    assert argv[:4] == [str(PYINFRA), "-y", EXAMPLE, DEPLOY], argv
    return deploy(room, *argv[4:])


@pytest.fixture(scope="module")
def second_run(room, limit_run):
    return deploy(room)


def test_first_run_makes_the_good_pcs_ready_and_names_the_broken_one(room, first_run):
    lines = report(first_run)
    assert first_run.rc != 0, first_run.out
    assert re.fullmatch(rf"{host_name('pc01.lab.example.org')}: ready \(\d+ changes\)", lines[0])
    assert re.fullmatch(rf"{host_name('pc02.lab.example.org')}: ready \(\d+ changes\)", lines[1])
    broken = lines[2]
    assert broken.startswith(
        f"{host_name('pc03.lab.example.org')}: FAILED at Install Docker, Compose and the NVIDIA "
        "Container Toolkit | Docker engine and Compose packages: "
    ), broken
    assert "lab-apt-gone" in broken, broken
    assert "`sudo apt-get update` must work there" in broken
    assert lines[3] == "2 of 3 PCs ready"
    assert lines[4].endswith(f"--limit {host_name('pc03.lab.example.org')}"), lines[4]
    assert room["env"][lab_pcs.PASSWORD_ENV] not in first_run.out
    # nothing of Docker reached pc03: its apt failed before
    assert not pc(room, "pc03").package("docker.io").is_installed


@pytest.mark.parametrize("name", ["pc01", "pc02"])
def test_the_admins_part_on_each_ready_pc(room, first_run, name):
    host = pc(room, name)
    for package in ("docker.io", "git"):
        assert host.package(package).is_installed
    assert host.process.filter(comm="dockerd"), "the PC's own engine runs"
    plugin = host.file("/usr/local/lib/docker/cli-plugins/docker-compose")
    assert plugin.is_file and plugin.user == "root" and plugin.mode == 0o755
    assert set(host.group("docker").members) >= {"alice", "bob"}  # the example's on pc01, pc02
    base = room["site"]["isaac_base_images"]["ext-dev"]
    assert host.run(f"docker image inspect {shlex.quote(base)}").rc == 0
    # the registry login was used for the pull only: nothing of it stays on the PC
    assert not host.file("/run/isaac-deploy/pull").exists
    assert not host.file("/root/.docker/config.json").exists
    ca = host.file(f"/etc/docker/certs.d/{room['registry']}/ca.crt")
    assert ca.is_file and ca.mode == 0o644
    engine = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert engine["Driver"] == "overlay2" and engine["DockerRootDir"] == "/var/lib/docker"


@pytest.mark.parametrize("name", ["pc01", "pc02"])
@pytest.mark.parametrize("member", ["alice", "bob"])
def test_each_members_part_is_theirs(room, first_run, name, member):
    host = pc(room, name)
    uid = room["members"][member]
    checkout = f"/home/{member}/lab_ext"
    assert host.file(f"{checkout}/.git").is_directory
    assert (
        as_member(host, member, f"git -C {checkout} rev-parse --abbrev-ref HEAD").stdout == "main\n"
    )
    # every file of the member's project is theirs: nothing was written as root
    assert host.check_output(f"find {checkout} ! -user {member} -print -quit") == ""
    env_file = host.file(str(paths.env_file(checkout, "lab_ext", "ext-dev")))
    assert env_file.user == member and env_file.mode == 0o600
    text = env_file.content_string
    assert f"HOST_UID='{uid}'\n" in text and f"DOCKER_USER_HOME='/home/{member}'\n" in text
    assert f"EXTENSION_FOLDER='{checkout}'\n" in text
    override = host.file(str(paths.override_file(checkout)))
    assert override.user == member and "wandb_api_key" not in override.content_string
    assert not host.file(f"/home/{member}/.config/isaac-deploy/lab_ext/wandb_api_key").exists
    assert host.run(f"grep -rl {ADMINS_WANDB_KEY} /home /root /etc").stdout == ""
    image = f"isaac-lab-lab-ext-dev:{member}"
    labels = json.loads(
        host.check_output(f"docker image inspect --format '{{{{json .Config.Labels}}}}' {image}")
    )
    assert labels.get("org.isaac-deploy.inputs"), labels
    # the member uses Docker and Compose themselves, and the container runs as them
    assert as_member(host, member, "docker compose version").rc == 0
    ran = as_member(host, member, f"docker run --rm {image} id -u")
    assert ran.rc == 0 and ran.stdout.split()[-1] == str(uid), ran.stderr


def test_the_reports_limit_reruns_only_the_repaired_pc(room, limit_run):
    lines = report(limit_run)
    assert limit_run.rc == 0, limit_run.out
    assert len(lines) == 2 and lines[1] == "1 of 1 PCs ready", lines
    assert re.fullmatch(rf"{host_name('pc03.lab.example.org')}: ready \(\d+ changes\)", lines[0])
    assert "pc01" not in limit_run.out and "pc02" not in limit_run.out
    host = pc(room, "pc03")
    assert host.package("docker.io").is_installed
    assert host.run("docker image inspect isaac-lab-lab-ext-dev:alice").rc == 0


def test_second_run_changes_nothing_on_any_pc(room, second_run):
    assert second_run.rc == 0, second_run.out
    totals = second_run.totals()
    assert totals["success"] == 0 and totals["error"] == 0, second_run.out
    assert report(second_run) == [
        f"{host_name(lab_pcs.address(name))}: ready (0 changes)"
        for name in ("pc01", "pc02", "pc03")
    ] + ["3 of 3 PCs ready"]


def test_an_unreachable_pc_is_reported_and_the_others_complete(room, second_run, tmp_path):
    inventory = room["project"].path / "inventories" / "lab_pcs_and_one_off.py"
    inventory.write_text(
        "import runpy\n"
        f"hosts, data = runpy.run_path({EXAMPLE!r})['lab_pcs']\n"
        f"lab_pcs = ([*hosts, {host_name(room['nowhere'])!r}], data)\n"
    )
    result = deploy(room, inventory=str(inventory.relative_to(room["project"].path)))
    lines = report(result)
    assert result.rc != 0
    assert lines[:3] == [
        f"{host_name(lab_pcs.address(name))}: ready (0 changes)"
        for name in ("pc01", "pc02", "pc03")
    ]
    assert lines[3].startswith(f"{host_name(room['nowhere'])}: UNREACHABLE: SSH error: ")
    assert "known_hosts" in lines[3]
    assert lines[4] == "3 of 4 PCs ready"
    assert lines[5].endswith(f"--limit {host_name(room['nowhere'])}")


def test_doctor_across_the_fleet_prints_one_table(room, second_run):
    env = {**os.environ}
    result = subprocess.run(
        [str(VENV_BIN / "isaac-deploy"), "doctor", "--fleet"],
        cwd=room["project"].path,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = result.stdout.splitlines()
    header = lines[1]
    assert header.split()[:3] == ["SSH", "NVIDIA", "driver"], result.stdout
    assert header.rstrip().endswith("Members  Base images  Member images"), result.stdout
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:5]}
    assert set(rows) == {lab_pcs.address(name) for name in ("pc01", "pc02", "pc03")}
    for cells in rows.values():
        assert "FAIL" not in cells and cells[0] == "OK", lines
    assert lines[-1] == "3 PCs, 0 with failed checks", result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
