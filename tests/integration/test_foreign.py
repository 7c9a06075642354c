"""A real extension project end to end, as the lab's non-root member uses it: made from the
official extension template (``tests/fixtures/foreign_extension``, renamed ``my_robot_ext``,
with the seed's files and planted secrets), adopted by ``isaac-deploy init``, set up by
``isaac-deploy setup`` on the lab's engine, its own unchanged ``train.py`` run through
``isaac-deploy run``: the run lands in the project's ``logs/``, owned by the member."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from isaac_deploy.model.workstation import HostUser, WorkstationConfig
from tests.lab import engine
from tests.lab.foreign import EXPERIMENT, EXTENSION, REQUIREMENT, TASK, Seed, make_foreign_project
from tests.lab.project import Project, venv_for

pytestmark = pytest.mark.lab
ADOPTION = ".isaac-deploy"


def files(root: Path) -> dict[str, str]:
    """Every file of the project outside isaac-deploy's folder -> SHA-256 of its bytes."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == ADOPTION or not path.is_file() or path.is_symlink():
            continue
        found[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def member(lab):
    user = lab["user"]
    if user is None:
        pytest.fail("the foreign project runs as the lab's test user: run the suite as root")
    return user


@pytest.fixture(scope="module")
def foreign(lab, member):
    """The project in the member's home, theirs, with the seed's files filled in for them."""
    path = Path(member["home"]) / "my_robot_ext"
    key_dir = Path(member["home"]) / ".config" / "isaac-deploy" / EXTENSION
    shutil.rmtree(path, ignore_errors=True)
    seed = Seed(member["name"], member["home"], member["uid"], member["gid"])
    made = make_foreign_project(path, seed)
    subprocess.run(["chown", "-R", f"{member['uid']}:{member['gid']}", str(path)], check=True)
    project = Project(path=path, user=member)
    project.venv_bin = venv_for(project)
    user = HostUser(member["name"], member["uid"], member["gid"], member["home"])
    config = WorkstationConfig.from_host_data({}, user, str(path), (EXTENSION,))
    yield made, project
    engine.remove_compose_project(config.compose_project)
    engine.remove("image", [config.image_name(p) for p in ("ext", "ext-dev")])
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(key_dir, ignore_errors=True)


def cli(project: Project, *args: str, cwd: Path | None = None):
    where = shlex.quote(str(cwd or project.path))
    command = " ".join(shlex.quote(a) for a in (str(project.venv_bin / "isaac-deploy"), *args))
    return project.shell(f"cd {where} && {command}")


def lab_data(lab) -> list[str]:
    """``--data`` for the lab: its base-image stand-ins, no network for pip in builds."""
    return [
        "--data",
        f"isaac_base_images={json.dumps(lab['images'])}",
        "--data",
        'isaac_dev_pip_packages=""',
        "--data",
        'isaac_profiles=["ext", "ext-dev"]',
    ]


def test_adoption_dry_then_twice_keeps_every_file_of_the_users(foreign):
    made, project = foreign
    before = files(project.path)
    dry = cli(project, "init", "--dry")
    assert dry.rc == 0 and "nothing was written (--dry)" in dry.out, dry.out
    assert not (project.path / ADOPTION).exists()
    first = cli(project, "init", cwd=project.path / "scripts")
    assert first.rc == 0 and "added       .isaac-deploy/inventories/local.py" in first.out
    assert "docker/cluster/.env.cluster still holds the W&B key in clear" in first.out
    adopted = {**files(project.path), ADOPTION: ""}
    second = cli(project, "init")
    assert second.rc == 0 and "added" not in second.out, second.out
    assert files(project.path) == before  # byte for byte, the seed's files and secrets too
    assert {**files(project.path), ADOPTION: ""} == adopted
    owner = os.stat(project.path / ADOPTION / "inventories" / "local.py").st_uid
    assert owner == project.user["uid"]


def test_setup_builds_the_projects_images_with_its_dependencies(foreign, lab):
    made, project = foreign
    result = cli(project, *lab_data(lab), "setup")
    assert result.rc == 0, result.out
    state = project.path / ADOPTION / "state"
    assert (state / ".gitignore").read_text().strip().endswith("*")
    status = project.shell("git status --porcelain --untracked-files=all").out.splitlines()
    assert not [line for line in status if "/state/" in line], status  # rendered, never committed
    user = project.user["name"]
    for image in (f"isaac-lab-my-robot-ext:{user}", f"isaac-lab-my-robot-ext-dev:{user}"):
        check = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "python3", image, "-c", "import tomli_w"],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, f"{image} lacks {REQUIREMENT}: {check.stderr}"


def test_the_projects_own_train_py_logs_into_its_logs_folder(foreign, lab):
    made, project = foreign
    before = set((project.path / "logs" / "rsl_rl" / EXPERIMENT).iterdir())
    result = cli(
        project,
        *lab_data(lab),
        "run",
        "python",
        "scripts/rsl_rl/train.py",
        "--task",
        TASK,
        "--max_iterations",
        "3",
        "--run_name",
        "through-isaac-deploy",
    )
    assert result.rc == 0, result.out
    [run] = set((project.path / "logs" / "rsl_rl" / EXPERIMENT).iterdir()) - before
    assert run.name.endswith("_through-isaac-deploy")
    assert {p.name for p in run.glob("model_*.pt")}, list(run.iterdir())
    assert os.stat(run).st_uid == project.user["uid"]
