"""Images of a real extension project (#11.3, #11.4): the foreign fixture (the Isaac Lab
extension template's layout, renamed, with its own deny-list .dockerignore, planted secrets and
the seed's files) built by `deploy/dev.py` against the lab's engine, as root, its end state read
from the engine: no planted file or secret in any layer or in the history, the extension
installed with its INSTALL_REQUIRES (``pip check`` clean), nothing rebuilt for files outside
the selection, a failed dependency install one line, and a base image whose last USER is not
root. The tests run in order on one copy of the fixture."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

import docker
from isaac_deploy.probes import local
from tests.conftest import PYINFRA, build_leftovers
from tests.helpers import ROOT
from tests.lab import engine
from tests.lab.foreign import (
    EXTENSION,
    KEY_FILE,
    REQUIREMENT,
    SECRET_MARKER,
    WANDB_API_KEY,
    ForeignProject,
    Seed,
    make_foreign_project,
)
from tests.lab.project import Result

pytestmark = pytest.mark.lab
IMAGES = {"ext": "isaac-lab-my-robot-ext:root", "ext-dev": "isaac-lab-my-robot-ext-dev:root"}
WORKSPACE = f"workspace/{EXTENSION}/"
# what never enters an image or a snapshot, besides the planted key and the seed's files
NEVER = (".vscode/tasks.json", ".vscode/settings.json", "README.md", ".git/HEAD", "logs/rsl_rl")


@pytest.fixture(scope="module")
def foreign(lab, tmp_path_factory):
    project = make_foreign_project(tmp_path_factory.mktemp("foreign") / EXTENSION, Seed())
    data = {
        "isaac_extension_folder": str(project.path),
        "isaac_extension_name": EXTENSION,
        "isaac_profiles": ("ext", "ext-dev"),
        "isaac_base_images": dict(lab["images"]),
        "isaac_dev_pip_packages": "",  # the stand-in installs from its wheelhouse only
    }
    yield project, data
    engine.remove("image", list(IMAGES.values()))


def deploy(project: ForeignProject, data: dict) -> Result:
    """The real CLI: ``pyinfra -y <inventory> deploy/dev.py`` (this checkout's), as root."""
    inventory = project.path.parent / "inventory.py"
    inventory.write_text(f"local = [('@local', {data!r})]\n")
    argv = [str(PYINFRA), "-y", str(inventory), str(ROOT / "deploy" / "dev.py")]
    done = subprocess.run(argv, cwd=project.path, capture_output=True, text=True)
    return Result(done.returncode, done.stdout + done.stderr)


def run_in(image: str, *command: str) -> subprocess.CompletedProcess[str]:
    """``docker run --rm IMAGE COMMAND`` (through the image's entrypoint)."""
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image, *command],
        capture_output=True,
        text=True,
    )


def image_ids() -> dict[str, str]:
    client = docker.from_env()
    return {profile: client.images.get(ref).id for profile, ref in IMAGES.items()}


def test_the_images_build_with_the_extensions_dependencies(foreign):
    project, data = foreign
    result = deploy(project, data)
    assert result.rc == 0, result.out
    client = docker.from_env()
    for ref in IMAGES.values():
        labels = client.images.get(ref).labels
        assert labels["org.isaac-deploy.inputs"].startswith("sha256:"), ref
        check = run_in(ref, "python", "-m", "pip", "check")
        assert check.returncode == 0 and "No broken requirements found" in check.stdout, check
        # INSTALL_REQUIRES installed; the version setup.py read from config/extension.toml
        show = run_in(
            ref, "python", "-c", f"import tomli_w, {EXTENSION}; print(tomli_w.dumps({{}}) == '')"
        )
        assert show.returncode == 0 and show.stdout == "True\n", show
        shown = run_in(ref, "python", "-m", "pip", "show", EXTENSION, REQUIREMENT)
        assert shown.returncode == 0 and "Version: 0.3.1" in shown.stdout, shown  # both found


def layer_names_and_secrets(ref: str, scratch: Path) -> tuple[list[str], list[str]]:
    """Every file name in every layer of ``ref`` (``docker save``), and the names of the files
    (layers, configs, manifests, and every file in a layer) that hold the planted marker."""
    saved = scratch / "image.tar"
    with saved.open("wb") as out:
        subprocess.run(["docker", "save", ref], stdout=out, check=True)
    names, marked = [], []
    marker = SECRET_MARKER.encode()
    with tarfile.open(saved) as outer:
        for blob in outer.getmembers():
            if not blob.isfile():
                continue
            data = outer.extractfile(blob).read()
            if marker in data:
                marked.append(blob.name)
            try:
                layer = tarfile.open(fileobj=io.BytesIO(data))
            except tarfile.TarError:
                continue  # a config or manifest (JSON)
            with layer:
                for member in layer.getmembers():
                    names.append(member.name.removeprefix("./"))
                    if member.isfile() and marker in layer.extractfile(member).read():
                        marked.append(f"{blob.name}:{member.name}")
    saved.unlink()
    return names, marked


