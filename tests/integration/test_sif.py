"""The Apptainer image of the production image, built on the workstation by the real pyinfra
CLI on @local with the lab's `apptainer` stand-in (real SIF files: skopeo, mksquashfs,
siftool); the command lines for the real Apptainer are unit-tested."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

import docker

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def built(root_project):
    result = root_project.deploy(data={"isaac_profiles": ("ext",)})
    assert result.rc == 0, result.out
    return root_project


def build(project, lab, tmp_path, image: str):
    deploy = tmp_path / "sif.py"
    deploy.write_text(
        "from isaac_deploy.operations.cluster_image import sif_built\n"
        f"sif_built(name='sif', image={image!r}, cache_dir={str(tmp_path / 'cache')!r})\n"
    )
    env = {
        **os.environ,
        "PATH": f"{lab['apptainer_bin']}:{os.environ['PATH']}",
        "FAKE_APPTAINER_LOG": str(tmp_path / "apptainer.log"),
    }
    proc = subprocess.run(
        [str(project.venv_bin / "pyinfra"), "-y", "@local", str(deploy)],
        capture_output=True,
        text=True,
        env=env,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_sif_named_by_digest_built_once(built, lab, tmp_path):
    image_id = docker.from_env().images.get("isaac-lab-lab-ext:root").id
    code, out = build(built, lab, tmp_path, "isaac-lab-lab-ext:root")
    assert code == 0, out
    sif = tmp_path / "cache" / (image_id.replace(":", "-") + ".sif")
    assert sif.exists() and sif.read_bytes()[:32].startswith(b"#!/usr/bin/env run-singularity")
    listing = subprocess.run(
        ["siftool", "list", str(sif)], capture_output=True, text=True, check=True
    ).stdout
    assert "Squashfs" in listing
    assert (tmp_path / "cache" / (sif.name + ".sha256")).read_text().strip() == hashlib.sha256(
        sif.read_bytes()
    ).hexdigest()
    assert not [
        p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")
    ]  # no partial left
    calls = (tmp_path / "apptainer.log").read_text().count('"build"')
    code, out = build(built, lab, tmp_path, "isaac-lab-lab-ext:root")
    assert (
        code == 0 and (tmp_path / "apptainer.log").read_text().count('"build"') == calls
    )  # not rebuilt


def test_missing_image_is_one_line(built, lab, tmp_path):
    code, out = build(built, lab, tmp_path, "isaac-lab-nothing:here")
    assert code != 0 and "error: image isaac-lab-nothing:here is not built" in out
