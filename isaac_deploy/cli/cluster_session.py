"""``isaac-deploy cluster logs RUN_KEY [-f]`` and ``cluster shell``: a person at a terminal with
one of the cluster's jobs, over one OpenSSH master connection to its login node (the inventory's
SSH options, host keys checked; every step of the command goes through that connection).

``logs`` prints the job's output (the scheduler's log in the run's bookkeeping folder); with
``-f`` it follows it (``tail -F`` on the login node, ended by the job's end) and exits with the
job's exit code. ``shell`` opens an interactive allocation with the resources of the cluster's
jobs (``--gpus``, ``--time`` for this one) and runs bash in the run's image, code snapshot, binds
and environment, rendered from the same job templates as the jobs (Slurm: ``srun --pty``; PBS:
``qsub -I``).
"""

from __future__ import annotations

import argparse
import os
import posixpath
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from isaac_deploy.cli.cluster_doctor import clusters
from isaac_deploy.cli.project import Layout
from isaac_deploy.facts.cluster import ClusterEnv
from isaac_deploy.facts.ledger import LedgerEntries
from isaac_deploy.facts.scheduler import JobState, JobStates
from isaac_deploy.facts.toolkit import local_user
from isaac_deploy.model import paths
from isaac_deploy.model.cluster import KEY, ClusterConfig, path_variables, resolve
from isaac_deploy.model.cluster_mounts import cluster_mounts
from isaac_deploy.model.errors import IsaacDeployError
from isaac_deploy.model.images import sandbox_name, sif_name
from isaac_deploy.model.launch import Launch
from isaac_deploy.model.ledger import Entry, check_run_key, listing
from isaac_deploy.model.mounts import MountConfig
from isaac_deploy.model.runs import bookkeeping, logs_tree
from isaac_deploy.model.ssh import ssh_options
from isaac_deploy.model.workstation import WorkstationConfig
from isaac_deploy.probes.extensions import extension_names
from isaac_deploy.render.job_script import JOB_LOG, SWEEP_LOG, JobSpec, render_job
from isaac_deploy.render.templates import TEMPLATES

# ``-f``: a job still queued or running (PBS: qstat without -x answers only those)
ACTIVE = {
    "slurm": 'squeue -h -j "$1" -o %T 2>/dev/null | grep -q .',
    "pbs": 'qstat -f -F json "$1" 2>/dev/null | grep -Eq \'"job_state":[[:space:]]*"[^FXM]"\'',
}
# $1 job id, $2 log file: the log from its start, followed while the job is queued or running
FOLLOW = """until_ended() {{ while {active}; do sleep 2; done; }}
until_ended "$1" & waiter=$!
trap 'kill $waiter 2>/dev/null' EXIT HUP INT TERM
tail -n +1 -s 1 -F --pid=$waiter -- "$2" 2>/dev/null
"""
# options that name the batch job's log or array: not for an interactive session
BATCH_ONLY = {"slurm": ("--output=", "--error=", "--array="), "pbs": ("-o", "-e", "-j", "-J")}
SESSION_WALLTIME = "01:00:00"


@dataclass(frozen=True)
class Login:
    """One cluster's login node as the inventory gives it."""

    cluster: ClusterConfig
    address: str
    data: dict[str, Any]


def pick_login(layout: Layout, args: argparse.Namespace) -> Login:
    """The login node of the cluster ``--limit`` names (or the inventory's only cluster)."""
    inventory = layout.root / args.inventory if args.inventory else layout.inventory("cluster")
    if not inventory.is_file():
        raise IsaacDeployError(f"no cluster inventory at {inventory}")
    found = clusters(inventory, layout.root, getattr(args, "data", None) or ())
    names = sorted({name for name, _, _ in found})
    if args.limit:
        found = [item for item in found if item[0] == args.limit]
        if not found:
            raise IsaacDeployError(f"no cluster {args.limit} in {inventory} ({', '.join(names)})")
    elif len(names) > 1:
        raise IsaacDeployError(f"give --limit CLUSTER: {inventory} has {', '.join(names)}")
    if not found:
        raise IsaacDeployError(f"{inventory} defines no cluster()")
    _, host, data = found[0]
    return Login(data[KEY], str(data.get("ssh_hostname") or host.split("/", 1)[-1]), data)


