"""The README's first command on a fresh machine (#14): one lab PC (``tests/lab/fleet.py``:
Debian minbase + python3, its own sshd, package database and, once installed, Docker engine;
the lab's apt source and PyPI stand-in, no other network) and its owner, who has sudo and is
not in the docker group, as on a new workstation. The checkout is copied there as a user
would (``tar`` over ``ssh``), the inventory names the lab registry as the base-image source
(NGC's path, its CA and the password in 0600 files of the owner's), and ``./dev-setup.sh``
runs in a pipe over ``ssh`` (a non-interactive run): it installs the venv module (sudo), isaac-
deploy (pip) and Docker (apt, sudo), starts ``dockerd``, pulls the base image and adds the owner
to the docker group; the next login's ``./dev-setup.sh`` builds the dev image; the dev container
then runs as the owner. End state asked of the PC (testinfra over SSH) and its engine."""

from __future__ import annotations

import re
import shlex
import subprocess
import tarfile
from pathlib import Path

import pytest
import testinfra

from tests.integration.test_base_images import REPOSITORY, push_base_image
from tests.lab import fleet as lab_pcs
from tests.lab import lab as lab_module
from tests.lab.project import TEST_EXTENSION, Result, make_project

pytestmark = pytest.mark.lab

PC = "pc01"
TAG = "fresh-machine"
CONFIG = "~/.config/isaac-deploy"
PASSWORD_FILE = f"{CONFIG}/lab-registry-password"
CA_FILE = f"{CONFIG}/lab-registry-ca.crt"
DOCKERD_LOG = "/var/log/isaac-deploy-dockerd.log"


