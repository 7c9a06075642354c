#!/usr/bin/env python3
"""Training entry point of the example extension (same place and flags as Isaac Lab's
``scripts/rsl_rl/train.py``): logs to stdout and ``logs/rsl_rl/<experiment>/<run>/train.log``,
writes checkpoints there, and exits 0 on success, 1 when training fails, 2 on bad arguments."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
from pathlib import Path

from ext_template.tasks import get_task
from ext_template.trainer import TrainingDiverged, train

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", required=True, help="task name, e.g. Template-Reach-v0")
    parser.add_argument("--num_envs", type=int, default=1, help="accepted for compatibility")
    parser.add_argument("--max_iterations", type=int, default=20)
    parser.add_argument("--experiment_name", default="ext_template")
    parser.add_argument("--run_name", default="", help="suffix of the run folder")
    parser.add_argument("--logs_dir", default=os.environ.get("EXT_LOGS_DIR", "logs"))
    parser.add_argument("--headless", action="store_true", help="accepted for compatibility")
    parser.add_argument("--fail", action="store_true", help="make training diverge (tests)")
    parser.add_argument("extra", nargs="*", help="recorded verbatim in the run's args.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        task = get_task(args.task)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = (
        Path(args.logs_dir)
        / "rsl_rl"
        / args.experiment_name
        / (f"{stamp}_{args.run_name}" if args.run_name else stamp)
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "args.json").write_text(json.dumps({"argv": argv}, ensure_ascii=False))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=[logging.StreamHandler(sys.stdout), logging.FileHandler(run_dir / "train.log")],
    )
    log = logging.getLogger("ext_template.train")
    log.info("task %s, %d iterations, logging to %s", args.task, args.max_iterations, run_dir)
    if args.fail:
        task = dict(task, lr=1.5)  # oscillates and explodes
    try:
        result = train(task, args.max_iterations, run_dir)
    except TrainingDiverged as exc:
        log.error("training failed: %s", exc)
        return EXIT_FAILED
    log.info("done: loss %.6f, checkpoint %s", result.loss, result.checkpoint)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
