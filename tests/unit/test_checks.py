"""Toolkit checks: statuses, tested version combinations, one actionable line each."""

from __future__ import annotations

from dataclasses import replace

import pytest

from isaac_deploy.facts.toolkit import DockerEndpoint, WorkstationToolkit
from isaac_deploy.policy.checks import (
    check_docker,
    engine_elsewhere_down,
    is_tested_combination,
    toolkit_checks,
    version_tuple,
)
from tests.helpers import fixture_lines

DEAD_HOST = "unix:///tmp/tmp.fO357fMcyr/nope.sock"  # the private folder of the captures


def toolkit(name: str):
    return WorkstationToolkit().process(fixture_lines(f"toolkit/{name}"))


def checks(name: str, will_install: bool = True, min_free_gb: int = 20) -> dict:
    tk = toolkit(name)
    result = toolkit_checks(tk, will_install=will_install, min_free_gb=min_free_gb)
    return {check.name: check for check in result}


@pytest.mark.parametrize(
    ("docker", "apptainer", "tested"),
    [
        ("24.0.7", "1.2.5", True),
        ("27.0.0", "1.3.4", True),
        ("28.2.2", "1.4.1", True),
        ("27.3.1", "1.3.3", False),
        ("26.1.3", "1.3.4", False),
        ("24.0.7", "1.3.4", False),
        ("24.0.6", "1.2.5", False),
        ("20.10.24", "1.2.5", False),
    ],
)
def test_is_tested_combinations(docker, apptainer, tested):
    assert is_tested_combination(docker, apptainer) is tested


def test_version_tuple_handles_suffixes():
    assert version_tuple("20.10.24+dfsg1") == (20, 10, 24)
    assert version_tuple("1.2.5-1.el8") == (1, 2, 5)
    assert version_tuple("27.0") == (27, 0, 0)
    assert version_tuple(None) == ()


def test_gpu_box_all_ok():
    result = checks("ubuntu22-gpu-docker27-apptainer134.json")
    assert {name: c.status for name, c in result.items()} == {
        "NVIDIA driver": "OK",
        "Docker": "OK",
        "Docker Compose": "OK",
        "NVIDIA Container Toolkit": "OK",
        "Apptainer": "OK",
        "Docker/Apptainer": "OK",
        "Disk": "OK",
    }


def test_no_gpu_is_skipped_never_passed():
    result = checks("debian12-root-docker20.json")
    assert result["NVIDIA driver"].status == "SKIPPED"
    assert "CPU-only" in result["NVIDIA driver"].message
    assert result["NVIDIA Container Toolkit"].status == "SKIPPED"


def test_unis_tested_combination_warns():
    tk = WorkstationToolkit().process(fixture_lines("toolkit/nvidia-smi-failed-singularity.json"))
    result = {c.name: c for c in toolkit_checks(tk, will_install=True)}
    assert result["Docker/Apptainer"].status == "WARN"
    assert "26.1.3" in result["Docker/Apptainer"].message
    assert "Docker >= 27.0.0 + Apptainer >= 1.3.4" in result["Docker/Apptainer"].fix


def test_failed_driver_is_one_actionable_fail_line():
    check = checks("nvidia-smi-failed-singularity.json")["NVIDIA driver"]
    assert check.status == "FAIL" and "\n" not in check.line()
    assert "NVIDIA driver" in check.line() and "->" in check.line()


def test_missing_toolkit_check_mode_fails_with_the_fix():
    result = checks("no-docker.json", will_install=False)
    docker = result["Docker"]
    assert docker.status == "FAIL" and "apt-get install docker.io" in docker.fix
    nvidia = result["NVIDIA Container Toolkit"]
    assert nvidia.status == "FAIL" and "nvidia-container-toolkit" in nvidia.fix
    assert result["Apptainer"].status == "WARN"


def test_missing_toolkit_install_mode_says_the_deploy_installs_it():
    result = checks("no-docker.json", will_install=True)
    assert result["Docker"].status == "WARN" and "deploy installs" in result["Docker"].fix
    assert result["NVIDIA Container Toolkit"].status == "WARN"


