"""docker/install-extension.sh, which the Dockerfiles run at build time, here with stand-ins for
Isaac Lab's ``isaaclab.sh -p`` (pip logged, not run), Isaac Sim's ``python.sh`` (this Python) and
``apt-get`` (logged): apt_deps first, those not installed yet, then the package with its
dependencies; any failure is one line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

SCRIPT = ROOT / "docker" / "install-extension.sh"


@pytest.fixture
def image(tmp_path: Path) -> dict:
    """An image's layout: Isaac Lab, Isaac Sim and apt-get stand-ins that log their calls."""
    log = tmp_path / "calls.log"
    bins = {
        "isaaclab/isaaclab.sh": f'echo "isaaclab.sh $*" >> {log}\nexit "${{PIP_EXIT:-0}}"\n',
        "isaac-sim/python.sh": 'exec python3 "$@"\n',
        "bin/apt-get": f'echo "apt-get $*" >> {log}\nexit "${{APT_EXIT:-0}}"\n',
    }
    for rel, body in bins.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
    extension = tmp_path / "ext" / "source" / "my_ext"
    (extension / "config").mkdir(parents=True)
    (extension / "setup.py").write_text("setup()\n")
    env = {
        "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
        "DOCKER_ISAACLAB_PATH": str(tmp_path / "isaaclab"),
        "DOCKER_ISAACSIM_ROOT_PATH": str(tmp_path / "isaac-sim"),
    }
    return {"env": env, "log": log, "extension": extension}


def install(image: dict, **env: str) -> tuple[int, str, list[str]]:
    done = subprocess.run(
        ["sh", str(SCRIPT), str(image["extension"])],
        env={**image["env"], **env},
        capture_output=True,
        text=True,
    )
    log = image["log"]
    calls = log.read_text().splitlines() if log.exists() else []
    return done.returncode, done.stdout + done.stderr, calls


def pip_call(image: dict) -> str:
    return f"isaaclab.sh -p -m pip install --no-cache-dir --editable {image['extension']}"


def test_the_package_is_installed_with_its_dependencies_and_build_isolation(image):
    assert os.access(SCRIPT, os.X_OK)
    code, out, calls = install(image)
    assert code == 0 and calls == [pip_call(image)], out
    assert "--no-deps" not in calls[0] and "--no-build-isolation" not in calls[0]


def test_apt_deps_not_installed_yet_are_installed_first_from_either_section(image):
    """Isaac Lab's tools/install_deps.py reads [isaac_lab_settings], the extension template
    writes [isaaclab_settings]: both count; dpkg (installed here) is not installed again."""
    (image["extension"] / "config" / "extension.toml").write_text(
        '[package]\nversion = "0.1.0"\n'
        '[isaac_lab_settings]\napt_deps = ["dpkg", "isaac-deploy-no-such-package"]\n'
        '[isaaclab_settings]\napt_deps = ["libfoo1=1.2-3"]\n'
    )
    code, out, calls = install(image)
    assert code == 0, out
    assert calls == [
        "apt-get update",
        "apt-get install -y --no-install-recommends isaac-deploy-no-such-package libfoo1=1.2-3",
        pip_call(image),
    ]


def test_no_apt_deps_or_only_installed_ones_call_no_apt_get(image):
    toml = image["extension"] / "config" / "extension.toml"
    for text in (
        "[isaaclab_settings]\napt_deps = []\n",
        '[isaaclab_settings]\napt_deps = ["dpkg"]\n',
    ):
        toml.write_text(text)
        image["log"].unlink(missing_ok=True)
        code, out, calls = install(image)
        assert code == 0 and calls == [pip_call(image)], out


@pytest.mark.parametrize(
    ("toml", "env", "line"),
    [
        (
            '[isaaclab_settings]\napt_deps = ["ok", "x; rm -rf /"]\n',
            {},
            "isaac-deploy: cannot read the apt_deps of {toml} (see above)",
        ),
        (
            '[isaaclab_settings]\napt_deps = ["isaac-deploy-no-such-package"]\n',
            {"APT_EXIT": "100"},
            "isaac-deploy: installing the apt_deps of {toml} ( isaac-deploy-no-such-package ) "
            "failed: see apt-get's output above",
        ),
        (
            "",
            {"PIP_EXIT": "1"},
            "isaac-deploy: installing the extension {ext} with its dependencies "
            "(INSTALL_REQUIRES, pyproject.toml) failed: see pip's output above",
        ),
    ],
)
def test_a_failure_is_one_line_and_stops_the_build(image, toml, env, line):
    path = image["extension"] / "config" / "extension.toml"
    path.write_text(toml)
    code, out, calls = install(image, **env)
    expected = line.format(toml=path, ext=image["extension"])
    assert code == 1 and expected in out.splitlines()[-1], out
    if "apt_deps" in line:
        assert pip_call(image) not in calls  # nothing installed after a failure


def test_a_folder_without_packaging_is_refused(image):
    (image["extension"] / "setup.py").unlink()
    code, out, calls = install(image)
    assert code == 1 and calls == []
    assert out.strip() == (
        f"isaac-deploy: {image['extension']} has neither setup.py nor pyproject.toml: the "
        "extension cannot be installed"
    )
