"""Docker operations: images built from unchanged inputs only once, the daemon running."""

from __future__ import annotations

import hashlib

from pyinfra import host, logger
from pyinfra.api import QuoteString, StringCommand, operation

from ..facts.images import INPUTS_LABEL, ImageBuild
from ..facts.toolkit import Toolkit

DAEMON_PIDFILE = "/run/isaac-deploy-dockerd.pid"
DAEMON_LOG = "/var/log/isaac-deploy-dockerd.log"


def build_inputs_digest(
    context_digest: str, dockerfile: str, base_id: str, build_args: dict[str, str]
) -> str:
    """One digest over everything that decides the image: context, Dockerfile, base, args."""
    text = "\n".join(
        [context_digest, dockerfile, base_id, *(f"{k}={v}" for k, v in sorted(build_args.items()))]
    )
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def build_command(
    image: str, context: str, dockerfile: str, build_args: dict[str, str], inputs: str
) -> StringCommand:
    parts: list = ["docker", "build", "--pull=false", "-f", QuoteString(dockerfile)]
    parts += ["-t", QuoteString(image), "--label", QuoteString(f"{INPUTS_LABEL}={inputs}")]
    for key, value in sorted(build_args.items()):
        parts += ["--build-arg", QuoteString(f"{key}={value}")]
    return StringCommand(*parts, QuoteString(context))


@operation()
def image(
    image: str,
    context: str,
    dockerfile: str,
    base_image: str,
    build_args: dict[str, str] | None = None,
    base_hint: str = "",
):
    """Build ``image`` when its inputs changed; warn (and do nothing) when the base is missing.

    + image: tag to build, e.g. ``isaac-lab-ext-template-dev:latest``
    + context: build context directory on the target (``.dockerignore`` honoured)
    + dockerfile: Dockerfile path on the target
    + base_image: image named in the Dockerfile's ``FROM`` (passed as a build argument)
    + build_args: further ``--build-arg`` values
    + base_hint: how to get the base image, shown when it is missing
    """
    args = dict(build_args or {})
    current = host.get_fact(ImageBuild, context=context, image=image, base_image=base_image)
    if current.context_error:
        raise_error = f"cannot build {image}: {current.context_error}"
        logger.warning(f"{host.print_prefix}{raise_error}")
        return
    if current.docker_error:
        logger.warning(
            f"{host.print_prefix}{image} not built: Docker is not usable: {current.docker_error}"
        )
        return
    if current.base_id is None:
        logger.warning(
            f"{host.print_prefix}base image {base_image} is missing, so {image} is not built"
            + (f": {base_hint}" if base_hint else "")
        )
        return
    inputs = build_inputs_digest(current.context_digest, dockerfile, current.base_id, args)
    if current.image_inputs == inputs:
        host.noop(f"image {image} is up to date")
        return
    yield build_command(image, context, dockerfile, args, inputs)


def daemon_start_command(toolkit: Toolkit) -> StringCommand:
    """Start dockerd through systemd where PID 1 is systemd, else as a detached daemon."""
    wait = (
        "i=0; until docker version >/dev/null 2>&1; do i=$((i+1)); "
        f'[ $i -lt 100 ] || {{ echo "dockerd did not start, see {DAEMON_LOG}" >&2; exit 1; }}; '
        "sleep 0.2; done"
    )
    if toolkit.init == "systemd":
        return StringCommand(f"systemctl enable --now docker.service && {wait}")
    dockerd = toolkit.dockerd or "/usr/sbin/dockerd"
    return StringCommand(
        "start-stop-daemon --start --background --make-pidfile",
        "--pidfile", DAEMON_PIDFILE, "--output", DAEMON_LOG,
        "--exec", QuoteString(dockerd), "&&", wait,
    )  # fmt: skip


@operation(is_idempotent=False)
def daemon_running(toolkit: Toolkit):
    """Start the Docker daemon when it does not answer (needs root: run with ``_sudo``).

    + toolkit: the ``WorkstationToolkit`` fact, gathered before
    """
    if toolkit.docker_server:
        host.noop("Docker daemon is running")
        return
    if toolkit.docker_permission_denied:
        host.noop("Docker daemon is running (this user may not use it yet)")
        return
    yield daemon_start_command(toolkit)


@operation(is_idempotent=False)
def nvidia_runtime(toolkit: Toolkit):
    """Register the nvidia runtime with Docker (``nvidia-ctk runtime configure``), then restart
    the daemon; only when it is not registered yet (needs root: run with ``_sudo``)."""
    if toolkit.nvidia_runtime_configured:
        host.noop("nvidia runtime is configured in Docker")
        return
    yield "nvidia-ctk runtime configure --runtime=docker"
    if toolkit.init == "systemd":
        yield "systemctl restart docker.service"
    else:
        yield StringCommand(
            "start-stop-daemon --stop --retry 30 --pidfile", DAEMON_PIDFILE, "--remove-pidfile",
            "|| true;", daemon_start_command(toolkit),
        )  # fmt: skip
