"""The cluster roll-out: the workstation (``@local``) builds the Apptainer image once per image
digest; each login node gets the image (only when it lacks that digest), a code snapshot for
the run, the W&B key as a 0600 file, and the job, submitted once per run key."""

from __future__ import annotations

import hashlib
import os
import posixpath
import shlex
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from pyinfra import host, inventory, logger
from pyinfra.api import deploy
from pyinfra.api.hiddenvalue import HiddenValue

from .. import paths
from ..checks import check_apptainer
from ..cli.project import local_toolkit, local_user
from ..cluster import KEY, ClusterConfig, image_registry, path_variables, resolve
from ..cluster_mounts import ClusterMount, cluster_mounts, tree_digest
from ..config import WorkstationConfig
from ..errors import ConfigError, ToolkitError
from ..facts.cluster import ClusterEnv
from ..facts.jobs import ActiveJobs, JobStates
from ..facts.ledger import LedgerEntries
from ..facts.sif import sif_name
from ..jobs import JOB_LOG, JobSpec, render_job
from ..ledger import Entry, check_run_key, table
from ..mounts import MountConfig
from ..operations import files as file_ops
from ..operations.code import snapshot_synced, snapshots_pruned
from ..operations.delivery import file_delivered, images_pruned
from ..operations.jobs import job_cancelled, job_submitted
from ..operations.mounts import mount_present, mount_synced
from ..operations.results import results_pulled
from ..operations.sif import sandbox_built, sandbox_name, sif_built, sif_pulled
from ..operations.util import barrier
from ..registries import Registry
from ..remote.dockerapi import docker_client
from ..remote.registry_state import content_tag
from ..render import env_quote
from . import registry as registry_deploy
from .registry import PushPlan

WORKSTATION_KEYS = ("isaac_run_key", "isaac_job_args", "isaac_resubmit", "isaac_submit",
                    "isaac_sif_cache", KEY)  # fmt: skip


def flag(value: object) -> bool:
    """A yes/no ``--data`` value (``1``, ``true``, ``yes``)."""
    return str(value or "").lower() in ("1", "true", "yes")


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
    resubmit: bool
    time: str  # when this roll-out was planned (UTC), recorded in the ledger
    mounts: MountConfig = field(default_factory=MountConfig)  # .mount.config
    home: str = "~"  # this workstation's home (mount paths may start with ~)
    submit: bool = True  # False: the image and mounts only (no snapshot, no job)
    build_sif: bool = True  # some cluster receives the image file from this workstation
    push: PushPlan | None = None  # registries some clusters build the image from

    @property
    def content_tag(self) -> str:
        return content_tag(self.image_id)

    @property
    def sif(self) -> str:
        return sif_name(self.image_id)


def _commit(folder: str) -> str | None:
    result = subprocess.run(["git", "-C", folder, "rev-parse", "--short=12", "HEAD"],
                            capture_output=True, text=True)  # fmt: skip
    return result.stdout.strip() if result.returncode == 0 else None


