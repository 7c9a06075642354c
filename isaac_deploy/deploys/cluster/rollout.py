"""The cluster roll-out: the workstation (``@local``) builds the Apptainer image once per image
digest; each login node gets the image (only when it lacks that digest), a code snapshot for
the run, the W&B key as a 0600 file, and the job, submitted once per run key."""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, replace
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.hiddenvalue import HiddenValue
from pyinfra.api.state import BaseStateCallback, StateStage
from pyinfra.context import ctx_host

from isaac_deploy.deploys import registry as registry_deploy
from isaac_deploy.deploys.cluster.plan import (
    Rollout,
    ledger_path,
    standing_by,
    this_cluster,
)
from isaac_deploy.deploys.cluster.sweep import sweep_job
from isaac_deploy.facts.attempts import Attempts
from isaac_deploy.facts.cluster import ClusterEnv, SnapshotDigest
from isaac_deploy.facts.ledger import LedgerEntries
from isaac_deploy.facts.scheduler import JobStates
from isaac_deploy.model.cluster import KEY, ClusterConfig, image_registry, path_variables, resolve
from isaac_deploy.model.cluster_mounts import ClusterMount, cluster_mounts
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.images import sandbox_name
from isaac_deploy.model.launch import check as check_launch
from isaac_deploy.model.ledger import submitted
from isaac_deploy.model.registries import Registry, password_of
from isaac_deploy.model.runs import bookkeeping, logs_tree
from isaac_deploy.model.sweep import check_launch as check_sweep_launch
from isaac_deploy.operations import files as file_ops
from isaac_deploy.operations.cluster_image import sandbox_built, sif_built, sif_pulled
from isaac_deploy.operations.code import snapshot_refusal, snapshot_synced, snapshots_pruned
from isaac_deploy.operations.delivery import file_delivered, images_pruned
from isaac_deploy.operations.mounts import mount_present, mount_synced
from isaac_deploy.operations.scheduler import job_submitted
from isaac_deploy.operations.util import barrier
from isaac_deploy.policy.continuation import Continuation, continuation
from isaac_deploy.probes.mirror import tree_digest
from isaac_deploy.render.job_script import JOB_LOG, JobSpec, render_job
from isaac_deploy.render.summary import ClusterOutcome, cluster_lines
from isaac_deploy.render.templates import TEMPLATES, env_quote


@dataclass(frozen=True)
class ClusterPaths:
    """A cluster's folders with their leading ``~`` or ``$VAR`` resolved on the login node."""

    home: str
    image_dir: str
    code_dir: str
    cache_dir: str
    logs_dir: str
    env: dict[str, str]


def cluster_paths(cluster: ClusterConfig, mounts: list[ClusterMount]) -> ClusterPaths:
    """One question to the login node for every variable the cluster's paths start with."""
    folders = (cluster.image_dir, cluster.code_dir, cluster.cache_dir, cluster.logs_dir)
    every = (*folders, *(mount.cluster_path for mount in mounts))
    env = host.get_fact(
        ClusterEnv, names=tuple(sorted({n for p in every for n in path_variables(p)}))
    )
    image_dir, code_dir, cache_dir, logs_dir = (
        resolve(path, env, f"{cluster.name}: {KEY}") for path in folders
    )
    return ClusterPaths(env["HOME"], image_dir, code_dir, cache_dir, logs_dir, env)


