"""A lab member with sudo rights who is not in the docker group yet: the deploy uses sudo for
exactly the admin step (the docker group), and the images follow once the new group applies."""

from __future__ import annotations

import pytest
import testinfra

pytestmark = pytest.mark.lab
LOCAL = testinfra.get_host("local://")


def test_first_run_adds_the_user_to_the_docker_group_with_sudo(sudo_project):
    name = sudo_project.user["name"]
    assert "docker" not in LOCAL.user(name).groups
    result = sudo_project.deploy("-y", "-vv")
    assert result.rc == 0, result.out
    assert f"Add {name} to the docker group (log in again for it to apply)" in result.out
    sudo_lines = [line for line in result.out.splitlines() if ">>> sudo -H -n" in line]
    assert f"sudo -H -n sh -c 'usermod -a -G docker {name}'" in "\n".join(sudo_lines)
    writes = [
        line for line in sudo_lines if any(w in line for w in ("mv -f", "docker build", "chmod"))
    ]
    assert writes == []  # env files, override and images are the user's own work: no sudo
    assert "docker" in LOCAL.user(name).groups
    # this login session predates the group: Docker refuses it, one clear line, nothing built
    assert "log out and in again" in result.out or "Docker is not usable" in result.out
    env_file = LOCAL.file(str(sudo_project.env_file("ext-dev")))
    assert env_file.user == name and env_file.mode == 0o600  # user-level files: no sudo


def test_next_login_builds_the_images_and_needs_no_sudo(sudo_project):
    result = sudo_project.deploy("-y", "-vv")
    assert result.rc == 0, result.out
    assert "sudo -H" not in result.out  # pyinfra prefixes sudo commands with `sudo -H`
    assert "Images isaac-lab-lab-ext" in result.out
    images = sudo_project.shell("docker images --format '{{.Repository}}:{{.Tag}}'").out.split()
    assert f"isaac-lab-lab-ext-dev:{sudo_project.user['name']}" in images
    assert sudo_project.deploy().totals()["success"] == 0