def on_pc(room: dict, command: str, stdin: bytes = b"") -> Result:
    """``command`` in a new login of the PC's owner over SSH (no terminal: a pipe)."""
    proc = subprocess.run(
        ["ssh", "-F", room["ssh_config"], lab_pcs.address(PC), command],
        input=stdin,
        capture_output=True,
    )
    return Result(proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace"))


@pytest.fixture(scope="module")
def machine(lab, tmp_path_factory):
    """The fresh PC with the owner's copy of the checkout, its inventory and login files; the
    base image in the lab registry. The PC goes afterwards (its engine's data with it)."""
    if lab["cluster"] is None:
        pytest.fail("the lab PCs need root")
    registry = lab["registry"]
    started = lab_module.load_started()
    try:
        room = lab_pcs.start(
            lab_module.LAB_DIR, started, lab_module.save_started, names=(PC,), pypi=True
        )
        push_base_image(
            registry, lab["images"]["ext-dev"], f"{registry['address']}/{REPOSITORY}:{TAG}"
        )
        ref = f"{room['registry']}/{REPOSITORY}:{TAG}"  # the same registry, as the PC names it
        folder = tmp_path_factory.mktemp("fresh")
        project = make_project(folder / TEST_EXTENSION, None, lab)
        data = {
            "isaac_extension_name": TEST_EXTENSION,
            "isaac_profiles": ("ext-dev",),
            "isaac_base_source": "pull",
            "isaac_base_images": {"ext-dev": ref},
            "isaac_registries": {
                "lab": {
                    "address": room["registry"],
                    "ca_file": CA_FILE,
                    "username": registry["user"],
                    "password_file": PASSWORD_FILE,
                }
            },
            "isaac_dev_pip_packages": "",  # the stand-in's own pip has no network
        }
        (project.path / "inventories" / "local.py").write_text(f"local = [('@local', {data!r})]\n")
        archive = folder / "checkout.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(project.path, arcname=TEST_EXTENSION)
        copied = on_pc(room, "tar -xf - -C ~", archive.read_bytes())
        assert copied.rc == 0, copied.out
        for path, content in (
            (PASSWORD_FILE, registry["password"].encode() + b"\n"),
            (CA_FILE, Path(registry["ca"]).read_bytes()),
        ):  # on stdin, never on a command line
            written = on_pc(room, f"umask 077 && mkdir -p {CONFIG} && cat > {path}", content)
            assert written.rc == 0, written.out
        yield {"room": room, "ref": ref, "registry": registry, "data": data}
    finally:
        lab_pcs.stop(started, lab_module.save_started)


def dev_setup(machine) -> Result:
    result = on_pc(machine["room"], f"cd {TEST_EXTENSION} && ./dev-setup.sh")
    print(result.out)  # shown when a test fails
    return result


@pytest.fixture(scope="module")
def first_run(machine):
    return dev_setup(machine)


@pytest.fixture(scope="module")
def next_login(machine, first_run):
    """The owner logs in again (the docker group applies) and types the same command."""
    return dev_setup(machine)


def summary(result: Result) -> list[str]:
    """The summary's lines (each with pyinfra's host prefix)."""
    return [line for line in result.out[result.out.rindex("Summary:") :].splitlines() if line]


def pc(machine):
    return testinfra.get_host(
        f"ssh://{lab_pcs.address(PC)}", ssh_config=machine["room"]["ssh_config"], sudo=True
    )


def test_first_run_installs_python_docker_and_pulls_showing_progress(machine, first_run):
    out = first_run.out
    assert first_run.rc == 0, out
    assert "dev-setup: installing python3-venv (apt, with sudo)" in out
    assert "dev-setup: installing isaac-deploy and its dependencies into .venv" in out
    assert re.search(r"Successfully installed .*pyinfra-", out), out
    # apt's own lines as it installs Docker, and the pull's progress, plain lines in a pipe
    assert re.search(r"Setting up docker\.io \(", out), out
    ref = machine["ref"]
    assert f"pulling {ref} from {machine['room']['registry']}" in out
    done = re.search(rf"pulled {re.escape(ref)} in \d+ s: (\d+)/(\d+) layers", out)
    assert done and done.group(1) == done.group(2), out
    assert "\r" not in out and "\x1b[K" not in out  # no spinner garbage
    assert machine["registry"]["password"] not in out
    lines = summary(first_run)
    assert any("  installed: " in line and "docker.io" in line for line in lines), lines
    assert any(line.endswith(f"  started:   dockerd, log: {DOCKERD_LOG}") for line in lines)
    ready = next(line for line in lines if "  ready:  " in line)
    assert f"base image {ref} (pulled)" in ready
    # the dev image waits for the docker group, which applies from the next login
    missing = [line for line in lines if "  missing:  " in line]
    assert len(missing) == 1 and missing[0].endswith(
        f"image isaac-lab-lab-ext-dev:{lab_pcs.ADMIN}: Docker is yours from your next login: "
        "`./dev-setup.sh` builds it"
    ), lines
    assert lines[-1].endswith(
        "  next:      log in again (you are in the docker group from your next login), then "
        "what the missing line says, then `.venv/bin/isaac-deploy run`"
    ), lines


def test_next_login_builds_the_dev_image_and_says_what_to_type(machine, next_login):
    out = next_login.out
    assert next_login.rc == 0, out
    assert "pulling" not in out
    lines = summary(next_login)
    ready = next(line for line in lines if "ready:" in line)
    assert f"base image {machine['ref']} (there already)" in ready
    assert f"image isaac-lab-lab-ext-dev:{lab_pcs.ADMIN}" in ready
    assert not any("missing:" in line for line in lines), lines
    assert lines[-1].endswith("  next:      `.venv/bin/isaac-deploy run`"), lines
    assert machine["registry"]["password"] not in out


def test_next_login_s_build_output_has_no_carriage_returns(machine, next_login):
    assert "\r" not in next_login.out


def test_the_pc_has_docker_running_and_the_images(machine, next_login):
    host = pc(machine)
    assert host.package("docker.io").is_installed
    assert [p.args for p in host.process.filter(comm="dockerd")], "dockerd runs"
    assert host.file(DOCKERD_LOG).is_file
    assert lab_pcs.ADMIN in host.group("docker").members
    for image in (machine["ref"], f"isaac-lab-lab-ext-dev:{lab_pcs.ADMIN}"):
        assert host.run(f"docker image inspect {shlex.quote(image)}").rc == 0, image
    # the registry login served the pull only: nothing of it stays on the PC
    assert not host.file("/run/isaac-deploy/pull").exists
    assert not host.file("/root/.docker/config.json").exists
    assert not host.file(f"/home/{lab_pcs.ADMIN}/.docker/config.json").exists
    assert host.file(f"/home/{lab_pcs.ADMIN}/.config/isaac-deploy/lab-registry-password").mode == (
        0o600
    )


def test_the_dev_container_runs_as_the_owner(machine, next_login):
    uid = on_pc(machine["room"], "id -u").out.strip()
    ran = on_pc(machine["room"], f"cd {TEST_EXTENSION} && .venv/bin/isaac-deploy run id -u")
    assert ran.rc == 0, ran.out
    assert ran.out.strip().splitlines()[-1] == uid, ran.out
