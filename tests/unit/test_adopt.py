"""``isaac-deploy init`` on a project made from the Isaac Lab extension template: it adds
``.isaac-deploy/`` and nothing else, twice is once, the seed's files migrate (the W&B key into a
0600 file, never an inventory), and the CLI then finds the project and its extension."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

from isaac_deploy.cli import adopt
from isaac_deploy.cli.inventory import hosts_data
from isaac_deploy.cli.main import main
from isaac_deploy.cli.project import ProjectError, find_layout, load
from isaac_deploy.model.cluster import KEY, ClusterConfig
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.seed import cluster_settings, env_values
from isaac_deploy.model.workstation import HostUser
from tests.helpers import ROOT
from tests.lab.foreign import EXTENSION, SECRET_MARKER, WANDB_API_KEY, Seed, make_foreign_project

ADDED = {
    ".isaac-deploy/README.md",
    ".isaac-deploy/inventories/local.py",
    ".isaac-deploy/inventories/cluster.py",
    ".isaac-deploy/deploy/dev.py",
    ".isaac-deploy/deploy/cluster.py",
    ".isaac-deploy/deploy/cluster_jobs.py",
    ".isaac-deploy/deploy/cluster_sync.py",
}


@pytest.fixture(autouse=True)
def keep_cwd(monkeypatch) -> None:
    """``init`` below changes the working directory; pytest puts it back."""
    monkeypatch.chdir(os.getcwd())


@pytest.fixture
def user(tmp_path, monkeypatch) -> HostUser:
    """This machine's user, with a home of the test's own (the W&B key goes there)."""
    home = tmp_path / "home"
    home.mkdir()
    me = HostUser("alice", os.getuid(), os.getgid(), str(home))
    monkeypatch.setattr(adopt, "local_user", lambda: me)
    return me


def tree(root: Path) -> dict[str, str]:
    """Every file below ``root`` (links as their target) -> SHA-256 of its bytes."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def init(project: Path, *args: str, cwd: Path | None = None) -> int:
    os.chdir(cwd or project)
    return main(["init", *args])


def test_init_adds_its_folder_only_and_a_second_run_changes_nothing(tmp_path, user, capsys):
    project = make_foreign_project(tmp_path / "my_robot_ext").path
    before = tree(project)

    assert init(project, "--dry") == 0
    out = capsys.readouterr().out
    assert tree(project) == before  # --dry writes nothing
    assert all(f"would add   {rel}" in out for rel in ADDED) and "nothing was written" in out

    assert init(project, cwd=project / "scripts" / "rsl_rl") == 0  # from a folder inside
    out = capsys.readouterr().out
    after = tree(project)
    assert set(after) - set(before) == ADDED
    assert {rel: after[rel] for rel in before} == before  # every file of the user's as it was
    assert "undo: rm -r .isaac-deploy (nothing else was changed)" in out
    assert "isaac-deploy setup" in out

    assert init(project) == 0
    out = capsys.readouterr().out
    assert tree(project) == after
    assert all(f"unchanged   {rel}" in out for rel in ADDED)


def test_a_file_the_user_changed_in_its_folder_is_kept(tmp_path, user, capsys):
    project = make_foreign_project(tmp_path / "my_robot_ext").path
    init(project)
    local = project / ".isaac-deploy" / "inventories" / "local.py"
    mine = local.read_text().replace("},\n", '    "isaac_profiles": ("ext",),\n        },\n')
    local.write_text(mine)
    (project / ".isaac-deploy" / "deploy" / "cluster.py").unlink()
    capsys.readouterr()
    assert init(project) == 0
    out = capsys.readouterr().out
    assert local.read_text() == mine
    assert "kept yours  .isaac-deploy/inventories/local.py (differs from" in out
    assert "added       .isaac-deploy/deploy/cluster.py" in out


def test_the_cli_finds_the_adopted_project_and_its_extension(tmp_path, user):
    project = make_foreign_project(tmp_path / "my_robot_ext").path
    with pytest.raises(ProjectError, match="run `isaac-deploy init` there"):
        load(project / "source")
    init(project)
    loaded = load(project / "source" / EXTENSION / EXTENSION)
    assert loaded.root == project and loaded.config.extension_name == EXTENSION
    assert loaded.env_file("ext-dev") == (
        project / ".isaac-deploy" / "state" / f"{EXTENSION}-dev.env"
    )
    layout = find_layout(project / "scripts")
    assert layout.deploy("dev") == project / ".isaac-deploy" / "deploy" / "dev.py"


