"""The build context as isaac-deploy streams it into ``docker build -``: exactly isaac-deploy's
files and the project's selection, with normalized modes and owners, links as links; a context
that is not what the image's label says fails the build before it is complete."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from isaac_deploy.model import paths
from isaac_deploy.model.errors import ToolkitError
from isaac_deploy.model.images import (
    DEV_HELPERS,
    DOCKERFILE,
    DOCKERFILES,
    EXTENSION_DIR,
    HELPERS,
    RESERVED,
    ContextFile,
    ImageBuild,
    build_argv,
    context_files,
    context_spec,
    docker_file,
)
from isaac_deploy.probes import build_context, program
from isaac_deploy.probes.context_digest import context_digest
from tests.helpers import ROOT

MESH = bytes(range(256)) * 400  # larger than the probe's first read and tarfile's blocks
DOCKERFILE_TEXT = "FROM base\nCOPY extension/ /x/\n"
BUILD = ImageBuild(
    image="isaac-lab-ext:alice",
    base_image="base:1",
    files=(
        ContextFile(DOCKERFILE, DOCKERFILE_TEXT),
        ContextFile(f"{RESERVED}/entrypoint.sh", 'exec "$@"\n', executable=True),
    ),
    build_args={"EXTENSION_NAME": "ext"},
)


def project(root: Path) -> Path:
    """Code (one file 0600, one executable), a link in and one out of the project, a FIFO, a
    planted key and env file, a README and editor folder that stay out."""
    files = {
        "source/ext/setup.py": "setup()\n",
        "source/ext/ext/__init__.py": "",
        "source/ext/ext/private_mode.py": "X = 1\n",
        "scripts/rsl_rl/train.py": "print('train')\n",
        "scripts/run.sh": "#!/bin/sh\n",
        "source/ext/robot_client.key": "secret\n",
        "docker/.env.ext": "HOST_UID=1000\n",
        "README.md": "# readme\n",
        ".vscode/tasks.json": "{}\n",
        "config/robot.yaml": "arm: 1\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "source/ext/ext/mesh.bin").write_bytes(MESH)
    (root / "source/ext/ext/private_mode.py").chmod(0o600)
    (root / "scripts/run.sh").chmod(0o750)
    os.symlink("../setup.py", root / "source/ext/ext/setup_link")
    os.symlink("/etc/hostname", root / "scripts/outside")
    os.mkfifo(root / "source/ext/fifo")
    return root


def fake_docker(folder: Path, code: int = 0, read: bool = True) -> tuple[list[str], Path, Path]:
    """A ``docker`` (one process) that saves its standard input, then says it finished and
    exits ``code``; with ``read=False`` it exits at once without reading."""
    folder.mkdir(exist_ok=True)
    received, finished = folder / "context.tar", folder / "finished"
    script = folder / "docker"
    script.write_text(
        "#!/usr/bin/python3\n"
        "import shutil, sys\n"
        f"if {read!r}:\n"
        f"    with open({str(received)!r}, 'wb') as out:\n"
        "        shutil.copyfileobj(sys.stdin.buffer, out)\n"
        f"open({str(finished)!r}, 'w').write('yes')\n"
        f"sys.exit({code})\n"
    )
    script.chmod(0o755)
    return [str(script), "build", "-"], received, finished


def members(tar_path: Path) -> list[tuple[str, str, int, int, int, str, str]]:
    """``(name, type, mode, uid, gid, owner names, link)`` of each member, in order."""
    kinds = {tarfile.DIRTYPE: "dir", tarfile.REGTYPE: "file", tarfile.SYMTYPE: "link"}
    with tarfile.open(tar_path) as tar:
        return [
            (m.name, kinds[m.type], m.mode, m.uid, m.gid, m.uname + m.gname, m.linkname)
            for m in tar.getmembers()
        ]


def test_the_tar_holds_exactly_isaac_deploys_files_and_the_selection(tmp_path):
    root = project(tmp_path / "p")
    spec = context_spec(
        str(root), ("config",), context_digest(str(root), ("config",))["digest"], BUILD
    )
    argv, received, finished = fake_docker(tmp_path / "bin")
    assert build_context.build(spec, argv) == 0 and finished.exists()
    assert members(received) == [
        (".isaac-deploy", "dir", 0o755, 0, 0, "", ""),
        (".isaac-deploy/Dockerfile", "file", 0o644, 0, 0, "", ""),
        (".isaac-deploy/entrypoint.sh", "file", 0o755, 0, 0, "", ""),
        ("extension", "dir", 0o755, 0, 0, "", ""),
        ("extension/config", "dir", 0o755, 0, 0, "", ""),
        ("extension/config/robot.yaml", "file", 0o644, 0, 0, "", ""),
        ("extension/scripts", "dir", 0o755, 0, 0, "", ""),
        ("extension/scripts/outside", "link", 0o777, 0, 0, "", "/etc/hostname"),
        ("extension/scripts/rsl_rl", "dir", 0o755, 0, 0, "", ""),
        ("extension/scripts/rsl_rl/train.py", "file", 0o644, 0, 0, "", ""),
        ("extension/scripts/run.sh", "file", 0o755, 0, 0, "", ""),
        ("extension/source", "dir", 0o755, 0, 0, "", ""),
        ("extension/source/ext", "dir", 0o755, 0, 0, "", ""),
        ("extension/source/ext/ext", "dir", 0o755, 0, 0, "", ""),
        ("extension/source/ext/ext/__init__.py", "file", 0o644, 0, 0, "", ""),
        ("extension/source/ext/ext/mesh.bin", "file", 0o644, 0, 0, "", ""),
        ("extension/source/ext/ext/private_mode.py", "file", 0o644, 0, 0, "", ""),
        ("extension/source/ext/ext/setup_link", "link", 0o777, 0, 0, "", "../setup.py"),
        ("extension/source/ext/setup.py", "file", 0o644, 0, 0, "", ""),
    ]
    with tarfile.open(received) as tar:
        assert tar.extractfile(DOCKERFILE).read().decode() == DOCKERFILE_TEXT
        assert tar.extractfile("extension/scripts/run.sh").read() == b"#!/bin/sh\n"
        assert tar.extractfile("extension/config/robot.yaml").read() == b"arm: 1\n"
        assert tar.extractfile("extension/source/ext/ext/mesh.bin").read() == MESH


def test_the_joined_program_sends_the_same_context_without_the_package(tmp_path):
    """As the operation runs it on a target: ``python3 -I -c PROGRAM SPEC docker build ... -``."""
    root = project(tmp_path / "p")
    spec = context_spec(str(root), (), context_digest(str(root))["digest"], BUILD)
    argv, received, _ = fake_docker(tmp_path / "bin", code=5)
    source = program("context_digest", "build_context")
    done = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", source, json.dumps(spec), *argv],
        capture_output=True,
        cwd="/",
    )
    assert done.returncode == 5 and done.stderr == b""  # docker build's own exit code
    expected, _, _ = fake_docker(tmp_path / "in-process")
    assert build_context.build(spec, expected) == 0
    assert members(received) == members(tmp_path / "in-process" / "context.tar")


def test_files_that_are_not_those_of_the_label_kill_the_build_before_the_context_ends(tmp_path):
    """The label names the inputs the image is built from: an edit after they were hashed
    (here: before the build) fails the build with one line, and docker build never sees the
    end of its context."""
    root = project(tmp_path / "p")
    spec = context_spec(str(root), (), context_digest(str(root))["digest"], BUILD)
    (root / "scripts" / "rsl_rl" / "train.py").write_text("print('edited')\n")
    argv, _, finished = fake_docker(tmp_path / "bin")
    done = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", program("context_digest", "build_context")]
        + [json.dumps(spec), *argv],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and not finished.exists()
    assert done.stderr == (
        "isaac-deploy: the project's files changed while the image was being built (they are "
        "not those its inputs label names): run the build again\n"
    )


def test_a_build_that_stops_reading_keeps_its_exit_code(tmp_path):
    root = project(tmp_path / "p")
    big = root / "source" / "ext" / "weights.bin"
    big.write_bytes(os.urandom(4 << 20))  # more than a pipe holds
    spec = context_spec(str(root), (), context_digest(str(root))["digest"], BUILD)
    argv, _, finished = fake_docker(tmp_path / "bin", code=3, read=False)
    assert build_context.build(spec, argv) == 3 and finished.exists()


def test_no_docker_is_one_line(tmp_path, capsys):
    spec = context_spec(str(tmp_path), (), "sha256:x", BUILD)
    assert build_context.build(spec, [str(tmp_path / "no-docker"), "build", "-"]) == 127
    assert capsys.readouterr().err.startswith(f"isaac-deploy: cannot run {tmp_path}/no-docker: ")


def test_the_argv_builds_from_standard_input_with_the_dockerfile_inside_the_context():
    argv = build_argv(BUILD, {"org.isaac-deploy.inputs": "sha256:in"}, ("--no-cache",))
    assert argv == [
        "docker",
        "build",
        "--pull=false",
        "--force-rm",
        "-f",
        ".isaac-deploy/Dockerfile",
        "-t",
        "isaac-lab-ext:alice",
        "--label",
        "org.isaac-deploy.inputs=sha256:in",
        "--build-arg",
        "ISAAC_IMAGE=isaac-lab-ext:alice",
        "--build-arg",
        "EXTENSION_NAME=ext",
        "--no-cache",
        "-",
    ]


@pytest.mark.parametrize("profile", sorted(DOCKERFILES))
def test_isaac_deploys_files_are_the_packages_and_the_dockerfile_copies_them(profile):
    """The Dockerfile first, then the helpers (executable), each the installed package's text;
    the Dockerfile starts as root and copies exactly those helpers and the project's folder."""
    files = context_files(profile)
    own = HELPERS + (DEV_HELPERS if profile == "ext-dev" else ())
    assert [f.name for f in files] == [DOCKERFILE, *(f"{RESERVED}/{name}" for name in own)]
    assert [f.executable for f in files] == [False, *(True for _ in own)]
    assert files[0].text == (ROOT / "docker" / DOCKERFILES[profile]).read_text()
    text = files[0].text
    after_from = text.split("\nFROM ", 1)[1]
    assert "\nUSER root\n" in after_from.split("\nRUN ", 1)[0]  # before anything runs
    helpers = " ".join(f"{RESERVED}/{name}" for name in HELPERS)
    assert f"\nCOPY {helpers} /opt/isaac-deploy/\n" in text
    if profile == "ext-dev":  # the ROS 2 layer and the shells' set-up, before anything else
        dev = " ".join(f"{RESERVED}/{name}" for name in DEV_HELPERS)
        assert f"\nCOPY {dev} /opt/isaac-deploy/\nRUN /opt/isaac-deploy/install-ros2.sh" in text
    assert f" {EXTENSION_DIR}/ ${{DOCKER_EXT_PATH}}/\n" in text
    assert "/opt/isaac-deploy/install-extension.sh" in text
    last_user = text.rsplit("\nUSER ", 1)[1].split("\n", 1)[0]
    assert last_user == ("root" if profile == "ext" else "${HOST_UID}:${HOST_GID}")


