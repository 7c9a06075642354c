"""Container commands: a named, long-lived container per service, so that run, exec, attach,
logs and stop all reach the same one; commands run with their arguments exactly as given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from isaac_deploy.cli.project import PROFILES, Project, ProjectError
from isaac_deploy.facts.images import local_build_inputs
from isaac_deploy.model import paths
from isaac_deploy.model.base_images import missing_fix
from isaac_deploy.model.images import build_argv, context_spec, image_build, prune_argv
from isaac_deploy.model.paths import X11_SOCKETS
from isaac_deploy.model.x11 import COOKIE_DIR, cookie_file, service_x11, wildcard_cookies
from isaac_deploy.policy.images import image_inputs
from isaac_deploy.probes import build_context, local
from isaac_deploy.probes.dockerapi import docker_client
from isaac_deploy.probes.xauth import NoXauth, nlist
from isaac_deploy.render.compose_override import DEV_SERVICES

ENTRYPOINT = "/opt/isaac-deploy/entrypoint.sh"
SSH_AGENT_TARGET = "/run/isaac-deploy/ssh-agent"


def say(message: str) -> None:
    print(f"isaac-deploy: {message}", file=sys.stderr, flush=True)


def call(argv: list[str], check: bool = False, quiet: bool = False) -> int:
    """Run ``argv`` (no shell), its output on the terminal; its exit code is returned."""
    kwargs = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL} if quiet else {}
    code = subprocess.run(argv, **kwargs).returncode  # noqa: PLW1510 - the code is the result
    if check and code != 0:
        raise ProjectError(f"`{' '.join(argv[:4])} ...` failed with exit code {code}")
    return code


COMPOSE_FILE_LABELS = (
    "com.docker.compose.project.config_files",
    "com.docker.compose.project.environment_file",
)
"""Where Compose records the files a container was made from (comma-separated paths)."""


def container_info(name: str) -> dict | None:
    """The engine's description of the container ``name``; ``None`` when there is none."""
    status, data = docker_client().get(f"/containers/{name}/json")
    if status == 200 and isinstance(data, dict):
        return data
    if status == 404:
        return None
    raise ProjectError(f"Docker is not usable: {data}")


def container_state(name: str) -> str | None:
    """``running``, ``exited``, ... or ``None`` when there is no such container."""
    info = container_info(name)
    return None if info is None else (info.get("State") or {}).get("Status")


def others_project(project: Project, labels: dict[str, str]) -> Path | None:
    """The project folder of another lab member that a container of this stack's name was made
    from (its env file or override in their ``.isaac-deploy/state/``): names made of extension,
    user and suffix can meet (the user ``alice`` with ``--suffix doe`` and the user
    ``alice-doe``). A folder that is gone (a moved project of yours) or yours is no one else's."""
    ours = Path(paths.state_dir(project.folder))
    folders = {
        Path(path).parent
        for key in COMPOSE_FILE_LABELS
        for path in (labels.get(key) or "").split(",")
        if Path(path).parent.parts[-2:] == tuple(paths.STATE_DIR.split("/"))
    }
    if ours in folders:
        return None
    for folder in sorted(folders):
        try:
            owner = folder.stat().st_uid
        except FileNotFoundError:
            continue
        except PermissionError:  # in a home closed to us: someone else's
            return folder.parent.parent
        if owner != os.geteuid():
            return folder.parent.parent
    return None


def own_container(project: Project, service: str) -> dict | None:
    """The engine's description of ``service``'s container of this stack (``None``: there is
    none); one that another lab member's project made is refused, before anything touches it."""
    name = project.container(service)
    info = container_info(name)
    other = others_project(project, ((info or {}).get("Config") or {}).get("Labels") or {})
    if other is not None:
        fix = "choose another --suffix" if project.suffix else "run yours with --suffix NAME"
        raise ProjectError(
            f"{name} is a container of another lab member's project ({other}), whose names "
            f"happen to be this stack's: isaac-deploy leaves it alone; {fix}"
        )
    return info


def display(project: Project) -> str:
    """This shell's X display for the dev containers: ``$DISPLAY`` unless X11 is off."""
    return os.environ.get("DISPLAY", "") if project.config.x11 else ""


