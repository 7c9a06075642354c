"""What the roll-out decides before anything changes: yes/no settings, arguments, run keys, the
production image (only one built from the tree as it is)."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from isaac_deploy.cli import containers
from isaac_deploy.cli.project import Project, load
from isaac_deploy.deploys.cluster.plan import default_run_key, flag, image_id, job_args
from isaac_deploy.model import images, paths
from isaac_deploy.model.base_images import NVIDIA_IMAGE
from isaac_deploy.model.errors import ConfigError, ToolkitError
from isaac_deploy.model.images import INPUTS_LABEL, JOBS_INPUTS_LABEL
from isaac_deploy.probes import build_inputs as build_inputs_probe
from tests.helpers import ROOT
from tests.unit.test_cli_units import FakeEngine, inventories, make_root


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("yes", True), ("on", True), (True, True)]
    + [("0", False), ("false", False), ("no", False), ("off", False), (False, False)],
)
def test_yes_no_settings_take_the_usual_words(value, expected):
    assert flag({"isaac_submit": value}, "isaac_submit", default=not expected) is expected


def test_an_unset_yes_no_setting_is_its_default():
    assert flag({}, "isaac_submit", default=True) is True
    assert flag({"isaac_resubmit": ""}, "isaac_resubmit") is False


@pytest.mark.parametrize("value", ["maybe", "enable", "2", "yess"])
def test_a_value_that_is_neither_yes_nor_no_names_the_key(value):
    with pytest.raises(ConfigError, match=f"isaac_submit: must be true or false, got '{value}'"):
        flag({"isaac_submit": value}, "isaac_submit", default=True)


def test_job_arguments_from_a_list_or_a_string():
    assert job_args(["--task", "a b", "$(id)"]) == ("--task", "a b", "$(id)")
    assert job_args("--task 'a b' --n 3") == ("--task", "a b", "--n", "3")
    assert job_args(None) == ()


def test_the_default_run_key_follows_the_commit_the_arguments_and_the_code():
    code = "sha256:" + "a" * 64
    key = default_run_key("abc123", ("--task", "X"), code)
    assert key.startswith("abc123-") and len(key) == len("abc123-") + 8
    assert key == default_run_key("abc123", ("--task", "X"), code)  # nothing changed: no new run
    assert key != default_run_key("abc123", ("--task", "Y"), code)
    assert key != default_run_key("abc123", ("--task", "X"), "sha256:" + "b" * 64)  # an edit
    assert default_run_key(None, (), code).startswith("run-")


IMAGE = "isaac-lab-ext-template:root"
BASE = NVIDIA_IMAGE  # the default base image
REBUILD = "rebuild it with `isaac-deploy -p ext build`, then roll out again"


class Workstation:
    """A project and this workstation's engine (fake), where ``build()`` does what
    ``isaac-deploy -p ext build`` does to the engine: the image, labelled with its inputs."""

    def __init__(self, root, monkeypatch) -> None:
        self.root = root
        self.engine = FakeEngine({BASE: "sha256:" + "b" * 64})
        monkeypatch.setattr(build_inputs_probe, "docker_client", lambda: self.engine)
        self.calls: list[list[str]] = []
        monkeypatch.setattr(
            containers.build_context, "build", lambda _, argv: self.calls.append(argv) or 0
        )

    def project(self, **data) -> Project:
        (inventories(self.root) / "local.py").write_text(f"local = [('@local', {data!r})]\n")
        return load(self.root)

    def build(self, project: Project) -> str:
        assert containers.build(project, "ext", []) == 0
        argv = self.calls.pop()
        labels = dict(argv[i + 1].split("=", 1) for i, word in enumerate(argv) if word == "--label")
        assert set(labels) == {INPUTS_LABEL, JOBS_INPUTS_LABEL}
        image = "sha256:" + hashlib.sha256(labels[INPUTS_LABEL].encode()).hexdigest()
        self.engine.images[IMAGE] = image
        self.engine.labels[IMAGE] = labels
        return image


@pytest.fixture
def ws(tmp_path, monkeypatch):
    (tmp_path / "project").mkdir()
    root = make_root(tmp_path / "project", {})
    shutil.copy(ROOT / ".dockerignore", root / ".dockerignore")
    (root / "source" / "ext_template" / "pkg" / "tasks.py").write_text("REACH = 1\n")
    (root / "scripts").mkdir()
    (root / "scripts" / "train.py").write_text("print('train')\n")
    # isaac-deploy's Docker files, as an installed version has them (an upgrade may edit them)
    shutil.copytree(ROOT / "docker", tmp_path / "package-docker")
    monkeypatch.setattr(paths, "PACKAGE_DOCKER", tmp_path / "package-docker")
    images.docker_file.cache_clear()
    yield Workstation(root, monkeypatch)
    images.docker_file.cache_clear()


def test_the_image_built_from_the_tree_as_it_is_is_the_one_rolled_out(ws):
    project = ws.project()
    built = ws.build(project)
    assert image_id(project.config) == built
    # what never enters the image does not make it stale
    (ws.root / "README.md").write_text("notes\n")
    (ws.root / ".mount.config").write_text("{}\n")
    (ws.root / ".vscode").mkdir()
    (ws.root / ".vscode" / "tasks.json").write_text("{}\n")
    (ws.root / "docker" / "Dockerfile").write_text("FROM the-projects-own\n")
    (ws.root / "source" / "ext_template" / "pkg" / "tasks.pyc").write_bytes(b"\0")
    assert image_id(project.config) == built


def test_a_code_edit_needs_no_new_image_the_code_snapshot_carries_it(ws):
    """Jobs bind their code snapshot over the extension's folder in the image: an edit of the
    extension's code or scripts reaches them without a new (multi-gigabyte) image."""
    project = ws.project()
    built = ws.build(project)
    tasks = ws.root / "source" / "ext_template" / "pkg" / "tasks.py"
    tasks.write_text(tasks.read_text() + "REACH = 2\n")
    (ws.root / "scripts" / "probe.py").write_text("print('probe')\n")
    assert image_id(project.config) == built


