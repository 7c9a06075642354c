"""`pyinfra <inventory> deploy/push.py` against the lab's registry: TLS with its own CA and
htpasswd authentication; contents checked with `skopeo inspect`, bytes with the registry's
own storage."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import docker
from tests.lab import lab as lab_module
from tests.lab import registry as lab_registry

pytestmark = pytest.mark.lab
PASSWORD_ENV = "LAB_REGISTRY_PASSWORD"
AUTH_FILE = Path("/root/.config/isaac-deploy/registries/lab/auth.json")


@pytest.fixture(scope="module")
def pushed(root_project, lab):
    """The root project as a git checkout with a built production image."""
    project = root_project
    registry = lab["registry"]
    subprocess.run(["git", "init", "-q", str(project.path)], check=True)
    git = [
        "git",
        "-C",
        str(project.path),
        "-c",
        "user.name=lab",
        "-c",
        "user.email=lab@example.org",
    ]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "lab"], check=True)
    project.data = {
        **project.data,
        "isaac_profiles": ("ext",),
        "isaac_registries": {
            "lab": {
                "address": registry["address"],
                "prefix": "team/isaac",
                "ca_file": registry["ca"],
                "username": registry["user"],
                "password_env": PASSWORD_ENV,
            }
        },
    }
    assert project.deploy().rc == 0
    return project, registry


def push(project, registry, password=None, data=None, *flags):
    inventory = project.path.parent / "push_inventory.py"
    inventory.write_text(f"local = [('@local', { ({**project.data, **(data or {})})!r})]\n")
    env = {PASSWORD_ENV: registry["password"] if password is None else password}
    return project.shell(
        f"{project.venv_bin}/pyinfra -y {' '.join(flags)} {inventory} deploy/push.py", env=env
    )


def remote(registry, tag: str) -> str | None:
    """The config digest the registry holds for ``tag`` (the local image ID when current)."""
    proc = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--creds",
            f"{registry['user']}:{registry['password']}",
            "--cert-dir",
            registry["cert_dir"],
            f"docker://{registry['address']}/team/isaac/isaac-lab-lab-ext:{tag}",
        ],
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout)["config"]["digest"] if proc.returncode == 0 else None


def local_id() -> str:
    return docker.from_env().images.get("isaac-lab-lab-ext:root").id


def blobs(lab_dir: Path) -> dict[str, int]:
    root = lab_dir / "registry" / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    return {p.parent.name: p.stat().st_size for p in root.glob("*/*/data")} if root.exists() else {}


def commit_of(project) -> str:
    return subprocess.run(
        ["git", "-C", str(project.path), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_push_over_tls_with_authentication_tags_content_commit_version_latest(pushed):
    project, registry = pushed
    result = push(project, registry, None, None, "-vv")
    assert result.rc == 0, result.out
    assert registry["password"] not in result.out  # not in commands, not in output
    image = local_id()
    for tag in (image.replace(":", "-"), commit_of(project), "0.1.0", "latest"):
        assert remote(registry, tag) == image, tag  # the content tag names only this image
    assert oct(AUTH_FILE.stat().st_mode & 0o777) == "0o600"


def test_second_push_sends_nothing_and_says_current(pushed):
    project, registry = pushed
    from tests.lab.lab import LAB_DIR

    before = blobs(LAB_DIR)
    result = push(project, registry)
    assert result.rc == 0 and result.totals()["success"] == 0, result.out
    assert blobs(LAB_DIR) == before


def test_changed_layer_sends_only_new_layers(pushed):
    project, registry = pushed
    from tests.lab.lab import LAB_DIR

    script = project.path / "scripts" / "rsl_rl" / "train.py"
    script.write_text(script.read_text() + "\n# a change in the last layers\n")
    subprocess.run(
        [
            "git",
            "-C",
            str(project.path),
            "-c",
            "user.name=lab",
            "-c",
            "user.email=l@e.org",
            "commit",
            "-qam",
            "change",
        ],
        check=True,
    )
    assert project.deploy().totals()["success"] == 1  # the image was rebuilt
    before = blobs(LAB_DIR)
    old_latest = remote(registry, "latest")
    result = push(project, registry)
    assert result.rc == 0 and result.totals()["success"] == 1, result.out
    new = {digest: size for digest, size in blobs(LAB_DIR).items() if digest not in before}
    image_size = docker.from_env().images.get("isaac-lab-lab-ext:root").attrs["Size"]
    assert new and sum(new.values()) < image_size / 10  # the base layers were not sent again
    assert remote(registry, "latest") == local_id() != old_latest
    assert remote(registry, commit_of(project)) == local_id()


def test_wrong_credentials_one_line_and_latest_untouched(pushed):
    project, registry = pushed
    latest = remote(registry, "latest")
    module = project.path / "source" / "lab_ext" / "ext_template" / "tasks.py"
    module.write_text(module.read_text() + "\n# another change\n")
    assert project.deploy().totals()["success"] == 1
    result = push(project, registry, password="wrong-password")
    assert result.rc != 0
    errors = [line for line in result.out.splitlines() if "error: registry lab" in line]
    assert len(errors) == 1 and "refused the credentials" in errors[0], result.out
    assert "wrong-password" not in result.out
    assert remote(registry, "latest") == latest  # nothing partial tagged as current


def test_registry_down_tls_failure_and_missing_password(pushed):
    project, registry = pushed
    down = {"lab": {**project.data["isaac_registries"]["lab"], "address": "127.0.0.1:5444"}}
    result = push(project, registry, data={"isaac_registries": down})
    assert result.rc != 0 and "error: registry lab (127.0.0.1:5444) is not reachable" in result.out
    no_ca = {
        "lab": {k: v for k, v in project.data["isaac_registries"]["lab"].items() if k != "ca_file"}
    }
    result = push(project, registry, data={"isaac_registries": no_ca})
    assert result.rc != 0 and "failed TLS verification (give its CA in ca_file)" in result.out
    result = push(project, registry, password="")
    assert result.rc != 0
    assert (
        f"isaac_registries[lab][password_env]: ${PASSWORD_ENV} is not set in this shell"
        in result.out
    )
    assert "Starting operation" not in result.out  # refused before anything changed


def test_missing_local_image_one_line(pushed):
    project, registry = pushed
    subprocess.run(
        ["docker", "rmi", "-f", "isaac-lab-lab-ext-dev:root"], capture_output=True, check=False
    )
    result = push(project, registry, data={"isaac_push_profiles": ("ext-dev",)})
    assert result.rc != 0
    assert "error: image isaac-lab-lab-ext-dev:root is not built" in result.out


def saved_login() -> tuple[bytes, int]:
    """The saved registry login: its bytes and its mode."""
    return AUTH_FILE.read_bytes(), AUTH_FILE.stat().st_mode & 0o777


def login_in(content: bytes, address: str) -> str:
    """``user:password`` of the auth file ``content`` for ``address``."""
    return base64.b64decode(json.loads(content)["auths"][address]["auth"]).decode()


@contextmanager
def registry_down() -> Iterator[None]:
    """The lab's registry stopped for a while, then started again."""
    started = lab_module.load_started()
    lab_registry.stop(started, lab_module.save_started)
    try:
        assert not lab_registry.answers(lab_registry.folder(lab_module.LAB_DIR)), (
            "the registry still answers: the lab did not start it, so it cannot stop it"
        )
        yield
    finally:
        lab_registry.start(lab_module.LAB_DIR, started, lab_module.save_started)


