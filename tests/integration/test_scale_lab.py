"""Training at scale against the lab's real Slurm (and the PBS stand-in on top of it): a torchrun
launch, seen through the torchrun stand-in in the image (tests/lab/torch_standin: it records what
each worker gets), on one node and as one launcher per node (the lab has one Slurm node: the
two-node script runs as one node and two tasks); a job warned before its wall time writes a
checkpoint, is requeued (Slurm) or resubmitted by the next roll-out (PBS) and resumes from it;
a further roll-out changes no ledger line."""

from __future__ import annotations

import json
import posixpath
import re
import subprocess
import time

import pytest

from isaac_deploy.model.cluster import ClusterConfig
from isaac_deploy.render.job_script import JobSpec, render_job
from tests.helpers import ROOT
from tests.integration import test_rollout
from tests.integration.test_rollout import TREE, ledger, wait
from tests.lab.project import make_project

pytestmark = pytest.mark.lab
rollout = test_rollout.rollout  # the roll-out fixture, with this module's project
ENTRY = "/workspace/lab_ext/scripts/rsl_rl/train.py"
RECORDS = f"{TREE}/torchrun-standin"


@pytest.fixture(scope="module")
def root_project(lab, tmp_path_factory):
    """The example project on the base-image stand-in that has the torchrun stand-in."""
    info = {**lab, "images": {**lab["images"], "ext": lab["torch_image"]}}
    project = make_project(tmp_path_factory.mktemp("scale-project") / "ext", None, info)
    yield project
    project.remove_from_engine()


def ssh(login, command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-F", login["ssh_config"], "lab-login", command],
        capture_output=True,
        text=True,
        **kwargs,
    )


def records(node) -> list[dict]:
    out = node.run(f'for f in ~/{RECORDS}/*.json; do cat "$f"; echo; done').stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


TORCHRUN = {
    "resources": {"gpus": 2, "cpus": 2, "memory": "500M", "walltime": "00:05:00"},
    "launch": {
        "launcher": "torchrun",
        "rdzv_port": 29517,
        "env": {"NCCL_DEBUG": "INFO", "NCCL_SOCKET_IFNAME": "lo $(touch /tmp/pwned-nccl)"},
    },
}