def load(project_root: str | Path) -> Rollout:
    """Everything the workstation side knows; checked before anything changes."""
    if "@local" not in {other.name for other in inventory.iter_activated_hosts()}:
        reason = "the roll-out needs the workstation (@local): it builds or pushes the image"
        raise ConfigError("inventory", f"{reason}; with --limit CLUSTER add --limit @local")
    raw = host.data.dict()
    config = extension_config(project_root)
    image = config.image_name("ext")
    status, found = docker_client().get(f"/images/{quote(image, safe='')}/json")
    if status != 200:
        raise ToolkitError(
            f"image {image} is not built: run deploy/dev.py with isaac_profiles including ext"
            if status == 404 else f"Docker is not usable here: {found}"
        )  # fmt: skip
    args = raw.get("isaac_job_args") or ()
    args = tuple(shlex.split(args) if isinstance(args, str) else (str(a) for a in args))
    commit = _commit(config.extension_folder)
    digest = hashlib.sha1("\0".join(args).encode()).hexdigest()[:8]  # noqa: S324 - a name
    run_key = check_run_key(str(raw.get("isaac_run_key") or f"{commit or 'run'}-{digest}"))
    cache = str(raw.get("isaac_sif_cache") or Path.home() / ".cache" / "isaac-deploy" / "sif")
    resubmit = flag(raw.get("isaac_resubmit"))
    submit = raw.get("isaac_submit") is None or flag(raw.get("isaac_submit"))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    build_sif, push = True, None
    if host.name == "@local":
        sources = image_sources()
        build_sif = any(registry is None for registry in sources.values())
        if build_sif and not os.path.exists(os.path.join(cache, f"{sif_name(found['Id'])}.sha256")):
            check_sif_builder()  # a SIF will be built here: apptainer must be there
        used = {r.name: r for r in sources.values() if r is not None}
        if used:
            data = {k: v for k, v in raw.items() if k not in WORKSTATION_KEYS}
            data["isaac_push_profiles"] = ("ext",)
            data["isaac_registries"] = {r.name: _registry_settings(r) for r in used.values()}
            push = registry_deploy.load(project_root, data)
    mounts_file = Path(paths.mount_config(config.extension_folder))
    mounts = MountConfig.loads(mounts_file.read_text() if mounts_file.exists() else None)
    return Rollout(config, Path(project_root), image, found["Id"], cache, args, run_key, commit,
                   resubmit, now, mounts, config.user.home, submit, build_sif, push)  # fmt: skip


def check_sif_builder() -> None:
    """Refuse to start without Apptainer on this workstation; warn about an untested
    Docker/Apptainer combination (the seed's tested ones)."""
    for check in check_apptainer(local_toolkit()):
        if check.name == "Apptainer" and check.status != "OK":
            raise ToolkitError("apptainer is not installed on this workstation: install "
                               "Apptainer >= 1.3.4 (apptainer.org/docs), or let the clusters "
                               "build the image from a registry (image_registry)")  # fmt: skip
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
    return WorkstationConfig.from_host_data(data, local_user(), str(project_root))


@deploy("Cluster roll-out")
def rollout(plan: Rollout) -> None:
    if host.name == "@local":
        if plan.build_sif:
            sif_built(
                name="Apptainer image of " + plan.image, image=plan.image, cache_dir=plan.sif_cache
            )
        if plan.push:
            registry_deploy.push(plan.push)
    # one step for all hosts: login nodes take the image only once the workstation made it
    barrier(name="workstation image ready", what="image built and pushed where needed")
    if host.name == "@local":
        return
    cluster = this_cluster()
    if standing_by(cluster):
        return
    mounts = cluster_mounts(plan.mounts, cluster, plan.home)
    folders = (cluster.image_dir, cluster.code_dir, cluster.cache_dir, cluster.logs_dir)
    every = (*folders, *(mount.cluster_path for mount in mounts))
    env = host.get_fact(ClusterEnv, names=tuple({n for p in every for n in path_variables(p)}))
    image_dir, code_dir, cache_dir, logs_dir = (
        resolve(path, env, f"{cluster.name}: {KEY}") for path in folders
    )
    ext = plan.config.extension_name
    ledger = ledger_path(env["HOME"], ext)
    image = _image(plan, cluster, image_dir, env["HOME"])
    binds = _mounts(cluster, mounts, env)
    images_pruned(
        name=f"{cluster.name}: old images",
        folder=image_dir,
        keep=cluster.image_retention,
        current=plan.sif,
        ledger=ledger,
        scheduler=cluster.scheduler,
    )
    if not plan.submit:  # --data isaac_submit=0: the image (and mounts) only, like the seed's push
        return
    snapshots = posixpath.join(code_dir, ext)
    snapshot_synced(
        name=f"{cluster.name}: code snapshot {plan.run_key}",
        folder=plan.config.extension_folder,
        snapshots=snapshots,
        snapshot=plan.run_key,
    )
    secret = _secret(cluster, env["HOME"], ext)
    job = JobSpec(
        run_key=plan.run_key,
        image=image,
        code_dir=posixpath.join(snapshots, plan.run_key),
        logs_dir=posixpath.join(logs_dir, plan.run_key),
        cache_dir=cache_dir,
        output=posixpath.join(logs_dir, plan.run_key, JOB_LOG[cluster.scheduler]),
        args=plan.args,
        binds=binds,
        secret_file=secret,
        ext_path=plan.config.docker_ext_path,
        isaacsim_root=plan.config.isaacsim_root,
    )
    job_submitted(
        name=f"{cluster.name}: job {plan.run_key}",
        entry=Entry(
            run_key=plan.run_key,
            job_id="",
            scheduler=cluster.scheduler,
            commit=plan.commit,
            image=plan.image_id,
            snapshot=job.code_dir,
            args=plan.args,
            time=plan.time,
        ),  # fmt: skip
        script=render_job(plan.project_root / "templates", cluster, job),
        ledger=ledger,
        resubmit=plan.resubmit,
        # the scheduler opens the job log before the job runs; logs/ in the snapshot is where
        # the persistent logs folder is bound inside the container
        directories=(job.logs_dir, posixpath.join(job.code_dir, "logs")),
    )
    snapshots_pruned(
        name=f"{cluster.name}: old code snapshots",
        snapshots=snapshots,
        keep=cluster.snapshot_retention,
        current=plan.run_key,
        ledger=ledger,
        scheduler=cluster.scheduler,
    )


