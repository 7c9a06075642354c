"""`pyinfra <inventory> deploy/dev.py` for real on @local, end state checked with testinfra.

The tests in this module share one project copy and run in order: dry run, first run, no-op
re-run, then changes and bad input on top of that state.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time

import pytest
import testinfra

import docker
from isaac_deploy.operations.docker import DAEMON_PIDFILE
from tests.conftest import (
    PYINFRA,
    build_leftovers,
    failing_dockerfile,
    package_with,
    tree_state,
)
from tests.helpers import ROOT

pytestmark = pytest.mark.lab
LOCAL = testinfra.get_host("local://")


@pytest.fixture(scope="module")
def project(root_project):
    return root_project


def image_labels(ref: str) -> dict | None:
    try:
        return docker.from_env().images.get(ref).labels
    except docker.errors.ImageNotFound:
        return None


def tar_names(chunks) -> list[str]:
    """Member names of a streamed tar (``docker export``)."""
    reader = io.BufferedReader(_ChunkStream(chunks))
    with tarfile.open(fileobj=reader, mode="r|") as archive:
        return [member.name.removeprefix("./") for member in archive]


class _ChunkStream(io.RawIOBase):
    def __init__(self, chunks) -> None:
        self.chunks, self.buffer = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self.buffer:
            try:
                self.buffer = next(self.chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self.buffer))
        target[:size], self.buffer = self.buffer[:size], self.buffer[size:]
        return size


def test_dry_run_shows_the_plan_and_changes_nothing(project):
    before = tree_state(project.path)
    result = project.deploy("--dry")
    assert result.rc == 0, result.out
    assert "Detected changes" in result.out
    assert "Env file lab_ext-dev.env" in result.out and "Images isaac-lab-lab-ext" in result.out
    assert tree_state(project.path) == before
    assert image_labels("isaac-lab-lab-ext:root") is None


def test_first_run_makes_it_true(project):
    result = project.deploy(env={"WANDB_API_KEY": "wandb-s3cr3t-0123456789"})
    assert result.rc == 0, result.out
    totals = result.totals()
    assert totals["error"] == 0 and totals["success"] >= 4
    for profile in ("ext", "ext-dev"):
        env_file = LOCAL.file(str(project.env_file(profile)))
        assert env_file.exists and env_file.mode == 0o600 and env_file.user == "root"
        assert f"EXTENSION_FOLDER='{project.path}'" in env_file.content_string
    override = LOCAL.file(str(project.override_file))
    assert override.exists and "!reset" in override.content_string  # no GPU here: CPU-only
    assert LOCAL.file(str(project.path / "logs")).is_directory
    for ref in ("isaac-lab-lab-ext:root", "isaac-lab-lab-ext-dev:root"):
        labels = image_labels(ref)
        assert labels and labels["org.isaac-deploy.inputs"].startswith("sha256:")


def test_secret_is_a_0600_file_and_never_in_output_or_rendered_files(project):
    key_file = LOCAL.file("/root/.config/isaac-deploy/lab_ext/wandb_api_key")
    assert key_file.mode == 0o600 and key_file.content_string == "wandb-s3cr3t-0123456789\n"
    assert LOCAL.file("/root/.config/isaac-deploy/lab_ext").mode == 0o700
    result = project.deploy("-y", "--diff", "-vv", env={"WANDB_API_KEY": "wandb-s3cr3t-0123456789"})
    assert result.rc == 0 and "wandb-s3cr3t" not in result.out
    for path in (
        project.env_file("ext"),
        project.env_file("ext-dev"),
        project.override_file,
    ):
        assert "wandb-s3cr3t" not in path.read_text()
    assert "WANDB_API_KEY_FILE='/root/.config/isaac-deploy/lab_ext/wandb_api_key'" in (
        project.env_file("ext").read_text()
    )


def test_second_run_reports_zero_changes(project):
    before = tree_state(project.path)
    result = project.deploy()
    assert result.rc == 0, result.out
    totals = result.totals()
    assert totals["success"] == 0 and totals["error"] == 0 and totals["no_change"] == totals["ops"]
    assert tree_state(project.path) == before


def test_images_hold_no_env_files_mount_config_or_secrets(project):
    client = docker.from_env()
    for ref in ("isaac-lab-lab-ext:root", "isaac-lab-lab-ext-dev:root"):
        image = client.images.get(ref)
        history = json.dumps(image.history()) + json.dumps(image.attrs["Config"])
        assert "wandb-s3cr3t" not in history and "WANDB_API_KEY=" not in history
        container = client.containers.create(ref, command=["true"])
        try:
            names = tar_names(container.export())
        finally:
            container.remove(force=True)
        workspace = [n for n in names if n.startswith("workspace/lab_ext/")]
        assert "workspace/lab_ext/scripts/rsl_rl/train.py" in workspace
        assert not [n for n in names if "/.env" in n or n.endswith(".mount.config")]
        assert not [n for n in names if "wandb_api_key" in n or "override.yaml" in n]
        assert not [
            n
            for n in workspace
            if n.startswith(("workspace/lab_ext/docker/", "workspace/lab_ext/tests/"))
        ]


def test_changed_context_rebuilds_unrelated_change_does_not(project):
    before = image_labels("isaac-lab-lab-ext:root")["org.isaac-deploy.inputs"]
    (project.path / "README.md").write_text("changed outside the build context\n")
    (project.path / "tests" / "new_test.py").write_text("# not in the image\n")
    result = project.deploy()
    assert result.totals()["success"] == 0, result.out
    assert image_labels("isaac-lab-lab-ext:root")["org.isaac-deploy.inputs"] == before

    module = project.path / "source" / "lab_ext" / "ext_template" / "tasks.py"
    module.write_text(module.read_text() + "\n# changed\n")
    result = project.deploy()
    assert result.rc == 0 and result.totals()["success"] == 1, result.out
    assert image_labels("isaac-lab-lab-ext:root")["org.isaac-deploy.inputs"] != before
    assert project.deploy().totals()["success"] == 0


def test_changed_dockerfile_rebuilds_its_image_only(project, tmp_path):
    """The Dockerfiles are isaac-deploy's (the package's): another version's text is an input
    of its image. Afterwards the module's images again."""
    client = docker.from_env()
    ext_before = client.images.get("isaac-lab-lab-ext:root")
    dev_before = client.images.get("isaac-lab-lab-ext-dev:root")
    original = (ROOT / "docker" / "Dockerfile.ext-dev").read_text()
    edited = original + "\nLABEL org.isaac-deploy.test=dockerfile-changed\n"
    upgraded = package_with(tmp_path, "Dockerfile.ext-dev", edited)
    result = project.deploy(env=upgraded)
    # (the other package's compose file is also the one the editor's dev container names)
    changed = [
        "VS Code's dev container (.devcontainer/isaac-deploy/) | Dev container's compose file "
        "(devcontainer-compose.yaml)",
        "Extension images | Images isaac-lab-lab-ext:root, isaac-lab-lab-ext-dev:root",
    ]
    assert result.rc == 0 and result.changed() == changed, result.out
    dev_after = client.images.get("isaac-lab-lab-ext-dev:root")
    assert dev_after.id != dev_before.id
    assert dev_after.labels["org.isaac-deploy.test"] == "dockerfile-changed"
    assert (
        dev_after.labels["org.isaac-deploy.inputs"] != dev_before.labels["org.isaac-deploy.inputs"]
    )
    ext_after = client.images.get("isaac-lab-lab-ext:root")
    assert ext_after.id == ext_before.id and ext_after.labels == ext_before.labels
    result = project.deploy(env=upgraded)
    assert result.rc == 0 and result.totals()["success"] == 0, result.out
    result = project.deploy()  # this version's text: its digest again, the image as it was built
    assert result.rc == 0 and result.changed() == changed, result.out
    assert (
        image_labels("isaac-lab-lab-ext-dev:root")["org.isaac-deploy.inputs"]
        == dev_before.labels["org.isaac-deploy.inputs"]
    )
    assert "org.isaac-deploy.test" not in image_labels("isaac-lab-lab-ext-dev:root")
    assert client.images.get("isaac-lab-lab-ext:root").id == ext_before.id


