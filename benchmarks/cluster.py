"""Cluster roll-out against the lab's login node (sshd + Slurm), side by side with the bare tools,
in one run:

    .venv/bin/python -m benchmarks.cluster [--runs 5]

- rollout, nothing changed: `pyinfra <inventory> deploy/cluster.py` a second time (wall time,
  image bytes sent, all bytes over loopback); target 0 image bytes and under 2 s;
- code sync of an unchanged and of a slightly changed tree: the `snapshot_synced` step (a new
  snapshot, --link-dest) inside a connected pyinfra session vs raw `rsync -a` of the same tree
  to the same host (a fresh ssh, as typed in a terminal); target at most 1.2x, changed files
  only sent;
- job submission: the `job_submitted` step (ledger fact, then check-submit-record under flock)
  vs raw `ssh host sbatch FILE`; target at most 0.5 s more.

Results: printed, and saved under results/cluster.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.lab import lab
from tests.lab.project import make_project, remove_test_objects


def lo_bytes() -> int:
    return int(Path("/sys/class/net/lo/statistics/tx_bytes").read_text())


def run(argv: list[str], cwd: Path | None = None, env: dict | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


def rsync_files(output: str) -> int:
    """``--stats``: how many regular files rsync sent."""
    match = re.search(r"Number of regular files transferred: ([\d,]+)", output)
    return int(match.group(1).replace(",", "")) if match else -1


def timed_step(data: dict, op, **kwargs) -> float:
    """One operation on the login node (@openssh) in a connected pyinfra state: the process
    start and the connection, paid once per roll-out, are not timed; its facts and commands are."""
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all, disconnect_all
    from pyinfra.api.operation import add_op
    from pyinfra.api.operations import run_ops

    state = State(Inventory((["@openssh/lab-login"], data)), Config())
    connect_all(state)
    try:
        start = time.perf_counter()
        add_op(state, op, **kwargs)
        run_ops(state)
        elapsed = time.perf_counter() - start
        if state.failed_hosts:
            raise SystemExit(f"{op.__name__} failed")
    finally:
        disconnect_all(state)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    info = lab.up()
    login = info["cluster"]["login"]
    ssh_data = {
        "ssh_hostname": login["host"],
        "ssh_port": login["port"],
        "ssh_user": login["user"],
        "ssh_key": login["key"],
        "ssh_known_hosts_file": login["known_hosts"],
    }
    ssh = ["ssh", "-F", login["ssh_config"], "lab-login"]
    rsh = f"ssh -F {login['ssh_config']}"
    rows: dict[str, dict[str, list]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="isaac-bench-cluster-") as tmp:
            project = make_project(Path(tmp) / "ext", None, info)
            project.data = {**project.data, "isaac_profiles": ("ext",)}
            assert project.deploy().rc == 0
            run(ssh + ["chmod -R u+w ~/bench 2>/dev/null; rm -rf ~/bench"])  # unpacked SIFs
            rows["rollout, nothing changed"] = rollout(project, info, login, args.runs)
            rows.update(code_sync(project, ssh_data, ssh, rsh, args.runs))
            rows["job submission"] = submission(project, ssh_data, ssh, args.runs)
    finally:
        remove_test_objects()
        lab.down()
    report(rows)


def rollout(project, info, login, runs: int) -> dict[str, list]:
    from tests.integration.test_rollout import ARGS  # the same hostile arguments as the tests

    data = {
        **project.data,
        "isaac_run_key": "bench-1",
        "isaac_job_args": ARGS,
        "isaac_sif_cache": str(project.path.parent / "sif-cache"),
    }
    data.pop("isaac_profiles")
    inventory = project.path.parent / "bench_cluster.py"
    group = {
        "user": login["user"],
        "scheduler": "slurm",
        "ssh": {"port": login["port"], "key": login["key"], "known_hosts": login["known_hosts"]},
        "image_dir": "~/bench/images",
        "code_dir": "~/bench/code",
        "cache_dir": "~/bench/cache",
        "logs_dir": "~/bench/logs",
        "resources": {"gpus": 1, "cpus": 1, "memory": "500M", "walltime": "00:10:00"},
    }
    inventory.write_text(
        "from isaac_deploy.model.cluster import cluster\n"
        f"DATA = {data!r}\nworkstation = [('@local', DATA)]\n"
        f"hosts, group = cluster('lab', hosts=['lab-login'], **{group!r})\n"
        f"lab = (hosts, {{**group, **DATA, 'ssh_hostname': {login['host']!r}}})\n"
    )
    env = {**os.environ, "PATH": f"{info['apptainer_bin']}:{os.environ['PATH']}"}
    argv = [str(project.venv_bin / "pyinfra"), "-y", str(inventory), "deploy/cluster.py"]
    run(argv, project.path, env)  # the first roll-out: image, snapshot, job
    image = f"{login['home']}/bench/images"
    samples = []
    for _ in range(runs):
        before, start = lo_bytes(), time.perf_counter()
        out = run(argv, project.path, env)
        elapsed, traffic = time.perf_counter() - start, lo_bytes() - before
        assert "Success" in out
        sent = 0 if not list(Path(image, ".incoming").glob("*")) else -1  # nothing arrived
        samples.append((elapsed, sent, traffic))
    return {"deploy/cluster.py": samples}


def tree_change(project, n: int) -> None:
    script = project.path / "scripts" / "rsl_rl" / "train.py"
    script.write_text(script.read_text() + f"\n# bench change {n}\n")


def code_sync(project, ssh_data, ssh, rsh, runs: int) -> dict[str, dict[str, list]]:
    from isaac_deploy.operations.code import snapshot_synced
    from isaac_deploy.probes.local import context_file_list

    home = run(ssh + ["echo $HOME"]).strip()
    snapshots = f"{home}/bench/sync"

    def raw() -> tuple[float, int]:
        """A hand-written sync: the same files, into one folder, over a fresh ssh."""
        argv = [
            "rsync",
            "-a",
            "--stats",
            f"--files-from={context_file_list(str(project.path))}",
            "-e",
            rsh,
            f"{project.path}/",
            f"lab-login:{home}/bench/raw/",
        ]
        start = time.perf_counter()
        out = run(argv)
        return time.perf_counter() - start, rsync_files(out)

    run(ssh + ["mkdir -p ~/bench/raw"])
    raw()
    count = 0

    def ours() -> tuple[float, int]:
        """A new snapshot; files sent = files not hard-linked to the previous snapshot."""
        nonlocal count
        count += 1
        seconds = timed_step(
            ssh_data,
            snapshot_synced,
            folder=str(project.path),
            snapshots=snapshots,
            snapshot=f"s-{count}",
        )
        own = "! -name '.isaac-deploy-*'"  # the snapshot's digest and checksums, not the tree's
        sent = run(ssh + [f"find {snapshots}/s-{count} -type f -links 1 {own} | wc -l"]).strip()
        return seconds, int(sent) if count > 1 else -1

    ours()
    result: dict[str, dict[str, list]] = {}
    for label, change in (
        ("code sync, unchanged tree", False),
        ("code sync, one file changed", True),
    ):
        mine, bare = [], []
        for n in range(runs):
            if change:
                tree_change(project, 2 * n)
            mine.append(ours())
            if change:
                tree_change(project, 2 * n + 1)
            bare.append(raw())
        result[label] = {"snapshot_synced (connected)": mine, "raw rsync -a": bare}
    return result


def submission(project, ssh_data, ssh, runs: int) -> dict[str, list]:
    from isaac_deploy.model.cluster import ClusterConfig
    from isaac_deploy.model.ledger import Entry
    from isaac_deploy.operations.scheduler import job_submitted
    from isaac_deploy.render.job_script import JobSpec, render_job

    home = run(ssh + ["echo $HOME"]).strip()
    cluster = ClusterConfig.parse(
        "lab",
        {
            "user": "x",
            "scheduler": "slurm",
            "image_dir": "/i",
            "code_dir": "/c",
            "cache_dir": "/k",
            "logs_dir": "/l",
            "resources": {"gpus": 0, "cpus": 1, "memory": "100M", "walltime": "00:01:00"},
        },
    )
    job = JobSpec(
        run_key="bench",
        image="/none.sif",
        code_dir=f"{home}/bench/submit",
        logs_tree=f"{home}/bench/submit-logs/bench",
        bookkeeping=f"{home}/bench/submit-logs/bench/isaac-deploy/bench",
        cache_dir=f"{home}/bench/cache",
        output="/dev/null",
        extension="bench",
        planned="2026-11-24T06:00:00Z",
    )
    script = render_job(project.path / "templates", cluster, job)
    # the job ends at once (no image): only the submission is measured
    script = script.replace("set -euo pipefail", "exit 0", 1)
    run(ssh + [f"mkdir -p ~/bench/submit && cat > ~/bench/submit/raw.sh << 'EOF'\n{script}\nEOF"])
    ours, bare = [], []
    try:
        for n in range(runs):
            entry = Entry(
                run_key=f"bench-{n}",
                job_id="",
                scheduler="slurm",
                snapshot=f"{home}/bench/submit",
                job_name=job.job_name,
            )
            ours.append(
                (
                    timed_step(
                        ssh_data,
                        job_submitted,
                        entry=entry,
                        script=script,
                        ledger=f"{home}/bench/ledger.jsonl",
                    ),
                )
            )
            start = time.perf_counter()
            run(ssh + ["cd ~/bench/submit && sbatch --parsable raw.sh"])
            bare.append((time.perf_counter() - start,))
    finally:
        subprocess.run(ssh + ["scancel -u $(id -un)"], capture_output=True)
    return {"job_submitted (connected)": ours, "raw ssh host sbatch FILE": bare}


def report(rows) -> None:
    print("| step | tool | median s | sent | loopback bytes |\n|---|---|---|---|---|")
    record = {}
    for name, samples in rows.items():
        for tool, values in samples.items():
            seconds = statistics.median(v[0] for v in values)
            sent = [v[1] for v in values if len(v) > 1]
            traffic = [v[2] for v in values if len(v) > 2]
            what = "image bytes" if name.startswith("rollout") else "files"
            shown = f"{statistics.median(sent):,.0f} {what}" if sent else "-"
            wire = f"{statistics.median(traffic):,.0f}" if traffic else "-"
            print(f"| {name} | {tool} | {seconds:.3f} | {shown} | {wire} |")
            record[f"{name} / {tool}"] = {"seconds": seconds, "samples": values}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "cluster.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
