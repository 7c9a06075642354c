"""An installed isaac-deploy (a wheel, not the checkout) carries its templates and Docker files
and renders from them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from tests.helpers import ROOT

DOCKER_FILES = (
    "Dockerfile.ext",
    "Dockerfile.ext-dev",
    "docker-compose.yaml",
    "entrypoint.sh",
    "install-extension.sh",
    "container.sh",
    "run_dev.sh",
)


def test_the_wheel_ships_templates_and_docker_files_and_renders_from_them(tmp_path):
    # built from a copy: setuptools writes build/ and *.egg-info next to the sources
    source = tmp_path / "source"
    skip = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", "logs")
    shutil.copytree(ROOT, source, symlinks=True, ignore=skip)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("isaac_deploy-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(site)
    templates = sorted(
        p.relative_to(ROOT / "templates") for p in (ROOT / "templates").rglob("*.j2")
    )
    for template in templates:
        assert f"isaac_deploy/data/templates/{template}" in names
    for name in DOCKER_FILES:
        assert f"isaac_deploy/data/docker/{name}" in names
    # nothing rendered per host (env files, the override) travels with the package
    assert not [n for n in names if "/.env" in n or n.endswith("override.yaml")]
    probe = (
        "from isaac_deploy.model.cluster import ClusterConfig\n"
        "from isaac_deploy.render.job_script import JobSpec, render_job\n"
        "from isaac_deploy.render.templates import TEMPLATES\n"
        "cluster = ClusterConfig.parse('c', dict(user='u', scheduler='slurm', image_dir='/i',"
        " code_dir='/c', cache_dir='/k', logs_dir='/l'))\n"
        "job = JobSpec(run_key='r1', image='/i/x.sif', code_dir='/c/r1', logs_tree='/l/ext',"
        " bookkeeping='/l/ext/isaac-deploy/r1', cache_dir='/k', output='/l/ext/isaac-deploy/r1/job.out',"
        " extension='ext', planned='2026-11-24T06:00:00Z')\n"
        "print(TEMPLATES)\n"
        "print(render_job(TEMPLATES, cluster, job).splitlines()[0])\n"
        "from isaac_deploy.model.images import context_files\n"
        "from isaac_deploy.model.paths import PACKAGE_DOCKER\n"
        "print(PACKAGE_DOCKER)\n"
        "print(*(f'{f.name} {f.executable} {len(f.text)}' for f in context_files('ext-dev')))\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    lines = ran.stdout.splitlines() if ran.returncode == 0 else [ran.stderr, "", "", ""]
    folder, first_line, docker_folder, docker_files = lines
    assert folder == str(site / "isaac_deploy" / "data" / "templates")
    assert first_line == "#!/usr/bin/env bash"
    # the images' Dockerfile and helpers come from the installed package, never the project
    assert docker_folder == str(site / "isaac_deploy" / "data" / "docker")
    sizes = [
        len((ROOT / "docker" / name).read_text())
        for name in (
            "Dockerfile.ext-dev",
            "entrypoint.sh",
            "install-extension.sh",
            "install-ros2.sh",
            "bashrc.sh",
        )
    ]
    assert docker_files == (
        f".isaac-deploy/Dockerfile False {sizes[0]} .isaac-deploy/entrypoint.sh True {sizes[1]} "
        f".isaac-deploy/install-extension.sh True {sizes[2]} "
        f".isaac-deploy/install-ros2.sh True {sizes[3]} .isaac-deploy/bashrc.sh True {sizes[4]}"
    )