@deploy("Cluster roll-out")
def rollout(plan: Rollout) -> None:
    """The workstation makes the image; then each cluster (through one of its login nodes)
    gets the image, the external mounts, a code snapshot and the job, submitted once."""
    if host.name == "@local":
        _workstation_image(plan)
    # one step for all hosts: login nodes take the image only once the workstation made it
    barrier(name="workstation image ready", what="image built and pushed where needed")
    if host.name == "@local":
        return
    cluster = this_cluster()
    if standing_by(cluster):
        return
    mounts = cluster_mounts(plan.mounts, cluster, plan.home)
    paths = cluster_paths(cluster, mounts)
    ledger = ledger_path(paths.home, plan.config.extension_name)
    image = _image(plan, cluster, paths)
    binds = _mounts(cluster, mounts, paths.env)
    images_pruned(
        name=f"{cluster.name}: old images",
        folder=paths.image_dir,
        keep=cluster.image_retention,
        current=plan.sif,
        ledger=ledger,
        scheduler=cluster.scheduler,
        extension=plan.config.extension_name,
    )
    if plan.submit:  # --data isaac_submit=0: the image (and mounts) only, like the seed's push
        _job(plan, cluster, paths, ledger, image, binds)
    source = image_registry(cluster, host.data.dict())
    earlier = (
        submitted(host.get_fact(LedgerEntries, path=ledger).entries, plan.run_key)
        if plan.submit
        else []
    )
    host.state.add_callback_handler(
        RolloutSummary(
            ctx_host.get(),
            ClusterOutcome(
                cluster=cluster.name,
                image=plan.sif,
                sent=False,
                how="sent from this workstation"
                if source is None
                else f"built on the login node from {source.name}",
                run_key=plan.run_key if plan.submit else None,
                earlier_jobs=tuple(e.job_id for e in earlier),
            ),
        )
    )


class RolloutSummary(BaseStateCallback):
    """Prints what the roll-out left on a cluster when the run that executed ends: the image
    (sent in this run or current), the job (submitted now, with its id, or before) and how to
    follow it. Not after ``--dry``, nor for a cluster whose roll-out failed."""

    def __init__(self, target, planned: ClusterOutcome) -> None:
        self.target, self.planned = target, planned

    def host_disconnect(self, state, host) -> None:  # noqa: ARG002 - pyinfra's callback
        if host is not self.target or state.current_stage != StateStage.Disconnect:
            return
        if host in state.failed_hosts:
            return
        planned = self.planned
        sent, job_id = False, None
        for op_hash in host.op_hash_order:
            data = state.ops[host].get(op_hash)
            if data is None or not data.operation_meta.is_complete():
                continue
            names = [n.split(" | ")[-1] for n in state.get_op_meta(op_hash).names]
            meta = data.operation_meta
            if f"{planned.cluster}: image {planned.image}" in " ".join(names):
                sent = sent or meta.did_change()
            if planned.run_key and any(
                n.startswith(f"{planned.cluster}: job {planned.run_key} ") for n in names
            ):
                found = re.search(r"^submitted job (\S+)$", "\n".join(meta.stdout_lines), re.M)
                job_id = found.group(1) if found else None
        outcome = replace(planned, sent=sent, job_id=job_id)
        for line in cluster_lines(outcome):
            logger.info(f"{host.print_prefix}{line}")


def _workstation_image(plan: Rollout) -> None:
    """The SIF in this workstation's cache, and the registries the clusters build from."""
    if plan.build_sif:
        sif_built(
            name="Apptainer image of " + plan.image, image=plan.image, cache_dir=plan.sif_cache
        )
    if plan.push:
        registry_deploy.push(plan.push)


