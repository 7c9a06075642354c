"""A fresh foreign extension project for each test.

``tests/fixtures/foreign_extension`` is an extension project as the public Isaac Lab extension
template (isaac-sim/IsaacLabExtensionTemplate) lays it out, renamed to ``my_robot_ext`` with the
template's own rename script; nothing in it knows isaac-deploy. :func:`make_foreign_project`
copies it to a folder and commits it as a git repository, then adds, uncommitted as in a user's
checkout, what must never reach an image or a code snapshot:

- an earlier training run in ``logs/`` and the Python caches it leaves, made by the project's own
  ``scripts/rsl_rl/train.py``;
- a private key inside ``source/`` (which images and snapshots do carry), holding
  :data:`SECRET_MARKER`;
- with a :class:`Seed`, the files of a project that used the seed's bash tooling
  (``../shared/seed/docker-README.md``): ``docker/.env.<ext>`` and ``docker/.env.<ext>-dev``
  (host paths, uid/gid), ``docker/cluster/.env.cluster`` (the W&B key in clear) and
  ``.mount.config``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "foreign_extension"
EXTENSION = "my_robot_ext"
TASK = "Template-MyRobot-Reach-v0"
EXPERIMENT = "my_robot_reach"  # the task's agent configuration: logs/rsl_rl/<experiment>/
REQUIREMENT = "tomli-w"  # setup.py's INSTALL_REQUIRES: tiny, pure Python, in no base image
# in every planted secret: a test finds it in no image layer, history or snapshot
SECRET_MARKER = "planted-secret-5d1e07"
WANDB_API_KEY = f"{SECRET_MARKER}-0123456789abcdef0123456789abcdef"
KEY_FILE = f"source/{EXTENSION}/robot_client.key"
OLD_RUN_NAME = "baseline"
SEED_FILES = (
    f"docker/.env.{EXTENSION}",
    f"docker/.env.{EXTENSION}-dev",
    "docker/cluster/.env.cluster",
    ".mount.config",
)
GIT = (
    "git",
    "-c",
    "user.name=My Robot Lab",
    "-c",
    "user.email=lab@example.org",
    "-c",
    "commit.gpgsign=false",
)


@dataclass(frozen=True)
class Seed:
    """What the seed tooling's files of a migrating project hold: the user they were filled in
    for on the workstation, and the cluster of ``docker/cluster/.env.cluster``."""

    user: str = "alice"
    home: str = "/home/alice"
    uid: int = 1000
    gid: int = 1000
    cluster_login: str = "alice@login.cluster.example.org"
    cluster_scheduler: str = "SLURM"
    cluster_home: str = "/cluster/home/alice"
    cluster_scratch: str = "/cluster/scratch/alice"


@dataclass(frozen=True)
class ForeignProject:
    """A copy of the fixture at ``path``, with ``seed``'s files when it has one."""

    path: Path
    seed: Seed | None = None

    @property
    def planted(self) -> tuple[str, ...]:
        """Files (relative paths) that must never reach an image or a code snapshot."""
        return (KEY_FILE, *(SEED_FILES if self.seed else ()))

    @property
    def old_run(self) -> Path:
        """The earlier training run in ``logs/``."""
        [run] = (self.path / "logs" / "rsl_rl" / EXPERIMENT).glob(f"*_{OLD_RUN_NAME}")
        return run

    def run_script(
        self, script: str, *args: str, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``python <script> ARGS`` of this project in ``cwd`` (default: the project), the
        extension importable as after ``pip install -e source/my_robot_ext``, Python's caches
        written into the project as in a user's checkout."""
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        package = str(self.path / "source" / EXTENSION)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (package, env.get("PYTHONPATH"))))
        return subprocess.run(
            [sys.executable, str(self.path / script), *args],
            cwd=cwd or self.path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )


