"""Operations: an Apptainer image (SIF) of the production image, named after its content
digest and built only when that digest has none yet: on the workstation from the Docker
engine, or on a login node from a registry."""

from __future__ import annotations

import json
import posixpath

from pyinfra import host, logger
from pyinfra.api import (
    FunctionCommand,
    OperationValueError,
    QuoteString,
    StringCommand,
    operation,
)
from pyinfra.api.hiddenvalue import HiddenValue

from isaac_deploy.facts.delivery import INCOMING, DeliveredFile
from isaac_deploy.facts.files import PathKinds
from isaac_deploy.facts.sif import CachedSif
from isaac_deploy.model.images import sandbox_name, sif_name
from isaac_deploy.operations.files import (
    secret_kept,
    secret_staged,
    secret_text,
    staged_dropped,
    staged_installed,
    staged_path,
)
from isaac_deploy.operations.util import fail, shown
from isaac_deploy.probes import PYTHON, program
from isaac_deploy.probes.measured_build import MARKER
from isaac_deploy.render.login_shell import apptainer_dirs, login_shell
from isaac_deploy.render.templates import shell_path


def build_command(
    source: str,
    destination: str,
    sandbox: bool = False,
    plain_http: bool = False,
    apptainer: str = "apptainer",
) -> StringCommand:
    """``apptainer build`` of ``source`` (``docker-daemon://IMAGE``, ``docker://REF``): a SIF,
    or a sandbox folder; ``apptainer`` is the command or a cluster path to it."""
    flags = ["--force", *(["--sandbox"] if sandbox else []), *(["--nohttps"] if plain_http else [])]
    return StringCommand(
        shell_path(apptainer), "build", *flags, QuoteString(destination), QuoteString(source)
    )


def on_login_node(command: StringCommand, modules: tuple[str, ...], cache_dir: str) -> str:
    """``command`` as a login node runs Apptainer: in the login environment with ``modules``
    loaded, Apptainer's cache and temporary folders under ``cache_dir`` (made first)."""
    made = 'mkdir -p "$APPTAINER_CACHEDIR" "$APPTAINER_TMPDIR" && '
    return login_shell(made + command.get_raw_value(), modules, apptainer_dirs(cache_dir))


def measured(command: StringCommand, built: str) -> StringCommand:
    """``command`` run on a login node under the ``measured_build`` probe: its output, then one
    line with its seconds, CPU seconds, the layer bytes it pulled and the size of ``built``."""
    return StringCommand(
        PYTHON,
        "$py",
        "-c",
        QuoteString(program("measured_build")),
        QuoteString(command.get_raw_value()),
        QuoteString(built),
    )


def reported(state, host, command: StringCommand, what: str) -> bool:
    """Run a :func:`measured` build, its output shown as it goes; then one line with what it
    cost (or its error)."""
    ok, output = host.run_shell_command(command, print_output=True)
    lines = [line for line in output.stdout_lines if line.startswith(f"{MARKER} ")]
    if not ok:
        logger.error(f"{host.print_prefix}{what} failed: {output.stderr.strip()}")
        return False
    values = json.loads(lines[-1].split(" ", 1)[1]) if lines else {}
    pulled, built = values.get("pulled_bytes", 0), values.get("built_bytes", 0)
    logger.info(
        f"{host.print_prefix}{what}: pulled {pulled:,} bytes of layers "
        f"({pulled / max(built, 1):.2%} of the {built:,}-byte image) in "
        f"{values.get('seconds', 0):.1f} s, CPU {values.get('cpu_seconds', 0):.1f} s"
    )
    return True