def _job(
    plan: Rollout,
    cluster: ClusterConfig,
    paths: ClusterPaths,
    ledger: str,
    image: str,
    binds: tuple[str, ...],
) -> None:
    """The run's code snapshot, the W&B key, the job (submitted once per run key) and the
    pruning of old snapshots. A run key whose snapshot holds other code than this tree stops
    the roll-out before anything changes."""
    resources = cluster.resources.override(
        f"{cluster.name}: isaac_job_resources", plan.resources, cluster.scheduler
    )
    launch = cluster.launch.override(
        f"{cluster.name}: isaac_job_resources[launcher]", plan.resources.get("launcher")
    )
    check_launch(
        f"{cluster.name}: {KEY}[launch]", launch, resources.nodes, resources.walltime_seconds
    )
    submitting = replace(cluster, resources=resources, launch=launch)
    snapshots = posixpath.join(paths.code_dir, plan.config.extension_name)
    state = host.get_fact(SnapshotDigest, folder=snapshots, snapshot=plan.run_key)
    refusal = snapshot_refusal(state, plan.code_digest)
    if refusal:
        raise ConfigError(f"{cluster.name}: run key {plan.run_key}", refusal)
    snapshot_synced(
        name=f"{cluster.name}: code snapshot {plan.run_key}",
        folder=plan.config.extension_folder,
        snapshots=snapshots,
        snapshot=plan.run_key,
        include=plan.config.image_paths,
    )
    tree = logs_tree(paths.logs_dir, plan.config.extension_name)
    book = bookkeeping(tree, plan.run_key)
    if plan.sweep is not None:
        check_sweep_launch(f"{cluster.name}: {KEY}[launch]", launch)
    resumed = _continuation(submitting, ledger, tree, plan.run_key) if launch.continues else None
    job = JobSpec(
        run_key=plan.run_key,
        image=image,
        code_dir=posixpath.join(snapshots, plan.run_key),
        logs_tree=tree,
        bookkeeping=book,
        cache_dir=paths.cache_dir,
        output=posixpath.join(book, JOB_LOG[cluster.scheduler]),
        extension=plan.config.extension_name,
        planned=plan.time,
        args=plan.args,
        binds=binds,
        secret_file=_secret(cluster, paths.home, plan.config.extension_name),
        ext_path=plan.config.docker_ext_path,
        isaacsim_root=plan.config.isaacsim_root,
        attempt=resumed.attempt if resumed else 1,
    )
    if plan.sweep is not None:  # a job array of the sweep's runs instead of one job
        sweep_job(plan, submitting, replace(job, sweep=plan.sweep), ledger)
        _snapshots_pruned(plan, cluster, snapshots, ledger)
        return
    job_submitted(
        name=f"{cluster.name}: job {plan.run_key} ({_launch_summary(submitting, resumed)})",
        entry=plan.entry(
            plan.run_key,
            cluster.scheduler,
            job.code_dir,
            job.job_name,
            **({"attempt": resumed.attempt, "continues": resumed.job_id} if resumed else {}),
        ),
        script=render_job(TEMPLATES, submitting, job),
        ledger=ledger,
        resubmit=plan.resubmit,
        continues=resumed.job_id if resumed else None,
        # the scheduler opens the job log before the job runs; logs/ in the snapshot is where
        # the persistent logs tree is bound inside the container
        directories=(book, posixpath.join(job.code_dir, "logs")),
    )
    _snapshots_pruned(plan, cluster, snapshots, ledger)


def _snapshots_pruned(plan: Rollout, cluster: ClusterConfig, snapshots: str, ledger: str) -> None:
    snapshots_pruned(
        name=f"{cluster.name}: old code snapshots",
        snapshots=snapshots,
        keep=cluster.snapshot_retention,
        current=plan.run_key,
        ledger=ledger,
        scheduler=cluster.scheduler,
        extension=plan.config.extension_name,
    )


def _launch_summary(cluster: ClusterConfig, resumed: Continuation | None) -> str:
    """The job's resources, launcher and attempt, for the plan."""
    items = [cluster.resources.summary]
    if cluster.launch.launcher != "python":
        items.append(cluster.launch.launcher)
    if resumed is not None:
        items.append(f"attempt {resumed.attempt} of {cluster.launch.attempts}")
    return ", ".join(items)


def _continuation(
    cluster: ClusterConfig, ledger: str, tree: str, run_key: str
) -> Continuation | None:
    """The continuation of ``run_key`` due now: its last job was warned before its wall time,
    wrote a checkpoint and was not requeued (see ``policy/continuation.py``)."""
    entries = host.get_fact(LedgerEntries, path=ledger).entries
    jobs = tuple(entry.job_id for entry in submitted(entries, run_key))
    if not jobs:
        return None
    states = host.get_fact(JobStates, scheduler=cluster.scheduler, job_ids=jobs[-1:])
    attempts = host.get_fact(Attempts, tree=tree).get(run_key, {})
    due = continuation(entries, run_key, states, attempts, cluster.launch.attempts)
    if due is not None:
        logger.info(
            f"{host.print_prefix}run {run_key}: job {due.job_id} wrote a checkpoint before its "
            f"wall time: attempt {due.attempt} of {cluster.launch.attempts} resumes it"
        )
    return due


