"""The foreign-extension fixture behaves like the public Isaac Lab extension template where the
suite relies on it: train.py's runs below its working directory, --resume --load_run, the
package metadata setup.py reads with toml, and the helper's fresh git checkout with planted
files beside its commit."""

from __future__ import annotations

import json
import re
import runpy
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import toml

from tests.lab.foreign import (
    EXPERIMENT,
    EXTENSION,
    FIXTURE,
    KEY_FILE,
    REQUIREMENT,
    SECRET_MARKER,
    TASK,
    WANDB_API_KEY,
    ForeignProject,
    Seed,
    make_foreign_project,
)

TRAIN = "scripts/rsl_rl/train.py"
RUN_NAME = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(?:_(.+))?")


@pytest.fixture
def project(tmp_path: Path) -> ForeignProject:
    return make_foreign_project(tmp_path / "my_robot_ext", Seed())


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A working directory outside the project: where runs must land."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def runs(root: Path, experiment: str = EXPERIMENT) -> dict[str, Path]:
    """The run folders of ``experiment`` below ``root``, by run name ("" for none)."""
    folders = (root / "logs" / "rsl_rl" / experiment).iterdir()
    return {RUN_NAME.fullmatch(f.name).group(1) or "": f for f in folders}


def checkpoints(run: Path) -> set[str]:
    return {f.name for f in run.glob("model_*.pt")}


def train(project: ForeignProject, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = project.run_script(TRAIN, "--task", TASK, "--headless", *args, cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_train_writes_each_run_below_its_working_directory(project, work):
    result = train(
        project,
        work,
        "--run_name",
        "first",
        "--experiment_name",
        "sweep",
        "--seed",
        "7",
        "--num_envs",
        "16",
        "--device",
        "cpu",
        "--max_iterations",
        "10",
        "agent.save_interval=4",
    )

    [(name, run)] = runs(work, "sweep").items()
    assert name == "first" and str(run) in result.stdout
    assert checkpoints(run) == {"model_0.pt", "model_4.pt", "model_8.pt", "model_10.pt"}
    env = (run / "params" / "env.yaml").read_text()
    agent = (run / "params" / "agent.yaml").read_text()
    assert "  num_envs: 16\n" in env and '  device: "cpu"\n' in env and "seed: 7\n" in env
    assert "save_interval: 4\n" in agent and 'experiment_name: "sweep"\n' in agent
    assert set(runs(project.path)) == {"baseline"}  # nothing written next to the script


def test_resume_continues_from_the_last_checkpoint_of_the_run_named(project, work):
    first = train(
        project, work, "--run_name", "first", "--max_iterations", "10", "agent.save_interval=2"
    )
    first_run = runs(work)["first"]
    assert checkpoints(first_run) == {f"model_{i}.pt" for i in (0, 2, 4, 6, 8, 10)}, first.stdout

    second = train(
        project,
        work,
        "--run_name",
        "second",
        "--resume",
        "--load_run",
        first_run.name,
        "--max_iterations",
        "3",
        "agent.save_interval=2",
    )

    loaded = first_run / "model_10.pt"  # the last by number, not model_8.pt (the last by name)
    assert f"Loading model checkpoint from: {loaded}" in second.stdout
    second_run = runs(work)["second"]
    assert checkpoints(second_run) == {"model_10.pt", "model_12.pt", "model_13.pt"}
    last = json.loads((second_run / "model_13.pt").read_text())
    assert last == {"iter": 13, "task": TASK, "resumed_from": str(loaded)}


def test_resume_finds_the_projects_earlier_run_when_run_from_the_project(project):
    result = project.run_script(
        TRAIN,
        "--task",
        TASK,
        "--resume",
        "--load_run",
        project.old_run.name,
        "--max_iterations",
        "1",
    )

    assert result.returncode == 0, result.stderr
    assert f"from: {project.old_run / 'model_5.pt'}" in result.stdout
    assert checkpoints(runs(project.path)[""]) == {"model_6.pt"}


def test_resume_of_an_unknown_run_fails_before_writing_anything(project, work):
    train(project, work, "--run_name", "first", "--max_iterations", "1")

    result = project.run_script(
        TRAIN, "--task", TASK, "--resume", "--load_run", "2020-01-01_00-00-00", cwd=work
    )

    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("[ERROR] No runs present")
    assert set(runs(work)) == {"first"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--task", "Template-Unknown-v0"], "Unknown task 'Template-Unknown-v0'"),
        (["--task", TASK, "agent.no_such_key=1"], "Could not override 'agent.no_such_key=1'"),
        (["--task", TASK, "--no_such_flag"], "Could not override '--no_such_flag'"),
    ],
)
def test_bad_arguments_fail_with_one_clear_line(project, work, args, words):
    result = project.run_script(TRAIN, *args, cwd=work)

    assert result.returncode != 0 and words in result.stderr
    assert not (work / "logs").exists()


def test_play_exports_the_policy_of_the_latest_run(project, work):
    train(project, work, "--run_name", "first", "--max_iterations", "2")

    result = project.run_script("scripts/rsl_rl/play.py", "--task", TASK, cwd=work)

    assert result.returncode == 0, result.stderr
    run = runs(work)["first"]
    exported = run / "exported" / "policy.pt"
    assert exported.read_bytes() == (run / "model_2.pt").read_bytes()


def test_setup_py_reads_extension_toml_with_toml_and_declares_its_requirements(monkeypatch):
    source = FIXTURE / "source" / EXTENSION
    extension = toml.loads((source / "config" / "extension.toml").read_text())
    captured: dict = {}
    monkeypatch.setitem(sys.modules, "setuptools", SimpleNamespace(setup=captured.update))

    runpy.run_path(str(source / "setup.py"))

    assert captured["name"] == EXTENSION and captured["packages"] == [EXTENSION]
    assert captured["version"] == extension["package"]["version"] == "0.3.1"
    assert captured["install_requires"] == [REQUIREMENT]
    assert extension["isaaclab_settings"]["apt_deps"] == []
    assert extension["python"]["module"] == [{"name": EXTENSION}]
    build = toml.loads((source / "pyproject.toml").read_text())["build-system"]
    assert set(build["requires"]) == {"setuptools", "wheel", "toml"}


def test_the_fixture_knows_nothing_of_isaac_deploy():
    files = [f for f in FIXTURE.rglob("*") if f.is_file()]
    assert len(files) > 15
    for file in files:
        text = file.read_text().lower()
        for word in ("isaac-deploy", "isaac_deploy", "ext_logs_dir"):
            assert word not in text, f"{file.relative_to(FIXTURE)} mentions {word}"


def git(project: ForeignProject, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(project.path), *args], capture_output=True, text=True, check=True
    ).stdout


