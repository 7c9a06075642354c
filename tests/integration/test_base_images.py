"""The deploy obtains its base image: pulled from the lab's registry (TLS + htpasswd) under an
NGC-like path with the login from a 0600 file, or built by a (fake) Isaac Lab checkout's
``docker/container.py``; it shows the pull as it goes and ends with a summary. As the lab's
member (in the docker group, no sudo), with ``./dev-setup.sh`` as the README says, in a pipe
(a non-interactive run)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import tree_state

pytestmark = pytest.mark.lab

REPOSITORY = "nvidia/isaac-lab"
TAG = "lab-standin"
FAKE_PROFILE = "labfake"  # the fake checkout's `container.py build labfake`
FAKE_IMAGE = f"isaac-lab-{FAKE_PROFILE}:latest"
FAKE_CONTAINER_PY = """#!/usr/bin/env python3
# A fake Isaac Lab checkout's docker/container.py: records how it was called, then makes
# isaac-lab-<profile>:latest from the lab's stand-in, as the real one builds it.
import json, os, subprocess, sys
with open(os.path.join(os.path.dirname(__file__), "calls.jsonl"), "a") as log:
    log.write(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd()}) + "\\n")
print("[INFO] Building the docker image isaac-lab-" + sys.argv[2] + " (fake)", flush=True)
subprocess.run(["docker", "tag", STANDIN, "isaac-lab-" + sys.argv[2] + ":latest"], check=True)
"""


def docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True)


def has_image(ref: str) -> bool:
    return docker("image", "inspect", ref).returncode == 0


def push_base_image(registry: dict, standin: str, ref: str) -> None:
    """The stand-in ``standin`` plus a layer of its own (24 MB, which an engine then lacks: a
    pull downloads it) in the lab registry as ``ref``; nothing of it stays in this engine."""
    built = subprocess.run(
        ["docker", "build", "--quiet", "--force-rm", "-t", ref, "-"],
        input=f"FROM {standin}\nRUN head -c 24000000 /dev/urandom > /opt/isaac-lab-layer\n",
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    copied = subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--dest-creds",
            f"{registry['user']}:{registry['password']}",
            "--dest-cert-dir",
            registry["cert_dir"],
            f"docker-daemon:{ref}",
            f"docker://{ref}",
        ],
        capture_output=True,
        text=True,
    )
    assert copied.returncode == 0, copied.stderr
    assert docker("image", "rm", ref).returncode == 0


@pytest.fixture(scope="module")
def site(user_project, lab):
    """The stand-in in the lab registry as ``<registry>/nvidia/isaac-lab:lab-standin``, the
    member's login in a 0600 file, and the project with ``.venv`` where ``dev-setup.sh`` finds
    it; everything removed afterwards (the pulled and built tags, the login files)."""
    registry = lab["registry"]
    ref = f"{registry['address']}/{REPOSITORY}:{TAG}"
    push_base_image(registry, lab["images"]["ext-dev"], ref)
    assert not has_image(FAKE_IMAGE), f"{FAKE_IMAGE} is in the engine before the test"
    project = user_project
    home = Path(project.user["home"])
    keys = home / ".config" / "isaac-deploy" / "lab-tests"
    (project.path / ".venv").symlink_to(project.venv_bin.parent)
    try:
        yield {"project": project, "registry": registry, "ref": ref, "keys": keys}
    finally:
        for tag in (ref, FAKE_IMAGE):
            docker("image", "rm", tag)
        subprocess.run(["rm", "-rf", str(keys)], check=True)
        (project.path / ".venv").unlink()


def password_file(site, name: str, password: str) -> str:
    """A 0600 file of the member's holding ``password`` (``~/...`` as the inventory names it)."""
    project, keys = site["project"], site["keys"]
    command = (
        f"mkdir -p -m 700 {shlex.quote(str(keys))} && umask 077 && "
        f"printf '%s\\n' {shlex.quote(password)} > {shlex.quote(str(keys / name))}"
    )
    assert project.shell(command).rc == 0
    return f"~/.config/isaac-deploy/lab-tests/{name}"


def pull_data(site, password: str, address: str | None = None, tag: str = TAG) -> dict:
    registry = site["registry"]
    address = address or registry["address"]
    ref = f"{address}/{REPOSITORY}:{tag}"
    return {
        "isaac_profiles": ("ext-dev",),
        "isaac_base_source": "pull",
        "isaac_base_images": {"ext-dev": ref},
        "isaac_registries": {
            "lab": {
                "address": address,
                "username": registry["user"],
                "password_file": password_file(site, "lab", password),
            }
        },
    }


def dev_setup(site, data: dict):
    """``./dev-setup.sh -y`` as the README has it, the settings as ``--data`` (JSON), in a pipe."""
    project = site["project"]
    flags = " ".join(
        f"--data {shlex.quote(f'{key}={json.dumps(value)}')}" for key, value in data.items()
    )
    return project.shell(f"./dev-setup.sh -y {flags}")


