"""Shared fixtures: the real test lab (Docker engine, base-image stand-in, test user) and
throw-away copies of this project on which the real ``pyinfra`` CLI runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.lab import lab as lab_module
from tests.lab import leftovers
from tests.lab.engine import prune_dangling_images
from tests.lab.project import PYINFRA, make_project, venv_for

__all__ = ["PYINFRA", "build_leftovers", "failing_dockerfile", "package_with", "tree_state"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab(request):
    """Start the lab once per session; stop exactly what it started, also on failures. At the
    end, fail the run naming everything the session left behind (``tests/lab/leftovers.py``).
    What the lab does while it starts is shown as it goes (pytest would hold it back)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    try:
        with capture.global_and_fixture_disabled():
            info = lab_module.up()
    except Exception:
        lab_module.down()
        raise
    users = leftovers.lab_users(info)
    before = leftovers.snapshot(users)
    config = leftovers.own_config()
    yield info
    started = lab_module.load_started()
    try:
        prune_dangling_images()  # what rebuilds took the tag from
        left = leftovers.left_behind(before, lambda: leftovers.snapshot(users))
    finally:
        lab_module.down()
        leftovers.restore_own_config(config)  # root's deploys stored a W&B key, registry logins
    leftovers.check(left + leftovers.daemons_running(started))


@pytest.fixture(scope="module")
def root_project(lab, tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("root-project") / "ext", None, lab)
    yield project
    project.remove_from_engine()


@pytest.fixture(scope="module")
def user_project(lab):
    user = lab["user"]
    if user is None:
        pytest.fail("the non-root path needs the lab's test user: run the suite as root")
    path = Path(user["home"]) / "ext project"
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    project = make_project(path, user, lab)
    project.venv_bin = venv_for(project)
    yield project
    project.remove_from_engine()
    shutil.rmtree(path, ignore_errors=True)


def tree_state(path: Path) -> dict[str, tuple]:
    """Everything that could change: each file's content digest, mode and mtime."""
    import hashlib

    state = {}
    for item in sorted(path.rglob("*")):
        if item.is_file():
            st = item.stat()
            state[str(item.relative_to(path))] = (
                hashlib.sha256(item.read_bytes()).hexdigest(),
                st.st_mode,
                st.st_mtime_ns,
            )
    return state


def build_leftovers() -> tuple[set[str], set[str]]:
    """What a failed ``docker build`` may leave, as the engine's API lists it: every container
    (also stopped ones) and every dangling image."""
    import docker

    client = docker.from_env()
    containers = {container.id for container in client.containers.list(all=True)}
    return containers, {image.id for image in client.images.list(filters={"dangling": True})}


def package_with(folder: Path, name: str, text: str) -> dict[str, str]:
    """The environment of a run whose isaac-deploy has ``text`` as its Docker file ``name`` (as
    another version of isaac-deploy would): a copy of the package in ``folder`` (readable by
    all), first on ``PYTHONPATH``. The images' Dockerfiles come from the installed package,
    never from the project."""
    from tests.helpers import ROOT

    site = folder / "site"
    shutil.rmtree(site, ignore_errors=True)
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "isaac_deploy", site / "isaac_deploy", symlinks=False, ignore=skip)
    (site / "isaac_deploy" / "data" / "docker" / name).write_text(text)
    subprocess.run(["chmod", "-R", "a+rX", str(folder)], check=True)
    return {"PYTHONPATH": str(site)}


def failing_dockerfile(text: str) -> str:
    """``text`` (Dockerfile.ext-dev) with a new step that commits a layer, then one that fails,
    both as root (before its last ``USER``)."""
    steps = "RUN touch /made-before-the-failure\nRUN echo build-step-failed >&2; exit 3\n"
    head, user = text.rsplit("\nUSER ", 1)
    return f"{head}\n{steps}USER {user}"


@pytest.fixture(scope="module")
def sudo_project(lab):
    """A project of the lab member with passwordless sudo, outside the docker group."""
    user = lab["sudo_user"]
    if user is None:
        pytest.fail("the sudo path needs the lab's sudo user: run the suite as root")
    # whatever an earlier run did: start outside the docker group
    subprocess.run(["gpasswd", "-d", user["name"], "docker"], capture_output=True, check=False)
    path = Path(user["home"]) / "ext"
    shutil.rmtree(path, ignore_errors=True)
    project = make_project(path, user, lab)
    project.venv_bin = venv_for(project)
    yield project
    project.remove_from_engine()
    shutil.rmtree(path, ignore_errors=True)
