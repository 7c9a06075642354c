"""A dependency-free trainer standing in for RSL-RL's OnPolicyRunner: fits one parameter by
gradient descent, prints every iteration, writes a checkpoint ``model_<iteration>.pt`` every
``save_interval`` iterations and at the end (JSON here; rsl_rl writes torch's format), resumes
from a checkpoint, and finds checkpoints as Isaac Lab's ``get_checkpoint_path`` does."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrainResult:
    iteration: int
    loss: float
    checkpoint: Path
    stopped: bool = False  # asked to stop early (a signal): the checkpoint is the last iteration


class TrainingDiverged(RuntimeError):
    pass


class NoCheckpoint(LookupError):
    pass


def get_checkpoint_path(log_path: str, run_dir: str = ".*", checkpoint: str = ".*") -> str:
    """The last checkpoint matching ``checkpoint`` (a regular expression) in the last run folder
    matching ``run_dir`` under ``log_path`` (names sorted; checkpoints by their zero-padded
    names), as ``isaaclab_tasks.utils.get_checkpoint_path``."""
    try:
        runs = sorted(
            e.name for e in os.scandir(log_path) if e.is_dir() and re.match(run_dir, e.name)
        )
    except FileNotFoundError:
        runs = []
    if not runs:
        raise NoCheckpoint(f"No runs present in the directory: '{log_path}' match: '{run_dir}'.")
    run_path = os.path.join(log_path, runs[-1])
    models = sorted(
        (f for f in os.listdir(run_path) if re.match(checkpoint, f)), key="{:0>15}".format
    )
    if not models:
        raise NoCheckpoint(f"No checkpoints in the directory: '{run_path}' match '{checkpoint}'.")
    return os.path.join(run_path, models[-1])


def load(path: str) -> tuple[int, float]:
    """The iteration and parameter a checkpoint holds."""
    with open(path) as handle:
        saved = json.load(handle)
    return int(saved["iteration"]), float(saved["theta"])


def learn(
    agent_cfg: dict,
    log_dir: Path,
    start: int = 0,
    theta: float = 0.0,
    resumed_from: str | None = None,
    stop: Callable[[], bool] = lambda: False,
    write: bool = True,
) -> TrainResult:
    """``agent_cfg["max_iterations"]`` iterations from ``start`` (rsl_rl counts on from the
    checkpoint it resumed); each takes ``agent_cfg["step_seconds"]`` (the simulation's time,
    which this stand-in does not need). When ``stop()`` turns true (a signal before the wall
    time), the iteration under way is the last and is saved. ``write``: checkpoints are saved
    (in distributed training only by the first process, as rsl_rl)."""
    if write:
        log_dir.mkdir(parents=True, exist_ok=True)
    target, lr = float(agent_cfg["target"]), float(agent_cfg["lr"])
    end = start + int(agent_cfg["max_iterations"])
    loss = (theta - target) ** 2
    checkpoint = log_dir / f"model_{start}.pt"
    for iteration in range(start + 1, end + 1):
        theta -= lr * 2.0 * (theta - target)
        loss = (theta - target) ** 2
        if loss != loss or loss > 1e12:  # NaN or exploding
            raise TrainingDiverged(f"loss diverged at iteration {iteration}: {loss}")
        print(
            f"Learning iteration {iteration}/{end}: loss {loss:.6f} theta {theta:.4f}", flush=True
        )
        time.sleep(float(agent_cfg.get("step_seconds", 0)))
        stopped = stop()
        due = iteration % int(agent_cfg["save_interval"]) == 0 or iteration == end or stopped
        if write and due:
            checkpoint = log_dir / f"model_{iteration}.pt"
            tmp = log_dir / f".model_{iteration}.pt.tmp"
            saved = {
                "iteration": iteration,
                "theta": theta,
                "loss": loss,
                "resumed_from": resumed_from,
            }
            tmp.write_text(json.dumps(saved))
            os.replace(tmp, checkpoint)
        if stopped:
            return TrainResult(iteration, loss, checkpoint, stopped=True)
    return TrainResult(end, loss, checkpoint)
