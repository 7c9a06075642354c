"""Docker operations: images built from unchanged inputs only once, the daemon running."""

from __future__ import annotations

import json

from pyinfra import host, logger
from pyinfra.api import QuoteString, StringCommand, operation

from isaac_deploy.facts.images import ImageBuildInputs
from isaac_deploy.facts.toolkit import Toolkit
from isaac_deploy.model.images import ImageBuild, build_argv, context_spec, prune_argv
from isaac_deploy.operations.util import first_pass, quoted_command, shown
from isaac_deploy.policy.checks import engine_elsewhere_down
from isaac_deploy.policy.images import image_inputs
from isaac_deploy.probes import PYTHON, program

DAEMON_PIDFILE = "/run/isaac-deploy-dockerd.pid"
DAEMON_LOG = "/var/log/isaac-deploy-dockerd.log"


@operation()
def images(
    context: str,
    builds: list[ImageBuild],
    include: tuple[str, ...] = (),
    base_hints: dict[str, str] | None = None,
):
    """Build each image whose inputs changed; warn (and skip it) when its base is missing.

    An image's inputs are the project's selected files (``source/``, ``scripts/`` and the
    ``include`` paths, without env files, keys, logs, caches and what the project's
    ``.dockerignore`` ignores), isaac-deploy's Dockerfile and helpers, its base image and its
    build arguments, in one digest recorded as a label of the image: an image whose label
    matches is not built again. The build context is streamed into ``docker build -`` on the
    target (``probes.build_context``): isaac-deploy's files go inline, the project's files are
    read there, and a context that no longer matches the digest fails the build. A failed build
    leaves no container (``--force-rm``) and no dangling image of its own (removed by its
    ``org.isaac-deploy.image`` label); its exit code stays. An include path the project lacks
    is a warning.

    + context: the extension project on the target
    + builds: the images to build from it
    + include: project-relative paths that enter the images besides ``source/`` and ``scripts/``
    + base_hints: how to get each missing base image (by reference), shown in the warning

    **Example:**

    .. code:: python

        docker.images(
            name="Images isaac-lab-ext-template:alice, isaac-lab-ext-template-dev:alice",
            context="/home/alice/ext_template",
            builds=[image_build(config, "ext"), image_build(config, "ext-dev")],
            include=("config",),
            base_hints={"isaac-lab-base:latest": "build it with ./docker/container.py build base"},
        )
    """
    refs = [ref for build in builds for ref in (build.image, build.base_image)]
    current = host.get_fact(ImageBuildInputs, context=context, include=list(include), images=refs)
    if current.error:  # one line for all the images
        logger.warning(f"{host.print_prefix}images not built: {current.error}")
        return
    if first_pass():
        for path in current.missing:
            logger.warning(
                f"{host.print_prefix}isaac_image_paths: {path} is not in {context}: "
                "nothing of it enters the images"
            )
    program_text = program("context_digest", "build_context")
    for build in builds:
        state = image_inputs(current, build, (base_hints or {}).get(build.base_image, ""))
        if state.inputs is None:
            logger.warning(f"{host.print_prefix}{state.problem}")
        elif state.current:
            host.noop(f"image {build.image} is up to date")
        else:
            spec = context_spec(context, include, str(current.context_digest), build)
            yield shown(
                StringCommand(
                    PYTHON,
                    "$py",
                    "-c",
                    QuoteString(program_text),
                    QuoteString(json.dumps(spec, sort_keys=True)),
                    quoted_command(build_argv(build, state.labels)),
                    "|| { code=$?;",
                    quoted_command(prune_argv(build)),
                    ">/dev/null; exit $code; }",
                )
            )


@operation()
def base_image_built(checkout: str, argv: list[str], image: str, toolkit: Toolkit):
    """The base image ``image`` made by the Isaac Lab checkout ``checkout`` when the engine
    lacks it: ``argv`` (its ``docker/container.py build <profile>``, or its Compose service) runs
    in the checkout, its output shown as it goes, with no terminal to ask questions on; a build
    that ends without ``image`` fails with one line.

    + checkout: the Isaac Lab checkout on the target
    + argv: the build command, run in ``checkout``
    + image: the image it makes, e.g. ``isaac-lab-base:latest``
    + toolkit: the ``WorkstationToolkit`` fact, gathered before (the images the engine has)

    **Example:**

    .. code:: python

        docker.base_image_built(
            name="Base image isaac-lab-base:latest (from ~/IsaacLab)",
            checkout="/home/alice/IsaacLab",
            argv=["python3", "docker/container.py", "build", "base"],
            image="isaac-lab-base:latest",
            toolkit=host.get_fact(WorkstationToolkit),
        )
    """
    if toolkit.has_image(image):
        host.noop(f"base image {image} is present")
        return
    yield shown(
        StringCommand(
            "cd",
            QuoteString(checkout),
            "&&",
            quoted_command(argv),
            "</dev/null && { docker image inspect",
            QuoteString(image),
            ">/dev/null 2>&1 || { echo",
            QuoteString(f"error: `{' '.join(argv)}` in {checkout} did not make {image}"),
            ">&2; exit 1; }; }",
        )
    )


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
        "start-stop-daemon --start --oknodo --background --make-pidfile",
        "--pidfile",
        DAEMON_PIDFILE,
        "--output",
        DAEMON_LOG,
        "--exec",
        QuoteString(dockerd),
        "&&",
        wait,
    )


@operation()
def daemon_running(toolkit: Toolkit):
    """Start the Docker daemon when it does not answer (needs root: run with ``_sudo``).

    Through systemd where PID 1 is systemd, else as a detached ``dockerd``; the operation waits
    until the daemon answers. A daemon this user may not use yet (not in the ``docker`` group)
    counts as running. An engine asked elsewhere than this machine's default socket (through
    ``DOCKER_HOST`` or a Docker context) is never started here: a warning names it and the fix.

    + toolkit: the ``WorkstationToolkit`` fact, gathered before

    **Example:**

    .. code:: python

        docker.daemon_running(
            name="Docker daemon running",
            toolkit=host.get_fact(WorkstationToolkit),
            _sudo=True,
        )
    """
    if toolkit.docker_server:
        host.noop("Docker daemon is running")
        return
    if toolkit.docker_permission_denied:
        host.noop("Docker daemon is running (this user may not use it yet)")
        return
    elsewhere_down = engine_elsewhere_down(toolkit)
    if elsewhere_down:
        logger.warning(f"{host.print_prefix}Docker daemon not started: {elsewhere_down.sentence()}")
        return
    yield daemon_start_command(toolkit)


@operation()
def nvidia_runtime(toolkit: Toolkit):
    """The nvidia runtime registered with Docker (needs root: run with ``_sudo``).

    Register the nvidia runtime with Docker (``nvidia-ctk runtime configure``), then restart
    the daemon; only when it is not registered yet.

    + toolkit: the ``WorkstationToolkit`` fact, gathered before

    **Example:**

    .. code:: python

        docker.nvidia_runtime(
            name="nvidia runtime in Docker",
            toolkit=host.get_fact(WorkstationToolkit),
            _sudo=True,
        )
    """
    if toolkit.nvidia_runtime_configured:
        host.noop("nvidia runtime is configured in Docker")
        return
    yield "nvidia-ctk runtime configure --runtime=docker"
    if toolkit.init == "systemd":
        yield "systemctl restart docker.service"
    else:
        yield StringCommand(
            "start-stop-daemon --stop --retry 30 --pidfile",
            DAEMON_PIDFILE,
            "--remove-pidfile",
            "|| true;",
            daemon_start_command(toolkit),
        )
