"""File and image facts: their commands run here for real, and their outputs parse."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

from isaac_deploy.facts.files import FileSha256WithMode, FileWithMode, PathKinds
from isaac_deploy.facts.images import ImageBuildInputs, parse_build_inputs


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
    "context": {"digest": "sha256:abc", "files": 3, "bytes": 10},
    "dockerfiles": {
        "/p/docker/Dockerfile.ext": {"digest": "sha256:df"},
        "/p/docker/Dockerfile.ext-dev": {
            "error": "no such Dockerfile: /p/docker/Dockerfile.ext-dev"
        },
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
    assert state.image("isaac-lab-base").id == "sha256:1111"
    assert state.image("isaac-lab-ext:alice").inputs == "sha256:in"
    assert state.image("nope:1") is None
    assert state.dockerfiles == {"/p/docker/Dockerfile.ext": "sha256:df"}
    assert state.dockerfile_error("/p/docker/Dockerfile.ext") is None
    assert state.dockerfile_error("/p/docker/Dockerfile.ext-dev") == (
        "no such Dockerfile: /p/docker/Dockerfile.ext-dev"
    )
    assert state.dockerfile_error("/p/other") == "no digest of Dockerfile /p/other"


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
    (tmp_path / "f").write_text("1")
    dockerfile = tmp_path / "it's a Dockerfile"
    dockerfile.write_text("FROM base\n")
    missing = str(tmp_path / "Dockerfile.none")
    state = run_fact(
        ImageBuildInputs(),
        context=str(tmp_path),
        dockerfiles=[str(dockerfile), missing],
        images=["isaac-deploy-test/none:1"],
    )
    assert state.context_digest.startswith("sha256:")
    assert state.image("isaac-deploy-test/none:1") is None
    assert state.dockerfiles == {
        str(dockerfile): "sha256:" + hashlib.sha256(b"FROM base\n").hexdigest()
    }
    assert state.dockerfile_error(missing) == f"no such Dockerfile: {missing}"


def write_context(config_dir, name: str, host: str) -> None:
    """A Docker context's metadata as the docker CLI (28.2.2) writes it."""
    meta = config_dir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    endpoints = {"docker": {"Host": host, "SkipTLSVerify": False}}
    (meta / "meta.json").write_text(
        json.dumps({"Name": name, "Metadata": {}, "Endpoints": endpoints})
    )


def test_docker_endpoint_is_the_one_the_docker_cli_would_ask(monkeypatch, tmp_path):
    """DOCKER_HOST, else DOCKER_CONTEXT, else the config's current context, else the default
    socket; a context's endpoint comes from its metadata."""
    from isaac_deploy.probes.dockerapi import docker_endpoint

    for name in ("DOCKER_HOST", "DOCKER_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    default = "unix:///var/run/docker.sock"
    assert docker_endpoint() == {
        "host": default,
        "source": "default",
        "context": None,
        "local_default": True,
    }
    dead = f"unix://{tmp_path}/nope.sock"
    write_context(tmp_path, "dead", dead)
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "dead"}))
    assert docker_endpoint() == {
        "host": dead,
        "source": "context",
        "context": "dead",
        "local_default": False,
    }
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    assert docker_endpoint()["source"] == "default"
    monkeypatch.setenv("DOCKER_CONTEXT", "dead")
    assert docker_endpoint() == {
        "host": dead,
        "source": "DOCKER_CONTEXT",
        "context": "dead",
        "local_default": False,
    }
    monkeypatch.setenv("DOCKER_CONTEXT", "gone")
    assert docker_endpoint() == {
        "host": None,
        "source": "DOCKER_CONTEXT",
        "context": "gone",
        "local_default": False,
    }
    monkeypatch.setenv("DOCKER_HOST", dead)  # DOCKER_HOST wins over any context
    assert docker_endpoint() == {
        "host": dead,
        "source": "DOCKER_HOST",
        "context": None,
        "local_default": False,
    }
    for host, local_default in (
        ("unix:///var/run/docker.sock", True),
        ("unix:///run/docker.sock", True),  # /var/run is a link to /run
        ("tcp://127.0.0.1:2375", False),
    ):
        monkeypatch.setenv("DOCKER_HOST", host)
        assert docker_endpoint()["local_default"] is local_default, host


def test_docker_cli_fallback_answers_like_the_engine_api(monkeypatch):
    """A non-unix DOCKER_HOST or a non-default context goes through the docker CLI."""
    from isaac_deploy.probes.dockerapi import DockerAPI, DockerCLI, docker_client

    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    assert isinstance(docker_client(), DockerCLI)
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    assert isinstance(docker_client(), DockerAPI)
    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.setenv("DOCKER_CONTEXT", "rootless")
    assert isinstance(docker_client(), DockerCLI)
    monkeypatch.delenv("DOCKER_CONTEXT")
    api, cli = DockerAPI(), DockerCLI()
    api_version, cli_version = api.get("/version"), cli.get("/version")
    assert api_version[0] == cli_version[0]
    if api_version[0] == 200:  # with an engine, both see the same one and the same images
        assert api_version[1]["Version"] == cli_version[1]["Version"]
        api_tags = sorted(t for i in api.get("/images/json")[1] for t in (i.get("RepoTags") or []))
        cli_tags = sorted(
            t for i in cli.get("/images/json")[1] for t in i["RepoTags"] if "<none>" not in t
        )
        assert [t for t in api_tags if "<none>" not in t] == cli_tags
        assert cli.get("/images/isaac-deploy-test%2Fnone:1/json")[0] == 404


def test_sudo_without_password_fact():
    from isaac_deploy.facts.sudo import SudoWithoutPassword

    fact = SudoWithoutPassword()
    assert (
        fact.process(["yes"]) is True
        and fact.process(["no"]) is False
        and fact.process([]) is False
    )
    assert "sudo -n true" in fact.command()
