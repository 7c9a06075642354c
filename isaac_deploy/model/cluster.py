"""The cluster model (the ``.env.cluster`` of the seed, per cluster): who logs in, which
scheduler, where images, code snapshots, caches and logs live, what a job asks for, and where
secrets come from. Cluster inventories build their groups with :func:`cluster`, which refuses
bad values while the inventory loads, before any connection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from isaac_deploy.model import validate as v
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.registries import KEY as REGISTRIES_KEY
from isaac_deploy.model.registries import Registry, parse_registries

KEY = "isaac_cluster"
SCHEDULERS = ("slurm", "pbs")
NAME = r"[A-Za-z0-9_.-]+"
# cluster paths may start with ~ or a variable the cluster sets ($SCRATCH, $WORK, ...)
CLUSTER_PATH_STARTS = ("~", "$")


@dataclass(frozen=True)
class Resources:
    """What each job asks the scheduler for (``None``: the cluster's default)."""

    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    gpus: int = 1
    cpus: int = 8
    memory: str = "32G"
    walltime: str = "04:00:00"
    mail: str | None = None

    @property
    def walltime_hms(self) -> str:
        """``[D-]HH:MM:SS`` as ``HH:MM:SS`` (PBS has no days)."""
        days, _, clock = self.walltime.rpartition("-")
        hours, minutes, seconds = clock.split(":")
        return f"{int(days or 0) * 24 + int(hours):02d}:{minutes}:{seconds}"

    @property
    def memory_pbs(self) -> str:
        """``32G`` as ``32gb``; a bare number is megabytes (as Slurm reads it), not bytes."""
        unit = self.memory[-1].lower() if self.memory[-1].isalpha() else "m"
        return self.memory.rstrip("KMGTkmgt") + unit + "b"

    @classmethod
    def parse(cls, key: str, raw: Any) -> Resources:
        raw = v.mapping(key, raw or {}, (f.name for f in fields(cls)))

        def name(item: str) -> str | None:
            value = raw.get(item)
            return (
                None
                if value in (None, "")
                else v.text(f"{key}[{item}]", value, NAME, "letters, digits, _ . - only")
            )

        mail = raw.get("mail")
        return cls(
            account=name("account"),
            partition=name("partition"),
            qos=name("qos"),
            gpus=v.integer(f"{key}[gpus]", raw.get("gpus", 1)),
            cpus=v.integer(f"{key}[cpus]", raw.get("cpus", 8), minimum=1),
            memory=v.text(
                f"{key}[memory]",
                str(raw.get("memory", "32G")),
                r"\d+[KMGT]?",
                "a size such as 32G or 64000M",
            ),
            walltime=v.text(
                f"{key}[walltime]",
                str(raw.get("walltime", "04:00:00")),
                r"(?:\d+-)?\d{1,3}:\d{2}:\d{2}",
                "[D-]HH:MM:SS, e.g. 04:00:00 or 1-12:00:00",
            ),
            mail=None
            if not mail
            else v.text(f"{key}[mail]", mail, r"[^@\s]+@[^@\s]+\.[^@\s]+", "an e-mail address"),
        )


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    user: str
    scheduler: str
    image_dir: str
    code_dir: str
    cache_dir: str
    logs_dir: str
    entry_script: str = "scripts/rsl_rl/train.py"
    modules: tuple[str, ...] = ()
    resources: Resources = field(default_factory=Resources)
    snapshot_retention: int = 5
    image_retention: int = 2  # Apptainer images kept on the cluster (besides those jobs use)
    image_format: str = "sif"  # "sandbox": jobs run an unpacked folder made from the SIF there
    wandb_api_key_env: str | None = None
    wandb_api_key_file: str | None = None
    image_registry: str | None = None  # login nodes build the image from this registry
    mount_paths: dict[str, str] = field(default_factory=dict)  # external mount -> cluster path
    # -- the job's Apptainer runtime (README: "Job runtime") --
    apptainer: str = "apptainer"  # the command (found on PATH after `modules`) or its path
    containall: bool = True  # --containall: the host's $HOME, /tmp, $PWD and environment stay out
    writable_tmpfs: bool = True  # --writable-tmpfs: a throw-away writable layer over the image
    stage_image: bool = False  # copy the image to the node's $TMPDIR before the job runs it

    def to_json(self) -> dict[str, Any]:
        """For ``pyinfra INVENTORY debug-inventory``."""
        return asdict(self)

    @classmethod
    def parse(cls, name: str, raw: Any) -> ClusterConfig:
        """A cluster's settings from the inventory; each bad value is refused naming its key."""
        key = f"{name}: {KEY}"
        raw = v.mapping(key, raw, (f.name for f in fields(cls) if f.name != "name"))
        for required in ("user", "scheduler", "image_dir", "code_dir", "cache_dir", "logs_dir"):
            if raw.get(required) in (None, ""):
                raise ConfigError(f"{key}[{required}]", "is required")

        def cluster_path(item: str) -> str:
            return v.absolute_path(f"{key}[{item}]", raw[item], also=CLUSTER_PATH_STARTS)

        def optional(item: str, parse: Callable[[str, Any], str]) -> str | None:
            return parse(f"{key}[{item}]", raw[item]) if raw.get(item) else None

        return cls(
            name=v.text(f"{name}: cluster name", name, NAME, "letters, digits, _ . - only"),
            user=v.text(f"{key}[user]", raw["user"], r"[a-z_][a-z0-9_-]*\$?", "a user name"),
            scheduler=v.choice(f"{key}[scheduler]", raw["scheduler"], SCHEDULERS),
            image_dir=cluster_path("image_dir"),
            code_dir=cluster_path("code_dir"),
            cache_dir=cluster_path("cache_dir"),
            logs_dir=cluster_path("logs_dir"),
            entry_script=v.text(
                f"{key}[entry_script]",
                raw.get("entry_script", "scripts/rsl_rl/train.py"),
                r"(?!/)(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9_./-]+\.py",
                "must be a .py path inside the extension (relative, no ..)",
            ),
            modules=_modules(f"{key}[modules]", raw.get("modules")),
            resources=Resources.parse(f"{key}[resources]", raw.get("resources")),
            snapshot_retention=v.integer(
                f"{key}[snapshot_retention]", raw.get("snapshot_retention", 5), minimum=1
            ),
            image_retention=v.integer(
                f"{key}[image_retention]", raw.get("image_retention", 2), minimum=1
            ),
            image_format=v.choice(
                f"{key}[image_format]", raw.get("image_format", "sif"), ("sif", "sandbox")
            ),
            wandb_api_key_env=optional("wandb_api_key_env", _variable_name),
            wandb_api_key_file=optional(
                "wandb_api_key_file", lambda k, p: v.absolute_path(k, p, also=("~",))
            ),
            mount_paths=_mount_paths(f"{key}[mount_paths]", raw.get("mount_paths")),
            image_registry=optional(
                "image_registry", lambda k, r: v.text(k, r, NAME, "a registry name")
            ),
            apptainer=_apptainer(f"{key}[apptainer]", raw.get("apptainer", "apptainer")),
            containall=v.boolean(f"{key}[containall]", raw.get("containall", True)),
            writable_tmpfs=v.boolean(f"{key}[writable_tmpfs]", raw.get("writable_tmpfs", True)),
            stage_image=v.boolean(f"{key}[stage_image]", raw.get("stage_image", False)),
        )


def _modules(key: str, raw: Any) -> tuple[str, ...]:
    """The environment modules a job loads (``module load``), in order."""
    modules = raw or []
    if not isinstance(modules, (list, tuple)):
        raise ConfigError(key, "must be a list of module names (may be empty)")
    return tuple(
        v.text(f"{key}[{i}]", m, r"[A-Za-z0-9_./+-]+", "a module name")
        for i, m in enumerate(modules)
    )


def _apptainer(key: str, raw: Any) -> str:
    """The Apptainer command: a name found on PATH (``apptainer``, ``singularity``) or a cluster
    path to it (absolute, or starting with ``~`` or ``$VAR``)."""
    if isinstance(raw, str) and raw.startswith(("/", *CLUSTER_PATH_STARTS)):
        return v.absolute_path(key, raw, also=CLUSTER_PATH_STARTS)
    return v.text(key, raw, r"[A-Za-z0-9_.+-]+", "a command name or the path to apptainer")


def _variable_name(key: str, raw: Any) -> str:
    hint = "an environment variable name (the key itself never goes in the inventory)"
    return v.text(key, raw, r"[A-Za-z_][A-Za-z0-9_]*", hint)


def _mount_paths(key: str, raw: Any) -> dict[str, str]:
    """External mount name -> its path on this cluster (may start with ``~`` or ``$VAR``)."""
    paths = v.mapping(key, raw or {}, raw or {})
    return {
        v.text(key, name, r"[A-Za-z0-9][A-Za-z0-9_.-]*", "a mount name"): v.absolute_path(
            f"{key}[{name}]", path, also=CLUSTER_PATH_STARTS
        )
        for name, path in paths.items()
    }


CLUSTER_PATH_RE = re.compile(r"^(~(?=/|$)|\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?)(.*)$", re.S)


def split_cluster_path(path: str) -> tuple[str | None, str]:
    """``("SCRATCH", "/x")`` for ``$SCRATCH/x``, ``("HOME", "/x")`` for ``~/x``, ``(None, path)``
    otherwise: only a leading ``~`` or ``$VAR`` is the cluster's, the rest is literal."""
    match = CLUSTER_PATH_RE.match(path)
    if not match:
        return None, path
    return ("HOME" if match.group(1) == "~" else match.group(2)), match.group(3)


def path_variables(path: str) -> tuple[str, ...]:
    """The variable a cluster path starts with (``$SCRATCH/x`` -> ``("SCRATCH",)``)."""
    name, _ = split_cluster_path(path)
    return (name,) if name and path.startswith("$") else ()


def resolve(path: str, env: Mapping[str, str], field_name: str = "path") -> str:
    """A cluster path with its leading ``~`` or ``$VAR`` replaced from the login node's
    environment; the rest is taken literally (never evaluated)."""
    name, rest = split_cluster_path(path)
    if name is None:
        return path
    value = env.get(name, "")
    if not value.startswith("/"):
        reason = f"{path}: ${name} is not set to an absolute path on the cluster"
        raise ConfigError(field_name, reason)
    return value.rstrip("/") + rest


SSH_KEYS = {"port": "ssh_port", "key": "ssh_key", "known_hosts": "ssh_known_hosts_file"}


def cluster(
    name: str,
    hosts: list[str],
    ssh: Mapping[str, Any] | None = None,
    registries: Mapping[str, Any] | None = None,
    **settings: Any,
):
    """An inventory group for one cluster: ``(hosts, data)``, validated now.

    Login nodes are reached with the system's OpenSSH client, one connection per host for the
    whole deploy (``@openssh/HOST``, see ``isaac_deploy.connectors.openssh``; ``~/.ssh/config``
    applies). SSH host keys are always checked (``ssh_strict_host_key_checking: yes``); ``ssh``
    may set ``port``, ``key`` and ``known_hosts``. ``settings`` are :class:`ClusterConfig`'s fields;
    ``registries`` (as in ``inventories/registries.py``) must name ``image_registry`` when set.
    """
    if not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise ConfigError(f"{name}: hosts", "give at least one login node")
    config = ClusterConfig.parse(name, settings)
    ssh = v.mapping(f"{name}: ssh", ssh or {}, SSH_KEYS)
    data: dict[str, Any] = {
        KEY: config,
        "ssh_user": config.user,
        "ssh_strict_host_key_checking": "yes",
    }
    if config.image_registry:
        known = {registry.name: registry for registry in parse_registries(registries)}
        if config.image_registry not in known:
            raise ConfigError(
                f"{name}: {KEY}[image_registry]",
                f"no registry {config.image_registry!r} in registries= "
                f"(known: {', '.join(sorted(known)) or 'none'})",
            )
        data[REGISTRIES_KEY] = dict(registries or {})
    for item, value in ssh.items():
        data[SSH_KEYS[item]] = v.integer(f"{name}: ssh[port]", value) if item == "port" else value
    return [host if host.startswith("@") else f"@openssh/{host}" for host in hosts], data


def image_registry(config: ClusterConfig, data: Mapping[str, Any]) -> Registry | None:
    """The registry a cluster's login nodes build the image from (``None``: they receive it)."""
    if not config.image_registry:
        return None
    for registry in parse_registries(data.get(REGISTRIES_KEY)):
        if registry.name == config.image_registry:
            return registry
    raise ConfigError(
        f"{config.name}: {KEY}[image_registry]",
        f"no registry {config.image_registry!r} in {REGISTRIES_KEY}",
    )
