"""File and image facts: their commands run here for real, and their outputs parse."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

from isaac_deploy.facts.files import FileSha256WithMode, FileWithMode, PathKinds
from isaac_deploy.facts.images import ImageBuildInputs, parse_build_inputs
from isaac_deploy.probes.context_digest import context_digest


def run_fact(fact, **kwargs):
    command = fact.command(**kwargs)
    text = command.get_raw_value() if hasattr(command, "get_raw_value") else command
    out = subprocess.run(["sh", "-c", text], capture_output=True, text=True).stdout
    lines = out.splitlines()
    return fact.process(lines) if lines else fact.default()


def test_file_with_mode(tmp_path):
    path = tmp_path / "it's a file"
    assert run_fact(FileWithMode(), path=str(path)) is None
    path.write_text("A=1\n\nB=2\n")
    os.chmod(path, 0o640)
    snap = run_fact(FileWithMode(), path=str(path))
    assert snap.mode == 0o640 and snap.uid == os.getuid() and snap.lines == ["A=1", "", "B=2"]


def test_file_digest_never_returns_contents(tmp_path):
    path = tmp_path / "key"
    path.write_text("s3cr3t\n")
    os.chmod(path, 0o600)
    digest = run_fact(FileSha256WithMode(), path=str(path))
    assert digest.sha256 == hashlib.sha256(b"s3cr3t\n").hexdigest() and digest.mode == 0o600
    assert "s3cr3t" not in repr(digest)
    assert run_fact(FileSha256WithMode(), path=str(tmp_path / "none")) is None


def test_path_kinds(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f x").write_text("")
    paths = [str(tmp_path / "d"), str(tmp_path / "f x"), str(tmp_path / "missing")]
    assert run_fact(PathKinds(), paths=paths) == dict(zip(paths, ["dir", "file", "missing"]))


INPUTS = {
    "context": {
        "digest": "sha256:abc",
        "jobs_digest": "sha256:jobs",
        "files": 3,
        "bytes": 10,
        "missing": ["config"],
    },
    "images": {
        "isaac-lab-base": {"id": "sha256:1111", "labels": {"a": "b"}},
        "isaac-lab-ext:alice": {
            "id": "sha256:2222",
            "labels": {"org.isaac-deploy.inputs": "sha256:in"},
        },
        "nope:1": None,
    },
    "error": None,
}


def test_image_build_inputs_parse():
    state = parse_build_inputs(json.dumps(INPUTS))
    assert state.context_digest == "sha256:abc" and state.docker_error is None
    assert state.jobs_context_digest == "sha256:jobs" and state.missing == ("config",)
    assert state.image("isaac-lab-base").id == "sha256:1111"
    assert state.image("isaac-lab-ext:alice").inputs == "sha256:in"
    assert state.image("nope:1") is None


def test_image_build_inputs_docker_errors_and_garbage():
    denied = parse_build_inputs(
        json.dumps({**INPUTS, "images": {}, "error": "permission denied while trying to connect"})
    )
    assert "permission denied" in denied.docker_error
    garbage = parse_build_inputs("Traceback (most recent call last):")
    assert garbage.context_digest is None and "could not digest" in garbage.context_error
    missing = parse_build_inputs(
        json.dumps({"context": {"error": "no such build context: /x"}, "images": {}})
    )
    assert missing.context_error == "no such build context: /x"


def test_image_build_inputs_command_runs_here(tmp_path):
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "f").write_text("1")
    (tmp_path / "it's config").mkdir()
    (tmp_path / "it's config" / "a.yaml").write_text("a: 1\n")
    state = run_fact(
        ImageBuildInputs(),
        context=str(tmp_path),
        include=["it's config", "gone"],
        images=["isaac-deploy-test/none:1"],
    )
    expected = context_digest(str(tmp_path), ("it's config", "gone"))
    assert state.context_digest == expected["digest"] and expected["files"] == 2
    assert state.missing == ("gone",)
    assert state.image("isaac-deploy-test/none:1") is None