def test_torchrun_starts_one_worker_per_gpu_on_slurm_and_pbs_and_one_launcher_per_node(
    rollout, lab
):
    project, login, node, run = rollout
    keys = {s: f"e2e-torchrun-{s}-{time.time_ns()}" for s in ("slurm", "pbs")}
    given = {
        run_key: [
            "--task",
            "Template-Reach-v0",
            "--max_iterations",
            "2",
            "--run_name",
            run_key,
            "it's $(touch /tmp/pwned-args)",
        ]
        for run_key in keys.values()
    }
    for scheduler, run_key in keys.items():
        result = run(run_key, given[run_key], settings={**TORCHRUN, "scheduler": scheduler})
        assert result.rc == 0, result.out
    entries = {e["run_key"]: e for e in ledger(node)}
    for scheduler, run_key in keys.items():
        entry = entries[run_key]
        info = wait(login, entry["job_id"].split(".")[0])
        assert "JobState=COMPLETED" in info, info
        mine = sorted(
            (w for w in records(node) if run_key in w["argv"]), key=lambda w: w["env"]["RANK"]
        )
        assert [w["env"]["RANK"] for w in mine] == ["0", "1"], (scheduler, records(node))
        for index, worker in enumerate(mine):
            env = worker["env"]
            assert env["LOCAL_RANK"] == str(index) and env["WORLD_SIZE"] == "2"
            assert env["MASTER_ADDR"] == lab["cluster"]["node"] and env["MASTER_PORT"].isdigit()
            assert env["OMP_NUM_THREADS"] == "1"  # 2 CPUs, 2 workers
            if scheduler == "slurm":  # Slurm's GPUs, through --containall
                assert env["CUDA_VISIBLE_DEVICES"] == "0,1"
            assert env["NCCL_DEBUG"] == "INFO"
            assert env["NCCL_SOCKET_IFNAME"] == "lo $(touch /tmp/pwned-nccl)"
            assert worker["argv"] == [ENTRY, "--distributed", *given[run_key]]
        book = f"{TREE}/isaac-deploy/{run_key}"
        job = entry["job_id"]
        made = node.run(f"cat ~/{book}/runs-{job}.txt").stdout.split()
        assert len(made) == 1 and made[0].endswith(run_key)  # the first process writes
    assert node.run("ls /tmp/pwned-nccl /tmp/pwned-args").rc != 0

    # one launcher per node: the two-node script isaac-deploy renders, run by the lab's one
    # Slurm node as two tasks (its --nodes=2 --ntasks-per-node=1 made --nodes=1 --ntasks=2)
    slurm = entries[keys["slurm"]]
    home = lab["cluster"]["login"]["home"]
    run_key = f"e2e-twonodes-{time.time_ns()}"
    cluster = ClusterConfig.parse(
        "lab",
        {
            "user": login["user"],
            "scheduler": "slurm",
            "image_dir": "~/isaac/images",
            "code_dir": "~/isaac/code",
            "cache_dir": "~/isaac/cache",
            "logs_dir": "~/isaac/logs",
            "modules": [login["apptainer_module"]],
            **TORCHRUN,
            "resources": {**TORCHRUN["resources"], "cpus": 1, "nodes": 2},
        },
    )
    image = node.run(f"grep -m1 '^IMAGE=' {slurm['snapshot']}/job-{keys['slurm']}.sh").stdout
    book = f"{home}/{TREE}/isaac-deploy/{run_key}"
    spec = JobSpec(
        run_key=run_key,
        image=image.strip().split("=", 1)[1].strip("'"),
        code_dir=slurm["snapshot"],
        logs_tree=f"{home}/{TREE}",
        bookkeeping=book,
        cache_dir=f"{home}/isaac/cache",
        output=f"{book}/job-%j.out",
        extension="lab_ext",
        planned="2026-11-30T00:00:00Z",
        args=("--task", "Template-Reach-v0", "--max_iterations", "2", "--run_name", run_key),
        ext_path="/workspace/lab_ext",
    )
    text = render_job(ROOT / "templates", cluster, spec)
    two_nodes = "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n"
    assert two_nodes in text and "--gpus-per-node=2" in text and "srun --kill-on-bad-exit=1" in text
    text = text.replace(two_nodes, "#SBATCH --nodes=1\n#SBATCH --ntasks=2\n")
    script = posixpath.join(slurm["snapshot"], f"job-{run_key}.sh")
    put = ssh(
        login,
        f"mkdir -p {book} && cat > {script} && cd {slurm['snapshot']} && "
        f"sbatch --parsable {script}",
        input=text,
    )
    assert put.returncode == 0, put.stderr
    job = put.stdout.strip()
    info = wait(login, job)
    assert "JobState=COMPLETED" in info, info + node.run(f"cat {book}/job-{job}.out").stdout
    agents = sorted(
        (w for w in records(node) if run_key in w["argv"]), key=lambda w: int(w["env"]["RANK"])
    )
    assert [w["env"]["RANK"] for w in agents] == ["0", "1", "2", "3"]
    assert {w["env"]["WORLD_SIZE"] for w in agents} == {"4"}
    assert sorted(w["env"]["GROUP_RANK"] for w in agents) == ["0", "0", "1", "1"]
    assert {w["env"]["TORCHELASTIC_RUN_ID"] for w in agents} == {job}  # --rdzv_id=$JOB
    assert {w["env"]["MASTER_ADDR"] for w in agents} == {lab["cluster"]["node"]}
    assert len({w["env"]["MASTER_PORT"] for w in agents}) == 1
    assert {w["env"]["OMP_NUM_THREADS"] for w in agents} == {"1"}


RESUMABLE = {
    "entry_script": "scripts/rsl_rl/train.py",
    "resources": {"gpus": 0, "cpus": 1, "memory": "500M", "walltime": "00:01:00"},
    "launch": {"signal": 50, "attempts": 2},
}
LONG = ["--task", "Template-Reach-v0", "--max_iterations", "1000", "agent.step_seconds=0.5"]


def attempts(node, run_key: str, job: str) -> list[str]:
    path = f"~/{TREE}/isaac-deploy/{run_key}/attempts-{job}.txt"
    return [
        " ".join(line.split()[:1] + line.split()[3:])
        for line in node.run(f"cat {path}").stdout.splitlines()
    ]


def checkpoints(node, run: str) -> dict[int, dict]:
    """The checkpoints of a run folder (relative to the tree): iteration -> content."""
    out = node.run(f'cd ~/{TREE}/{run} && for f in model_*.pt; do cat "$f"; echo; done').stdout
    saved = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {s["iteration"]: s for s in saved}


def assert_resumed(node, first_run: str, made: list[str]) -> None:
    """One of the runs ``made`` resumed from the last checkpoint of ``first_run``, at the
    iteration after it."""
    stopped = max(checkpoints(node, first_run))
    source = f"/workspace/lab_ext/logs/{first_run}/model_{stopped}.pt"
    resumed = [
        run
        for run in made
        if run != first_run
        and {s["resumed_from"] for s in checkpoints(node, run).values()} == {source}
    ]
    assert len(resumed) == 1, (first_run, stopped, made)
    assert min(checkpoints(node, resumed[0])) > stopped


def release_requeued(login, job: str) -> None:
    """A requeued job waits for its begin time (Slurm holds it back a while): moved to now,
    as its owner may, so that the test waits for the second attempt only."""
    info = ssh(login, f"scontrol show job -o {job}").stdout
    if "JobState=PENDING" in info and "Reason=BeginTime" in info:
        ssh(login, f"scontrol update JobId={job} StartTime=now")


