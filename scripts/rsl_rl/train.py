#!/usr/bin/env python3
"""Train an RL agent with RSL-RL: the example extension's entry point, with the flags and the
logs layout of ``scripts/rsl_rl/train.py`` of the Isaac Lab extension template, without Isaac
Sim (a one-parameter trainer stands in for the simulation and the runner).

Each run goes to ``logs/rsl_rl/<experiment>/<YYYY-MM-DD_HH-MM-SS>[_<run_name>]/`` below the
WORKING DIRECTORY (``params/env.yaml``, ``params/agent.yaml``, ``model_<i>.pt`` checkpoints);
``--resume --load_run <run> --checkpoint <file>`` (regular expressions) continues from the last
matching checkpoint of the last matching run in that same tree. Unknown ``env.<key>=<value>`` and
``agent.<key>=<value>`` arguments override the task's configuration, as Hydra's do; any other
argument is recorded verbatim in the run's ``args.json`` (this example's addition, with the whole
command line). Exits 0 on success, 1 when training fails, 2 on bad arguments.

SIGUSR1 or SIGTERM (a cluster job warned before its wall time; torchrun passes SIGTERM on to
its workers) ends training after the iteration under way, which is saved as a checkpoint; the
exit code is then 128 + the signal's number. With ``--distributed`` (torchrun) each process
reads RANK, WORLD_SIZE and LOCAL_RANK, trains on ``cuda:<LOCAL_RANK>`` with the seed plus its
rank, and only the first process writes the run folder, as Isaac Lab's train.py with rsl_rl.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

from ext_template.tasks import get_task
from ext_template.trainer import NoCheckpoint, TrainingDiverged, get_checkpoint_path, learn, load

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train an RL agent with RSL-RL.")
    parser.add_argument("--video", action="store_true", default=False, help="Record videos.")
    parser.add_argument("--video_length", type=int, default=200, help="Video length in steps.")
    parser.add_argument("--video_interval", type=int, default=2000, help="Steps between videos.")
    parser.add_argument("--num_envs", type=int, default=None, help="Number of environments.")
    parser.add_argument("--task", type=str, default=None, help="Name of the task.")
    parser.add_argument("--seed", type=int, default=None, help="Seed used for the environment.")
    parser.add_argument("--max_iterations", type=int, default=None, help="Training iterations.")
    parser.add_argument("--fail", action="store_true", help="make training diverge (tests)")
    rsl_rl = parser.add_argument_group("rsl_rl", description="Arguments for RSL-RL agent.")
    rsl_rl.add_argument("--experiment_name", type=str, default=None, help="Logs folder name.")
    rsl_rl.add_argument("--run_name", type=str, default=None, help="Run name suffix of the run.")
    rsl_rl.add_argument("--resume", action="store_true", default=False, help="Resume training.")
    rsl_rl.add_argument("--load_run", type=str, default=None, help="Run folder to resume from.")
    rsl_rl.add_argument("--checkpoint", type=str, default=None, help="Checkpoint to resume.")
    rsl_rl.add_argument(
        "--logger", type=str, default=None, choices=("wandb", "tensorboard", "neptune")
    )
    rsl_rl.add_argument("--log_project_name", type=str, default=None, help="Logger project.")
    app = parser.add_argument_group("app_launcher arguments")  # isaaclab.app.AppLauncher's
    app.add_argument("--headless", action="store_true", default=False, help="No display.")
    app.add_argument("--device", type=str, default=None, help="Simulation device, cuda:0.")
    app.add_argument("--enable_cameras", action="store_true", default=False, help="Cameras.")
    app.add_argument(
        "--distributed", action="store_true", default=False, help="Multi-GPU or multi-node."
    )
    return parser


def overrides(extra: list[str], cfgs: dict[str, dict]) -> list[str]:
    """Apply ``env.<key>=<value>`` / ``agent.<key>=<value>`` to existing keys (the value read as
    JSON, else as text); returns the arguments that are not such overrides."""
    rest = []
    for arg in extra:
        path, sep, text = arg.partition("=")
        *parents, leaf = path.split(".")
        node = cfgs if sep and parents and parents[0] in cfgs else None
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            rest.append(arg)
            continue
        try:
            node[leaf] = json.loads(text)
        except ValueError:
            node[leaf] = text
    return rest


def update_agent(agent_cfg: dict, args: argparse.Namespace) -> dict:
    """The agent configuration with the command line's values (``cli_args.update_rsl_rl_cfg``)."""
    if args.seed is not None:
        agent_cfg["seed"] = args.seed
    if args.resume:
        agent_cfg["resume"] = True
    for arg, key in (
        ("experiment_name", "experiment_name"),
        ("run_name", "run_name"),
        ("load_run", "load_run"),
        ("checkpoint", "load_checkpoint"),
        ("logger", "logger"),
        ("log_project_name", "wandb_project"),
        ("max_iterations", "max_iterations"),
    ):
        if getattr(args, arg) is not None:
            agent_cfg[key] = getattr(args, arg)
    return agent_cfg


