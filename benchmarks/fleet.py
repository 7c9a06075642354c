"""No-op re-run of deploy/lab_pcs.py on the lab's three PCs against the same on one PC, side by
side in one run.

    .venv/bin/python -m benchmarks.fleet [--runs 10]

Uses the test lab's PCs (tests/lab/fleet.py: privileged containers, each with its own sshd,
package database and Docker engine) provisioned first by the example inventory, so the no-op
runs check real packages, groups, checkouts, files and images over SSH. Runs alternate (one PC
with --limit, all three, ...) so machine noise hits both alike. Target: three PCs cost at most
1.5x one PC (pyinfra runs the PCs in parallel, one SSH connection each). Results: printed, and
saved under results/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks import ratio_report
from tests.lab import fleet, lab
from tests.lab.project import PYINFRA, Result, remove_test_objects

TARGET = 1.5
ONE = "@openssh/pc01.lab.example.org"


def run(argv: list[str], cwd: Path, env: dict) -> tuple[float, Result]:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    result = Result(proc.returncode, proc.stdout + proc.stderr)
    if result.rc != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.out}")
    return elapsed, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    info = lab.up()
    started = lab.load_started()
    try:
        room = fleet.start(lab.LAB_DIR, started, lab.save_started)
        with tempfile.TemporaryDirectory(prefix="isaac-bench-") as tmp:
            site = fleet.admin_site(info, room, Path(tmp) / "lab_ext")
            cwd, env = site["project"].path, {**os.environ, **site["env"]}
            every = [str(PYINFRA), "-y", "inventories/lab_pcs.py", "deploy/lab_pcs.py"]
            run(every, cwd, env)  # provision the three PCs
            _, again = run(every, cwd, env)
            assert again.totals()["success"] == 0, "the re-run is not a no-op"
            times: dict[str, list[float]] = {"one": [], "three": []}
            for _ in range(args.runs):
                times["one"].append(run([*every, "--limit", ONE], cwd, env)[0])
                times["three"].append(run(every, cwd, env)[0])
    finally:
        fleet.stop(started, lab.save_started)
        remove_test_objects()
        lab.down()
    ratio_report("fleet", times, LABELS, ("three", "one", "3 PCs / 1 PC"), TARGET, digits=2)


LABELS = {"one": "no-op re-run on 1 PC (--limit)", "three": "no-op re-run on 3 PCs"}


if __name__ == "__main__":
    main()