def _image(plan: Rollout, cluster: ClusterConfig, image_dir: str, home: str) -> str:
    """The SIF on the login node: sent from this workstation, or built there from a registry;
    unpacked next to it when the cluster runs sandboxes. Returns the image jobs run."""
    source = image_registry(cluster, host.data.dict())
    if source is None:
        file_delivered(
            name=f"{cluster.name}: image {plan.sif}",
            local_path=os.path.join(plan.sif_cache, plan.sif),
            sha256=None,
            folder=image_dir,
            filename=plan.sif,
        )
    else:
        repository = source.repository(plan.image.split(":", 1)[0])
        sif_pulled(
            name=f"{cluster.name}: image {plan.sif} from {source.name}",
            reference=f"{repository}:{plan.content_tag}",
            folder=image_dir,
            filename=plan.sif,
            credentials=_registry_credentials(cluster, source, home),
            plain_http=source.plain_http,
        )
    if cluster.image_format == "sandbox":
        sandbox_built(name=f"{cluster.name}: sandbox of {plan.sif}", folder=image_dir,
                      sif=plan.sif)  # fmt: skip
        return posixpath.join(image_dir, sandbox_name(plan.sif))
    return posixpath.join(image_dir, plan.sif)


def _mounts(cluster: ClusterConfig, mounts: list[ClusterMount], env: dict) -> tuple[str, ...]:
    """External mounts synced (or, mount-only, checked) on the login node; their binds."""
    binds = []
    for mount in mounts:
        path = resolve(mount.cluster_path, env, f"{cluster.name}: mount {mount.name}")
        folder = posixpath.join(path, mount.subdir) if mount.subdir else path
        if mount.local_path is None:
            mount_present(name=f"{cluster.name}: mount {mount.name} (mount-only)", path=folder,
                          mount=mount.name)  # fmt: skip
        else:
            local = os.path.join(mount.local_path, mount.subdir)
            mount_synced(name=f"{cluster.name}: mount {mount.name}", local=local, remote=folder,
                         digest=tree_digest(local))  # fmt: skip
        binds.append(mount.bind(path))
    return tuple(binds)


