"""What the cluster deploys know before anything changes: the roll-out's plan (image, run key,
arguments, mounts, delivery), the cluster of the current login node and which of its login
nodes acts for it. Checked before the first operation, so bad input stops with one line."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pyinfra import host, inventory, logger

from isaac_deploy.deploys import registry as registry_deploy
from isaac_deploy.deploys.registry import PushPlan
from isaac_deploy.facts.images import local_build_inputs
from isaac_deploy.facts.toolkit import local_toolkit, local_user
from isaac_deploy.model import paths
from isaac_deploy.model import validate as v
from isaac_deploy.model.base_images import missing_fix
from isaac_deploy.model.cluster import KEY, ClusterConfig, image_registry, parse_overrides
from isaac_deploy.model.errors import ConfigError, ToolkitError
from isaac_deploy.model.images import INPUTS_LABEL, image_build, sif_name
from isaac_deploy.model.ledger import Entry, check_run_key
from isaac_deploy.model.mounts import MountConfig
from isaac_deploy.model.registries import Registry
from isaac_deploy.model.sweep import Sweep, parse_sweep
from isaac_deploy.model.workstation import WorkstationConfig
from isaac_deploy.policy.checks import check_apptainer
from isaac_deploy.policy.images import image_inputs
from isaac_deploy.probes import local
from isaac_deploy.probes.context_digest import context_digest
from isaac_deploy.probes.extensions import extension_names
from isaac_deploy.probes.registry_state import content_tag

WORKSTATION_KEYS = (
    "isaac_run_key",
    "isaac_job_args",
    "isaac_job_resources",
    "isaac_sweep",
    "isaac_resubmit",
    "isaac_submit",
    "isaac_sif_cache",
    KEY,
)
REBUILD = "isaac-deploy -p ext build"  # builds the production image, labelled with its inputs


def flag(data: Mapping[str, Any], key: str, default: bool = False) -> bool:
    """A yes/no setting (``--data isaac_submit=0``), strictly: a value that is neither yes nor
    no (``1/0``, ``true/false``, ``yes/no``, ``on/off``) stops the deploy naming the key."""
    value = data.get(key)
    return default if value is None or value == "" else v.boolean(key, value)


def ledger_path(home: str, extension: str) -> str:
    """The submission ledger of ``extension`` on a login node."""
    return posixpath.join(home, ".isaac-deploy", f"{extension}-ledger.jsonl")


@dataclass(frozen=True)
class Rollout:
    config: WorkstationConfig
    project_root: Path
    image: str
    image_id: str
    sif_cache: str
    args: tuple[str, ...]
    run_key: str
    commit: str | None
    code_digest: str  # the images' project files as the snapshot sends them
    resubmit: bool
    time: str  # when this roll-out was planned (UTC), recorded in the ledger
    mounts: MountConfig = field(default_factory=MountConfig)  # .mount.config
    home: str = "~"  # this workstation's home (mount paths may start with ~)
    submit: bool = True  # False: the image and mounts only (no snapshot, no job)
    build_sif: bool = True  # some cluster receives the image file from this workstation
    push: PushPlan | None = None  # registries some clusters build the image from
    # this submission's walltime, gpus, partition (isaac-deploy cluster submit --time ...)
    resources: dict[str, str] = field(default_factory=dict)
    sweep: Sweep | None = None  # isaac-deploy cluster sweep: a job array instead of one job

    @property
    def content_tag(self) -> str:
        return content_tag(self.image_id)

    def entry(self, run_key: str, scheduler: str, snapshot: str, job_name: str, **extra) -> Entry:
        """The ledger's record of a submission of this roll-out (its job id comes later)."""
        return Entry(
            run_key=run_key,
            job_id="",
            scheduler=scheduler,
            commit=self.commit,
            image=self.image_id,
            snapshot=snapshot,
            args=self.args,
            time=self.time,
            job_name=job_name,
            extra=extra,
        )

    @property
    def sif(self) -> str:
        return sif_name(self.image_id)