def runtime_override(project: Project) -> Path | None:
    """A compose file for what depends on this shell: the SSH agent, when it is set; X11 for
    the dev containers when there is a display (nothing X-related without one; ``DISPLAY``
    emptied when X11 is off). None when there is nothing of either."""
    services: dict[str, dict] = {name: {"volumes": []} for name in PROFILES}
    sock = os.environ.get("SSH_AUTH_SOCK", "")
    if sock and os.path.exists(sock):
        for entry in services.values():
            entry["volumes"].append({"type": "bind", "source": sock, "target": SSH_AGENT_TARGET})
    shown = display(project)
    for name in DEV_SERVICES:
        if shown:
            uid = int(container_user(project, name).split(":")[0])
            x11 = service_x11(uid, shown, os.path.isdir(X11_SOCKETS))
            services[name]["volumes"] += x11["volumes"]
            services[name]["environment"] = x11["environment"]
        elif os.environ.get("DISPLAY"):  # X11 is off: the compose file's DISPLAY is emptied
            services[name]["environment"] = {"DISPLAY": ""}
    services = {name: {k: v for k, v in entry.items() if v} for name, entry in services.items()}
    if not any(services.values()):
        return None
    try:
        folder = local.runtime_dir()
    except local.UnsafeFolder as exc:
        raise ProjectError(f"no private folder for this shell's compose file: {exc}") from None
    path = os.path.join(folder, f"{project.compose_project}-runtime.yaml")
    local.atomic_write(path, json.dumps({"services": services}), 0o600)
    return Path(path)


def image_missing(project: Project, profile: str) -> None:
    """Refuse, in one line, to start a container whose image is not there, before Compose makes
    a volume or a container (it builds nothing: its file has no ``build:``, and pulls nothing):
    what to type to make it, or first its base image."""
    config = project.config
    image, base = config.image_name(profile), config.base_images[profile]
    client = docker_client()
    answers = client.get_many([f"/images/{quote(ref, safe='')}/json" for ref in (image, base)])
    status, data = answers[f"/images/{quote(image, safe='')}/json"]
    if status == 200:
        return
    if status != 404:
        raise ProjectError(f"Docker is not usable: {data}")
    if answers[f"/images/{quote(base, safe='')}/json"][0] == 404:
        raise ProjectError(
            f"image {image} is not built and its base image {base} is missing: "
            + missing_fix(config.base_source, base)
        )
    raise ProjectError(
        f"image {image} is not built: build it with `isaac-deploy -p {profile} build` "
        "(or run the workstation deploy, `isaac-deploy setup`)"
    )


def install_cookie(
    project: Project, service: str, name: str, user: str, quiet: bool = False
) -> None:
    """The X authority cookie of this shell's display for ``user`` (``UID:GID``) in the dev
    container ``name`` of ``service``: its entries for any host name, written through the
    engine into the container's memory-only folder, 0600 and owned by ``user``; nothing without
    a display."""
    shown = display(project)
    if not shown or service not in DEV_SERVICES:
        return
    try:
        cookies = wildcard_cookies(nlist(shown))
    except (NoXauth, ValueError) as exc:
        if not quiet:
            say(f"DISPLAY={shown}: no X authority cookie for the container ({exc})")
        return
    target = cookie_file(int(user.split(":")[0]))
    script = 'umask 077 && cat >"$1.tmp" && chown "$2" "$1.tmp" && mv -f "$1.tmp" "$1"'
    argv = ["docker", "exec", "--interactive", "--user", "0:0", name]
    argv += ["sh", "-c", script, "sh", target, user]
    result = subprocess.run(argv, input=cookies, capture_output=True)
    if result.returncode != 0 and not quiet:
        error = result.stderr.decode(errors="replace").strip()[:200]
        say(f"could not give the container the X authority cookie in {COOKIE_DIR}: {error}")


def container_user(project: Project, service: str, options: RunOptions | None = None) -> str:
    """``UID:GID`` commands run as: ``options.user`` or the service's user."""
    if options and options.user:
        return options.user
    if service == "ext-dev-rootless":
        return "0:0"
    return f"{project.config.uid}:{project.config.gid}"


def ensure_running(project: Project, service: str) -> str:
    """Start the service's named container detached; Compose leaves a running one alone and
    recreates it when its configuration changed (new mounts, the SSH agent appeared)."""
    name = project.container(service)
    image_missing(project, PROFILES[service])
    own_container(project, service)
    extra = runtime_override(project)
    argv = project.compose(
        service,
        "up",
        "--detach",
        "--no-build",
        "--pull",
        "never",
        service,
        extra_files=(extra,) if extra else (),
    )
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise ProjectError(f"could not start {name} (exit {result.returncode}): see above")
    return name


@dataclass
class RunOptions:
    user: str | None = None  # "UID:GID" for docker exec, None: the container's user
    fix_perms: bool = False
    workdir: str | None = None


def exec_argv(project: Project, name: str, command: list[str], options: RunOptions) -> list[str]:
    argv = ["docker", "exec", "--interactive"]
    if sys.stdin.isatty() and sys.stdout.isatty():
        argv.append("--tty")
    if options.user:
        argv += ["--user", options.user]
    if os.environ.get("SSH_AUTH_SOCK") and os.path.exists(os.environ["SSH_AUTH_SOCK"]):
        argv += ["--env", f"SSH_AUTH_SOCK={SSH_AGENT_TARGET}"]
    shown = display(project)
    if shown:
        argv += ["--env", f"DISPLAY={shown}"]
        uid = int(options.user.split(":")[0]) if options.user else None
        if uid is not None:
            argv += ["--env", f"XAUTHORITY={cookie_file(uid)}"]
    if os.environ.get("TERM"):
        argv += ["--env", f"TERM={os.environ['TERM']}"]
    argv += ["--workdir", options.workdir or project.config.docker_ext_path, name]
    # through the entrypoint: secrets, HOME for a foreign uid, exactly like the main process
    return [*argv, ENTRYPOINT, *(command or ["bash"])]