def dump_yaml(path: str, data: dict) -> None:
    """``data`` as YAML (JSON scalars are YAML scalars), as ``isaaclab.utils.io.dump_yaml``."""

    def lines(node: dict, indent: str) -> list[str]:
        out = []
        for key, value in node.items():
            if isinstance(value, dict):
                out += [f"{indent}{key}:\n", *lines(value, indent + "  ")]
            else:
                out.append(f"{indent}{key}: {json.dumps(value, ensure_ascii=False)}\n")
        return out

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.writelines(lines(data, ""))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args, extra = parser().parse_known_args(argv)
        env_cfg, agent_cfg = get_task(args.task)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    except KeyError as exc:
        print(f"[ERROR] {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    unknown = overrides(extra, {"env": env_cfg, "agent": agent_cfg})
    agent_cfg = update_agent(agent_cfg, args)
    if args.num_envs is not None:
        env_cfg["scene"]["num_envs"] = args.num_envs
    env_cfg["seed"] = agent_cfg["seed"]
    if args.device is not None:
        env_cfg["sim"]["device"] = args.device
    if args.fail:
        agent_cfg["lr"] = 1.5  # oscillates and explodes
    rank = 0
    if args.distributed:  # torchrun's variables, as AppLauncher reads them
        rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
        world = int(os.environ["WORLD_SIZE"])
        env_cfg["sim"]["device"] = agent_cfg["device"] = f"cuda:{local_rank}"
        agent_cfg["seed"] += rank
        env_cfg["seed"] = agent_cfg["seed"]
        print(f"[INFO] distributed: rank {rank} of {world}, cuda:{local_rank}", flush=True)

    # relative to the working directory, as the template's train.py
    log_root_path = os.path.abspath(os.path.join("logs", "rsl_rl", agent_cfg["experiment_name"]))
    print(f"[INFO] Logging experiment in directory: {log_root_path}", flush=True)
    log_dir = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    if agent_cfg["run_name"]:
        log_dir += f"_{agent_cfg['run_name']}"
    log_dir = os.path.join(log_root_path, log_dir)

    start, theta, resume_path = 0, 0.0, None
    if agent_cfg["resume"]:
        try:
            resume_path = get_checkpoint_path(
                log_root_path, agent_cfg["load_run"], agent_cfg["load_checkpoint"]
            )
        except NoCheckpoint as exc:
            print(f"[ERROR] {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"[INFO]: Loading model checkpoint from: {resume_path}", flush=True)
        start, theta = load(resume_path)

    if rank == 0:
        dump_yaml(os.path.join(log_dir, "params", "env.yaml"), env_cfg)
        dump_yaml(os.path.join(log_dir, "params", "agent.yaml"), agent_cfg)
        with open(os.path.join(log_dir, "args.json"), "w") as handle:
            json.dump({"argv": argv, "unknown": unknown}, handle, ensure_ascii=False)
        if args.video:
            os.makedirs(os.path.join(log_dir, "videos", "train"), exist_ok=True)
    received: list[int] = []
    for number in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(number, lambda signum, _frame: received.append(signum))
    try:
        result = learn(
            agent_cfg,
            Path(log_dir),
            start,
            theta,
            resume_path,
            stop=lambda: bool(received),
            write=rank == 0,
        )
    except TrainingDiverged as exc:
        print(f"[ERROR] training failed: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    if result.stopped:
        name = signal.Signals(received[0]).name
        print(
            f"[INFO] {name}: stopped at iteration {result.iteration}, checkpoint "
            f"{result.checkpoint}",
            flush=True,
        )
        return 128 + received[0]
    print(f"[INFO] done: loss {result.loss:.6f}, checkpoint {result.checkpoint}", flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