def test_a_failed_push_keeps_the_saved_login_a_working_one_replaces_it(pushed):
    """#13.10: new credentials replace the saved login only once the registry accepted them."""
    project, registry = pushed
    assert push(project, registry).rc == 0
    before = saved_login()
    assert login_in(before[0], registry["address"]) == f"{registry['user']}:{registry['password']}"
    robot = {"lab": {**project.data["isaac_registries"]["lab"], "username": registry["robot_user"]}}
    data = {"isaac_registries": robot}

    def refused(password: str, words: str) -> None:
        result = push(project, registry, password, data, "-vv", "--debug")
        assert result.rc != 0, result.out
        # the error as printed (-vv also shows the command that prints it)
        errors = [
            line
            for line in result.out.splitlines()
            if line.strip().startswith("[@local] error: registry lab")
        ]
        assert len(errors) == 1 and words in errors[0], result.out
        token = base64.b64encode(f"{registry['robot_user']}:{password}".encode()).decode()
        assert password not in result.out and token not in result.out
        assert saved_login() == before  # bytes and mode
        assert sorted(p.name for p in AUTH_FILE.parent.iterdir()) == ["auth.json", "certs"]

    refused("wrong-robot-pass", "refused the credentials")
    with registry_down():
        refused(registry["robot_password"], "is not reachable")
    result = push(project, registry, registry["robot_password"], data)
    assert result.rc == 0, result.out
    content, mode = saved_login()
    assert mode == 0o600
    assert login_in(content, registry["address"]) == (
        f"{registry['robot_user']}:{registry['robot_password']}"
    )
    assert sorted(p.name for p in AUTH_FILE.parent.iterdir()) == ["auth.json", "certs"]