def test_the_helper_gives_a_committed_checkout_with_planted_files_beside_it(project):
    assert git(project, "rev-list", "--count", "HEAD").strip() == "1"
    committed = set(git(project, "ls-files").split())
    assert {"docker/Dockerfile", ".dockerignore", f"source/{EXTENSION}/setup.py"} <= committed
    status = git(project, "status", "--porcelain", "--ignored", "--untracked-files=all")
    for planted in project.planted:
        assert planted not in committed and f"?? {planted}\n" in status
    # the old run and its caches, which the project's .gitignore ignores
    assert "!! logs/rsl_rl/my_robot_reach/" in status and "/__pycache__/" in status

    key = project.path / KEY_FILE
    assert SECRET_MARKER in key.read_text() and stat.S_IMODE(key.stat().st_mode) == 0o600
    cluster = (project.path / "docker" / "cluster" / ".env.cluster").read_text()
    assert f"\nWANDB_API_KEY={WANDB_API_KEY}\n" in cluster and "CLUSTER_LOGIN=alice@" in cluster
    dev = (project.path / "docker" / f".env.{EXTENSION}-dev").read_text()
    assert f"\nEXTENSION_FOLDER={project.path}\n" in dev and "\nHOST_UID=1000\n" in dev
    mounts = json.loads((project.path / ".mount.config").read_text())["mounts"]
    assert set(mounts) == {"isaaclab", "rsl_rl"} and not any(m["enabled"] for m in mounts.values())
    listed = project.run_script("scripts/list_envs.py")
    assert listed.returncode == 0 and f"  1  {TASK}\n" in listed.stdout


def test_without_a_seed_only_the_key_is_planted(tmp_path):
    project = make_foreign_project(tmp_path / "plain")

    assert project.planted == (KEY_FILE,)
    assert not list((project.path / "docker").glob(".env.my_robot_ext*"))
    assert not (project.path / ".mount.config").exists()
