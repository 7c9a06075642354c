"""A throw-away copy of this repository as an extension project, and the real ``pyinfra`` CLI
run on it (as root or as the lab's test user). Used by the tests and the benchmarks."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from isaac_deploy.model import paths
from isaac_deploy.model.paths import PROFILES
from isaac_deploy.model.workstation import HostUser, WorkstationConfig
from isaac_deploy.probes.extensions import extension_names

from . import engine
from .foreign import EXTENSION as FOREIGN_EXTENSION

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PYINFRA = VENV_BIN / "pyinfra"
# Tests use their own extension name so they never touch a real user's images or volumes.
TEST_EXTENSION = "lab_ext"
SKIP_PARTS = {
    ".git",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "logs",
    "build",
    ".isaac-deploy",
}


def remove_test_objects() -> list[str]:
    """Whatever any run of the tests left in the engine (``kind name`` each): containers,
    volumes of the tests' Compose projects, images of the tests' extensions (this project's
    copy and the foreign fixture), dangling images."""
    removed = []
    for extension in (TEST_EXTENSION, FOREIGN_EXTENSION):
        slug = extension.replace("_", "-")
        removed += engine.remove_test_objects(f"{slug}-", f"isaac-lab-{slug}")
    return removed


def project_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if (path.is_dir() and not path.is_symlink()) or SKIP_PARTS & set(rel.parts):
            continue
        if rel.name == ".mount.config" or rel.suffix == ".pyc":
            continue
        files.append(rel)
    return files


@dataclass
class Result:
    rc: int
    out: str

    def totals(self) -> dict[str, int]:
        """The "Grand total" row of pyinfra's results: operations, success, error, no change."""
        for line in self.out.splitlines():
            if line.strip().startswith("Grand total"):
                cells = line.split()[2:]
                values = [0 if cell == "-" else int(cell) for cell in cells]
                return dict(zip(["ops", "success", "error", "no_change"], values, strict=False))
        raise AssertionError(f"no results table in pyinfra output:\n{self.out}")

    def changed(self) -> list[str]:
        """The operations of pyinfra's results table that changed something, by name."""
        names, table = [], False
        for line in self.out.splitlines():
            if line.strip().startswith("Operation") and line.split()[-2:] == ["No", "Change"]:
                table = True
            elif table and line.strip().startswith("Grand total"):
                return names
            elif table and line.strip():
                *name, _hosts, success, _error, _no_change = line.split()
                if success != "-":
                    names.append(" ".join(name))
        raise AssertionError(f"no results table in pyinfra output:\n{self.out}")


@dataclass
class Project:
    """A copy of this repository as an extension project, owned by ``user``."""

    path: Path
    user: dict | None = None
    data: dict = field(default_factory=dict)
    venv_bin: Path = VENV_BIN

    @property
    def name(self) -> str:
        return TEST_EXTENSION

    @property
    def config(self) -> WorkstationConfig:
        """The deploy's model of this project (its Compose project, its images' names)."""
        user = self.user or {"name": "root", "uid": 0, "gid": 0, "home": "/root"}
        host_user = HostUser(user["name"], user["uid"], user["gid"], user["home"])
        return WorkstationConfig.from_host_data(
            self.data, host_user, str(self.path), tuple(extension_names(str(self.path)))
        )

    def remove_from_engine(self) -> None:
        """The containers and volumes of this project's Compose project and its images."""
        config = self.config
        engine.remove_compose_project(config.compose_project)
        engine.remove("image", [config.image_name(profile) for profile in PROFILES])

    def env_file(self, profile: str) -> Path:
        return Path(paths.env_file(self.path, TEST_EXTENSION, profile))

    @property
    def override_file(self) -> Path:
        return Path(paths.override_file(self.path))

    def shell(self, command: str, env: dict | None = None, check: bool = False) -> Result:
        """Run ``command`` in the project as its owner (a login shell for the test user)."""
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in (env or {}).items())
        if self.user:
            argv = [
                "su",
                "-",
                self.user["name"],
                "-c",
                f"{exports}cd {shlex.quote(str(self.path))} && {command}",
            ]
        else:
            argv = ["sh", "-c", f"{exports}cd {shlex.quote(str(self.path))} && {command}"]
        proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        result = Result(proc.returncode, proc.stdout + proc.stderr)
        if check and result.rc != 0:
            raise AssertionError(f"{command} failed ({result.rc}):\n{result.out}")
        return result

    def deploy(self, *args: str, data: dict | None = None, env: dict | None = None) -> Result:
        """The real CLI: ``pyinfra -y <inventory> deploy/dev.py`` with this project's data."""
        inventory = self.path.parent / "test_inventory.py"
        merged = {**self.data, **(data or {})}
        inventory.write_text(f"local = [('@local', {merged!r})]\n")
        if self.user:
            os.chown(inventory, self.user["uid"], self.user["gid"])
        flags = " ".join(shlex.quote(a) for a in args) if args else "-y"
        pyinfra = self.venv_bin / "pyinfra"
        return self.shell(f"{pyinfra} {flags} {shlex.quote(str(inventory))} deploy/dev.py", env=env)

    def compose(self, profile: str, *args: str) -> Result:
        service_profile = profile
        env_profile = "ext" if profile == "ext" else "ext-dev"
        command = (
            "docker compose -f docker/docker-compose.yaml "
            f"-f {shlex.quote(str(self.override_file))} --env-file "
            f"{shlex.quote(str(self.env_file(env_profile)))} --profile {service_profile} "
            + " ".join(shlex.quote(a) for a in args)
        )
        return self.shell(command)


def make_project(path: Path, user: dict | None, lab_info: dict) -> Project:
    for rel in project_files():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target, follow_symlinks=False)  # isaac_deploy/data/ links
    # the example extension under the tests' own name (its Python package stays ext_template)
    (path / "source" / "ext_template").rename(path / "source" / TEST_EXTENSION)
    data = {
        "isaac_extension_name": TEST_EXTENSION,
        "isaac_profiles": ("ext", "ext-dev"),
        "isaac_base_images": dict(lab_info["images"]),
        "isaac_base_source": "given",  # the lab makes its stand-ins in the engine
        "isaac_dev_pip_packages": "",  # the stand-in has no network for pip
    }
    # the CLI reads the same settings as the deploy, from the project's own inventory
    (path / "inventories" / "local.py").write_text(f"local = [('@local', {data!r})]\n")
    if user:
        subprocess.run(["chown", "-R", f"{user['uid']}:{user['gid']}", str(path)], check=True)
    return Project(path=path, user=user, data=data)


def venv_for(project: Project) -> Path:
    """A venv the project's owner can run: this one, or (when the checkout lies where others may
    not enter) a copy of isaac-deploy installed into a shared one, made once."""
    probe = project.shell(f"{VENV_BIN / 'python'} -c 'import isaac_deploy, pyinfra'")
    if probe.rc == 0:
        return VENV_BIN
    shared = Path("/var/tmp/isaac-deploy-lab-venv")
    if not (shared / "bin" / "isaac-deploy").exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(shared)], check=True)
        subprocess.run([str(shared / "bin" / "pip"), "install", "-q", str(ROOT)], check=True)
    return shared / "bin"
