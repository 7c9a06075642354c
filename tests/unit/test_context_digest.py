"""Build-context digest: .dockerignore semantics as Docker applies them, and change detection."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from isaac_deploy.probes import program
from isaac_deploy.probes.context_digest import DockerIgnore, context_digest


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


def test_digest_changes_with_included_files_only(tmp_path):
    make_tree(
        tmp_path,
        {
            ".dockerignore": "*\n!source/\n**/__pycache__\n",
            "source/pkg/a.py": "print(1)\n",
            "logs/big.bin": "x" * 1000,
            "docker/.env.ext": "SECRET=1\n",
        },
    )
    first = context_digest(str(tmp_path))
    assert first["files"] == 1 and first["bytes"] == len("print(1)\n")
    (tmp_path / "logs/big.bin").write_text("changed")
    (tmp_path / "docker/.env.ext").write_text("SECRET=2\n")
    (tmp_path / "source/pkg/__pycache__").mkdir()
    (tmp_path / "source/pkg/__pycache__/a.pyc").write_text("junk")
    assert context_digest(str(tmp_path)) == first
    (tmp_path / "source/pkg/a.py").write_text("print(2)\n")
    assert context_digest(str(tmp_path))["digest"] != first["digest"]


def test_mode_and_symlinks_count(tmp_path):
    make_tree(tmp_path, {"run.sh": "echo\n"})
    before = context_digest(str(tmp_path))["digest"]
    os.chmod(tmp_path / "run.sh", 0o755)
    after_chmod = context_digest(str(tmp_path))["digest"]
    assert after_chmod != before
    os.symlink("run.sh", tmp_path / "link")
    assert context_digest(str(tmp_path))["digest"] != after_chmod


def test_runs_as_part_of_the_facts_program_without_the_package(tmp_path):
    make_tree(tmp_path, {"a": "1"})
    source = program("dockerapi", "context_digest", "build_inputs")
    # -I: isolated mode, so the program cannot import isaac_deploy from anywhere
    out = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", source, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout
    data = json.loads(out)
    assert data["context"] == context_digest(str(tmp_path)) and data["images"] == {}
    missing = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", source, str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout
    assert "no such build context" in json.loads(missing)["context"]["error"]
