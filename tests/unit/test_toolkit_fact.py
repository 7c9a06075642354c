"""WorkstationToolkit: parsing captured outputs of its one command (real and hand-made)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from isaac_deploy.facts.toolkit import DockerEndpoint, WorkstationToolkit, image_key, parse_toolkit
from tests.helpers import fixture_lines

DEAD_HOST = "unix:///tmp/tmp.fO357fMcyr/nope.sock"  # the private folder of the captures


def parse(name: str):
    return WorkstationToolkit().process(fixture_lines(f"toolkit/{name}"))


def test_one_command_runs_here_and_answers_paths_files_and_digests(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "it's a file").write_text("content\n")
    (tmp_path / "key").write_text("s3cr3t\n")
    (tmp_path / "key").chmod(0o600)
    command = (
        WorkstationToolkit()
        .command(
            paths=(str(tmp_path / "dir"), str(tmp_path / "it's a file"), str(tmp_path / "none")),
            read=(str(tmp_path / "it's a file"), str(tmp_path / "none")),
            digest=(str(tmp_path / "key"),),
        )
        .get_raw_value()
    )
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    assert len(result.stdout.splitlines()) == 1  # one JSON object
    tk = WorkstationToolkit().process(result.stdout.splitlines())
    assert tk.user is not None and tk.user.uid == os.getuid()
    assert tk.path_kind(str(tmp_path / "dir")) == "dir"
    assert tk.path_kind(str(tmp_path / "it's a file")) == "file"
    assert tk.path_kind(str(tmp_path / "none")) == "missing"
    assert tk.files == {str(tmp_path / "it's a file"): "content\n", str(tmp_path / "none"): None}
    key = tk.digests[str(tmp_path / "key")]
    assert key.mode == 0o600 and key.sha256 == hashlib.sha256(b"s3cr3t\n").hexdigest()
    assert "s3cr3t" not in result.stdout


def test_gpu_workstation_docker27_apptainer134():
    tk = parse("ubuntu22-gpu-docker27-apptainer134.json")
    assert tk.user.name == "alice" and tk.user.uid == 1000 and tk.user.home == "/home/alice"
    assert tk.user.shell == "/bin/zsh" and "docker" in tk.user.groups
    assert (tk.os_id, tk.os_version, tk.os_codename) == ("ubuntu", "22.04", "jammy")
    assert tk.arch == "x86_64" and tk.init == "systemd"
    assert [g.name for g in tk.gpus] == ["NVIDIA RTX A6000", "NVIDIA RTX A6000"]
    assert tk.nvidia_driver == "550.120" and tk.nvidia_smi_error is None
    assert (tk.docker_client, tk.docker_server, tk.docker_server_error) == (
        "27.3.1",
        "27.3.1",
        None,
    )
    assert tk.compose == "2.29.7" and tk.compose_standalone is None
    assert tk.nvidia_ctk == "1.16.2"
    assert tk.nvidia_runtime_configured
    assert (
        tk.runtimes == ("io.containerd.runc.v2", "nvidia", "runc") and tk.default_runtime == "runc"
    )
    assert tk.apptainer == "1.3.4" and tk.singularity is None
    assert tk.docker_root == "/var/lib/docker" and tk.free_kib == 498567890
    assert tk.has_image("isaac-lab-base") and tk.has_image("isaac-lab-ros2:latest")
    assert not tk.has_image("isaac-lab-base:4.5")
    assert all(not ref.startswith("<none>") for ref in tk.images)


def test_tested_pair_docker2407_apptainer125_and_compose_v1_only():
    tk = parse("ubuntu20-docker2407-apptainer125.json")
    assert tk.docker_server == "24.0.7" and tk.apptainer == "1.2.5"
    assert tk.compose is None and tk.compose_standalone == "1.29.2"
    assert tk.nvidia_ctk == "1.14.3" and not tk.nvidia_runtime_configured
    assert tk.daemon_json == {"default-runtime": "runc"} and tk.sudo is None
    assert tk.docker_root == "/data/docker" and tk.free_kib == 11803544


def test_failed_driver_bad_daemon_json_and_singularity():
    tk = parse("nvidia-smi-failed-singularity.json")
    assert tk.gpus == () and tk.nvidia_driver is None
    assert "couldn't communicate with the NVIDIA driver" in tk.nvidia_smi_error
    assert tk.daemon_json is None and "not valid JSON" in tk.daemon_json_error
    assert tk.singularity == "4.1.2" and tk.apptainer is None
    assert tk.arch == "aarch64" and tk.user.uid == 2000


def test_fresh_pc_without_docker():
    tk = parse("no-docker.json")
    assert tk.docker_client is None and tk.docker_server is None
    assert tk.docker_server_error is None and not tk.docker_permission_denied
    assert tk.compose is None and tk.nvidia_ctk is None and tk.images == {}
    assert len(tk.gpus) == 1 and tk.gpus[0].memory == "24564 MiB"


def test_captured_here_root_with_debian_docker20():
    tk = parse("debian12-root-docker20.json")
    assert tk.user.uid == 0 and tk.docker_server == "20.10.24"
    assert tk.gpus == () and tk.nvidia_smi_error is None  # no nvidia-smi: CPU-only, not an error
    assert tk.dockerd == "/usr/sbin/dockerd" and tk.init != "systemd"


def test_captured_here_user_not_in_docker_group():
    tk = parse("debian12-nogroup-permission-denied.json")
    assert tk.docker_client and tk.docker_server is None
    assert tk.docker_permission_denied
    assert tk.docker_root is None and tk.images == {}  # the engine said nothing


def test_captured_here_daemon_down():
    tk = parse("debian12-daemon-down.json")
    assert tk.docker_client and tk.docker_server is None
    assert "Cannot connect to the Docker daemon" in tk.docker_server_error
    assert not tk.docker_permission_denied
    assert tk.docker_endpoint == DockerEndpoint(
        host="unix:///var/run/docker.sock", source="default", context=None, local_default=True
    )


def test_captured_here_dead_docker_host_names_the_endpoint_asked():
    tk = parse("debian12-dead-docker-host.json")
    assert tk.docker_client and tk.docker_server is None and not tk.docker_permission_denied
    assert tk.docker_endpoint == DockerEndpoint(
        host=DEAD_HOST, source="DOCKER_HOST", context=None, local_default=False
    )
    assert DEAD_HOST in tk.docker_server_error


def test_captured_here_dead_docker_context_names_the_context_and_its_endpoint():
    tk = parse("debian12-dead-context.json")
    assert tk.docker_client and tk.docker_server is None
    assert tk.docker_endpoint == DockerEndpoint(
        host=DEAD_HOST, source="context", context="dead", local_default=False
    )
    assert "Is the docker daemon running?" in tk.docker_server_error  # the CLI's own words


def test_older_or_garbled_endpoints_mean_the_default_socket():
    assert parse("debian12-root-docker20.json").docker_endpoint == DockerEndpoint()
    for garbled in (
        {"host": 1, "source": "elsewhere"},
        {"host": "tcp://h:2375", "source": "default", "local_default": False},
        "unix:///x.sock",
    ):
        output = json.dumps({"engine": {"endpoint": garbled}})
        assert parse_toolkit(output).docker_endpoint == DockerEndpoint(), garbled
    assert DockerEndpoint().host == "unix:///var/run/docker.sock"


@pytest.mark.parametrize("name", ["garbage.txt", "empty.txt", "not-an-object.json"])
def test_garbage_and_empty_give_an_empty_toolkit(name):
    tk = parse(name)
    assert tk.user is None and tk.docker_client is None and tk.gpus == ()
    assert tk.free_kib is None and tk.images == {}


def test_image_key_adds_latest_only_without_tag_or_digest():
    assert image_key("isaac-lab-base") == "isaac-lab-base:latest"
    assert image_key("localhost:5000/isaac-lab-base") == "localhost:5000/isaac-lab-base:latest"
    assert image_key("reg:5000/a/b:4.5") == "reg:5000/a/b:4.5"
    assert image_key("a@sha256:" + "0" * 64) == "a@sha256:" + "0" * 64
