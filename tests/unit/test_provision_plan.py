"""Provisioning, planned: which operations a new lab PC gets, with sudo, and their exact files.

The Docker and NVIDIA apt repositories cannot be reached here; their files and the planned
commands are what we can test (the Debian `docker.io` path runs for real in the lab tests).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from isaac_deploy.deploys import workstation
from isaac_deploy.model.errors import ToolkitError
from isaac_deploy.model.workstation import HostUser, WorkstationConfig
from isaac_deploy.render import apt_sources
from tests.unit.plan import make_workstation, plan

ALICE = {
    "alice": {
        "comment": "",
        "home": "/home/alice",
        "shell": "/bin/bash",
        "group": "alice",
        "groups": ["adm", "sudo"],
        "uid": 1000,
        "gid": 1000,
        "lastlog": None,
        "password": "x",
    }
}

# A new Ubuntu PC (toolkit/no-docker.json) as pyinfra's own operations ask it: alice, and no
# packages, groups, downloaders or repository files yet (each value is that fact's default).
NEW_PC = {
    "Users": {"": ALICE},
    "Groups": {"": []},
    "DebPackages": {"": {}},
    "Os": {"": None},
    "TmpDir": {"": None},
    "Which": {"command=curl": None, "command=wget": None},
    "File": {
        "path=/var/lib/apt/periodic/update-success-stamp": None,
        "path=/usr/share/keyrings/nvidia-container-toolkit-keyring.asc": None,
        "path=/etc/apt/sources.list.d/nvidia-container-toolkit.list": None,
    },
    "Directory": {
        "path=/home/alice": None,
        "path=/etc/apt/sources.list.d": None,
        "path=/etc/apt/sources.list.d/nvidia-container-toolkit.list": None,
    },
}


def uploads(op) -> list:
    return [c for c in op.commands if isinstance(c, tuple) and c[0] == "upload"]


def joined(op) -> str:
    return "\n".join(str(c) for c in op.commands)


def by_name(ops):
    return {op.name: op for op in ops}


def test_new_ubuntu_gpu_pc_gets_docker_compose_group_daemon_and_nvidia_toolkit():
    ws = make_workstation("no-docker.json")
    ops = by_name(plan(workstation.provision, ws, facts=NEW_PC))
    assert list(ops) == [
        "Docker engine and Compose packages",
        "docker group",
        "Add alice to the docker group (log in again for it to apply)",
        "Docker daemon running",
        "NVIDIA Container Toolkit apt key",
        "NVIDIA Container Toolkit apt repository",
        "NVIDIA Container Toolkit",
        "nvidia runtime in Docker",
    ]
    assert all(op.sudo for op in ops.values())  # alice is not root: sudo for exactly these steps
    packages = joined(ops["Docker engine and Compose packages"])
    assert "apt-get update" in packages
    assert "install -o Dpkg::Use-Pty=0 docker.io docker-compose-v2" in packages.replace("'", "")
    assert "usermod -a -G docker alice" in joined(
        ops["Add alice to the docker group (log in again for it to apply)"]
    )
    assert "systemctl enable --now docker.service" in joined(ops["Docker daemon running"])
    key = joined(ops["NVIDIA Container Toolkit apt key"])
    assert apt_sources.NVIDIA_KEY_URL in key and apt_sources.NVIDIA_KEYRING in key
    upload = uploads(ops["NVIDIA Container Toolkit apt repository"])[0]
    assert upload[0] == "upload" and upload[2] == (
        "deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.asc] "
        "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n"
    )
    assert "install -o Dpkg::Use-Pty=0 nvidia-container-toolkit" in joined(
        ops["NVIDIA Container Toolkit"]
    ).replace("'", "")
    runtime = ops["nvidia runtime in Docker"].commands
    assert runtime == [
        "nvidia-ctk runtime configure --runtime=docker",
        "systemctl restart docker.service",
    ]


def test_dockers_own_repository_as_an_option():
    ws = make_workstation("no-docker.json", isaac_docker_source="docker-repo")
    facts = {
        **NEW_PC,
        "File": {
            **NEW_PC["File"],
            "path=/etc/apt/keyrings/docker.asc": None,
            "path=/etc/apt/sources.list.d/docker.list": None,
        },
        "Directory": {
            **NEW_PC["Directory"],
            "path=/etc/apt/keyrings": None,
            "path=/etc/apt/sources.list.d/docker.list": None,
        },
    }
    ops = by_name(plan(workstation.provision, ws, facts=facts))
    assert ops["Docker's apt key"].sudo
    assert "https://download.docker.com/linux/ubuntu/gpg" in joined(ops["Docker's apt key"])
    listing = uploads(ops["Docker's apt repository"])[0]
    assert listing[2] == (
        "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
        "https://download.docker.com/linux/ubuntu jammy stable\n"
    )
    install = joined(ops["Docker engine and Compose packages"]).replace("'", "")
    assert (
        "docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin"
        in install
    )


def test_configured_gpu_box_changes_nothing():
    ws = make_workstation("ubuntu22-gpu-docker27-apptainer134.json")
    ops = plan(workstation.provision, ws)
    assert [op.name for op in ops] == ["Docker daemon running", "nvidia runtime in Docker"]
    assert [op.commands for op in ops] == [[], []]


def test_debian12_root_with_docker_only_gets_the_compose_plugin_without_sudo():
    ws = make_workstation("debian12-root-docker20.json")
    object.__setattr__(
        ws, "toolkit", ws.toolkit.__class__(**{**ws.toolkit.__dict__, "compose": None})
    )
    compose = "/root/.docker/cli-plugins/docker-compose"
    facts = {
        "File": {f"path={compose}": None},
        "Directory": {f"path={compose}": None, "path=/root/.docker/cli-plugins": None},
    }
    ops = by_name(plan(workstation.provision, ws, facts=facts))
    assert (
        "Docker engine and Compose packages" not in ops
    )  # docker.io is there; no v2 package on Debian 12
    plugin = ops["Compose v2 CLI plugin for this user (not packaged by this distribution)"]
    assert not plugin.sudo
    upload = uploads(plugin)[0]
    assert upload[1] == "/root/.docker/cli-plugins/docker-compose"
    assert ops["Docker daemon running"].commands == []  # running: nothing to do


def test_daemon_down_without_systemd_starts_dockerd_detached():
    ws = make_workstation("debian12-daemon-down.json")
    command = joined(by_name(plan(workstation.provision, ws))["Docker daemon running"])
    assert "start-stop-daemon --start --oknodo --background" in command
    assert "--exec /usr/sbin/dockerd" in command and "until docker version" in command


@pytest.mark.parametrize("provision", ["install", "check"])
@pytest.mark.parametrize(
    ("fixture", "named", "back"),
    [
        ("debian12-dead-docker-host.json", "DOCKER_HOST points to", "unset DOCKER_HOST"),
        (
            "debian12-dead-context.json",
            'the Docker context "dead"',
            "run `docker context use default`",
        ),
    ],
)
def test_engine_elsewhere_down_stops_with_one_line_naming_it(provision, fixture, named, back):
    """A dead DOCKER_HOST or Docker context: no dockerd is started for it, the deploy stops."""
    ws = make_workstation(fixture, isaac_provision=provision)
    with pytest.raises(ToolkitError) as error:
        plan(workstation.check_toolkit, ws)
    message = str(error.value)
    assert "\n" not in message and message.startswith(named)
    assert "unix:///tmp/tmp.fO357fMcyr/nope.sock, where no Docker engine answers" in message
    assert f"-> {back} to use this machine's engine, or start the Docker daemon at" in message
    compose = "/root/.docker/cli-plugins/docker-compose"  # the context's capture found none
    facts = {
        "File": {f"path={compose}": None},
        "Directory": {f"path={compose}": None, "path=/root/.docker/cli-plugins": None},
    }
    ops = by_name(plan(workstation.provision, make_workstation(fixture), facts=facts))
    assert ops["Docker daemon running"].commands == []


def test_check_mode_installs_nothing():
    ws = make_workstation("no-docker.json", isaac_provision="check")
    assert [op.commands for op in plan(workstation.provision, ws)] == []


def test_check_mode_without_docker_stops_with_one_actionable_line():
    ws = make_workstation("no-docker.json", isaac_provision="check")
    with pytest.raises(ToolkitError) as error:
        plan(workstation.check_toolkit, ws)
    message = str(error.value)
    assert "\n" not in message and "Docker is not installed" in message
    assert "apt-get install docker.io" in message


def test_install_mode_without_sudo_is_refused_before_anything_changes():
    ws = make_workstation("ubuntu20-docker2407-apptainer125.json")  # bob: no sudo, runtime missing
    with pytest.raises(ToolkitError, match="needs sudo, which is not installed"):
        plan(workstation.check_toolkit, ws)


def test_client_without_engine_gets_the_engine_installed_then_started():
    """Captured here: a docker CLI in /usr/local/bin, but no docker.io (no dockerd)."""
    ws = make_workstation("debian12-client-only-no-engine.json")
    facts = {
        "DebPackages": {"": {}},
        "File": {"path=/var/lib/apt/periodic/update-success-stamp": None},
    }
    ops = by_name(plan(workstation.provision, ws, facts=facts))
    assert "install -o Dpkg::Use-Pty=0 docker.io" in joined(
        ops["Docker engine and Compose packages"]
    ).replace("'", "")
    assert "--exec /usr/sbin/dockerd" in joined(ops["Docker daemon running"])


def test_client_without_engine_in_check_mode_stops():
    ws = make_workstation("debian12-client-only-no-engine.json", isaac_provision="check")
    with pytest.raises(ToolkitError, match="Docker is not installed"):
        plan(workstation.check_toolkit, ws)


def test_sudo_with_a_password_and_no_terminal_is_refused_up_front(monkeypatch):
    """pyinfra would prompt for the sudo password; without a terminal that cannot work."""
    ws = make_workstation("no-docker.json")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(ToolkitError, match="asks for a password, and there is no terminal"):
        plan(workstation.check_toolkit, ws, facts={"SudoWithoutPassword": {"": False}})
    plan(workstation.check_toolkit, ws, facts={"SudoWithoutPassword": {"": True}})  # NOPASSWD: fine


def test_for_every_user_the_compose_plugin_goes_to_the_systems_folder_with_sudo():
    """The lab PCs' admin part (``for_all_users``): every member finds Compose there."""
    base = make_workstation("debian12-root-docker20.json")
    alice = HostUser("alice", 1000, 1000, "/home/alice", groups=("alice", "docker"))
    toolkit = replace(base.toolkit, user=alice, compose=None)
    ws = replace(
        base,
        toolkit=toolkit,
        config=WorkstationConfig.from_host_data({}, alice, "/home/alice/ext", ("ext_template",)),
        for_all_users=True,
    )
    plugin = "/usr/local/lib/docker/cli-plugins/docker-compose"
    facts = {
        "File": {f"path={plugin}": None},
        "Directory": {f"path={plugin}": None, "path=/usr/local/lib/docker/cli-plugins": None},
    }
    ops = by_name(plan(workstation.provision, ws, facts=facts))
    op = ops["Compose v2 CLI plugin for every user (not packaged by this distribution)"]
    assert op.sudo and uploads(op)[0][1] == plugin
    assert "mkdir -p /usr/local/lib/docker/cli-plugins" in joined(op)
    assert "chmod 755 /usr/local/lib/docker/cli-plugins/docker-compose" in joined(op)
