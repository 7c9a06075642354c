"""Image builds, one definition for the deploy's operation and the CLI: which images a profile
has, what isaac-deploy puts into their build context, their build arguments, the digest of their
inputs and the ``docker build`` argv.

The build context is a tar stream made where the image is built (``probes.build_context``):
isaac-deploy's own Docker files (the installed package's, never a copy in the user's project)
under :data:`RESERVED`, and the project's selected files (``probes.context_digest``: ``source/``,
``scripts/``, the user's ``isaac_image_paths``, never env files, keys, logs or caches) under
:data:`EXTENSION_DIR`, which the Dockerfiles copy to the extension's folder in the image.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from isaac_deploy.model import paths
from isaac_deploy.model.errors import ToolkitError
from isaac_deploy.model.workstation import WorkstationConfig

INPUTS_LABEL = "org.isaac-deploy.inputs"
JOBS_INPUTS_LABEL = "org.isaac-deploy.jobs-inputs"
"""The inputs of what a cluster job sees of the image: all but the code its snapshot binds over
(``probes.context_digest.bound_by_jobs``); a code edit alone needs no new image on a cluster."""
IMAGE_LABEL = "org.isaac-deploy.image"
"""On every layer of a build (the Dockerfiles' first ``LABEL``, from the build argument
``ISAAC_IMAGE``): the image it builds, so that a failed build's leftovers are found as its own."""
"""isaac-deploy's Docker files: the top-level ``docker/`` of the checkout, shipped inside the
package as ``isaac_deploy/data/docker`` (a link in the checkout, files in an installed wheel)."""
DOCKERFILES = {"ext": "Dockerfile.ext", "ext-dev": "Dockerfile.ext-dev"}
HELPERS = ("entrypoint.sh", "install-extension.sh")
"""The executables the Dockerfiles copy to ``/opt/isaac-deploy/`` from the build context."""
DEV_HELPERS = ("install-ros2.sh", "bashrc.sh")
"""The dev image's own: its ROS 2 layer and its interactive shells' set-up."""
RESERVED = ".isaac-deploy"
"""The build context's folder of isaac-deploy's own files (never a project file's name: the
selection leaves any ``.isaac-deploy`` out)."""
DOCKERFILE = f"{RESERVED}/Dockerfile"
EXTENSION_DIR = "extension"
"""The build context's folder of the project's selected files."""


@dataclass(frozen=True)
class ContextFile:
    """One of isaac-deploy's own files in a build context."""

    name: str  # path inside the build context
    text: str
    executable: bool = False

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True)
class ImageBuild:
    """One image to build: tag, base image (``FROM``), isaac-deploy's files in its context (the
    Dockerfile first) and build arguments."""

    image: str
    base_image: str
    files: tuple[ContextFile, ...]
    build_args: dict[str, str] = field(default_factory=dict)


@cache
def docker_file(name: str) -> str:
    """The text of one of isaac-deploy's Docker files (``Dockerfile.ext``, ``entrypoint.sh``)."""
    try:
        return (paths.PACKAGE_DOCKER / name).read_text()
    except OSError as error:
        raise ToolkitError(
            f"isaac-deploy's {name} cannot be read from {paths.PACKAGE_DOCKER} ({error.strerror}): "
            "reinstall isaac-deploy"
        ) from None


def context_files(profile: str) -> tuple[ContextFile, ...]:
    """isaac-deploy's files in the build context of ``profile``'s image, the Dockerfile first."""
    names = HELPERS + (DEV_HELPERS if profile == "ext-dev" else ())
    helpers = (ContextFile(f"{RESERVED}/{name}", docker_file(name), True) for name in names)
    return (ContextFile(DOCKERFILE, docker_file(DOCKERFILES[profile])), *helpers)


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
            **config.ros2.build_args(),
        )
    return args


def image_build(config: WorkstationConfig, profile: str) -> ImageBuild:
    return ImageBuild(
        image=config.image_name(profile),
        base_image=config.base_images[profile],
        files=context_files(profile),
        build_args=build_args(config, profile),
    )


def inputs_digest(context_digest: str, build: ImageBuild, base_id: str) -> str:
    """One digest over everything that decides the image: the digest of the project's selected
    files, isaac-deploy's files in the context (the Dockerfile's and the helpers' text and
    mode), the base image's id and the build arguments."""
    files = (f"{f.name}\0{'x' if f.executable else '-'}\0{f.digest}" for f in build.files)
    args = (f"{k}={v}" for k, v in sorted(build.build_args.items()))
    text = "\n".join([context_digest, *files, base_id, *args])
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def context_spec(
    context: str, include: tuple[str, ...], digest: str, build: ImageBuild
) -> dict[str, object]:
    """What ``probes.build_context`` needs to stream ``build``'s context: the project folder,
    the user's include paths, the digest its selected files must have (the one the image is
    labelled with), and isaac-deploy's files with their text (base64) and mode."""
    files = [
        [f.name, 0o755 if f.executable else 0o644, base64.b64encode(f.text.encode()).decode()]
        for f in build.files
    ]
    return {
        "context": context,
        "include": list(include),
        "digest": digest,
        "prefix": EXTENSION_DIR,
        "files": files,
    }


def build_argv(
    build: ImageBuild, labels: Mapping[str, str], extra: tuple[str, ...] = ()
) -> list[str]:
    """``docker build`` for ``build`` from a context on its standard input (``-``), labelled
    with ``labels`` (its inputs digests), each layer with the image (``ISAAC_IMAGE``),
    intermediate containers removed also when it fails; ``extra`` flags such as ``--no-cache``
    go before the context."""
    argv = ["docker", "build", "--pull=false", "--force-rm", "-f", DOCKERFILE, "-t", build.image]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    for key, value in [("ISAAC_IMAGE", build.image), *sorted(build.build_args.items())]:
        argv += ["--build-arg", f"{key}={value}"]
    return [*argv, *extra, "-"]


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
