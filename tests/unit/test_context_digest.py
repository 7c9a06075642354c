"""Build-context digest: .dockerignore semantics as Docker applies them, and change detection."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from isaac_deploy.probes import program
from isaac_deploy.probes.build_inputs import parse_args
from isaac_deploy.probes.context_digest import (
    DockerIgnore,
    context_digest,
    context_files,
    dockerfile_digest,
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


def project_tree(root):
    """The files of this project's build that matter here, with its real ``.dockerignore``."""
    files = {
        ".dockerignore": (ROOT / ".dockerignore").read_text(),
        "source/pkg/a.py": "print(1)\n",
        "scripts/train.py": "print(2)\n",
    }
    for name in ("Dockerfile.ext", "Dockerfile.ext-dev", "entrypoint.sh"):
        files[f"docker/{name}"] = (ROOT / "docker" / name).read_text()
    make_tree(root, files)


def test_entrypoint_is_in_the_context_and_dockerfiles_are_not(tmp_path):
    """The entrypoint (COPY'd into both images) changes the context digest; a Dockerfile does
    not, which is why its text is digested on its own (``dockerfile_digest``)."""
    project_tree(tmp_path)
    before = context_digest(str(tmp_path))["digest"]
    dockerfile = tmp_path / "docker" / "Dockerfile.ext-dev"
    dockerfile.write_text(dockerfile.read_text() + "LABEL note=changed\n")
    assert context_digest(str(tmp_path))["digest"] == before
    entrypoint = tmp_path / "docker" / "entrypoint.sh"
    entrypoint.write_text(entrypoint.read_text() + "# changed\n")
    assert context_digest(str(tmp_path))["digest"] != before


def test_dockerfile_digest_is_of_its_text_and_a_missing_one_is_one_line(tmp_path):
    first, second = tmp_path / "a" / "Dockerfile", tmp_path / "b" / "Dockerfile"
    make_tree(tmp_path, {"a/Dockerfile": "FROM base\n", "b/Dockerfile": "FROM base\n"})
    digest = dockerfile_digest(str(first))
    assert digest == {"digest": "sha256:" + hashlib.sha256(b"FROM base\n").hexdigest()}
    assert dockerfile_digest(str(second)) == digest  # the text, not the path
    second.write_text("FROM base\n# a comment\n")
    assert dockerfile_digest(str(second)) != digest
    missing = str(tmp_path / "none" / "Dockerfile")
    assert dockerfile_digest(missing) == {"error": f"no such Dockerfile: {missing}"}
    folder = dockerfile_digest(str(tmp_path / "a"))["error"]
    assert folder.startswith(f"cannot read Dockerfile {tmp_path / 'a'}: ") and "\n" not in folder


def test_probe_arguments():
    assert parse_args(["/p", "-f", "/p/D 1", "a:1", "-f", "/p/D2", "b:2"]) == (
        "/p",
        ["a:1", "b:2"],
        ["/p/D 1", "/p/D2"],
    )
    assert parse_args(["/p"]) == ("/p", [], [])


def test_runs_as_part_of_the_facts_program_without_the_package(tmp_path):
    project_tree(tmp_path)
    dockerfile = str(tmp_path / "docker" / "Dockerfile.ext")
    missing = str(tmp_path / "docker" / "Dockerfile.none")
    source = program("dockerapi", "context_digest", "build_inputs")
    # -I: isolated mode, so the program cannot import isaac_deploy from anywhere
    out = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", source, str(tmp_path), "-f", dockerfile, "-f", missing],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout
    data = json.loads(out)
    assert data["context"] == context_digest(str(tmp_path)) and data["images"] == {}
    assert data["dockerfiles"] == {
        dockerfile: dockerfile_digest(dockerfile),
        missing: {"error": f"no such Dockerfile: {missing}"},
    }
    missing = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", source, str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout
    assert "no such build context" in json.loads(missing)["context"]["error"]


def test_what_jobs_see_of_the_image_ignores_the_code_their_snapshot_binds_over(tmp_path):
    from isaac_deploy.probes.context_digest import bound_by_jobs

    (tmp_path / "source" / "ext" / "ext").mkdir(parents=True)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "docker").mkdir()
    files = {
        "source/ext/ext/tasks.py": "REACH = 1\n",
        "source/ext/pyproject.toml": "[project]\n",
        "scripts/train.py": "print()\n",
        "docker/entrypoint.sh": 'exec "$@"\n',
    }
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    first = context_digest(str(tmp_path))
    (tmp_path / "source/ext/ext/tasks.py").write_text("REACH = 2\n")
    (tmp_path / "scripts/probe.py").write_text("print()\n")
    code = context_digest(str(tmp_path))
    assert code["digest"] != first["digest"] and code["jobs_digest"] == first["jobs_digest"]
    for rel in ("source/ext/pyproject.toml", "docker/entrypoint.sh"):
        (tmp_path / rel).write_text("# edited\n")
        edited = context_digest(str(tmp_path))
        assert edited["jobs_digest"] != code["jobs_digest"], rel
        code = edited
    assert bound_by_jobs("source/ext/ext/tasks.py") and bound_by_jobs("scripts/rsl_rl/train.py")
    for rel in ("source/ext/setup.py", "source/ext/config/extension.toml", "docker/x.sh"):
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