def _registry_credentials(cluster: ClusterConfig, registry: Registry, home: str) -> str | None:
    """The registry's user and password (from this workstation's environment) as a 0600 file
    on the login node, for ``apptainer build``; ``None`` when the registry has no
    ``username``/``password_env`` (the login node's own ``apptainer registry login`` is used)."""
    if not registry.password_env:
        return None
    password = os.environ.get(registry.password_env, "")
    if not password:
        raise ConfigError(f"{cluster.name}: {KEY}[image_registry]",
                          f"${registry.password_env} (password of registry {registry.name}) "
                          "is not set in this shell")  # fmt: skip
    user, secret = env_quote(registry.username, "username"), env_quote(password, "password")
    content = f"APPTAINER_DOCKER_USERNAME={user}\nAPPTAINER_DOCKER_PASSWORD={secret}\n"
    target = posixpath.join(home, ".config", "isaac-deploy", "registries", f"{registry.name}.env")
    file_ops.secret_file(name=f"{cluster.name}: credentials of {registry.name} (not shown)",
                         path=target, secret=HiddenValue(content))  # fmt: skip
    return target


def _secret(cluster: ClusterConfig, home: str, ext: str) -> str | None:
    """The W&B key as a 0600 file on the cluster (from this workstation's environment or file)."""
    value = None
    if cluster.wandb_api_key_env:
        value = os.environ.get(cluster.wandb_api_key_env) or None
    elif cluster.wandb_api_key_file:
        path = Path(os.path.expanduser(cluster.wandb_api_key_file))
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{cluster.name}: {KEY}[wandb_api_key_file]",
                              f"{path} is readable by others: chmod 600 {path}")  # fmt: skip
        value = path.read_text().strip()
    if not value:
        return None
    target = posixpath.join(home, ".config", "isaac-deploy", ext, "wandb_api_key")
    file_ops.secret_file(name=f"{cluster.name}: W&B key (not shown)", path=target,
                         secret=HiddenValue(value))  # fmt: skip
    return target


@deploy("Results back")
def results(project_root: str | Path) -> None:
    """Each cluster's logs to ``<extension>/logs/cluster/<cluster>/`` (or
    ``isaac_results_dir/<cluster>/``); with ``--data isaac_remove=1`` pulled runs whose jobs
    ended are removed on the cluster."""
    if host.name == "@local":
        return
    cluster = this_cluster()
    if standing_by(cluster):
        return
    config = extension_config(project_root, "isaac_remove", "isaac_results_dir")
    default = os.path.join(config.extension_folder, "logs", "cluster")
    results_dir = os.path.abspath(
        os.path.expanduser(str(host.data.get("isaac_results_dir") or default))
    )
    env = host.get_fact(ClusterEnv, names=path_variables(cluster.logs_dir))
    logs_dir = resolve(cluster.logs_dir, env, f"{cluster.name}: {KEY}[logs_dir]")
    results_pulled(
        name=f"{cluster.name}: results",
        logs_dir=logs_dir,
        local_dir=os.path.join(results_dir, cluster.name),
        ledger=ledger_path(env["HOME"], config.extension_name),
        scheduler=cluster.scheduler,
        remove=flag(host.data.get("isaac_remove")),
    )


@deploy("Cluster jobs")
def jobs(project_root: str | Path) -> None:
    """Print each login node's ledger with the scheduler's job states; with
    ``--data isaac_cancel=<run key>`` cancel that run's queued or running jobs."""
    if host.name == "@local":
        return
    cluster = this_cluster()
    if standing_by(cluster):
        return
    ext = extension_config(project_root, "isaac_cancel").extension_name
    ledger = ledger_path(host.get_fact(ClusterEnv)["HOME"], ext)
    entries = host.get_fact(LedgerEntries, path=ledger)
    ids = tuple(sorted({entry.job_id for entry in entries}))
    states = host.get_fact(JobStates, scheduler=cluster.scheduler, job_ids=ids) if ids else {}
    active = host.get_fact(ActiveJobs, scheduler=cluster.scheduler)
    lines = table(entries, states, active) if entries else ["no submissions yet"]
    logger.info("\n".join(f"{host.print_prefix}{line}" for line in lines))
    cancel = host.data.get("isaac_cancel")
    if cancel:
        job_cancelled(name=f"{cluster.name}: cancel {cancel}", run_key=str(cancel),
                      ledger=ledger, scheduler=cluster.scheduler)  # fmt: skip
