"""A dependency-free trainer standing in for RSL-RL: fits one parameter by gradient descent,
logs every iteration, writes checkpoints and a summary, and reports success by exit code."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("ext_template.train")


@dataclass
class TrainResult:
    iterations: int
    loss: float
    checkpoint: Path


class TrainingDiverged(RuntimeError):
    pass


def train(task: dict, iterations: int, run_dir: Path, save_interval: int = 10) -> TrainResult:
    run_dir.mkdir(parents=True, exist_ok=True)
    theta, target, lr = 0.0, float(task["target"]), float(task["lr"])
    checkpoint = run_dir / "model_0.json"
    loss = (theta - target) ** 2
    for it in range(1, iterations + 1):
        grad = 2.0 * (theta - target)
        theta -= lr * grad
        loss = (theta - target) ** 2
        if loss != loss or loss > 1e12:  # NaN or exploding
            raise TrainingDiverged(f"loss diverged at iteration {it}: {loss}")
        log.info("iteration %d/%d loss %.6f theta %.4f", it, iterations, loss, theta)
        if it % save_interval == 0 or it == iterations:
            checkpoint = run_dir / f"model_{it}.json"
            tmp = checkpoint.with_suffix(".tmp")
            tmp.write_text(json.dumps({"iteration": it, "theta": theta, "loss": loss}))
            os.replace(tmp, checkpoint)
    summary = {
        "iterations": iterations,
        "loss": loss,
        "checkpoint": checkpoint.name,
        "finished": time.time(),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return TrainResult(iterations, loss, checkpoint)
