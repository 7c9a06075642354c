"""The cluster model (the ``.env.cluster`` of the seed, per cluster): who logs in, which
scheduler, where images, code snapshots, caches and logs live, what a job asks for, and where
secrets come from. Cluster inventories build their groups with :func:`cluster`, which refuses
bad values while the inventory loads, before any connection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from isaac_deploy.model import validate as v
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.launch import Launch
from isaac_deploy.model.launch import check as check_launch
from isaac_deploy.model.registries import KEY as REGISTRIES_KEY
from isaac_deploy.model.registries import Registry, parse_registries

KEY = "isaac_cluster"
SCHEDULERS = ("slurm", "pbs")
NAME = r"[A-Za-z0-9_.-]+"
# cluster paths may start with ~ or a variable the cluster sets ($SCRATCH, $WORK, ...)
CLUSTER_PATH_STARTS = ("~", "$")


# ---------------------------------------------------------------- resources (issue #12)
# What a job asks the scheduler for. Every value is checked here against what the scheduler
# reads in a directive line (no spaces, quotes, backslashes or '#': one word each), so the
# templates print them as they are.
SIZE = (r"\d+[KMGT]?", "a size such as 32G or 64000M")
WALLTIME = (r"(?:\d+-)?\d{1,3}:\d{2}:\d{2}", "[D-]HH:MM:SS, e.g. 04:00:00 or 1-12:00:00")
GPUS_HINT = "a number of GPUs (1) or TYPE:COUNT (rtx_4090:1)"
GPU_OPTIONS = ("gpus", "gres")  # Slurm: --gpus=[TYPE:]N or --gres=gpu[:TYPE]:N
PBS_GPU_RESOURCES = ("ngpus", "gpus")  # PBS: the server's GPU resource in the select chunk
# a PBS destination queue (PBS_MAXQUEUENAME is 15)
PBS_QUEUE = (r"[A-Za-z][A-Za-z0-9_-]{0,14}", "a PBS queue: a letter, then letters, digits, _ -")
SLURM_ONLY = ("qos", "gpu_option", "constraint", "tmp", "reservation")
PBS_ONLY = ("pbs_gpu_resource",)
# one option per extra directive, its value one word
EXTRA = {
    "slurm": (r"--[a-z][a-z0-9-]*(?:=[^\s'\"\\#]+)?", "one sbatch option: --name or --name=value"),
    "pbs": (r"-[A-Za-z](?: [^\s'\"\\#]+)?", "one qsub option: -X or -X value"),
}
# what isaac-deploy writes itself (the job's name and log are how it finds the job), and what
# a setting of its own says
MANAGED = {
    "slurm": {
        "job-name": "isaac-deploy names the job",
        "output": "isaac-deploy writes the job log into the run's logs folder",
        "error": "isaac-deploy writes the job log into the run's logs folder",
        "gpus": "use resources[gpus]",
        "gres": "use resources[gpus] with gpu_option='gres'",
        "cpus-per-task": "use resources[cpus]",
        "mem": "use resources[memory]",
        "mem-per-cpu": "use resources[mem_per_cpu]",
        "time": "use resources[walltime]",
        "account": "use resources[account]",
        "partition": "use resources[partition]",
        "qos": "use resources[qos]",
        "constraint": "use resources[constraint]",
        "tmp": "use resources[tmp]",
        "reservation": "use resources[reservation]",
        "mail-user": "use resources[mail]",
        "nodes": "use resources[nodes]",
        "ntasks-per-node": "isaac-deploy starts one launcher per node",
        "gpus-per-node": "use resources[gpus] (per node)",
        "signal": "use launch[signal]",
        "requeue": "use launch[attempts]",
        "no-requeue": "use launch[attempts]",
    },
    "pbs": {
        "N": "isaac-deploy names the job",
        "o": "isaac-deploy writes the job log into the run's logs folder",
        "e": "isaac-deploy writes the job log into the run's logs folder",
        "j": "isaac-deploy joins the job's output and error streams",
        "S": "isaac-deploy runs the job with bash",
        "A": "use resources[account]",
        "q": "use resources[partition]",
        "M": "use resources[mail]",
        "select": "use resources[cpus], [gpus], [memory]",
        "walltime": "use resources[walltime]",
    },
}
# per submission: isaac-deploy cluster submit (launcher: the cluster's launch[launcher])
OVERRIDES = ("walltime", "gpus", "partition", "nodes", "launcher")


@dataclass(frozen=True)
class Resources:
    """What each job asks the scheduler for (``None``: the cluster's default)."""

    account: str | None = None
    partition: str | None = None  # PBS: the queue
    qos: str | None = None  # Slurm
    gpus: int = 1  # per node
    gpu_type: str | None = None  # gpus="rtx_4090:1"; Slurm
    gpu_option: str = "gpus"  # Slurm: --gpus=[TYPE:]N, or "gres": --gres=gpu[:TYPE]:N
    pbs_gpu_resource: str | None = "ngpus"  # PBS: the GPU resource of the select chunk (or none)
    cpus: int = 8
    memory: str | None = "32G"  # per job (node); or mem_per_cpu
    mem_per_cpu: str | None = None
    walltime: str = "04:00:00"
    mail: str | None = None
    constraint: str | None = None  # Slurm node features, e.g. "a100&ib"
    tmp: str | None = None  # Slurm: node-local disk
    reservation: str | None = None  # Slurm
    extra: tuple[str, ...] = ()  # further directives, one option each
    nodes: int = 1  # several: one launcher per node (launch[launcher] torchrun)

    @property
    def walltime_seconds(self) -> int:
        hours, minutes, seconds = self.walltime_hms.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + int(seconds)

    @property
    def walltime_hms(self) -> str:
        """``[D-]HH:MM:SS`` as ``HH:MM:SS`` (PBS has no days)."""
        days, _, clock = self.walltime.rpartition("-")
        hours, minutes, seconds = clock.split(":")
        return f"{int(days or 0) * 24 + int(hours):02d}:{minutes}:{seconds}"

    @property
    def memory_pbs(self) -> str:
        """The select chunk's ``mem``: ``32G`` as ``32gb`` (a bare number is megabytes, as
        Slurm reads it, not bytes); with ``mem_per_cpu``, that times ``cpus``."""
        size = self.memory or self.mem_per_cpu or "0"
        unit = size[-1].lower() if size[-1].isalpha() else "m"
        amount = int(size.rstrip("KMGTkmgt")) * (1 if self.memory else self.cpus)
        return f"{amount}{unit}b"

    @property
    def gpu_request(self) -> str:
        """``[TYPE:]COUNT`` as Slurm's ``--gpus`` takes it."""
        return f"{self.gpu_type}:{self.gpus}" if self.gpu_type else str(self.gpus)

    @property
    def summary(self) -> str:
        """What a job asks for, on one line (the plan shows it)."""
        items = [
            f"gpus={self.gpu_request}",
            f"cpus={self.cpus}",
            f"mem-per-cpu={self.mem_per_cpu}" if self.mem_per_cpu else f"mem={self.memory}",
            f"time={self.walltime}",
        ]
        if self.nodes > 1:
            items.insert(0, f"nodes={self.nodes}")
        for name in ("partition", "account", "qos", "constraint", "reservation", "tmp"):
            value = getattr(self, name)
            if value:
                items.append(f"{name}={value}")
        return ", ".join(items + list(self.extra))

    @classmethod
    def parse(cls, key: str, raw: Any, scheduler: str) -> Resources:
        """The resources of a cluster whose scheduler is ``scheduler``; a setting the
        scheduler does not read, or a value its directive could not hold, is refused."""
        known = [f.name for f in fields(cls) if f.name != "gpu_type"]
        raw = v.mapping(key, raw or {}, known)
        other = PBS_ONLY if scheduler == "slurm" else SLURM_ONLY
        for item in other:
            if raw.get(item) not in (None, ""):
                raise ConfigError(f"{key}[{item}]", f"is not a setting for {scheduler} clusters")

        def value_of(item: str, pattern: tuple[str, str], default: str | None = None) -> str | None:
            value = raw.get(item, default)
            if value in (None, ""):
                return None
            return v.text(f"{key}[{item}]", str(value), *pattern)

        memory = value_of("memory", SIZE, None if raw.get("mem_per_cpu") else "32G")
        mem_per_cpu = value_of("mem_per_cpu", SIZE)
        if memory and mem_per_cpu:
            raise ConfigError(f"{key}[mem_per_cpu]", "give memory or mem_per_cpu, not both")
        gpus, gpu_type = parse_gpus(f"{key}[gpus]", raw.get("gpus", 1), scheduler)
        pbs_gpu = raw.get("pbs_gpu_resource", "ngpus")
        mail = raw.get("mail")
        return cls(
            account=value_of("account", (NAME, "letters, digits, _ . - only")),
            partition=parse_partition(f"{key}[partition]", raw.get("partition"), scheduler),
            qos=value_of("qos", (NAME, "letters, digits, _ . - only")),
            gpus=gpus,
            gpu_type=gpu_type,
            gpu_option=v.choice(f"{key}[gpu_option]", raw.get("gpu_option", "gpus"), GPU_OPTIONS),
            pbs_gpu_resource=None
            if pbs_gpu in (None, "", "none")
            else v.choice(f"{key}[pbs_gpu_resource]", pbs_gpu, (*PBS_GPU_RESOURCES, "none")),
            cpus=v.integer(f"{key}[cpus]", raw.get("cpus", 8), minimum=1),
            memory=memory,
            mem_per_cpu=mem_per_cpu,
            walltime=str(value_of("walltime", WALLTIME, "04:00:00")),
            mail=None
            if not mail
            else v.text(
                f"{key}[mail]",
                mail,
                r"[^@\s'\"\\#]+@[^@\s'\"\\#]+\.[^@\s'\"\\#]+",
                "an e-mail address",
            ),
            constraint=value_of(
                "constraint",
                (r"[A-Za-z0-9_.&|,:*\[\]()-]+", "node features joined with & | , e.g. a100&ib"),
            ),
            tmp=value_of("tmp", SIZE),
            reservation=value_of(
                "reservation", (r"[A-Za-z0-9_.-]+(?:,[A-Za-z0-9_.-]+)*", "a reservation name")
            ),
            extra=parse_extra(f"{key}[extra]", raw.get("extra"), scheduler),
            nodes=v.integer(f"{key}[nodes]", raw.get("nodes", 1), minimum=1),
        )

    def override(self, key: str, raw: Mapping[str, Any], scheduler: str) -> Resources:
        """These resources with one submission's ``walltime``, ``gpus`` (a bare count keeps the
        cluster's GPU type), ``partition`` and ``nodes``, checked as the cluster's own are
        (``launcher`` is :meth:`Launch.override`'s)."""
        raw = v.mapping(key, raw, OVERRIDES)
        changes: dict[str, Any] = {}
        if raw.get("walltime") not in (None, ""):
            changes["walltime"] = v.text(f"{key}[walltime]", str(raw["walltime"]), *WALLTIME)
        if raw.get("gpus") not in (None, ""):
            gpus, gpu_type = parse_gpus(f"{key}[gpus]", raw["gpus"], scheduler)
            changes.update(gpus=gpus, gpu_type=gpu_type or self.gpu_type)
        if raw.get("partition") not in (None, ""):
            changes["partition"] = parse_partition(f"{key}[partition]", raw["partition"], scheduler)
        if raw.get("nodes") not in (None, ""):
            changes["nodes"] = v.integer(f"{key}[nodes]", raw["nodes"], minimum=1)
        return replace(self, **changes)


def parse_gpus(key: str, raw: Any, scheduler: str) -> tuple[int, str | None]:
    """``gpus``: a count (``2``) or ``TYPE:COUNT`` (``rtx_4090:1``, Slurm only)."""
    text = str(raw).strip() if isinstance(raw, (int, str)) and not isinstance(raw, bool) else ""
    match = re.fullmatch(r"(?:([A-Za-z0-9_.-]+):)?(\d+)", text)
    if not match:
        raise ConfigError(key, f"must be {GPUS_HINT}, got {raw!r}")
    gpu_type, count = match.group(1), int(match.group(2))
    if gpu_type and scheduler != "slurm":
        raise ConfigError(key, f"a GPU type ({gpu_type}) is for Slurm clusters: give a count")
    if gpu_type and not count:
        raise ConfigError(key, f"{text} asks for no GPU: give a count of 1 or more")
    return count, gpu_type


def parse_partition(key: str, raw: Any, scheduler: str) -> str | None:
    """A Slurm partition, or a PBS queue."""
    if raw in (None, ""):
        return None
    if scheduler == "pbs":
        return v.text(key, raw, *PBS_QUEUE)
    return v.text(key, raw, NAME, "letters, digits, _ . - only")


def parse_extra(key: str, raw: Any, scheduler: str) -> tuple[str, ...]:
    """Further directives, one option each (``--exclusive``, ``-l place=excl``); never one a
    setting or isaac-deploy itself writes."""
    if raw in (None, ""):
        return ()
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(key, "must be a list of directives, one option each")
    pattern, hint = EXTRA[scheduler]
    directives = []
    for index, item in enumerate(raw):
        text = v.text(f"{key}[{index}]", item, pattern, f"{item!r} is not {hint}")
        if scheduler == "slurm":
            names = [text[2:].split("=", 1)[0]]
        else:
            flag, _, value = text[1:].partition(" ")
            names = [flag] + [part.split("=", 1)[0] for part in value.split(",")] * (flag == "l")
        for name in names:
            if name in MANAGED[scheduler]:
                raise ConfigError(f"{key}[{index}]", f"{item!r}: {MANAGED[scheduler][name]}")
        directives.append(text)
    return tuple(directives)


def parse_overrides(key: str, raw: Any) -> dict[str, str]:
    """One submission's resources (``isaac_job_resources``): a mapping, or its JSON text (as
    ``--data`` passes it), of ``walltime``, ``gpus`` and ``partition``; checked here, and against
    each cluster's scheduler when its job is planned."""
    if raw in (None, ""):
        return {}
    values = v.mapping(key, v.json_value(key, raw), OVERRIDES)
    overrides = {name: str(value) for name, value in values.items() if value not in (None, "")}
    Resources().override(key, overrides, "slurm")  # the values' form; each cluster's rules later
    Launch().override(f"{key}[launcher]", overrides.get("launcher"))
    return overrides


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
    launch: Launch = field(default_factory=Launch)  # python or torchrun; checkpoint and resume

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

        resources = Resources.parse(f"{key}[resources]", raw.get("resources"), raw["scheduler"])
        launch = Launch.parse(f"{key}[launch]", raw.get("launch"))
        check_launch(f"{key}[launch]", launch, resources.nodes, resources.walltime_seconds)

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
            resources=resources,
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
            launch=launch,
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