def test_the_generated_inventories_load_as_the_deploys_read_them(tmp_path, user):
    project = make_foreign_project(tmp_path / "my_robot_ext", Seed()).path
    init(project)
    tools = project / ".isaac-deploy"
    local = hosts_data(str(tools / "inventories" / "local.py"), project)["@local"]
    assert local == {
        "isaac_extension_name": EXTENSION,
        "isaac_wandb": {"username": "alice"},
        **({} if (user.uid, user.gid) == (1000, 1000) else {"isaac_uid": 1000, "isaac_gid": 1000}),
    }
    clusters = hosts_data(str(tools / "inventories" / "cluster.py"), project)
    config = clusters["@openssh/login.cluster.example.org"][KEY]
    assert isinstance(config, ClusterConfig) and config.name == "hpc_cluster"
    assert (config.user, config.scheduler) == ("alice", "slurm")
    assert config.image_dir == "/cluster/scratch/alice"
    assert config.cache_dir == "/cluster/scratch/alice/docker-isaac-sim"
    # snapshots and logs beside the seed's code copy, never over it
    assert config.code_dir == "/cluster/home/alice/isaac-deploy/code"
    assert config.logs_dir == "/cluster/home/alice/isaac-deploy/logs"
    assert config.wandb_api_key_file == f"~/.config/isaac-deploy/{EXTENSION}/wandb_api_key"
    assert clusters["@local"] == {"isaac_extension_name": EXTENSION}
    # the thin deploy files run isaac-deploy's own deploys on this project
    dev = (tools / "deploy" / "dev.py").read_text()
    assert "workstation.setup(project_root=Path(__file__).resolve().parents[2])" in dev


def test_the_wandb_key_in_clear_goes_to_a_0600_file_never_to_an_inventory(tmp_path, user, capsys):
    project = make_foreign_project(tmp_path / "my_robot_ext", Seed()).path
    assert init(project) == 0
    out = capsys.readouterr().out
    key_file = Path(user.home) / ".config" / "isaac-deploy" / EXTENSION / "wandb_api_key"
    assert key_file.read_text() == WANDB_API_KEY + "\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert all(SECRET_MARKER not in text for text in map(Path.read_text, walk(project)))
    assert SECRET_MARKER not in out
    assert "docker/cluster/.env.cluster still holds the W&B key in clear" in out
    assert f"undo: rm -r .isaac-deploy {key_file}" in out
    # another key there already is never replaced
    key_file.write_text("mine\n")
    init(project)
    assert key_file.read_text() == "mine\n"
    assert "(holds another key; not changed)" in capsys.readouterr().out


def walk(project: Path) -> list[Path]:
    return [p for p in (project / ".isaac-deploy").rglob("*") if p.is_file()]


def test_several_extensions_need_a_name_and_bad_input_writes_nothing(tmp_path, user, capsys):
    project = make_foreign_project(tmp_path / "my_robot_ext", Seed()).path
    other = project / "source" / "other_ext"
    shutil.copytree(project / "source" / EXTENSION / "config", other / "config")
    assert init(project) == 1
    assert "several extensions (my_robot_ext, other_ext): choose one with --name NAME" in (
        capsys.readouterr().err
    )
    assert init(project, "--name", "nope") == 1
    assert "--name nope: source/ holds my_robot_ext, other_ext" in capsys.readouterr().err
    cluster_env = project / "docker" / "cluster" / ".env.cluster"
    cluster_env.write_text(cluster_env.read_text().replace("SLURM", "LSF"))
    assert init(project, "--name", EXTENSION) == 1
    assert "CLUSTER_JOB_SCHEDULER: 'LSF' is neither SLURM nor PBS" in capsys.readouterr().err
    assert not (project / ".isaac-deploy").exists()
    assert not (Path(user.home) / ".config").exists()