@operation()
def sif_built(image: str, cache_dir: str):
    """An Apptainer image (SIF) of a local Docker image, built once per image content.

    ``cache_dir/sha256-<digest>.sif`` of ``image``, with a ``.sha256`` sidecar; written to a
    temporary name first, so a half-built image never carries the final name.

    + image: the local Docker image, e.g. ``isaac-lab-ext-template:alice``
    + cache_dir: the workstation's SIF cache

    **Example:**

    .. code:: python

        cluster_image.sif_built(
            name="Apptainer image of isaac-lab-ext-template:alice",
            image="isaac-lab-ext-template:alice",
            cache_dir="/home/alice/.cache/isaac-deploy/sif",
        )
    """
    state = host.get_fact(CachedSif, image=image, cache_dir=cache_dir)
    if state.image_error:
        what = (
            "is not built: run deploy/dev.py with it in isaac_profiles"
            if (state.image_error == "missing")
            else f"cannot be read: {state.image_error}"
        )
        yield fail(f"image {image} {what}")
        return
    if state.sif:
        host.noop(f"{state.sif} is built")
        return
    name = sif_name(state.image_id)
    final, partial = posixpath.join(cache_dir, name), posixpath.join(cache_dir, f".{name}.partial")
    yield StringCommand("mkdir -p", QuoteString(cache_dir))
    yield shown(build_command(f"docker-daemon://{image}", partial))
    yield StringCommand(
        "sha256sum <",
        QuoteString(partial),
        "| cut -d' ' -f1 >",
        QuoteString(f"{partial}.sha256"),
        "&& mv -f",
        QuoteString(partial),
        QuoteString(final),
        "&& mv -f",
        QuoteString(f"{partial}.sha256"),
        QuoteString(f"{final}.sha256"),
    )


@operation()
def sif_pulled(
    reference: str,
    folder: str,
    filename: str,
    cache_dir: str,
    credentials: HiddenValue | None = None,
    credentials_file: str | None = None,
    plain_http: bool = False,
    apptainer: str = "apptainer",
    modules: tuple[str, ...] = (),
):
    """A SIF on a login node, built there from the image in a registry.

    ``folder/filename`` on a login node is built from ``docker://reference`` (a registry),
    with a ``.sha256`` sidecar; built under ``.incoming/`` and renamed into place, so a job
    never picks up a half-built image. The build sources ``credentials`` from a 0600 file (never
    a command line); credentials that differ from the ones saved in ``credentials_file`` are
    written beside it first and replace it only once the build with them worked. It runs in the
    login environment with ``modules`` loaded, Apptainer's cache and temporary folders under
    ``cache_dir`` (not the home quota, not ``/tmp``); that layer cache keeps the layers pulled, so
    a changed image pulls only the layers it does not share with earlier ones; the run reports
    the layer bytes pulled, the seconds and the build's CPU seconds there.

    + reference: ``registry/repository:tag`` of the image (its content tag)
    + folder: the cluster's image folder (absolute)
    + filename: the SIF's name there, ``sha256-<digest>.sif``
    + cache_dir: the cluster's cache dir (absolute): holds ``apptainer/`` (its cache) and
      ``apptainer/tmp/`` (its temporary files)
    + credentials: lines setting ``APPTAINER_DOCKER_USERNAME`` and ``APPTAINER_DOCKER_PASSWORD``
      (shell-quoted), wrapped in ``HiddenValue``; ``None``: the login node's own login is used
    + credentials_file: where the credentials that worked are kept on the login node (0600)
    + plain_http: the registry speaks HTTP (loopback only)
    + apptainer: the Apptainer command on the login node, or its path there
    + modules: environment modules to load first (``module load``), in order

    **Example:**

    .. code:: python

        cluster_image.sif_pulled(
            name="pbs_cluster: image sha256-ab12.sif from lab",
            reference="registry.example.org:5000/robotics/isaac/isaac-lab-ext-template:sha256-ab12",
            folder="/scratch/jdoe/isaac/images",
            filename="sha256-ab12.sif",
            credentials=HiddenValue(
                "APPTAINER_DOCKER_USERNAME='robot'\nAPPTAINER_DOCKER_PASSWORD='...'\n"
            ),
            credentials_file="/home/jdoe/.config/isaac-deploy/registries/lab.env",
            modules=("apptainer/1.3.4",),
            cache_dir="/scratch/jdoe/isaac/cache",
        )
    """
    state = host.get_fact(DeliveredFile, folder=folder, filename=filename)
    if state.present and state.sha256:
        host.noop(f"{filename} is present")
        return
    env_file, fresh = None, False  # the credentials the build sources; new ones?
    if credentials is not None:
        if not credentials_file:
            raise OperationValueError("sif_pulled: credentials need a credentials_file")
        value = secret_text(credentials)
        fresh = not (yield from secret_kept(credentials_file, value))
        if fresh:
            yield from secret_staged(credentials_file, value)
        env_file = staged_path(credentials_file) if fresh else credentials_file
    partial = f"{INCOMING}/{filename}"
    yield StringCommand("mkdir -p", QuoteString(posixpath.join(folder, INCOMING)))
    build = build_command(
        f"docker://{reference}", partial, plain_http=plain_http, apptainer=apptainer
    )
    load = ["set -a && .", QuoteString(env_file), "&& set +a &&"] if env_file else []
    inner = StringCommand("cd", QuoteString(folder), "&& (", *load, build, ")")
    # measured in the login environment: its Apptainer, its APPTAINER_CACHEDIR
    command = StringCommand(
        on_login_node(measured(inner, posixpath.join(folder, partial)), modules, cache_dir)
    )
    what = f"{filename} built from {reference}"
    if fresh and credentials_file:  # the new credentials are kept once the build worked
        dropped = StringCommand(command, "|| {", staged_dropped(credentials_file), "; exit 1; }")
        yield FunctionCommand(reported, (dropped, what), {})
        yield staged_installed(credentials_file, 0o600)
    else:
        yield FunctionCommand(reported, (command, what), {})
    yield StringCommand(
        "cd",
        QuoteString(folder),
        "&& sha=$(sha256sum <",
        QuoteString(partial),
        "| cut -d' ' -f1)",
        "&& mv -f",
        QuoteString(partial),
        QuoteString(filename),
        '&& echo "$sha" >',
        QuoteString(f"{filename}.sha256"),
    )


