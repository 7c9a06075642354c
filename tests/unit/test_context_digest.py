"""The selection of a project's files that enter its images and snapshots (include roots, the
built-in deny-list, the project's .dockerignore as Docker applies it, private keys) and its
digest."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from isaac_deploy.probes import program
from isaac_deploy.probes.build_inputs import parse_args
from isaac_deploy.probes.context_digest import (
    DENY,
    DockerIgnore,
    bound_by_jobs,
    context_digest,
    context_files,
    include_roots,
    is_private_key,
)
from tests.helpers import ROOT


@pytest.mark.parametrize(
    ("patterns", "path", "ignored"),
    [
        (["*.pyc"], "a.pyc", True),
        (["*.pyc"], "dir/a.pyc", False),  # `*` does not cross directories
        (["**/*.pyc"], "dir/sub/a.pyc", True),
        (["**/*.pyc"], "a.pyc", True),
        (["logs"], "logs/run/model.pt", True),  # a parent match covers everything below
        (["/logs"], "logs/x", True),  # leading slash is ignored
        (["docker/.env*"], "docker/.env.ext", True),
        (["*", "!source/"], "source/pkg/a.py", False),
        (["*", "!source/"], "tests/test_a.py", True),
        (["*", "!source/", "**/__pycache__"], "source/pkg/__pycache__/a.pyc", True),
        (["*", "!docker/entrypoint.sh"], "docker/entrypoint.sh", False),
        (["*", "!docker/entrypoint.sh"], "docker/.env.x", True),
        (["data?"], "data1", True),
        (["data[0-9]"], "datax", False),
        (["# comment", "", "  spaced.txt  "], "spaced.txt", True),
        (["a/**/b"], "a/b", True),
        (["a/**/b"], "a/x/y/b", True),
        ([r"lit\*"], "lit*", True),
        ([r"lit\*"], "litx", False),
    ],
)
def test_patterns(patterns, path, ignored):
    assert DockerIgnore(patterns).ignored(path) is ignored


def test_pruning_never_skips_a_reincluded_child():
    ignore = DockerIgnore(["*", "!source/", "!docker/entrypoint.sh"])
    assert ignore.can_prune(".venv") and ignore.can_prune("logs")
    assert not ignore.can_prune("docker")
    assert not ignore.can_prune("source")
    assert not DockerIgnore(["*", "!**/keep"]).can_prune("anything")


def make_tree(root, files):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def names(root, include=()):
    return [rel for rel, *_ in context_files(str(root), include)]


# every kind of file the deny-list keeps out, planted where a real project has them
DENIED = {
    "docker/.env.my_ext": "HOST_UID=1000\n",
    "docker/.env.my_ext-dev": "HOST_HOME=/home/alice\n",
    "docker/cluster/.env.cluster": "WANDB_API_KEY=secret\n",
    "source/my_ext/.env": "TOKEN=secret\n",
    "docker/docker-compose.override.yaml": "services: {}\n",
    ".mount.config": "{}\n",
    "source/my_ext/.mount.config": "{}\n",
    "source/my_ext/robot_client.key": "secret\n",
    "source/my_ext/certs/server.pem": "secret\n",
    "source/my_ext/ssh/id_ed25519": "secret\n",
    "scripts/id_rsa": "secret\n",
    ".isaac-deploy/env/.env.my_ext": "x\n",
    "source/.isaac-deploy/x": "x\n",
    "logs/rsl_rl/run/model_0.pt": "weights\n",
    "source/my_ext/logs/x.txt": "x\n",
    ".git/config": "[core]\n",
    "source/my_ext/.git/HEAD": "ref\n",
    ".vscode/tasks.json": "{}\n",
    "source/.vscode/settings.json": "{}\n",
    ".idea/workspace.xml": "<x/>\n",
    "source/my_ext/my_ext/__pycache__/a.cpython-311.pyc": "junk",
    "scripts/b.pyc": "junk",
    "source/.pytest_cache/v": "x",
    "source/.ruff_cache/v": "x",
    "source/.mypy_cache/v": "x",
    "source/my_ext/my_ext.egg-info/PKG-INFO": "x",
    "source/my_ext/build/lib/x.py": "x",
    "source/my_ext/dist/x.whl": "x",
}
KEPT = {
    "source/my_ext/setup.py": "setup()\n",
    "source/my_ext/config/extension.toml": "[package]\n",
    "source/my_ext/my_ext/__init__.py": "\n",
    "source/my_ext/my_ext/tasks/reach.py": "REACH = 1\n",
    "scripts/rsl_rl/train.py": "print('train')\n",
    "source/my_ext/ssh/id_ed25519.pub": "ssh-ed25519 AAAA public\n",
}


def test_the_deny_list_keeps_out_every_planted_file_whatever_the_project_says(tmp_path):
    """A deny-list .dockerignore like the Isaac Lab template's, which lists none of them, and
    include paths that name them: still none enters."""
    make_tree(tmp_path, {**DENIED, **KEPT, ".dockerignore": ".git/\n**/__pycache__/\n"})
    include = ("docker", ".mount.config", ".vscode", "logs", ".isaac-deploy", ".")
    assert names(tmp_path, include) == sorted([*KEPT, ".dockerignore"])


def test_only_the_include_roots_enter_by_default(tmp_path):
    make_tree(
        tmp_path,
        {
            **KEPT,
            "README.md": "# x\n",
            "docker/Dockerfile": "FROM x\n",
            "docker/docker-compose.yaml": "services: {}\n",
            "tests/test_x.py": "\n",
            "config/robot.yaml": "arm: 1\n",
            "assets/robot.usd": "usd\n",
            "assets/big/mesh.obj": "o\n",
        },
    )
    assert names(tmp_path) == sorted(KEPT)
    assert names(tmp_path, ("config", "assets/robot.usd", "./config/", "nothing/here")) == sorted(
        [*KEPT, "config/robot.yaml", "assets/robot.usd"]
    )
    found = context_digest(str(tmp_path), ("config", "nothing/here"))
    assert found["missing"] == ["nothing/here"] and found["files"] == len(KEPT) + 1


def test_include_roots_are_normalized_and_never_leave_the_project():
    assert include_roots() == ["scripts", "source"]
    assert include_roots(("./config/", "source/my_ext", "a/../b")) == [
        "b",
        "config",
        "scripts",
        "source",
    ]
    assert include_roots((".",)) == [""]  # the whole project covers the others
    for bad in ("..", "../x", "a/../../x"):
        with pytest.raises(ValueError, match="outside the project"):
            include_roots((bad,))


def test_the_projects_dockerignore_is_an_extra_deny(tmp_path):
    """A deny-list leaves out what it names; an allow-list (this repository's) keeps source/ and
    scripts/ and drops the rest, also of include paths."""
    make_tree(tmp_path, {**KEPT, "config/a.yaml": "a\n", "source/my_ext/data/big.bin": "x"})
    (tmp_path / ".dockerignore").write_text("source/my_ext/data\n**/*.toml\n")
    assert names(tmp_path, ("config",)) == sorted(
        [k for k in KEPT if not k.endswith(".toml")] + ["config/a.yaml"]
    )
    (tmp_path / ".dockerignore").write_text((ROOT / ".dockerignore").read_text())
    assert names(tmp_path, ("config",)) == sorted([*KEPT, "source/my_ext/data/big.bin"])


def test_private_keys_stay_out_whatever_their_name(tmp_path):
    openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----\n"
    make_tree(
        tmp_path,
        {
            "source/deploy_key": openssh,
            "source/robot_rsa": "\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\n",
            "source/pkcs8": "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIE\n",
            "source/putty.ppk.txt": "PuTTY-User-Key-File-3: ssh-ed25519\n",
            "source/cert.crt": "-----BEGIN CERTIFICATE-----\nMIIE\n",
            "source/notes.py": "KEY = '-----BEGIN RSA PRIVATE KEY-----'\n",
        },
    )
    assert names(tmp_path) == ["source/cert.crt", "source/notes.py"]
    assert is_private_key(openssh.encode()) and not is_private_key(b"# BEGIN PRIVATE KEY\n")


def test_the_deny_list_names_what_the_brief_lists():
    """The built-in list as documented in the README (rendered env files, compose override,
    .mount.config, keys, isaac-deploy's folder, logs, .git, editors, caches, build outputs)."""
    for pattern in (
        "**/.env*",
        "**/docker-compose.override.yaml",
        "**/.mount.config",
        "**/*.key",
        "**/*.pem",
        "**/id_rsa",
        "**/.isaac-deploy",
        "**/logs",
        "**/.git",
        "**/.vscode",
        "**/.idea",
        "**/__pycache__",
        "**/*.pyc",
        "**/*.egg-info",
        "**/build",
        "**/dist",
    ):
        assert pattern in DENY, pattern


def test_digest_changes_with_selected_files_only(tmp_path):
    make_tree(
        tmp_path,
        {
            "source/pkg/a.py": "print(1)\n",
            "logs/big.bin": "x" * 1000,
            "docker/.env.ext": "SECRET=1\n",
            "README.md": "# x\n",
            ".vscode/tasks.json": "{}\n",
        },
    )
    first = context_digest(str(tmp_path))
    assert first["files"] == 1 and first["bytes"] == len("print(1)\n")
    (tmp_path / "logs/big.bin").write_text("changed")
    (tmp_path / "docker/.env.ext").write_text("SECRET=2\n")
    (tmp_path / "README.md").write_text("# changed\n")
    (tmp_path / ".vscode/tasks.json").write_text('{"changed": 1}\n')
    (tmp_path / "source/pkg/__pycache__").mkdir()
    (tmp_path / "source/pkg/__pycache__/a.pyc").write_text("junk")
    assert context_digest(str(tmp_path)) == first
    (tmp_path / "source/pkg/a.py").write_text("print(2)\n")
    assert context_digest(str(tmp_path))["digest"] != first["digest"]


def test_mode_and_symlinks_count(tmp_path):
    make_tree(tmp_path, {"source/run.sh": "echo\n"})
    before = context_digest(str(tmp_path))["digest"]
    os.chmod(tmp_path / "source/run.sh", 0o755)
    after_chmod = context_digest(str(tmp_path))["digest"]
    assert after_chmod != before
    os.symlink("run.sh", tmp_path / "source/link")
    assert context_digest(str(tmp_path))["digest"] != after_chmod


def test_probe_arguments():
    assert parse_args(["/p", "-i", "con fig", "a:1", "-i", "assets", "b:2"]) == (
        "/p",
        ["a:1", "b:2"],
        ["con fig", "assets"],
    )
    assert parse_args(["/p"]) == ("/p", [], [])


def test_runs_as_part_of_the_facts_program_without_the_package(tmp_path):
    make_tree(tmp_path, {**KEPT, "config/a.yaml": "a\n"})
    source = program("dockerapi", "context_digest", "build_inputs")

    def probe(*args: str) -> dict:
        # -I: isolated mode, so the program cannot import isaac_deploy from anywhere
        return json.loads(
            subprocess.run(
                ["/usr/bin/python3", "-I", "-c", source, *args],
                capture_output=True,
                text=True,
                check=True,
                cwd="/",
            ).stdout
        )

    data = probe(str(tmp_path), "-i", "config", "-i", "gone")
    assert data["context"] == context_digest(str(tmp_path), ("config", "gone"))
    assert data["images"] == {} and data["context"]["missing"] == ["gone"]
    assert "no such build context" in probe(str(tmp_path / "nope"))["context"]["error"]
    (tmp_path / "source/my_ext/setup.py").chmod(0)
    if os.geteuid() != 0:  # root reads it anyway
        assert "cannot read" in probe(str(tmp_path))["context"]["error"]


def test_what_jobs_see_of_the_image_ignores_the_code_their_snapshot_binds_over(tmp_path):
    files = {
        "source/ext/ext/tasks.py": "REACH = 1\n",
        "source/ext/pyproject.toml": "[project]\n",
        "scripts/train.py": "print()\n",
        "config/robot.yaml": "arm: 1\n",
    }
    make_tree(tmp_path, files)
    first = context_digest(str(tmp_path), ("config",))
    (tmp_path / "source/ext/ext/tasks.py").write_text("REACH = 2\n")
    (tmp_path / "scripts/probe.py").write_text("print()\n")
    (tmp_path / "config/robot.yaml").write_text("arm: 2\n")  # an include path: bound too
    code = context_digest(str(tmp_path), ("config",))
    assert code["digest"] != first["digest"] and code["jobs_digest"] == first["jobs_digest"]
    (tmp_path / "source/ext/pyproject.toml").write_text("# edited\n")
    assert context_digest(str(tmp_path), ("config",))["jobs_digest"] != code["jobs_digest"]
    assert bound_by_jobs("source/ext/ext/tasks.py") and bound_by_jobs("scripts/rsl_rl/train.py")
    for rel in ("source/ext/setup.py", "source/ext/config/extension.toml", "requirements.txt"):
        assert not bound_by_jobs(rel), rel
    assert not bound_by_jobs("source/ext/requirements-dev.txt")


def pinned_tree(root):
    """Regular files (one executable), a link and a FIFO in an allow-listed context."""
    make_tree(root, {".dockerignore": "*\n!source/\n", "source/pkg/a.py": "print(1)\n"})
    make_tree(root, {"source/run.sh": "echo\n", "tests/x.py": "x\n"})
    os.chmod(root / "source/pkg/a.py", 0o644)
    os.chmod(root / "source/run.sh", 0o755)
    os.symlink("pkg/a.py", root / "source/link")
    os.mkfifo(root / "source/fifo")


def test_the_digest_of_a_known_tree_never_changes(tmp_path):
    """Images are labelled with it and snapshots recorded with it: the same tree must give the
    same digest from one version to the next (a link by its target, a FIFO not at all)."""
    pinned_tree(tmp_path)
    assert context_digest(str(tmp_path)) == {
        "digest": "sha256:dc6b221438008b759051dda2c2c4f3ab85a2cf2b490d6ad6699bd207c59eb5a2",
        # every file of this tree is code a job's snapshot binds over: none is left
        "jobs_digest": "sha256:" + hashlib.sha256(b"").hexdigest(),
        "files": 3,
        "bytes": len("print(1)\n") + len("echo\n"),
        "missing": [],
    }


def test_the_context_files_are_those_the_digest_covers(tmp_path):
    pinned_tree(tmp_path)
    files = context_files(str(tmp_path))
    assert [(path, mode) for path, mode, _, _ in files] == [
        ("source/link", "x"),  # a link's own mode
        ("source/pkg/a.py", "-"),
        ("source/run.sh", "x"),
    ]
    assert files[0][2:] == ("link:pkg/a.py", 0)
    assert files[1][2:] == (hashlib.sha256(b"print(1)\n").hexdigest(), len("print(1)\n"))