def test_a_checkout_of_isaac_deploy_or_no_project_is_refused(tmp_path, user, capsys):
    assert init(ROOT) == 1
    assert "is a checkout of isaac-deploy: it needs no init" in capsys.readouterr().err
    assert init(tmp_path) == 1
    assert "no extension project at or above" in capsys.readouterr().err


def test_seed_env_files_read_as_bash_sources_them():
    text = (
        "# comment\nEXTENSION_NAME=my_ext\nEXTENSION_FOLDER=/home/a b/x   # ← CHANGE THIS\n"
        "EXT_PATH=$EXTENSION_FOLDER\nDOCKER_EXT_PATH=/workspace/${EXTENSION_NAME}\n"
        "Q='it''s'\nD=\"$EXTENSION_NAME/$UNKNOWN\"\nexport E=1\nnot a line\n"
    )
    assert env_values(text) == {
        "EXTENSION_NAME": "my_ext",
        "EXTENSION_FOLDER": "/home/a b/x",
        "EXT_PATH": "/home/a b/x",
        "DOCKER_EXT_PATH": "/workspace/my_ext",
        "Q": "it",
        "D": "my_ext/$UNKNOWN",
        "E": "1",
    }


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"CLUSTER_LOGIN": "login.example.org"}, "CLUSTER_LOGIN: 'login.example.org' is not"),
        ({"CLUSTER_JOB_SCHEDULER": ""}, "CLUSTER_JOB_SCHEDULER: is missing"),
        ({"CLUSTER_SIF_PATH": "scratch/sif"}, "CLUSTER_SIF_PATH: 'scratch/sif' must be absolute"),
        ({"CLUSTER_SIF_PATH": "/scratch/$GROUP/x"}, "must be absolute, or start with ~ or one"),
    ],
)
def test_cluster_env_values_are_checked_naming_the_key(values, error):
    good = {
        "CLUSTER_LOGIN": "bob@login1.hpc.example.edu",
        "CLUSTER_JOB_SCHEDULER": "PBS",
        "CLUSTER_SIF_PATH": "$SCRATCH/sif",
        "CLUSTER_ISAAC_SIM_CACHE_DIR": "/scratch/$USER/cache",
        "CLUSTER_ISAACLAB_DIR": "/home/$USER/ext",
    }
    cluster = cluster_settings(good)
    assert (cluster.name, cluster.host) == ("hpc", "login1.hpc.example.edu")
    assert cluster.settings["cache_dir"] == "/scratch/bob/cache"  # $USER is the cluster user
    assert cluster.settings["scheduler"] == "pbs"
    with pytest.raises(ConfigError, match=error):
        cluster_settings({**good, **values})


def test_several_extensions_in_a_terminal_are_a_question():
    asked = []

    def ask(question: str) -> str:
        asked.append(question)
        return "2"

    assert adopt.choose_name(["a_ext", "b_ext"], None, ask) == "b_ext"
    assert "  1) a_ext\n  2) b_ext\nwhich one? [1-2] " in asked[0]
    assert adopt.choose_name(["a_ext", "b_ext"], None, lambda _: "a_ext") == "a_ext"
    with pytest.raises(ProjectError, match="'3' is none of a_ext, b_ext"):
        adopt.choose_name(["a_ext", "b_ext"], None, lambda _: "3")


def test_setup_is_the_projects_dev_deploy_with_pyinfras_flags(tmp_path, user, monkeypatch):
    from isaac_deploy.cli import main as cli_main

    project = make_foreign_project(tmp_path / "my_robot_ext").path
    init(project)
    ran = []
    monkeypatch.setattr(
        cli_main.subprocess, "run", lambda argv, cwd: ran.append((argv, cwd)) or Done()
    )
    assert main(["--data", "isaac_provision=check", "setup", "--dry"]) == 0
    assert main(["setup"]) == 0
    tools = project / ".isaac-deploy"
    deploy = [str(tools / "inventories" / "local.py"), str(tools / "deploy" / "dev.py")]
    (dry, dry_cwd), (real, _) = ran
    assert dry[1:] == ["-m", "pyinfra", "--data", "isaac_provision=check", "--dry", *deploy]
    assert real[1:] == ["-m", "pyinfra", "-y", *deploy] and dry_cwd == project


class Done:
    returncode = 0