def test_a_missing_docker_file_is_one_line(monkeypatch, tmp_path):

    monkeypatch.setattr(paths, "PACKAGE_DOCKER", tmp_path)
    docker_file.cache_clear()
    try:
        with pytest.raises(ToolkitError, match=r"Dockerfile\.ext cannot be read from .*reinstall"):
            docker_file("Dockerfile.ext")
    finally:
        docker_file.cache_clear()


def test_a_redrawn_line_is_written_once_as_it_last_stood_outside_a_terminal():
    """The legacy builder's ``Sending build context to Docker daemon  51.2kB\\r`` (Debian's
    docker.io 20.10, captured in the lab) in a log: one plain line."""
    builder = (
        b"Sending build context to Docker daemon  32.77kB\r"
        b"Sending build context to Docker daemon  51.2kB\r\r\n"
        b"Step 1/35 : ARG ISAACLAB_BASE_IMAGE\n\n ---> b4cd06408c75\nSuccessfully built"
    )
    out = io.BytesIO()
    build_context.plain_lines(io.BytesIO(builder), out)
    assert out.getvalue() == (
        b"Sending build context to Docker daemon  51.2kB\n"
        b"Step 1/35 : ARG ISAACLAB_BASE_IMAGE\n\n ---> b4cd06408c75\nSuccessfully built\n"
    )


def test_the_builders_output_reaches_a_log_as_plain_lines(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(
        "#!/bin/sh\ncat >/dev/null\nprintf 'Sending 1kB\\rSending 2kB\\r\\nStep 1/2\\n'\n"
    )
    docker.chmod(0o755)
    root = project(tmp_path / "p")
    spec = context_spec(str(root), (), context_digest(str(root))["digest"], BUILD)
    program = "import json, sys; from isaac_deploy.probes import build_context as b; sys.exit(b.build(json.loads(sys.argv[1]), sys.argv[2:]))"
    done = subprocess.run(
        [sys.executable, "-c", program, json.dumps(spec), str(docker), "build", "-"],
        capture_output=True,
    )
    assert done.returncode == 0 and done.stdout == b"Sending 2kB\nStep 1/2\n", done