def _image(plan: Rollout, cluster: ClusterConfig, paths: ClusterPaths) -> str:
    """The SIF on the login node: sent from this workstation, or built there from a registry;
    unpacked next to it when the cluster runs sandboxes (Apptainer as the cluster's login
    environment and modules provide it). Returns the image jobs run."""
    image_dir, home = paths.image_dir, paths.home
    runtime = {
        "cache_dir": paths.cache_dir,
        "apptainer": cluster.apptainer,
        "modules": cluster.modules,
    }
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
            credentials=_registry_credentials(source),
            credentials_file=posixpath.join(
                home, ".config", "isaac-deploy", "registries", f"{source.name}.env"
            ),
            plain_http=source.plain_http,
            **runtime,
        )
    if cluster.image_format == "sandbox":
        sandbox_built(
            name=f"{cluster.name}: sandbox of {plan.sif}", folder=image_dir, sif=plan.sif, **runtime
        )
        return posixpath.join(image_dir, sandbox_name(plan.sif))
    return posixpath.join(image_dir, plan.sif)


def _mounts(cluster: ClusterConfig, mounts: list[ClusterMount], env: dict) -> tuple[str, ...]:
    """External mounts synced (or, mount-only, checked) on the login node; their binds."""
    binds = []
    for mount in mounts:
        path = resolve(mount.cluster_path, env, f"{cluster.name}: mount {mount.name}")
        folder = posixpath.join(path, mount.subdir) if mount.subdir else path
        if mount.local_path is None:
            mount_present(
                name=f"{cluster.name}: mount {mount.name} (mount-only)",
                path=folder,
                mount=mount.name,
            )
        else:
            local = os.path.join(mount.local_path, mount.subdir)
            mount_synced(
                name=f"{cluster.name}: mount {mount.name}",
                local=local,
                remote=folder,
                digest=tree_digest(local),
            )
        binds.append(mount.bind(path))
    return tuple(binds)


def _registry_credentials(registry: Registry) -> HiddenValue | None:
    """The registry's user and password (from this workstation: ``password_env`` or the 0600
    ``password_file``) as the lines of an env file for ``apptainer build``; ``None`` when the
    registry has no login of its own (the login node's own ``apptainer registry login`` is
    used)."""
    password = password_of(registry, os.environ)
    if password is None:
        return None
    user, secret = env_quote(registry.username, "username"), env_quote(password, "password")
    return HiddenValue(f"APPTAINER_DOCKER_USERNAME={user}\nAPPTAINER_DOCKER_PASSWORD={secret}\n")


def _secret(cluster: ClusterConfig, home: str, ext: str) -> str | None:
    """The W&B key as a 0600 file on the cluster (from this workstation's environment or file)."""
    value = None
    if cluster.wandb_api_key_env:
        value = os.environ.get(cluster.wandb_api_key_env) or None
    elif cluster.wandb_api_key_file:
        path = Path(os.path.expanduser(cluster.wandb_api_key_file))
        if path.stat().st_mode & 0o077:
            raise ConfigError(
                f"{cluster.name}: {KEY}[wandb_api_key_file]",
                f"{path} is readable by others: chmod 600 {path}",
            )
        value = path.read_text().strip()
    if not value:
        return None
    target = posixpath.join(home, ".config", "isaac-deploy", ext, "wandb_api_key")
    file_ops.secret_file(
        name=f"{cluster.name}: W&B key (not shown)", path=target, secret=HiddenValue(value)
    )
    return target