@pytest.mark.parametrize(
    ("case", "line"),
    [
        ("wrong password", "registry lab ({address}) refused the credentials"),
        ("registry down", "registry lab (127.0.0.1:5499) is not reachable"),
        ("unknown tag", "registry lab ({address}) has no such image or tag"),
    ],
)
def test_a_pull_that_cannot_work_is_one_line_and_nothing_changes(site, case, line):
    registry = site["registry"]
    password = "wrong-password" if case == "wrong password" else registry["password"]
    address = "127.0.0.1:5499" if case == "registry down" else None
    data = pull_data(site, password, address, "no-such-tag" if case == "unknown tag" else TAG)
    before = tree_state(site["project"].path)
    result = dev_setup(site, data)
    assert result.rc != 0, result.out
    expected = line.format(address=registry["address"])
    said = [text for text in result.out.splitlines() if expected in text]
    assert len(said) == 1 and f": base image {data['isaac_base_images']['ext-dev']}: " in said[0]
    assert "Traceback" not in result.out and password not in result.out
    assert tree_state(site["project"].path) == before
    assert not has_image(data["isaac_base_images"]["ext-dev"])


@pytest.fixture(scope="module")
def pulled(site):
    data = pull_data(site, site["registry"]["password"])
    return dev_setup(site, data), data


def test_the_deploy_pulls_its_base_image_shows_it_and_says_what_is_ready(site, pulled):
    result, _ = pulled
    assert result.rc == 0, result.out
    ref = site["ref"]
    assert has_image(ref)
    out = result.out
    assert f"pulling {ref} from {site['registry']['address']}" in out
    done = re.search(
        rf"pulled {re.escape(ref)} in \d+ s: (\d+)/(\d+) layers, ([\d.]+) (MB|kB) of", out
    )
    assert done and done.group(1) == done.group(2), out  # each layer
    # the new 24 MB layer at least (the engine cannot know the registry's compressed copy of
    # the stand-in's layer is one it has before it has downloaded it)
    assert done.group(4) == "MB" and float(done.group(3)) >= 24, done.group(0)
    assert "\r" not in out and "\x1b[K" not in out  # no spinner in a log
    assert site["registry"]["password"] not in out
    summary = out[out.index("Summary:") :].splitlines()
    ready = next(line for line in summary if "ready:" in line)
    image = site["project"].config.image_name("ext-dev")
    assert f"base image {ref} (pulled)" in ready and f"image {image}" in ready
    assert not any("missing:" in line for line in summary)
    assert any(line.endswith("next:      `.venv/bin/isaac-deploy run`") for line in summary)


def test_the_dev_container_starts_and_runs_as_the_member(site, pulled):
    project = site["project"]
    result = project.shell(".venv/bin/isaac-deploy run id -u")
    assert result.rc == 0, result.out
    assert result.out.strip().splitlines()[-1] == str(project.user["uid"])


def test_the_second_run_pulls_nothing(site, pulled):
    result = dev_setup(site, pulled[1])
    assert result.rc == 0, result.out
    assert "pulling" not in result.out and result.totals()["success"] == 0
    assert f"base image {site['ref']} (there already)" in result.out


def test_a_base_image_built_by_the_isaac_lab_checkout(site, lab, tmp_path_factory):
    project = site["project"]
    checkout = Path(project.user["home"]) / "IsaacLab"
    (checkout / "docker").mkdir(parents=True, exist_ok=True)
    script = checkout / "docker" / "container.py"
    script.write_text(FAKE_CONTAINER_PY.replace("STANDIN", repr(lab["images"]["ext-dev"])))
    subprocess.run(["chown", "-R", f"{project.user['uid']}:{project.user['gid']}", str(checkout)])
    try:
        data = {
            "isaac_profiles": ("ext-dev",),
            "isaac_base_source": "build",
            "isaac_isaaclab_checkout": "~/IsaacLab",
            "isaac_base_images": {"ext-dev": FAKE_IMAGE},
        }
        result = dev_setup(site, data)
        assert result.rc == 0, result.out
        calls = [json.loads(line) for line in (checkout / "docker" / "calls.jsonl").open()]
        assert calls == [{"argv": ["build", FAKE_PROFILE], "cwd": str(checkout)}]
        assert f"Building the docker image isaac-lab-{FAKE_PROFILE} (fake)" in result.out
        assert has_image(FAKE_IMAGE)
        assert f"base image {FAKE_IMAGE} (built)" in result.out
        again = dev_setup(site, data)
        assert again.rc == 0 and again.totals()["success"] == 0, again.out
        assert len((checkout / "docker" / "calls.jsonl").read_text().splitlines()) == 1
    finally:
        subprocess.run(["rm", "-rf", str(checkout)], check=True)
    assert not os.path.exists(checkout)