def test_no_planted_file_or_secret_is_in_any_layer_or_the_history(foreign, tmp_path):
    project, _ = foreign
    assert SECRET_MARKER in (project.path / KEY_FILE).read_text()  # planted, next to the code
    for ref in IMAGES.values():
        names, marked = layer_names_and_secrets(ref, tmp_path)
        assert marked == [], ref
        workspace = [n.removeprefix(WORKSPACE) for n in names if n.startswith(WORKSPACE)]
        assert (
            f"source/{EXTENSION}/setup.py" in workspace and "scripts/rsl_rl/train.py" in workspace
        )
        for planted in (*project.planted, *NEVER):
            assert not [n for n in workspace if n == planted or n.startswith(planted + "/")], (
                planted
            )
        outside = {n.split("/", 1)[0] for n in workspace} - {"source", "scripts", ""}
        assert outside <= {"logs"}, outside  # the empty logs folder the image makes
        assert not [n for n in workspace if n.startswith("logs/")]
        assert not [n for n in names if n.rsplit("/", 1)[-1].startswith(".env.")], ref
        history = subprocess.run(
            ["docker", "history", "--no-trunc", ref], capture_output=True, text=True, check=True
        ).stdout
        inspect = subprocess.run(
            ["docker", "image", "inspect", ref], capture_output=True, text=True, check=True
        ).stdout
        for text in (history, inspect):
            assert SECRET_MARKER not in text and WANDB_API_KEY not in text, ref


def test_the_code_snapshot_leaves_the_planted_files_out(foreign):
    project, _ = foreign
    with open(local.snapshot_files(str(project.path)).files_from) as listed:
        sent = listed.read().splitlines()
    assert f"source/{EXTENSION}/setup.py" in sent and "scripts/rsl_rl/train.py" in sent
    assert all(rel.startswith(("source/", "scripts/")) for rel in sent), sent
    for planted in (*project.planted, *NEVER):
        assert planted not in sent and not [rel for rel in sent if rel.startswith(planted + "/")]
    assert not [rel for rel in sent if "__pycache__" in rel or rel.endswith(".pyc")]


def test_files_outside_the_selection_rebuild_nothing(foreign):
    project, data = foreign
    before = image_ids()
    (project.path / "README.md").write_text("# edited by hand\n")
    tasks = project.path / ".vscode" / "tasks.json"
    tasks.write_text(json.dumps({"version": "2.0.0", "tasks": []}))
    (project.path / "docker" / "Dockerfile").write_text("FROM the-projects-own\n")
    (project.path / "logs" / "new-run.txt").write_text("a training output\n")
    result = deploy(project, data)
    assert result.rc == 0 and result.totals()["success"] == 0, result.out
    assert image_ids() == before
    # ... while an edit of the extension's code does rebuild (both images hold it)
    module = project.path / "source" / EXTENSION / EXTENSION / "tasks" / "__init__.py"
    module.write_text(module.read_text() + "\n# edited\n")
    result = deploy(project, data)
    assert result.rc == 0, result.out
    after = image_ids()
    assert after["ext"] != before["ext"] and after["ext-dev"] != before["ext-dev"]


def test_a_missing_dependency_fails_the_build_in_one_line_and_leaves_nothing(foreign):
    project, data = foreign
    before = image_ids()
    setup = project.path / "source" / EXTENSION / "setup.py"
    original = setup.read_text()
    containers, dangling = build_leftovers()
    setup.write_text(
        original.replace('"tomli-w",', '"tomli-w",\n    "isaac-deploy-no-such-requirement",')
    )
    try:
        result = deploy(project, data)
    finally:
        setup.write_text(original)
    assert result.rc != 0 and "isaac-deploy-no-such-requirement" in result.out, result.out
    folder = f"/{WORKSPACE}source/{EXTENSION}"
    assert (
        f"isaac-deploy: installing the extension {folder} with its dependencies "
        "(INSTALL_REQUIRES, pyproject.toml) failed: see pip's output above"
    ) in result.out
    containers_after, dangling_after = build_leftovers()
    assert containers_after == containers and dangling_after <= dangling
    assert image_ids() == before


def test_images_build_on_a_base_whose_last_user_is_not_root(foreign, lab):
    """Production runs as root; the dev image as the configured host user (2000 here)."""
    project, data = foreign
    nonroot = lab["nonroot_image"]
    client = docker.from_env()
    assert client.images.get(nonroot).attrs["Config"]["User"] == "isaac-sim"
    data = {
        **data,
        "isaac_base_images": {"ext": nonroot, "ext-dev": nonroot},
        "isaac_uid": 2000,
        "isaac_gid": 2000,
    }
    result = deploy(project, data)
    assert result.rc == 0, result.out
    users = {p: client.images.get(ref).attrs["Config"]["User"] for p, ref in IMAGES.items()}
    assert users == {"ext": "root", "ext-dev": "2000:2000"}
    for ref, ids in ((IMAGES["ext"], "0 0"), (IMAGES["ext-dev"], "2000 2000")):
        whoami = run_in(
            ref, "sh", "-c", f"echo $(id -u) $(id -g); python -c 'import {EXTENSION}, tomli_w'"
        )
        assert whoami.returncode == 0 and whoami.stdout == f"{ids}\n", whoami