def job_args(raw: object) -> tuple[str, ...]:
    """``isaac_job_args``: a list (the CLI passes one, exactly as typed) or a shell-like string."""
    if not raw:
        return ()
    return tuple(shlex.split(raw) if isinstance(raw, str) else (str(arg) for arg in raw))


def default_run_key(commit: str | None, args: tuple[str, ...], code_digest: str) -> str:
    """The git commit plus a hash of the arguments and of the code (the build context's digest,
    uncommitted edits included): the same code and arguments, the same run."""
    text = "\0".join((code_digest, *args))
    return f"{commit or 'run'}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"  # noqa: S324 - a name


def image_id(config: WorkstationConfig) -> str:
    """The ID of the production image in this workstation's Docker engine, once its labels show
    that what a job sees of it was built from the tree as it is now (its Dockerfile, base image,
    build arguments, entrypoint, the extension's packaging metadata); code under ``source/`` and
    ``scripts/`` reaches jobs through the code snapshot, so an edit there needs no new image.
    Else one line with the command that builds it."""
    build = image_build(config, "ext")
    refs = [build.image, build.base_image]
    found = local_build_inputs(config.extension_folder, config.image_paths, refs)
    state = image_inputs(found, build, missing_fix(config.base_source, build.base_image))
    if state.inputs is None:
        raise ToolkitError(f"cannot check image {build.image} against its source: {state.problem}")
    if state.image is None:
        raise ToolkitError(f"image {build.image} is not built: build it with `{REBUILD}`")
    if not state.current_for_jobs:
        changed = (
            "its Dockerfile, base image, build arguments, entrypoint or the extension's "
            "packaging metadata changed since it was built"
            if state.image.inputs
            else f"it has no {INPUTS_LABEL} label (not built by isaac-deploy)"
        )
        raise ToolkitError(
            f"image {build.image} is out of date: {changed}; rebuild it with `{REBUILD}`, "
            "then roll out again"
        )
    return state.image.id


def delivery(project_root: str | Path, raw: dict, image: str, sif: str, cache: str):
    """How the clusters get the image: ``(build_sif, push)``: whether this workstation builds
    the SIF (some cluster receives the file; apptainer is then checked), and the push plan for
    the registries other clusters build it from (``None``: none)."""
    if host.name != "@local":
        return True, None
    sources = image_sources()
    build_sif = any(registry is None for registry in sources.values())
    if build_sif and not os.path.exists(os.path.join(cache, f"{sif}.sha256")):
        check_sif_builder()  # a SIF will be built here: apptainer must be there
    used = {r.name: r for r in sources.values() if r is not None}
    if not used:
        return build_sif, None
    data = {k: v for k, v in raw.items() if k not in WORKSTATION_KEYS}
    data["isaac_push_profiles"] = ("ext",)
    data["isaac_registries"] = {r.name: _registry_settings(r) for r in used.values()}
    return build_sif, registry_deploy.load(project_root, data)