def test_runtime_not_configured_and_compose_v1_only():
    result = checks("ubuntu20-docker2407-apptainer125.json", will_install=False)
    assert result["NVIDIA Container Toolkit"].status == "FAIL"
    assert "nvidia-ctk runtime configure" in result["NVIDIA Container Toolkit"].fix
    assert result["Docker Compose"].status == "FAIL"
    assert "1.29.2" in result["Docker Compose"].message
    assert result["Docker/Apptainer"].status == "OK"  # 24.0.7 + 1.2.5 is a tested pair
    assert result["Disk"].status == "WARN" and "docker system prune" in result["Disk"].fix


def test_permission_denied_names_the_docker_group():
    result = checks("debian12-nogroup-permission-denied.json", will_install=False)
    assert result["Docker"].status == "FAIL"
    assert "usermod -aG docker" in result["Docker"].fix


def test_unknown_disk_is_skipped():
    assert checks("empty.txt")["Disk"].status == "SKIPPED"


def test_client_without_engine_is_not_ok():
    check = checks("debian12-client-only-no-engine.json", will_install=False)["Docker"]
    assert check.status == "FAIL" and "no Docker engine (dockerd) is installed" in check.message
    assert "apt-get install docker.io" in check.fix


@pytest.mark.parametrize("will_install", [True, False])
def test_dead_docker_host_fails_naming_the_variable_its_endpoint_and_the_fix(will_install):
    check = checks("debian12-dead-docker-host.json", will_install=will_install)["Docker"]
    assert check.line() == (
        f"[FAIL] Docker: DOCKER_HOST points to {DEAD_HOST}, where no Docker engine answers "
        f"(Cannot connect to the Docker daemon at {DEAD_HOST} (No such file or directory)) "
        f"-> unset DOCKER_HOST to use this machine's engine, or start the Docker daemon at "
        f"{DEAD_HOST}"
    )


def test_dead_docker_context_fails_naming_the_context_its_endpoint_and_the_fix():
    check = checks("debian12-dead-context.json")["Docker"]
    assert check.status == "FAIL" and "\n" not in check.line()
    assert check.message.startswith(
        f'the Docker context "dead" (chosen by `docker context use`) points to {DEAD_HOST}, '
        "where no Docker engine answers ("
    )
    assert check.fix == (
        "run `docker context use default` to use this machine's engine, or start the Docker "
        f"daemon at {DEAD_HOST}"
    )


def test_context_from_docker_context_and_one_without_an_endpoint():
    dead = toolkit("debian12-dead-context.json")
    chosen = replace(dead, docker_endpoint=replace(dead.docker_endpoint, source="DOCKER_CONTEXT"))
    check = engine_elsewhere_down(chosen)
    assert check.message.startswith('the Docker context "dead" (chosen by DOCKER_CONTEXT) points')
    assert check.fix.startswith("unset DOCKER_CONTEXT to use this machine's engine, or start")
    gone = replace(chosen, docker_endpoint=DockerEndpoint(None, "DOCKER_CONTEXT", "gone", False))
    check = engine_elsewhere_down(gone)
    assert check.message.startswith(
        'the Docker context "gone" (chosen by DOCKER_CONTEXT) has no Docker endpoint here ('
    )
    assert check.fix == "unset DOCKER_CONTEXT to use this machine's engine"


def test_dead_default_socket_is_still_started_by_the_deploy():
    install = checks("debian12-daemon-down.json", will_install=True)["Docker"]
    assert install.status == "WARN" and install.fix == "the deploy starts it"
    check_only = checks("debian12-daemon-down.json", will_install=False)["Docker"]
    assert check_only.status == "FAIL" and "sudo systemctl start docker" in check_only.fix
    down = toolkit("debian12-daemon-down.json")
    assert engine_elsewhere_down(down) is None
    named = DockerEndpoint("unix:///run/docker.sock", "DOCKER_HOST", None, local_default=True)
    assert engine_elsewhere_down(replace(down, docker_endpoint=named)) is None


def test_an_answering_engine_elsewhere_is_named_in_the_ok_line():
    here = toolkit("debian12-root-docker20.json")
    assert check_docker(here, True)[0].message == "client 28.2.2, engine 20.10.24"
    remote = DockerEndpoint("tcp://gpu-box:2376", "DOCKER_HOST", None, local_default=False)
    check = check_docker(replace(here, docker_endpoint=remote), True)[0]
    assert check.line() == (
        "[OK] Docker: client 28.2.2, engine 20.10.24 (DOCKER_HOST points to tcp://gpu-box:2376)"
    )
    assert engine_elsewhere_down(replace(here, docker_endpoint=remote)) is None
