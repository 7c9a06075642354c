"""Image builds, one definition for the deploy's operation and the CLI: which images a profile
has, their build arguments, the digest of their inputs and the ``docker build`` argv."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field

from isaac_deploy.model.workstation import WorkstationConfig

INPUTS_LABEL = "org.isaac-deploy.inputs"
JOBS_INPUTS_LABEL = "org.isaac-deploy.jobs-inputs"
"""The inputs of what a cluster job sees of the image: all but the code its snapshot binds over
(``probes.context_digest.bound_by_jobs``); a code edit alone needs no new image on a cluster."""
IMAGE_LABEL = "org.isaac-deploy.image"
"""On every layer of a build (the Dockerfiles' first ``LABEL``, from the build argument
``ISAAC_IMAGE``): the image it builds, so that a failed build's leftovers are found as its own."""
DOCKERFILES = {"ext": "docker/Dockerfile.ext", "ext-dev": "docker/Dockerfile.ext-dev"}


@dataclass(frozen=True)
class ImageBuild:
    """One image to build: tag, Dockerfile, base image (``FROM``) and build arguments."""

    image: str
    dockerfile: str
    base_image: str
    build_args: dict[str, str] = field(default_factory=dict)


def build_args(config: WorkstationConfig, profile: str) -> dict[str, str]:
    args = {
        "ISAACLAB_BASE_IMAGE": config.base_images[profile],
        "EXTENSION_NAME": config.extension_name,
        "DOCKER_EXT_PATH": config.docker_ext_path,
        "DOCKER_ISAACSIM_ROOT_PATH": config.isaacsim_root,
        "DOCKER_ISAACLAB_PATH": config.isaaclab_path,
    }
    if profile == "ext-dev":
        args.update(
            HOST_UID=str(config.uid),
            HOST_GID=str(config.gid),
            DOCKER_USER_NAME=config.user.name,
            DOCKER_USER_HOME=config.user.home,
            DEV_PIP_PACKAGES=config.dev_pip_packages,
        )
    return args


def image_build(config: WorkstationConfig, profile: str) -> ImageBuild:
    return ImageBuild(
        image=config.image_name(profile),
        dockerfile=posixpath.join(config.extension_folder, DOCKERFILES[profile]),
        base_image=config.base_images[profile],
        build_args=build_args(config, profile),
    )


def inputs_digest(
    context_digest: str, dockerfile_digest: str, build: ImageBuild, base_id: str
) -> str:
    """One digest over everything that decides the image: the context's digest, the digest of
    the Dockerfile's text (not its path: the context need not hold the Dockerfile), the base
    image's id and the build arguments."""
    args = (f"{k}={v}" for k, v in sorted(build.build_args.items()))
    text = "\n".join([context_digest, dockerfile_digest, base_id, *args])
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def build_argv(
    build: ImageBuild, context: str, labels: Mapping[str, str], extra: tuple[str, ...] = ()
) -> list[str]:
    """``docker build`` for ``build``, labelled with ``labels`` (its inputs digests), each layer
    with the image (``ISAAC_IMAGE``), intermediate containers removed also when it fails;
    ``extra`` flags such as ``--no-cache`` go before the context."""
    argv = ["docker", "build", "--pull=false", "--force-rm", "-f", build.dockerfile]
    argv += ["-t", build.image]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    for key, value in [("ISAAC_IMAGE", build.image), *sorted(build.build_args.items())]:
        argv += ["--build-arg", f"{key}={value}"]
    return [*argv, *extra, context]


def prune_argv(build: ImageBuild) -> list[str]:
    """After a failed build: remove the dangling images of ``build``'s image (the layers the
    build left, earlier versions of it no container uses), no one else's."""
    return ["docker", "image", "prune", "--force", "--filter", f"label={IMAGE_LABEL}={build.image}"]


def sif_name(image_id: str) -> str:
    """``sha256:ab..`` -> ``sha256-ab...sif``: one SIF per image content."""
    return image_id.replace(":", "-") + ".sif"


def sandbox_name(sif: str) -> str:
    """``sha256-ab.sif`` -> ``sha256-ab.sandbox``: the unpacked folder of that image."""
    return sif[: -len(".sif")] + ".sandbox" if sif.endswith(".sif") else sif + ".sandbox"