@operation()
def sandbox_built(
    folder: str,
    sif: str,
    cache_dir: str,
    apptainer: str = "apptainer",
    modules: tuple[str, ...] = (),
):
    """A SIF on a login node unpacked into a sandbox folder beside it.

    ``folder/<image>.sandbox`` is the SIF ``folder/sif`` unpacked (``apptainer build
    --sandbox``), built under ``.incoming/`` and renamed into place: a folder that carries the
    final name is complete. It runs in the login environment with ``modules`` loaded,
    Apptainer's cache and temporary folders under ``cache_dir``.

    + folder: the cluster's image folder (absolute)
    + sif: the SIF's file name there (delivered or built before this)
    + cache_dir: the cluster's cache dir (absolute), for Apptainer's cache and temporary files
    + apptainer: the Apptainer command on the login node, or its path there
    + modules: environment modules to load first (``module load``), in order

    **Example:**

    .. code:: python

        cluster_image.sandbox_built(
            name="euler: sandbox of sha256-ab12.sif",
            folder="/cluster/scratch/jdoe/isaac/images",
            sif="sha256-ab12.sif",
            modules=("apptainer/1.3.4",),
            cache_dir="/cluster/scratch/jdoe/isaac/cache",
        )
    """
    target = sandbox_name(sif)
    kinds = host.get_fact(PathKinds, paths=[posixpath.join(folder, target)])
    if kinds.get(posixpath.join(folder, target)) == "dir":
        host.noop(f"{target} is unpacked")
        return
    partial = f"{INCOMING}/{target}"
    unpack = StringCommand(
        "cd",
        QuoteString(folder),
        "&& mkdir -p",
        INCOMING,
        "&& rm -rf",
        QuoteString(partial),
        "&&",
        build_command(sif, partial, sandbox=True, apptainer=apptainer),
        "&& mv",
        QuoteString(partial),
        QuoteString(target),
    )
    yield StringCommand(on_login_node(unpack, modules, cache_dir))