def fix_permissions(project: Project, name: str) -> int:
    """Give files in the mounted extension folder that are not the host user's back to them."""
    uid, gid = project.config.uid, project.config.gid
    argv = [
        "docker",
        "exec",
        "--user",
        "0:0",
        name,
        "find",
        project.config.docker_ext_path,
        "-xdev",
        "(",
        "!",
        "-user",
        str(uid),
        "-o",
        "!",
        "-group",
        str(gid),
        ")",
        "-exec",
        "chown",
        "-h",
        f"{uid}:{gid}",
        "{}",
        "+",
    ]
    code = call(argv)
    say(f"--fix-perms: files under {project.folder} belong to {uid}:{gid} again")
    return code


def run(project: Project, service: str, command: list[str], options: RunOptions) -> int:
    name = ensure_running(project, service)
    install_cookie(project, service, name, container_user(project, service, options))
    try:
        return call(exec_argv(project, name, command, options))
    finally:
        if options.fix_perms:
            fix_permissions(project, name)


def exec_in(project: Project, service: str, command: list[str], options: RunOptions) -> int:
    name = running(project, service)
    install_cookie(project, service, name, container_user(project, service, options), quiet=True)
    return call(exec_argv(project, name, command, options))


def running(project: Project, service: str) -> str:
    name = project.container(service)
    info = own_container(project, service)
    state = None if info is None else (info.get("State") or {}).get("Status")
    if state != "running":
        now = "does not exist" if state is None else f"is {state}"
        raise ProjectError(
            f"no {service} container is running ({name} {now}): start it with "
            f"`{start_command(project, service)}`"
        )
    return name


def start_command(project: Project, service: str) -> str:
    """The command that starts ``service``'s container of the project's stack."""
    rootless = " --rootless" if service == "ext-dev-rootless" else ""
    return f"isaac-deploy -p {PROFILES[service]} {project.suffix_flag}run{rootless}"


def attach(project: Project, service: str) -> int:
    name = running(project, service)
    install_cookie(project, service, name, container_user(project, service), quiet=True)
    say("detach with Ctrl-p Ctrl-q (exit or Ctrl-d stops the container)")
    return call(["docker", "attach", name])


def logs(project: Project, service: str, follow: bool, tail: str | None) -> int:
    name = project.container(service)
    if own_container(project, service) is None:
        raise ProjectError(
            f"no {service} container ({name}): start it with `{start_command(project, service)}`"
        )
    argv = [
        "docker",
        "logs",
        *(["--follow"] if follow else []),
        *(["--tail", tail] if tail else []),
    ]
    return call([*argv, name])


def ps(project: Project) -> int:
    label = f"label=com.docker.compose.project={project.compose_project}"
    fmt = "table {{.Names}}\t{{.Status}}\t{{.Image}}"
    return call(["docker", "ps", "--all", "--filter", label, "--format", fmt])


def stop(project: Project, service: str) -> int:
    """Remove the service's container; its named cache and log volumes stay."""
    own_container(project, service)
    return call(project.compose(service, "down"))


def remove_volumes(project: Project, service: str) -> int:
    own_container(project, service)
    return call(project.compose(service, "down", "--volumes"))


def build(project: Project, service: str, extra: list[str]) -> int:
    """Build the service's image as the deploy does (the same build context streamed into
    ``docker build -``, the same inputs label; a failed build leaves no container or dangling
    image of its own), passing ``extra`` flags such as ``--no-cache`` to ``docker build``;
    progress is Docker's own."""
    profile = "ext" if service == "ext" else "ext-dev"
    config = project.config
    spec = image_build(config, profile)
    found = local_build_inputs(str(project.folder), config.image_paths, [spec.base_image])
    state = image_inputs(found, spec, missing_fix(config.base_source, spec.base_image))
    if state.inputs is None:
        raise ProjectError(str(state.problem))
    for path in found.missing:
        say(f"isaac_image_paths: {path} is not in {project.folder}: nothing of it enters the image")
    say(f"building {spec.image} from {spec.base_image}")
    context = context_spec(str(project.folder), config.image_paths, str(found.context_digest), spec)
    code = build_context.build(context, build_argv(spec, state.labels, tuple(extra)))
    if code != 0:
        call(prune_argv(spec), quiet=True)
    return code
