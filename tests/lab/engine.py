"""What the tests make in the lab's Docker engine, and how it goes again.

Every image the tests build starts FROM the base-image stand-in, so it and every container made
from it carry the stand-in's label; with the Compose project label and the tests' own extension
name that finds the tests' containers, volumes and images without touching anybody else's.
"""

from __future__ import annotations

import subprocess

STANDIN_LABEL = "org.isaac-deploy.stand-in"
CACHE_LABEL = "org.isaac-deploy.lab-cache"
"""Images the lab keeps between runs on purpose, made once (the lab PCs' image): never leftovers."""
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"


def docker_lines(*args: str) -> list[str]:
    """The non-empty output lines of ``docker ARGS`` (none when the engine does not answer)."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    return [line for line in result.stdout.splitlines() if line.strip()]


def remove(kind: str, names: list[str]) -> None:
    """``docker KIND rm --force NAMES`` (``kind``: container, volume, image); what could not be
    removed is named by the session's leftover check."""
    if names:
        subprocess.run(["docker", kind, "rm", "--force", *names], capture_output=True, check=False)


def remove_compose_project(project: str) -> None:
    """The containers of Compose project ``project``, running or not, then its volumes."""
    label = f"label={COMPOSE_PROJECT_LABEL}={project}"
    remove("container", docker_lines("ps", "--all", "--quiet", "--filter", label))
    remove("volume", docker_lines("volume", "ls", "--quiet", "--filter", label))


def prune_dangling_images() -> list[str]:
    """Images built on the stand-in that a rebuild took the tag from; their ids."""
    filters = ["--filter", "dangling=true", "--filter", f"label={STANDIN_LABEL}"]
    ids = docker_lines("images", "--quiet", "--no-trunc", *filters)
    remove("image", ids)
    return ids


def remove_test_objects(volume_prefix: str, image_prefix: str) -> list[str]:
    """Everything of the tests in the engine, whoever made it: containers of images built on
    the stand-in, volumes named ``volume_prefix...``, images named ``image_prefix...`` and
    dangling images built on the stand-in. What was removed, one ``kind name`` each."""
    containers = docker_lines(
        "ps", "--all", "--filter", f"label={STANDIN_LABEL}", "--format", "{{.Names}}"
    )
    remove("container", containers)
    volumes = [
        name for name in docker_lines("volume", "ls", "--quiet") if name.startswith(volume_prefix)
    ]
    remove("volume", volumes)
    refs = docker_lines("images", "--format", "{{.Repository}}:{{.Tag}}")
    images = [ref for ref in refs if ref.startswith(image_prefix)]
    remove("image", images)
    dangling = prune_dangling_images()
    return (
        [f"container {name}" for name in containers]
        + [f"volume {name}" for name in volumes]
        + [f"image {ref}" for ref in images]
        + [f"dangling image {image_id}" for image_id in dangling]
    )


def objects() -> set[str]:
    """Every container, volume, network and image of the engine (intermediate build images
    too; not the lab's cache images), each named as the leftover check reports it."""
    containers = docker_lines(
        "ps", "--all", "--no-trunc", "--format", "container {{.Names}} ({{.ID}})"
    )
    volumes = [f"volume {name}" for name in docker_lines("volume", "ls", "--quiet")]
    networks = [
        f"network {name}" for name in docker_lines("network", "ls", "--format", "{{.Name}}")
    ]
    image_format = "image {{.Repository}}:{{.Tag}} ({{.ID}})"
    images = docker_lines("images", "--all", "--no-trunc", "--format", image_format)
    cached = docker_lines(
        "images", "--no-trunc", "--filter", f"label={CACHE_LABEL}", "--format", image_format
    )
    return {*containers, *volumes, *networks, *(set(images) - set(cached))}