def make_foreign_project(dest: Path, seed: Seed | None = None) -> ForeignProject:
    """The fixture copied to ``dest`` (which must not exist) as a git repository with one commit,
    then an earlier run, caches, a key and ``seed``'s files beside the commit."""
    shutil.copytree(FIXTURE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    # kept here without its dot, so that no .env.* file is committed to this repository
    (dest / "docker" / "env.base").rename(dest / "docker" / ".env.base")
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "Import")):
        subprocess.run([*GIT, "-C", str(dest), *args], check=True, capture_output=True)
    project = ForeignProject(dest, seed)
    old_run = project.run_script(
        "scripts/rsl_rl/train.py",
        "--task",
        TASK,
        "--run_name",
        OLD_RUN_NAME,
        "--max_iterations",
        "5",
    )
    if old_run.returncode != 0:
        raise AssertionError(f"the fixture's train.py failed:\n{old_run.stdout}{old_run.stderr}")
    key = dest / KEY_FILE
    key.write_text(f"-----BEGIN ROBOT CLIENT KEY-----\n{SECRET_MARKER}\n-----END-----\n")
    key.chmod(0o600)
    if seed:
        write_seed_files(dest, seed)
    return project


def write_seed_files(dest: Path, seed: Seed) -> None:
    """The seed tooling's files, filled in as its docker-README tells users to."""
    # the keys of the README's "Environment Files Setup" (the uid/gid names are not shown there)
    extension = (
        f"EXTENSION_NAME={EXTENSION}\nEXTENSION_FOLDER={dest}\nEXT_PATH=$EXTENSION_FOLDER\n"
        "DOCKER_EXT_PATH=/workspace/$EXTENSION_NAME\n"
    )
    host = f"HOST_HOME={seed.home}\nHOST_UID={seed.uid}\nHOST_GID={seed.gid}\n"
    (dest / "docker" / f".env.{EXTENSION}").write_text(
        f"# copied from docker/.env.{EXTENSION}.template and filled in\n{extension}{host}"
        "DOCKER_USER_NAME=root\nDOCKER_USER_HOME=/root\n"
    )
    (dest / "docker" / f".env.{EXTENSION}-dev").write_text(
        f"# copied from docker/.env.{EXTENSION}-dev.template and filled in\n{extension}{host}"
        f"DOCKER_USER_NAME={seed.user}\nDOCKER_USER_HOME={seed.home}\n"
    )
    # Isaac Lab's docker/cluster/.env.cluster keys; the seed's copy also holds the W&B key
    (dest / "docker" / "cluster").mkdir()
    (dest / "docker" / "cluster" / ".env.cluster").write_text(
        "# copied from docker/cluster/.env.cluster.template and filled in\n"
        f"CLUSTER_JOB_SCHEDULER={seed.cluster_scheduler}\n"
        f"CLUSTER_ISAAC_SIM_CACHE_DIR={seed.cluster_scratch}/docker-isaac-sim\n"
        f"CLUSTER_ISAACLAB_DIR={seed.cluster_home}/{EXTENSION}\n"
        f"CLUSTER_LOGIN={seed.cluster_login}\n"
        f"CLUSTER_SIF_PATH={seed.cluster_scratch}\n"
        "REMOVE_CODE_COPY_AFTER_JOB=false\n"
        "CLUSTER_PYTHON_EXECUTABLE=scripts/rsl_rl/train.py\n"
        f"WANDB_USERNAME={seed.user}\nWANDB_API_KEY={WANDB_API_KEY}\n"
    )
    # the README's two mounts, as the seed's mount_config.py writes them (JSON, both disabled)
    site_packages = "/workspace/isaaclab/_isaac_sim/kit/python/lib/python3.11/site-packages"
    mounts = {
        "isaaclab": ("~/IsaacLab", "/workspace/isaaclab", "source"),
        "rsl_rl": ("~/rsl_rl/rsl_rl", f"{site_packages}/rsl_rl", "full"),
    }
    (dest / ".mount.config").write_text(
        json.dumps(
            {
                "mounts": {
                    name: {
                        "enabled": False,
                        "local_path": local,
                        "container_path": container,
                        "mount_type": kind,
                        "sync_to_cluster": False,
                        "cluster_path": "",
                    }
                    for name, (local, container, kind) in mounts.items()
                }
            },
            indent=2,
        )
        + "\n"
    )