def load(project_root: str | Path) -> Rollout:
    """Everything the workstation side knows; checked before anything changes."""
    if "@local" not in {other.name for other in inventory.iter_activated_hosts()}:
        reason = "the roll-out needs the workstation (@local): it builds or pushes the image"
        raise ConfigError("inventory", f"{reason}; with --limit CLUSTER add --limit @local")
    raw = host.data.dict()
    config = extension_config(project_root)
    image = config.image_name("ext")
    found = image_id(config)
    args = job_args(raw.get("isaac_job_args"))
    commit = local.commit(config.extension_folder)
    code = context_digest(config.extension_folder, config.image_paths)["digest"]
    sweep_raw = raw.get("isaac_sweep") or None
    # a sweep's default run key hashes its declaration too: another grid, another sweep
    keyed = (
        args if sweep_raw is None else (*args, "isaac_sweep", json.dumps(sweep_raw, sort_keys=True))
    )
    run_key = check_run_key(str(raw.get("isaac_run_key") or default_run_key(commit, keyed, code)))
    sweep = None if sweep_raw is None else parse_sweep("isaac_sweep", sweep_raw, run_key, args)
    cache = str(raw.get("isaac_sif_cache") or Path.home() / ".cache" / "isaac-deploy" / "sif")
    build_sif, push = delivery(project_root, raw, image, sif_name(found), cache)
    mounts_file = Path(paths.mount_config(config.extension_folder))
    return Rollout(
        config=config,
        project_root=Path(project_root),
        image=image,
        image_id=found,
        sif_cache=cache,
        args=args,
        run_key=run_key,
        commit=commit,
        code_digest=code,
        resubmit=flag(raw, "isaac_resubmit"),
        time=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        mounts=MountConfig.loads(mounts_file.read_text() if mounts_file.exists() else None),
        home=config.user.home,
        submit=flag(raw, "isaac_submit", default=True),
        build_sif=build_sif,
        push=push,
        resources=parse_overrides("isaac_job_resources", raw.get("isaac_job_resources")),
        sweep=sweep,
    )


def check_sif_builder() -> None:
    """Refuse to start without Apptainer on this workstation; warn about an untested
    Docker/Apptainer combination (the seed's tested ones)."""
    for check in check_apptainer(local_toolkit()):
        if check.name == "Apptainer" and check.status != "OK":
            raise ToolkitError(
                "apptainer is not installed on this workstation: install "
                "Apptainer >= 1.3.4 (apptainer.org/docs), or let the clusters "
                "build the image from a registry (image_registry)"
            )
        if check.status == "WARN":
            logger.warning(f"{host.print_prefix}{check.line()}")


def image_sources() -> dict[str, Registry | None]:
    """Each cluster of the inventory (its connected login nodes) and the registry it builds
    the image from (``None``: it receives the image file from this workstation)."""
    sources: dict[str, Registry | None] = {}
    for other in inventory.iter_activated_hosts():
        config = other.data.get(KEY)
        if isinstance(config, ClusterConfig):
            sources[config.name] = image_registry(config, other.data.dict())
    return sources


def _registry_settings(registry: Registry) -> dict:
    """A parsed registry back as inventory settings (for the push plan)."""
    return {k: v for k, v in asdict(registry).items() if k != "name" and v not in (None, "")}


def this_cluster() -> ClusterConfig:
    """The cluster settings of the current login node (its inventory group)."""
    cluster = host.data.get(KEY)
    if not isinstance(cluster, ClusterConfig):
        raise ConfigError(KEY, f"{host.name} is not in a cluster group (inventories/cluster.py)")
    return cluster


def acting_login(cluster: ClusterConfig) -> str | None:
    """The login node that acts for ``cluster``: the first of its group that answered. Login
    nodes of a cluster share its file systems and scheduler, so one of them does the work (two
    would send the same image and submit the same job twice); the others stand by, and take
    over when the first cannot be reached."""
    for other in inventory.iter_activated_hosts():
        config = other.data.get(KEY)
        if isinstance(config, ClusterConfig) and config.name == cluster.name:
            return other.name
    return None


def standing_by(cluster: ClusterConfig) -> bool:
    """Whether this login node leaves the work to another one of its cluster (logged)."""
    acting = acting_login(cluster)
    if acting is None or acting == host.name:
        return False
    logger.info(f"{host.print_prefix}cluster {cluster.name} is handled through {acting}")
    return True


def extension_config(project_root: str | Path, *extra_keys: str) -> WorkstationConfig:
    """The extension's settings from the host data (roll-out keys aside)."""
    skip = (*WORKSTATION_KEYS, *extra_keys)
    data = {k: v for k, v in host.data.dict().items() if k not in skip}
    folder = str(data.get("isaac_extension_folder") or project_root)
    return WorkstationConfig.from_host_data(
        data, local_user(), str(project_root), tuple(extension_names(folder))
    )
