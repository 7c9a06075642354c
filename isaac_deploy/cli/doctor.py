"""``doctor``: the seed's Troubleshooting section as checks. The toolkit part reuses the
workstation checks on the very probe the deploy's fact runs; the rest looks at the project."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

from isaac_deploy.cli.cluster_doctor import cluster_checks
from isaac_deploy.cli.containers import container_state
from isaac_deploy.cli.mount_commands import load as load_mounts
from isaac_deploy.cli.mount_commands import override_text
from isaac_deploy.cli.project import Project, ProjectError, setup_command
from isaac_deploy.facts.toolkit import local_toolkit
from isaac_deploy.model.base_images import missing_fix
from isaac_deploy.model.mounts import validate
from isaac_deploy.model.paths import X11_SOCKETS
from isaac_deploy.model.x11 import local_socket
from isaac_deploy.policy.checks import Check, toolkit_checks
from isaac_deploy.probes.local import path_kind
from isaac_deploy.render.managed import file_state

REQUIRED = (
    "COMPOSE_PROJECT_NAME",
    "EXTENSION_NAME",
    "EXTENSION_FOLDER",
    "ISAAC_IMAGE",
    "HOST_UID",
    "HOST_GID",
    "DOCKER_USER_HOME",
)


def deploy_hint(project: Project) -> str:
    return f"run the workstation deploy ({setup_command(project.layout)})"


def env_file_checks(project: Project) -> list[Check]:
    checks = []
    for service in ("ext", "ext-dev"):
        path = project.env_file(service)
        name = f"Env file {path.name}"
        if not path.is_file():
            checks.append(Check(name, "FAIL", f"{path} is missing", deploy_hint(project)))
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text()
        missing = [key for key in REQUIRED if f"\n{key}=" not in f"\n{text}"]
        parsed = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        if missing or parsed.returncode != 0:
            what = f"lacks {', '.join(missing)}" if missing else parsed.stderr.strip()
            checks.append(
                Check(name, "FAIL", f"{path} {what}", f"delete it and {deploy_hint(project)}")
            )
        elif mode & 0o077:
            checks.append(
                Check(name, "FAIL", f"{path} is readable by others ({mode:o})", f"chmod 600 {path}")
            )
        else:
            edited = file_state(text.splitlines()) == "edited"
            checks.append(
                Check(name, "OK", "present, 0600" + (", edited by hand" if edited else ""))
            )
    return checks


def override_check(project: Project) -> Check:
    path = project.override_file
    if not path.is_file():
        return Check("Override", "FAIL", f"{path} is missing", deploy_hint(project))
    try:
        validate(load_mounts(project), path_kind, project.config.user.home)
        wanted = override_text(project, load_mounts(project))
    except Exception as exc:  # noqa: BLE001 - reported as the check's result
        return Check("Override", "FAIL", str(exc), "fix .mount.config (isaac-deploy mount-show)")
    current = path.read_text()
    if wanted.rstrip("\n") not in current:
        return Check("Override", "WARN", f"{path.name} is out of date", deploy_hint(project))
    return Check("Override", "OK", f"{path.name} matches .mount.config and this host")


def image_checks(project: Project, toolkit) -> list[Check]:
    if not toolkit.docker_server:
        return [Check("Images", "SKIPPED", "Docker is not usable (see above)")]
    checks = []
    for profile in project.config.profiles:
        base = project.config.base_images[profile]
        image = project.config.image_name(profile)
        if not toolkit.has_image(base):
            checks.append(
                Check(
                    f"Base image ({profile})",
                    "FAIL",
                    f"{base} is missing",
                    missing_fix(project.config.base_source, base),
                )
            )
        else:
            checks.append(Check(f"Base image ({profile})", "OK", base))
        if toolkit.has_image(image):
            checks.append(Check(f"Image ({profile})", "OK", image))
        else:
            checks.append(
                Check(
                    f"Image ({profile})",
                    "WARN",
                    f"{image} is not built",
                    f"isaac-deploy -p {profile} build",
                )
            )
    return checks


def gpu_in_container(project: Project, toolkit) -> Check:
    name = "GPU in the container"
    if not toolkit.gpus:
        return Check(name, "SKIPPED", "no NVIDIA GPU on this host")
    container = project.container("ext-dev")
    try:
        state = container_state(container)
    except ProjectError as exc:
        return Check(name, "SKIPPED", str(exc))
    if state != "running":
        return Check(name, "SKIPPED", f"{container} is not running (isaac-deploy run, then doctor)")
    code = subprocess.run(
        ["docker", "exec", container, "nvidia-smi", "-L"], capture_output=True
    ).returncode
    if code != 0:
        return Check(
            name,
            "FAIL",
            "nvidia-smi fails inside the container",
            "check the NVIDIA Container Toolkit (nvidia-ctk runtime configure), restart "
            "Docker, then isaac-deploy stop && isaac-deploy run",
        )
    return Check(name, "OK", "nvidia-smi works inside the container")


def session_checks(x11: bool = True) -> list[Check]:
    checks = []
    sock = os.environ.get("SSH_AUTH_SOCK", "")
    if not sock:
        checks.append(
            Check("SSH agent", "SKIPPED", "SSH_AUTH_SOCK is not set: no agent forwarding")
        )
    elif not os.path.exists(sock):
        checks.append(
            Check(
                "SSH agent",
                "WARN",
                f"SSH_AUTH_SOCK={sock} does not exist",
                "start an agent (eval $(ssh-agent)) or unset SSH_AUTH_SOCK",
            )
        )
    else:
        checks.append(Check("SSH agent", "OK", "forwarded into the containers"))
    checks.append(display_check(os.environ.get("DISPLAY", ""), x11))
    return checks


def display_check(display: str, x11: bool) -> Check:
    """Whether GUI apps of the dev containers can reach ``display``: a local one needs the X
    server's socket folder, any one needs ``xauth`` for its cookie (a TCP display, such as an
    ``ssh -X`` session's, needs no local X server)."""
    if not display:
        return Check("Display", "SKIPPED", "DISPLAY is not set: no GUI forwarding")
    if not x11:
        return Check("Display", "SKIPPED", f"DISPLAY={display}, but isaac_x11 is off")
    if local_socket(display) and not os.path.isdir(X11_SOCKETS):
        return Check(
            "Display",
            "WARN",
            f"DISPLAY={display} but no {X11_SOCKETS}",
            "GUI apps need a local X server",
        )
    if shutil.which("xauth") is None:
        return Check(
            "Display",
            "WARN",
            f"DISPLAY={display} but no xauth: the containers get no X authority cookie",
            "sudo apt-get install xauth",
        )
    return Check("Display", "OK", f"DISPLAY={display} is passed on with its X authority cookie")


def doctor(project: Project) -> list[Check]:
    toolkit = local_toolkit()
    return [
        *toolkit_checks(toolkit, will_install=False, min_free_gb=project.config.min_free_gb),
        *env_file_checks(project),
        override_check(project),
        *image_checks(project, toolkit),
        gpu_in_container(project, toolkit),
        *session_checks(project.config.x11),
        *cluster_checks(project.layout, project.data),
    ]
