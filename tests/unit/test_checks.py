"""Toolkit checks: statuses, tested version combinations, one actionable line each."""

from __future__ import annotations

import pytest

from isaac_deploy.facts.toolkit import WorkstationToolkit
from isaac_deploy.policy.checks import is_tested_combination, toolkit_checks, version_tuple
from tests.helpers import fixture_lines


def checks(name: str, will_install: bool = True, min_free_gb: int = 20) -> dict:
    tk = WorkstationToolkit().process(fixture_lines(f"toolkit/{name}"))
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