def test_hand_edited_env_file_is_kept_with_a_diff_unless_told(project):
    env_file = project.env_file("ext-dev")
    edited = env_file.read_text().replace("WANDB_MODE='online'", "WANDB_MODE='offline'")
    env_file.write_text(edited)
    result = project.deploy(data={"isaac_wandb": {"project": "new-project"}})
    assert result.rc == 0, result.out
    assert f"kept {env_file}: it was edited by hand" in result.out
    assert "new-project" in result.out  # the diff of what the deploy would write
    assert env_file.read_text() == edited
    result = project.deploy(
        data={"isaac_wandb": {"project": "new-project"}, "isaac_env_overwrite_edited": True}
    )
    assert result.rc == 0, result.out
    assert "WANDB_PROJECT='new-project'" in env_file.read_text()
    assert env_file.with_name(env_file.name + ".edited").read_text() == edited
    assert LOCAL.file(str(env_file)).mode == 0o600


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"isaac_uid": "abc"}, "isaac_uid: must be an integer, got 'abc'"),
        (
            {"isaac_extension_folder": "/nonexistent/ext"},
            "isaac_extension_folder: /nonexistent/ext does not exist",
        ),
        ({"isaac_extension_folder": "/tmp"}, "/tmp/source/lab_ext is not an extension package"),
        ({"isaac_extension_name": "other_ext"}, "other_ext is not an extension package (source/ "),
        ({"isaac_extension_name": "bad name"}, "isaac_extension_name: 'bad name' is not a valid"),
        ({"isaac_profiles": ["prod"]}, "isaac_profiles[0]: must be one of 'ext', 'ext-dev'"),
        ({"isaac_uid": 99999999999}, "isaac_uid: must be at most 2147483647, got 99999999999"),
        ({"isaac_gid": 2000}, "isaac_gid: set isaac_uid too: a gid alone would run the"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(project, data, words):
    before = tree_state(project.path)
    result = project.deploy(data=data)
    assert result.rc != 0
    errors = [line for line in result.out.splitlines() if "pyinfra error" in line]
    assert len(errors) == 1 and words in errors[0], result.out
    assert "Traceback" not in result.out and "Starting operation" not in result.out
    assert tree_state(project.path) == before


def test_a_failed_build_leaves_no_container_and_no_dangling_image(project, tmp_path):
    """A step that commits a layer, then one that fails: the engine has the same containers and
    no new dangling image afterwards; the image stays as it was."""
    client = docker.from_env()
    dev_before = client.images.get("isaac-lab-lab-ext-dev:root").id
    original = (ROOT / "docker" / "Dockerfile.ext-dev").read_text()
    failing = package_with(tmp_path, "Dockerfile.ext-dev", failing_dockerfile(original))
    containers, dangling = build_leftovers()
    result = project.deploy(env=failing)
    assert result.rc != 0 and "build-step-failed" in result.out, result.out
    containers_after, dangling_after = build_leftovers()
    assert containers_after == containers and dangling_after <= dangling
    assert client.images.get("isaac-lab-lab-ext-dev:root").id == dev_before


def test_root_may_run_the_dev_container_as_another_uid(project):
    """Root's name is taken in the image, so the new account is isaac-<uid>; a uid alone keeps
    root's gid. The module's own settings and image come back afterwards."""
    try:
        for data, ids in (
            ({"isaac_uid": 2000, "isaac_gid": 2000}, "2000 2000 isaac-2000"),
            ({"isaac_uid": 2001}, "2001 0 isaac-2001"),
        ):
            result = project.deploy(data=data)
            assert result.rc == 0, result.out
            run = project.compose(
                "ext-dev", "run", "--rm", "ext-dev", "sh", "-c", "echo $(id -u) $(id -g) $(id -un)"
            )
            assert run.rc == 0 and ids in run.out.splitlines(), run.out
    finally:
        result = project.deploy()
    assert result.rc == 0 and "HOST_UID='0'" in project.env_file("ext-dev").read_text()


def test_bad_mount_config_is_refused_before_anything_changes(project):
    (project.path / ".mount.config").write_text(
        json.dumps(
            {
                "mounts": {
                    "isaaclab": {
                        "enabled": True,
                        "local_path": str(project.path / "no-isaaclab"),
                        "container_path": "/workspace/isaaclab",
                        "mount_type": "source",
                    }
                }
            }
        )
    )
    before = tree_state(project.path)
    result = project.deploy()
    assert result.rc != 0 and "mounts.isaaclab: local_path" in result.out
    assert tree_state(project.path) == before
    (project.path / ".mount.config").unlink()


def test_missing_base_image_one_line_and_the_rest_completes(project):
    project.env_file("ext").unlink()
    result = project.deploy(
        data={
            "isaac_base_images": {
                "ext": "isaac-lab-missing:9.9",
                "ext-dev": "isaac-lab-missing:9.9",
            }
        }
    )
    assert result.rc == 0, result.out
    lines = [
        line
        for line in result.out.splitlines()
        if "base image isaac-lab-missing:9.9 is missing" in line
    ]
    assert len(lines) == 2 and "Isaac Lab checkout" in lines[0]
    assert project.env_file("ext").exists()  # the rest of the deploy still ran


def test_no_docker_in_check_only_mode_is_one_actionable_line(project):
    """Docker hidden in a private mount namespace: check-only mode must stop before changes."""
    hide = " ".join(
        f"mount --bind /dev/null {path};"
        for path in ("/usr/bin/docker", "/usr/local/bin/docker", "/usr/sbin/dockerd")
        if os.path.exists(path)
    )
    project.deploy("--dry", data={"isaac_provision": "check"})  # writes the inventory file
    before = tree_state(project.path)
    proc = subprocess.run(
        [
            "unshare",
            "--mount",
            "sh",
            "-c",
            f"{hide} cd '{project.path}' && /usr/bin/env PATH=/usr/local/bin:/usr/bin:/bin "
            f"'{PYINFRA}' -y ../test_inventory.py deploy/dev.py",
        ],
        capture_output=True,
        text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    errors = [line for line in out.splitlines() if "pyinfra error" in line]
    assert (
        len(errors) == 1 and "Docker is not installed and isaac_provision='check'" in errors[0]
    ), out
    assert "sudo apt-get install docker.io" in errors[0]
    assert tree_state(project.path) == before


def dockerd_pids() -> set[str]:
    return set(
        subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    )


def test_dead_docker_host_is_one_line_naming_it_and_nothing_starts(project, tmp_path):
    """DOCKER_HOST to a dead socket while the lab's engine runs: the deploy names the variable
    and the endpoint in one line, at once (no 20 s wait for a daemon), and changes nothing."""
    dead = f"unix://{tmp_path}/nope.sock"
    before, engines = tree_state(project.path), dockerd_pids()
    started = time.monotonic()
    result = project.deploy(env={"DOCKER_HOST": dead})
    elapsed = time.monotonic() - started
    assert result.rc != 0, result.out
    errors = [line for line in result.out.splitlines() if "pyinfra error" in line]
    assert len(errors) == 1, result.out
    assert f"DOCKER_HOST points to {dead}, where no Docker engine answers" in errors[0]
    assert (
        f"-> unset DOCKER_HOST to use this machine's engine, or start the Docker daemon at {dead}"
        in errors[0]
    )
    assert "Starting operation" not in result.out and "dockerd did not start" not in result.out
    assert elapsed < 10, f"{elapsed:.1f} s"
    assert dockerd_pids() == engines and not os.path.exists(DAEMON_PIDFILE)
    assert tree_state(project.path) == before
    assert docker.from_env().ping()  # the lab's engine, untouched


def compose_config(project, profile: str, env_profile: str, env: dict | None = None):
    """``docker compose config`` of ``profile`` as a user would run it in the project."""
    argv = [
        "docker",
        "compose",
        "-f",
        "docker/docker-compose.yaml",
        "-f",
        str(project.override_file),
    ]
    argv += ["--env-file", str(project.env_file(env_profile))]
    argv += ["--profile", profile, "config", "--format", "json"]
    return subprocess.run(argv, cwd=project.path, capture_output=True, text=True, env=env)


def test_compose_file_works_without_display_or_ssh_agent(project):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "SSH_AUTH_SOCK")}
    for profile, env_profile in (
        ("ext", "ext"),
        ("ext-dev", "ext-dev"),
        ("ext-dev-rootless", "ext-dev"),
    ):
        proc = compose_config(project, profile, env_profile, env)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        service = json.loads(proc.stdout)["services"][profile]
        assert "deploy" not in service  # the override resets the GPU reservation here
        assert service["network_mode"] == "host"
        assert service["environment"]["DISPLAY"] is None  # passed on only when set
        assert all(v.get("source") for v in service["volumes"] if v["type"] == "bind")


def test_cache_volumes_really_are_separate_volumes(project):
    proc = compose_config(project, "ext-dev", "ext-dev")
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    named = [v for v in config["services"]["ext-dev"]["volumes"] if v["type"] == "volume"]
    assert len(named) == 9  # eight caches and the shell history
    assert len({v["source"] for v in named}) == 9 and len({v["target"] for v in named}) == 9
    assert all(config["volumes"][v["source"]]["name"].startswith("lab-ext-root_") for v in named)