def project_config(layout: Layout, data: dict[str, Any]) -> WorkstationConfig:
    """The extension's settings from the cluster inventory's data (as the roll-out reads them)."""
    known = {f"isaac_{f.name}" for f in fields(WorkstationConfig) if f.name != "user"}
    values = {k: v for k, v in data.items() if k in known}
    folder = str(values.get("isaac_extension_folder") or layout.root)
    return WorkstationConfig.from_host_data(
        values, local_user(), str(layout.root), tuple(extension_names(folder))
    )


class Connection:
    """Commands on a login node through one OpenSSH master connection."""

    def __init__(self, login: Login, control: str):
        self.login = login
        self.control = control

    def argv(self, command: str, tty: bool = False) -> list[str]:
        options = ssh_options(self.login.data)
        return [
            "ssh",
            "-S",
            self.control,
            *options,
            *(["-tt"] if tty else []),
            self.login.address,
            command,
        ]

    def run(self, command: str, text: str | None = None) -> str:
        """``command``'s output; its failure is an error with its message."""
        result = subprocess.run(self.argv(command), input=text, capture_output=True, text=True)
        if result.returncode != 0:
            why = result.stderr.strip().splitlines()[-1:] or [f"exit code {result.returncode}"]
            raise IsaacDeployError(f"{self.login.address}: {why[0]}")
        return result.stdout

    def fact(self, fact_class, **kwargs):
        """A fact's command run here, its output read as pyinfra reads it."""
        command = fact_class().command(**kwargs).get_raw_value()
        return fact_class().process(self.run(command).splitlines())