@pytest.mark.parametrize(
    "change",
    ["packaging metadata", "entrypoint", "Dockerfile", "base image", "build argument"],
)
def test_an_image_older_than_its_inputs_is_refused_until_rebuilt(ws, change):
    project = ws.project()
    ws.build(project)
    if change == "packaging metadata":
        (ws.root / "source" / "ext_template" / "pyproject.toml").write_text("[project]\n")
    elif change in ("entrypoint", "Dockerfile"):  # another isaac-deploy version's
        name = "entrypoint.sh" if change == "entrypoint" else "Dockerfile.ext"
        path = paths.PACKAGE_DOCKER / name
        path.write_text(path.read_text() + "# edited\n")
        images.docker_file.cache_clear()
    elif change == "base image":
        ws.engine.images[BASE] = "sha256:" + "c" * 64
    else:
        project = ws.project(isaac_isaacsim_root="/opt/isaac-sim")
    with pytest.raises(ToolkitError) as refused:
        image_id(project.config)
    assert str(refused.value) == (
        f"image {IMAGE} is out of date: its Dockerfile, base image, build arguments, entrypoint "
        f"or the extension's packaging metadata changed since it was built; {REBUILD}"
    )
    rebuilt = ws.build(project)
    assert image_id(project.config) == rebuilt


def test_an_image_without_the_inputs_label_is_refused(ws):
    project = ws.project()
    ws.engine.images[IMAGE] = "sha256:" + "d" * 64  # e.g. a plain `docker compose build`
    with pytest.raises(ToolkitError) as refused:
        image_id(project.config)
    assert str(refused.value) == (
        f"image {IMAGE} is out of date: it has no {INPUTS_LABEL} label (not built by "
        f"isaac-deploy); {REBUILD}"
    )


def test_no_image_or_nothing_to_check_it_against_is_one_line(ws):
    project = ws.project()
    with pytest.raises(ToolkitError) as missing:
        image_id(project.config)
    assert (
        str(missing.value)
        == f"image {IMAGE} is not built: build it with `isaac-deploy -p ext build`"
    )
    ws.build(project)
    del ws.engine.images[BASE]
    with pytest.raises(ToolkitError) as no_base:
        image_id(project.config)
    assert str(no_base.value).startswith(
        f"cannot check image {IMAGE} against its source: base image {BASE} is "
        f"missing, so {IMAGE} is not built: run the workstation deploy (`isaac-deploy setup`): "
        f"it pulls {BASE}"
    )
    ws.engine.get_many = lambda urls: {url: (0, "permission denied") for url in urls}
    with pytest.raises(ToolkitError) as unusable:
        image_id(project.config)
    assert str(unusable.value) == (
        f"cannot check image {IMAGE} against its source: Docker is not usable: permission denied"
    )
