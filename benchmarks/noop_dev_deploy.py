"""No-op re-run of deploy/dev.py against an empty pyinfra deploy on @local, side by side.

    .venv/bin/python -m benchmarks.noop_dev_deploy [--runs 15]

Uses the test lab (a Docker engine, the base-image stand-in) and a throw-away copy of this
project whose images are built first, so the no-op run checks real files and real images.
Runs alternate (empty, no-op, empty, ...) so machine noise hits both alike. Target: the no-op
re-run costs at most 1.3x the empty deploy. Results: printed, and saved under results/.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks import ratio_report
from tests.lab import lab
from tests.lab.project import PYINFRA, make_project, remove_test_objects

TARGET = 1.3


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    info = lab.up()
    try:
        with tempfile.TemporaryDirectory(prefix="isaac-bench-") as tmp:
            project = make_project(Path(tmp) / "ext", None, info)
            for _ in range(2):  # build the images, then settle
                result = project.deploy()
                assert result.rc == 0, result.out
            assert project.deploy().totals()["success"] == 0, "the re-run is not a no-op"
            empty = Path(tmp) / "empty.py"
            empty.write_text("")
            inventory = project.path.parent / "test_inventory.py"
            empty_argv = [str(PYINFRA), "-y", "@local", str(empty)]
            noop_argv = [str(PYINFRA), "-y", str(inventory), "deploy/dev.py"]
            times: dict[str, list[float]] = {"empty": [], "noop": []}
            for _ in range(args.runs):
                times["empty"].append(timed(empty_argv, project.path))
                times["noop"].append(timed(noop_argv, project.path))
    finally:
        remove_test_objects()
        lab.down()
    ratio_report(
        "noop_dev_deploy", times, LABELS, ("noop", "empty", "no-op / empty"), TARGET, digits=3
    )


LABELS = {"empty": "empty pyinfra deploy on @local", "noop": "no-op re-run of deploy/dev.py"}


if __name__ == "__main__":
    main()