def test_a_warned_job_checkpoints_and_resumes_requeued_on_slurm_resubmitted_on_pbs(rollout):
    """Slurm's time limits are minutes, checked every 30 s: a one-minute job warned 50 s ahead
    gets USR1 10-40 s after it starts. PBS warns no job: its script's own timer does, 10 s in.
    The training (0.5 s an iteration) writes a checkpoint when warned; Slurm requeues the job,
    the next roll-out resubmits the PBS run; the second attempt resumes from the checkpoint."""
    project, login, node, run = rollout
    keys = {s: f"e2e-resume-{s}-{time.time_ns()}" for s in ("slurm", "pbs")}
    for scheduler, run_key in keys.items():
        result = run(run_key, LONG, settings={**RESUMABLE, "scheduler": scheduler})
        assert result.rc == 0, result.out
    first = {e["run_key"]: e["job_id"] for e in ledger(node)}
    slurm, pbs = first[keys["slurm"]], first[keys["pbs"]]

    # Slurm: requeued under its id, then the second (last) attempt
    # (a requeued job's state passes through COMPLETING/REQUEUED: the attempts file, which the
    # job script writes, says when the second attempt is over)
    deadline = time.monotonic() + 240
    while True:
        info = ssh(login, f"scontrol show job -o {slurm}").stdout
        restarts = int(re.search(r"Restarts=(\d+)", info).group(1))
        state = re.search(r"JobState=(\w+)", info).group(1)
        if restarts >= 1:
            release_requeued(login, slurm)
        lines = attempts(node, keys["slurm"], slurm)
        if state in ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED") and len(lines) >= 4:
            break
        assert time.monotonic() < deadline, (info, lines)
        time.sleep(1)
    # Slurm warns the requeued job again: the last attempt stops with a checkpoint too
    assert lines == ["1 started", "1 requeued", "2 started", "2 stopped (the last of 2 attempts)"]
    book = f"{TREE}/isaac-deploy/{keys['slurm']}"
    log = node.run(f"cat ~/{book}/job-{slurm}.out").stdout
    assert "SIGUSR1: stopped at iteration" in log and "requeued for attempt 2 of 2" in log, log
    # the job ran beside the PBS one: of the runs that appeared, the one it checkpointed
    first_run = re.search(r"the checkpoint is in logs/(\S+)", log).group(1)
    assert f"attempt 2 of 2 resumes from logs/{first_run}" in log, log
    made = node.run(f"cat ~/{book}/runs-{slurm}.txt").stdout.split()
    assert_resumed(node, first_run, made)

    # PBS: warned by its own timer, left for the next roll-out
    info = wait(login, pbs.split(".")[0])
    assert attempts(node, keys["pbs"], pbs) == ["1 started", "1 checkpointed"], info
    pbs_book = f"{TREE}/isaac-deploy/{keys['pbs']}"
    first_run = node.run(f"cat ~/{pbs_book}/resume-from.txt").stdout.strip()
    again = run(keys["pbs"], LONG, settings={**RESUMABLE, "scheduler": "pbs"})
    assert again.rc == 0 and "attempt 2 of 2 resumes it" in again.out, again.out
    second = [e for e in ledger(node) if e["run_key"] == keys["pbs"]]
    assert [e["job_id"] for e in second][0] == pbs and len(second) == 2
    assert second[1]["extra"] == {"attempt": 2, "continues": pbs}
    wait(login, second[1]["job_id"].split(".")[0])
    made = node.run(f"cat ~/{pbs_book}/runs-{second[1]['job_id']}.txt").stdout.split()
    assert_resumed(node, first_run, made)
    assert attempts(node, keys["pbs"], second[1]["job_id"])[-1] == (
        "2 stopped (the last of 2 attempts)"
    )

    # a further roll-out of either run changes no ledger line; the listing shows each attempt
    before = node.run("cat ~/.isaac-deploy/lab_ext-ledger.jsonl").stdout
    for scheduler, run_key in keys.items():
        result = run(run_key, LONG, settings={**RESUMABLE, "scheduler": scheduler})
        assert result.rc == 0, result.out
    assert node.run("cat ~/.isaac-deploy/lab_ext-ledger.jsonl").stdout == before
    listing = run(
        keys["pbs"], [], settings={**RESUMABLE, "scheduler": "pbs"}, deploy="deploy/cluster_jobs.py"
    )
    assert listing.rc == 0, listing.out
    rows = [line.split() for line in listing.out.splitlines() if keys["pbs"] in line]
    assert [r[r.index(keys["pbs"]) + 1 : r.index(keys["pbs"]) + 3] for r in rows][-2:] == [
        [pbs, "1"],
        [second[1]["job_id"], "2"],
    ], listing.out
