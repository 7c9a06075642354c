"""A real extension project end to end, as the lab's non-root member uses it: made from the
official extension template (``tests/fixtures/foreign_extension``, renamed ``my_robot_ext``,
with the seed's files and planted secrets), adopted by ``isaac-deploy init``, set up by
``isaac-deploy setup`` on the lab's engine, its own unchanged ``train.py`` run through
``isaac-deploy run``: the run lands in the project's ``logs/``, owned by the member."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
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
    # VS Code's dev container of this user: beside the project's files, ignored by its own folder
    assert (project.path / ".devcontainer" / "isaac-deploy" / "devcontainer.json").is_file()
    assert not [line for line in status if ".devcontainer" in line], status
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


CLUSTER_DIRS = "foreign-isaac"  # in the lab login user's home: images, code, cache, logs
RUN_KEYS = ("foreign-first", "foreign-second")


@pytest.fixture(scope="module")
def cluster(foreign, lab):
    """The member's cluster inventory (as they would edit the one init wrote) for the lab's
    Slurm, with their own copy of the login key; on the login node, what the roll-outs made is
    removed afterwards (jobs cancelled, folders and ledger)."""
    made, project = foreign
    login = lab["cluster"]["login"]
    ssh_dir = Path(project.user["home"]) / ".ssh-lab"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    for name in ("key", "known_hosts"):
        shutil.copy(login[name], ssh_dir / name)
        (ssh_dir / name).chmod(0o600)
    subprocess.run(["chown", "-R", f"{project.user['uid']}:{project.user['gid']}", str(ssh_dir)])
    group = {
        "user": login["user"],
        "scheduler": "slurm",
        "ssh": {
            "port": login["port"],
            "key": str(ssh_dir / "key"),
            "known_hosts": str(ssh_dir / "known_hosts"),
        },
        "image_dir": f"~/{CLUSTER_DIRS}/images",
        "code_dir": f"~/{CLUSTER_DIRS}/code",
        "cache_dir": f"~/{CLUSTER_DIRS}/cache",
        "logs_dir": f"~/{CLUSTER_DIRS}/logs",
        "resources": {"gpus": 1, "cpus": 1, "memory": "500M", "walltime": "00:10:00"},
        "modules": [login["apptainer_module"]],
    }
    inventory = project.path / ".isaac-deploy" / "inventories" / "cluster.py"
    inventory.write_text(
        "from isaac_deploy.model.cluster import cluster\n"
        f"workstation = [('@local', {{'isaac_extension_name': {EXTENSION!r}}})]\n"
        f"hosts, group = cluster('lab', hosts=['lab-login'], **{group!r})\n"
        f"lab = (hosts, {{**group, 'ssh_hostname': {login['host']!r}}})\n"
    )
    os.chown(inventory, project.user["uid"], project.user["gid"])
    ssh = ["ssh", "-F", login["ssh_config"], "lab-login"]
    yield login, ssh
    jobs = f"squeue -h -u $(id -un) -n {','.join(f'{EXTENSION}.{k}' for k in RUN_KEYS)} -o %i"
    cleanup = (
        f"scancel $({jobs}) 2>/dev/null; rm -rf ~/{CLUSTER_DIRS} ~/.isaac-deploy/{EXTENSION}-*"
    )
    subprocess.run([*ssh, cleanup], check=False, capture_output=True)
    shutil.rmtree(ssh_dir, ignore_errors=True)


def submit(project: Project, lab, run_key: str, *args: str):
    path = f"PATH={shlex.quote(str(lab['apptainer_bin']))}:$PATH"
    command = [
        str(project.venv_bin / "isaac-deploy"),
        *lab_data(lab),  # the images were built with these: the roll-out checks its inputs
        "cluster",
        "submit",
        "--run-key",
        run_key,
    ]
    words = " ".join(shlex.quote(a) for a in (*command, "--", *args))
    return project.shell(f"cd {shlex.quote(str(project.path))} && {path} {words}")


def finished(ssh: list[str], run_key: str) -> dict:
    """The ledger record of ``run_key`` once Slurm says its job ended."""
    deadline = time.monotonic() + 180
    while True:
        text = subprocess.run(
            [*ssh, f"cat ~/.isaac-deploy/{EXTENSION}-ledger.jsonl"], capture_output=True, text=True
        ).stdout
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
        [record] = [r for r in records if r["run_key"] == run_key and r.get("job_id")]
        state = subprocess.run(
            [*ssh, f"scontrol show job -o {record['job_id']}"], capture_output=True, text=True
        ).stdout
        if re.search(r"JobState=(COMPLETED|FAILED|CANCELLED|TIMEOUT)\b", state):
            assert "JobState=COMPLETED" in state, state
            return record
        assert time.monotonic() < deadline, f"job {record['job_id']} did not end: {state}"
        time.sleep(2)


def test_the_cluster_runs_land_in_its_logs_tree_resume_and_come_back(foreign, lab, cluster):
    """The project's own train.py as Slurm jobs: the first run lands in the cluster's logs tree
    of the extension (never in the code snapshot), a second job with --resume --load_run finds
    it, `cluster sync` brings both back to the project's logs/ beside the local runs."""
    made, project = foreign
    login, ssh = cluster
    train = ["--task", TASK, "--headless", "--max_iterations"]
    first = submit(project, lab, RUN_KEYS[0], *train, "3", "--run_name", "cluster-first")
    assert first.rc == 0, first.out
    one = finished(ssh, RUN_KEYS[0])
    tree = f"{CLUSTER_DIRS}/logs/{EXTENSION}"
    runs = subprocess.run(
        [*ssh, f"ls ~/{tree}/rsl_rl/{EXPERIMENT}/"], capture_output=True, text=True
    ).stdout.split()
    [first_run] = [r for r in runs if r.endswith("_cluster-first")]
    snapshot_checkpoints = subprocess.run(
        [*ssh, f"find {shlex.quote(one['snapshot'])} -name 'model_*'"],
        capture_output=True,
        text=True,
    )
    assert snapshot_checkpoints.stdout == ""
    resume = ["--resume", "--load_run", first_run, "--run_name", "cluster-second"]
    second = submit(project, lab, RUN_KEYS[1], *train, "2", *resume)
    assert second.rc == 0, second.out
    finished(ssh, RUN_KEYS[1])
    synced = project.shell(
        f"cd {shlex.quote(str(project.path))} && {project.venv_bin}/isaac-deploy cluster sync"
    )
    assert synced.rc == 0, synced.out
    local = project.path / "logs" / "rsl_rl" / EXPERIMENT
    [back_second] = [p for p in local.iterdir() if p.name.endswith("_cluster-second")]
    assert (local / first_run).is_dir() and {p.name for p in (local / first_run).glob("model_*.pt")}
    last = max(back_second.glob("model_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    resumed_from = json.loads(last.read_text())["resumed_from"]
    assert resumed_from and f"/{first_run}/model_" in resumed_from, resumed_from
    assert (local / made.old_run.name).is_dir()  # the local runs are still there
