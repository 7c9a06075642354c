"""``isaac-deploy cluster ...``: the cluster deploy files as commands, for a person at a terminal.

``submit`` runs ``deploy/cluster.py``, with the training arguments after ``--`` passed as a list
(exactly as typed, no second round of shell quoting); ``jobs`` runs ``deploy/cluster_jobs.py``,
``sync`` ``deploy/cluster_sync.py``. Everything else is pyinfra's, with the same inventory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from isaac_deploy.cli import cluster_session
from isaac_deploy.cli.project import Layout
from isaac_deploy.model.cluster import parse_overrides
from isaac_deploy.model.errors import IsaacDeployError
from isaac_deploy.model.ledger import check_run_key
from isaac_deploy.model.sweep import parse_grid_option, parse_sweep

DEPLOYS = {"submit": "cluster", "sweep": "cluster", "jobs": "cluster_jobs", "sync": "cluster_sync"}
SESSIONS = {"logs": cluster_session.logs, "shell": cluster_session.shell}


def add_parser(sub, add) -> None:
    cluster = add(sub, "cluster", "roll out to the clusters, list or cancel jobs, sync results")
    actions = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")
    texts = {
        "submit": "image, code and the job on each cluster (deploy/cluster.py)",
        "jobs": "each cluster's ledger with job states (deploy/cluster_jobs.py)",
        "sync": "the runs back from each cluster into logs/ (deploy/cluster_sync.py)",
        "sweep": "a set of runs as one job array, each with its arguments (deploy/cluster.py)",
        "logs": "print a job's output; -f: follow it to its end, exit with its exit code",
        "shell": "an interactive allocation in the image, code and binds of a run's jobs",
    }
    for name, text in texts.items():
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument(
            "-i",
            "--inventory",
            help="the cluster inventory (default: the project's inventories/cluster.py)",
        )
        action.add_argument("--limit", help="only this cluster (its group name in the inventory)")
        if name in ("logs", "shell"):
            session_options(action, name)
            continue
        action.add_argument("--dry", action="store_true", help="show the plan, change nothing")
        if name in ("submit", "sweep"):
            action.add_argument(
                "--run-key", help="name of the run (default: commit + arguments + code)"
            )
            action.add_argument("--resubmit", action="store_true", help="submit again")
            if name == "submit":
                action.add_argument(
                    "--image-only", action="store_true", help="the image (and mounts) only, no job"
                )
            else:
                sweep_options(action)
            # this submission's resources, instead of the cluster's (inventory) ones
            action.add_argument("--time", metavar="[D-]HH:MM:SS", help="wall time of the job")
            action.add_argument(
                "--gpus", metavar="N|TYPE:N", help="GPUs (a count keeps the cluster's GPU type)"
            )
            action.add_argument("--partition", help="Slurm partition or PBS queue")
            action.add_argument("--nodes", metavar="N", help="nodes (several: torchrun)")
            action.add_argument(
                "--launcher",
                choices=("python", "torchrun"),
                help="python, or torchrun: one worker per GPU (the cluster's launch[launcher])",
            )
            action.add_argument(
                "args", nargs=argparse.REMAINDER, help="-- then the training arguments"
            )
        elif name == "jobs":
            action.add_argument("--cancel", metavar="RUN_KEY", help="cancel this run's jobs")
        else:
            action.add_argument(
                "--remove",
                action="store_true",
                help="then delete on the cluster the pulled runs of finished run keys (only "
                "while no job of the extension is queued or running)",
            )
            action.add_argument("--to", help="local folder (default: the project's logs/)")


def sweep_options(action: argparse.ArgumentParser) -> None:
    action.add_argument(
        "--file", metavar="SWEEP.json", help="the sweep: args, grid, runs, throttle (README)"
    )
    action.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="vary an option (seed=1,2,3: --seed 1 ...) or a Hydra key (agent.x=1e-3,3e-4)",
    )
    action.add_argument("--throttle", type=int, metavar="N", help="at most N runs at once")


def session_options(action: argparse.ArgumentParser, name: str) -> None:
    if name == "logs":
        action.add_argument("run_key", metavar="RUN_KEY", help="the run (a sweep's: KEY.INDEX)")
        action.add_argument("-f", "--follow", action="store_true", help="follow until the job ends")
        return
    action.add_argument(
        "run_key",
        nargs="?",
        metavar="RUN_KEY",
        help="the run whose image and code (default: newest)",
    )
    action.add_argument("--gpus", metavar="N|TYPE:N", help="GPUs (default: the cluster's jobs')")
    action.add_argument(
        "--time",
        metavar="[D-]HH:MM:SS",
        help=f"wall time (default {cluster_session.SESSION_WALLTIME})",
    )


def sweep_data(args: argparse.Namespace, job_args: list[str]) -> dict:
    """The sweep of ``cluster sweep``: its ``--file`` with ``--grid`` and ``--throttle`` added,
    checked now (before pyinfra starts)."""
    sweep: dict = {}
    if args.file:
        path = Path(args.file).expanduser()
        try:
            sweep = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise IsaacDeployError(f"--file {path}: {exc}") from None
        if not isinstance(sweep, dict):
            raise IsaacDeployError(f"--file {path}: must hold a JSON object (README: sweeps)")
    grid = dict(sweep.get("grid") or {})
    for item in args.grid:
        name, values = parse_grid_option(item)
        grid[name] = values
    if grid:
        sweep["grid"] = grid
    if args.throttle is not None:
        sweep["throttle"] = args.throttle
    parse_sweep("sweep", sweep, args.run_key or "sweep", tuple(job_args))
    return sweep


def pyinfra_argv(args: argparse.Namespace, layout: Layout) -> list[str]:
    """The pyinfra command line for ``args`` (every value as one argument, no shell); a
    relative ``--inventory`` is taken from the project's root."""
    inventory = layout.root / args.inventory if args.inventory else layout.inventory("cluster")
    if not inventory.is_file():
        raise IsaacDeployError(
            f"no cluster inventory at {inventory} (make one like isaac-deploy's "
            "inventories/cluster.py: one cluster(...) group per cluster)"
        )
    data: dict[str, object] = {}
    if args.action in ("submit", "sweep"):
        job_args = args.args[1:] if args.args[:1] == ["--"] else args.args
        data["isaac_job_args"] = json.dumps(job_args)  # a JSON list: pyinfra reads it as one
        if args.action == "sweep":
            data["isaac_sweep"] = json.dumps(sweep_data(args, job_args))
        if args.run_key:
            data["isaac_run_key"] = json.dumps(check_run_key(args.run_key))
        if args.resubmit:
            data["isaac_resubmit"] = "true"
        if getattr(args, "image_only", False):
            data["isaac_submit"] = "false"
        resources = {
            "walltime": args.time,
            "gpus": args.gpus,
            "partition": args.partition,
            "nodes": args.nodes,
            "launcher": args.launcher,
        }
        overrides = parse_overrides("isaac_job_resources", resources)
        if overrides:
            data["isaac_job_resources"] = json.dumps(overrides)
    elif args.action == "jobs" and args.cancel:
        data["isaac_cancel"] = json.dumps(check_run_key(args.cancel))
    elif args.action == "sync":
        if args.remove:
            data["isaac_remove"] = "true"
        if args.to:
            data["isaac_results_dir"] = json.dumps(str(Path(args.to).expanduser().resolve()))
    argv = [sys.executable, "-m", "pyinfra", "--dry" if args.dry else "-y"]
    if args.limit:  # the workstation builds or pushes the image for the roll-out
        argv += ["--limit", args.limit, "--limit", "@local"]
    # isaac-deploy --data first: where a key is set twice, pyinfra takes the command's own
    for item in getattr(args, "data", None) or ():
        argv += ["--data", item]
    for key, value in data.items():
        argv += ["--data", f"{key}={value}"]
    return [*argv, str(inventory), str(layout.deploy(DEPLOYS[args.action]))]


def cluster_command(args: argparse.Namespace, layout: Layout) -> int:
    if args.action in SESSIONS:
        return SESSIONS[args.action](layout, args)
    return subprocess.run(pyinfra_argv(args, layout), cwd=layout.root).returncode