@contextmanager
def connected(login: Login) -> Iterator[Connection]:
    """An OpenSSH master connection to ``login`` for the ``with`` block (batch mode, host key
    checked), closed after it."""
    folder = tempfile.mkdtemp(prefix="isd-ssh-")  # private (0700), short: socket paths are limited
    control = os.path.join(folder, "master")
    argv = ["ssh", "-M", "-S", control, "-f", "-N", "-o", "ControlPersist=no"]
    try:
        result = subprocess.run(
            [*argv, *ssh_options(login.data), login.address],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if result.returncode != 0:
            why = (result.stderr.strip().splitlines() or ["ssh failed"])[-1]
            raise IsaacDeployError(f"cannot reach {login.cluster.name} ({login.address}): {why}")
        yield Connection(login, control)
    finally:
        subprocess.run(
            ["ssh", "-S", control, "-O", "exit", login.address],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(folder, ignore_errors=True)


def ledger_file(home: str, extension: str) -> str:
    return posixpath.join(home, ".isaac-deploy", f"{extension}-ledger.jsonl")


def sweep_of(entry: Entry) -> dict:
    sweep = entry.extra.get("sweep")
    return sweep if isinstance(sweep, dict) else {}


def newest(entries: tuple[Entry, ...], run_key: str | None) -> Entry:
    """The newest submitted record of ``run_key`` (any run's when ``None``)."""
    found = [e for e in listing(entries) if e.job_id and run_key in (None, e.run_key)]
    if not found:
        which = f"run {run_key}" if run_key else "any run"
        raise IsaacDeployError(f"the ledger has no submitted job of {which}")
    return found[-1]


def job_log(cluster: ClusterConfig, tree: str, entry: Entry) -> str:
    """Where the scheduler writes ``entry``'s job output: the run's bookkeeping folder (a sweep
    element's: its sweep's)."""
    sweep = sweep_of(entry)
    if "of" in sweep:
        name = SWEEP_LOG[cluster.scheduler]
        name = name.replace("%A_%a", entry.job_id).replace("^array_index^", str(sweep["index"]))
        return posixpath.join(bookkeeping(tree, str(sweep["of"])), name)
    name = JOB_LOG[cluster.scheduler].replace("%j", entry.job_id)
    return posixpath.join(bookkeeping(tree, entry.run_key), name)


def exit_code(state: JobState | None) -> int:
    """The job's exit code for this command: its own, else 1 unless it completed."""
    if state is None:
        return 1
    if state.exit_code is not None:
        return state.exit_code if 0 <= state.exit_code < 256 else 1
    return 0 if state.state == "COMPLETED" else 1


def logs(layout: Layout, args: argparse.Namespace) -> int:
    run_key = check_run_key(args.run_key)
    login = pick_login(layout, args)
    cluster = login.cluster
    config = project_config(layout, login.data)
    with connected(login) as ssh:
        env = ssh.fact(ClusterEnv, names=path_variables(cluster.logs_dir))
        ledger = ledger_file(env["HOME"], config.extension_name)
        entry = newest(ssh.fact(LedgerEntries, path=ledger).entries, run_key)
        sweep = sweep_of(entry)
        if "elements" in sweep:
            raise IsaacDeployError(
                f"{run_key} is a sweep of {sweep['elements']} runs: give one of them, "
                f"e.g. {run_key}.0"
            )
        tree = logs_tree(
            resolve(cluster.logs_dir, env, f"{cluster.name}: {KEY}[logs_dir]"),
            config.extension_name,
        )
        log = job_log(cluster, tree, entry)
        job = entry.job_id
        if args.follow:
            print(f"{cluster.name}: job {job} of run {run_key}: {log}", file=sys.stderr, flush=True)
            script = FOLLOW.format(active=ACTIVE[cluster.scheduler])
            command = f"sh -c {shlex.quote(script)} sh {shlex.quote(job)} {shlex.quote(log)}"
            subprocess.run(ssh.argv(command), stdin=subprocess.DEVNULL)
        else:
            sys.stdout.write(ssh.run(f"cat -- {shlex.quote(log)} 2>/dev/null || true"))
            sys.stdout.flush()
        state = ssh.fact(JobStates, scheduler=cluster.scheduler, job_ids=(job,)).get(job)
    described = state.state if state else "UNKNOWN"
    if state is not None and state.active:
        print(f"{cluster.name}: job {job} is {described}", file=sys.stderr)
        return 0
    code = exit_code(state)
    print(f"{cluster.name}: job {job} ended {described}, exit code {code}", file=sys.stderr)
    return code


def session_options(cluster: ClusterConfig, script: str) -> list[str]:
    """The rendered job script's directives, without those of a batch job's log and array: the
    interactive session asks for what the cluster's jobs ask for."""
    mark = "#SBATCH " if cluster.scheduler == "slurm" else "#PBS "
    words: list[str] = []
    for line in script.splitlines():
        if line.startswith(mark):
            words += shlex.split(line[len(mark) :])
    if cluster.scheduler == "slurm":
        return [w for w in words if not w.startswith(BATCH_ONLY["slurm"])]
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in BATCH_ONLY["pbs"]:
            skip = True
        else:
            kept.append(word)
    return kept


def session_command(cluster: ClusterConfig, options: list[str], script: str) -> str:
    """The login node's command that opens the allocation and runs ``script`` (a path) in it
    with a terminal: ``srun --pty`` (an allocation of its own, as ``salloc`` + ``srun``), or PBS's
    interactive job ``qsub -I ... -- /bin/bash SCRIPT``."""
    quoted = " ".join(shlex.quote(option) for option in options)
    if cluster.scheduler == "slurm":
        return f"srun --pty {quoted} bash {shlex.quote(script)}"
    return f"qsub -I {quoted} -- /bin/bash {shlex.quote(script)}"


def session_job(ssh: Connection, config: WorkstationConfig, run_key: str | None) -> JobSpec:
    """The job of an interactive session: the image and code snapshot of ``run_key``'s newest
    job (any run's), with the binds, caches and W&B key file the roll-out gives its jobs."""
    cluster = ssh.login.cluster
    mounts_file = Path(paths.mount_config(config.extension_folder))
    mounts = cluster_mounts(
        MountConfig.loads(mounts_file.read_text() if mounts_file.exists() else None),
        cluster,
        config.user.home,
    )
    folders = (cluster.image_dir, cluster.cache_dir, cluster.logs_dir)
    every = (*folders, *(m.cluster_path for m in mounts))
    env = ssh.fact(ClusterEnv, names=tuple(sorted({n for p in every for n in path_variables(p)})))
    image_dir, cache_dir, logs_dir = (resolve(p, env, f"{cluster.name}: {KEY}") for p in folders)
    ledger = ledger_file(env["HOME"], config.extension_name)
    entry = newest(ssh.fact(LedgerEntries, path=ledger).entries, run_key)
    if not entry.image or not entry.snapshot:
        raise IsaacDeployError(f"the ledger's record of run {entry.run_key} names no image")
    image = sif_name(entry.image)
    image = sandbox_name(image) if cluster.image_format == "sandbox" else image
    tree = logs_tree(logs_dir, config.extension_name)
    key = str(sweep_of(entry).get("of") or entry.run_key)
    # the W&B key file as the roll-outs left it (none when no key was given to them)
    secret = posixpath.join(
        env["HOME"], ".config", "isaac-deploy", config.extension_name, "wandb_api_key"
    )
    has_secret = (cluster.wandb_api_key_env or cluster.wandb_api_key_file) and ssh.run(
        f"test -f {shlex.quote(secret)} && echo yes || true"
    ).strip() == "yes"
    return JobSpec(
        run_key=key,
        image=posixpath.join(image_dir, image),
        code_dir=entry.snapshot,
        logs_tree=tree,
        bookkeeping=bookkeeping(tree, key),
        cache_dir=cache_dir,
        output=posixpath.join(bookkeeping(tree, key), "shell.out"),
        extension=config.extension_name,
        planned=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        binds=tuple(m.bind(resolve(m.cluster_path, env, f"mount {m.name}")) for m in mounts),
        secret_file=secret if has_secret else None,
        ext_path=config.docker_ext_path,
        isaacsim_root=config.isaacsim_root,
        interactive=True,
    )


def session_cluster(cluster: ClusterConfig, walltime: str | None, gpus: Any) -> ClusterConfig:
    """``cluster`` as an interactive session asks for it: its jobs' resources with the session's
    wall time and GPUs, on one node, neither warned before the wall time nor requeued (a shell
    is no training: the launch settings are the jobs')."""
    overrides = {"walltime": walltime or SESSION_WALLTIME, "gpus": gpus}
    resources = cluster.resources.override(
        "cluster shell", {k: v for k, v in overrides.items() if v}, cluster.scheduler
    )
    return replace(cluster, resources=replace(resources, nodes=1), launch=Launch())


def shell(layout: Layout, args: argparse.Namespace) -> int:
    login = pick_login(layout, args)
    cluster = login.cluster
    config = project_config(layout, login.data)
    allocation = session_cluster(cluster, args.time, args.gpus)
    resources = allocation.resources
    with connected(login) as ssh:
        job = session_job(ssh, config, args.run_key)
        script = render_job(TEMPLATES, allocation, job)
        folder = ssh.run(
            'umask 077 && mkdir -p "$HOME/.isaac-deploy" && '
            'd=$(mktemp -d "$HOME/.isaac-deploy/shell.XXXXXXXX") && cat > "$d/session.sh" && '
            'printf "%s\\n" "$d"',
            text=script,
        ).strip()
        session = posixpath.join(folder, "session.sh")
        command = session_command(cluster, session_options(cluster, script), session)
        print(
            f"{cluster.name}: an interactive session ({resources.summary}) in the image and code "
            f"of run {job.run_key}; exit the shell to end it",
            file=sys.stderr,
            flush=True,
        )
        # the session's folder goes when it ends, also when the allocation was refused
        remote = f"{command}; rc=$?; rm -rf -- {shlex.quote(folder)}; exit $rc"
        return subprocess.run(ssh.argv(remote, tty=True)).returncode
