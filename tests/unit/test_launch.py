"""Launching the training (cluster setting ``launch``): python or torchrun, one node or one
launcher per node, NCCL settings into the clean container, the warning before the wall time
passed on, the job requeued (Slurm) or continued by the next roll-out (PBS), resuming from the
newest checkpoint of the run. The rendered scripts are run by bash with stand-ins for
apptainer, srun, scontrol and pbsdsh that record what they were given."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isaac_deploy.facts.attempts import Attempts
from isaac_deploy.facts.scheduler import JobState
from isaac_deploy.model.cluster import ClusterConfig, parse_overrides
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.launch import Attempt, parse_attempt
from isaac_deploy.model.ledger import Entry, parse_ledger
from isaac_deploy.policy.continuation import Continuation, continuation
from isaac_deploy.render.attempts_table import attempt_lines
from isaac_deploy.render.job_script import render_job
from tests.helpers import ROOT
from tests.unit.test_job_scripts import ARGS, CLUSTER, job
from tests.unit.test_ledger import ENTRY, FAKE_SCHEDULER, submit_op

ENTRY_SCRIPT = "/workspace/ext_template/scripts/rsl_rl/train.py"
BOOK = Path("home/logs/ext_template/isaac-deploy/2026-11-24_run-1")
HOSTILE_VALUE = "eth0 $(touch /tmp/pwned-nccl) 'x' `id`"


def config(scheduler: str = "slurm", launch: dict | None = None, **resources) -> ClusterConfig:
    raw = {
        **CLUSTER,
        "scheduler": scheduler,
        "resources": {**CLUSTER["resources"], **resources},
        "launch": launch or {},
    }
    if scheduler == "pbs":
        raw["resources"].pop("mail", None)
    return ClusterConfig.parse("c", raw)


def render(cluster: ClusterConfig, **changes) -> str:
    return render_job(ROOT / "templates", cluster, job(**changes))


def directives(text: str, prefix: str = "#SBATCH ") -> list[str]:
    return [line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)]


# ------------------------------------------------------------------ settings


def test_launch_settings_parse_and_bad_ones_are_one_line_each():
    cluster = config(
        launch={
            "launcher": "torchrun",
            "env": {"NCCL_SOCKET_IFNAME": "ib0"},
            "signal": 300,
            "attempts": 3,
        },
        nodes=2,
    )
    assert cluster.launch.launcher == "torchrun" and cluster.launch.continues
    assert cluster.resources.nodes == 2 and cluster.resources.summary.startswith("nodes=2, ")
    bad = [
        ({"launcher": "mpirun"}, {}, r"launch\]\[launcher\]: must be one of 'python', 'torchrun'"),
        ({}, {"nodes": 2}, r"2 nodes need launcher 'torchrun'"),
        ({"signal": 600}, {"walltime": "00:10:00"}, r"\[signal\]: 600 s before the end is not"),
        ({"signal": 70000}, {}, r"launch\]\[signal\]: must be at most 65535"),
        ({"attempts": 3}, {}, r"launch\]\[attempts\]: .*set signal"),
        ({"env": {"LD_PRELOAD": "/x.so"}}, {}, r"launch\]\[env\]: a NCCL_\*"),
        ({"env": {"NCCL_DEBUG": "a\nb"}}, {}, r"must not contain newlines"),
        ({"checkpoint": "../x"}, {}, r"launch\]\[checkpoint\]: a file name pattern"),
        ({"rdzv_port": 80}, {}, r"rdzv_port\]: must be at least 1024"),
        ({"signal": "soon"}, {}, r"launch\]\[signal\]: must be an integer"),
        ({}, {"nodes": 0}, r"resources\]\[nodes\]: must be at least 1"),
    ]
    for launch, resources, message in bad:
        with pytest.raises(ConfigError, match=message):
            config(launch=launch, **resources)
    for directive in (
        "--signal=B:USR1@300",
        "--requeue",
        "--nodes=2",
        "--gpus-per-node=2",
    ):
        with pytest.raises(ConfigError, match="use "):
            config(extra=[directive])
    assert parse_overrides("o", {"nodes": 2, "launcher": "torchrun"}) == {
        "nodes": "2",
        "launcher": "torchrun",
    }
    with pytest.raises(ConfigError, match=r"o\[launcher\]: must be one of"):
        parse_overrides("o", {"launcher": "srun"})


def test_one_submissions_nodes_override_the_clusters():
    resources = config().resources.override("o", {"nodes": "3", "launcher": "torchrun"}, "slurm")
    assert resources.nodes == 3 and resources.gpus == 2
    assert config().launch.override("o", "torchrun").launcher == "torchrun"


# ------------------------------------------------------------------ directives


def test_slurm_asks_for_nodes_gpus_per_node_the_warning_and_requeue():
    text = render(config(launch={"launcher": "torchrun", "signal": 300, "attempts": 3}, nodes=2))
    found = directives(text)
    for line in (
        "--nodes=2",
        "--ntasks-per-node=1",
        "--gpus-per-node=2",
        "--cpus-per-task=16",
        "--signal=B:USR1@300",
        "--requeue",
        "--open-mode=append",  # a requeued job's log keeps the earlier attempts'
    ):
        assert line in found, line
    assert not any(d.startswith("--gpus=") for d in found)
    single = directives(render(config()))
    assert "--gpus=2" in single
    assert not [d for d in single if d.split("=")[0] in ("--nodes", "--signal", "--requeue")]
    gres = directives(render(config(nodes=2, gpu_option="gres", launch={"launcher": "torchrun"})))
    assert "--gres=gpu:2" in gres  # gres counts per node already


def test_pbs_asks_for_one_chunk_per_node_scattered_and_has_no_warning_directive():
    text = render(config("pbs", launch={"launcher": "torchrun", "signal": 600}, nodes=2))
    found = directives(text, "#PBS ")
    assert "-l select=2:ncpus=16:ngpus=2:mem=64gb:mpiprocs=1" in found
    assert "-l place=scatter" in found
    assert "sleep 129000 & sleeper=$!" in text  # its own timer: 36 h less 600 s
    assert "-l select=1:ncpus=16:ngpus=2:mem=64gb" in directives(render(config("pbs")), "#PBS ")


# ------------------------------------------------------------------ run by bash

RECORDER = r"""#!/usr/bin/env python3
# apptainer / srun / pbsdsh stand-in: records its argv, the APPTAINERENV_* it sees; srun and
# pbsdsh run their command (srun: $FAKE_TASKS tasks); apptainer with FAKE_WAIT_SIGNAL waits for
# a signal, makes a run folder with a checkpoint and exits as a stopped training does
import json, os, signal, subprocess, sys, time
tool = os.path.basename(sys.argv[0])
calls = os.environ["FAKE_CALLS"]
env = {k: v for k, v in os.environ.items() if k.startswith(("APPTAINERENV_", "SLURM_PROCID"))}
with open(calls, "a") as f:
    f.write(json.dumps({"tool": tool, "argv": sys.argv[1:], "env": env}) + "\n")
if tool == "scontrol":
    if sys.argv[1:3] == ["show", "hostnames"]:
        print("gpu-node-1\ngpu-node-2")
    sys.exit(0)
if tool == "srun":
    argv = sys.argv[1:]
    while argv[0].startswith("--"):  # srun's own options, then the command
        argv = argv[1:]
    procs = [subprocess.Popen(argv, env={**os.environ, "SLURM_PROCID": str(i)})
             for i in range(int(os.environ.get("FAKE_TASKS", "2")))]
    sys.exit(max(p.wait() for p in procs))
if tool == "pbsdsh":
    sys.exit(subprocess.call(sys.argv[sys.argv.index("--") + 1:]))
got = []
neighbour = os.environ.get("FAKE_NEIGHBOUR")
if neighbour:  # a run of another job of the extension, beside this one, with a checkpoint
    os.makedirs(neighbour)
    open(os.path.join(neighbour, "model_5.pt"), "w").close()
if os.environ.get("FAKE_WAIT_SIGNAL"):
    for number in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(number, lambda n, _f: got.append(n))
    open(calls + ".started", "w").close()
    deadline = time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    run = os.environ["FAKE_RUN"]
    os.makedirs(run, exist_ok=True)
    open(os.path.join(run, "model_7.pt"), "w").close()
    with open(calls, "a") as f:
        f.write(json.dumps({"tool": "signal", "argv": [signal.Signals(got[0]).name]}) + "\n")
    sys.exit(0 if os.environ.get("FAKE_DONE") else 128 + got[0])
"""


def tools(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("apptainer", "srun", "scontrol", "pbsdsh"):
        (bin_dir / tool).write_text(RECORDER)
        (bin_dir / tool).chmod(0o755)
    (bin_dir / "module").write_text("#!/bin/sh\n")  # the site's modules: loaded, nothing more
    (bin_dir / "module").chmod(0o755)
    (tmp_path / "node-tmp").mkdir(exist_ok=True)
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "SCRATCH": str(tmp_path / "scratch"),
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "node-tmp"),
        "FAKE_CALLS": str(tmp_path / "calls.jsonl"),
    }


def calls(tmp_path: Path, tool: str | None = None) -> list[dict]:
    path = tmp_path / "calls.jsonl"
    found = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [call for call in found if tool is None or call["tool"] == tool]


def run(tmp_path: Path, text: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", text], env={**tools(tmp_path), **env}, capture_output=True, text=True
    )


def command(argv: list[str]) -> list[str]:
    """What runs in the container: after the entrypoint."""
    return argv[argv.index("/opt/isaac-deploy/entrypoint.sh") + 1 :]


def test_torchrun_on_one_node_one_worker_per_gpu_with_the_cpus_split(tmp_path):
    cluster = config(launch={"launcher": "torchrun", "env": {"NCCL_SOCKET_IFNAME": HOSTILE_VALUE}})
    done = run(tmp_path, render(cluster), SLURM_JOB_ID="5", NCCL_IB_HCA="mlx5_0", OTHER="x")
    assert done.returncode == 0, done.stderr
    [call] = calls(tmp_path, "apptainer")
    assert command(call["argv"]) == [
        "python",
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "--nnodes=1",
        ENTRY_SCRIPT,
        "--distributed",
        *ARGS,
    ]
    assert call["env"]["APPTAINERENV_OMP_NUM_THREADS"] == "8"  # 16 CPUs, 2 workers
    assert call["env"]["APPTAINERENV_NCCL_SOCKET_IFNAME"] == HOSTILE_VALUE  # the cluster's
    assert call["env"]["APPTAINERENV_NCCL_IB_HCA"] == "mlx5_0"  # the site's (a module's)
    assert "APPTAINERENV_OTHER" not in call["env"]
    assert not os.path.exists("/tmp/pwned-nccl")
    python = run(tmp_path, render(config()), SLURM_JOB_ID="6")
    assert python.returncode == 0
    assert command(calls(tmp_path, "apptainer")[-1]["argv"]) == ["python", ENTRY_SCRIPT, *ARGS]


def test_several_slurm_nodes_one_launcher_each_rendezvous_on_the_first(tmp_path):
    cluster = config(launch={"launcher": "torchrun", "rdzv_port": 29999}, nodes=2)
    env = {
        "SLURM_JOB_ID": "77",
        "SLURM_NTASKS": "2",
        "SLURM_JOB_NODELIST": "gpu-node-[1-2]",
        "SLURM_CPUS_PER_TASK": "16",
    }
    done = run(tmp_path, render(cluster), **env)
    assert done.returncode == 0, done.stderr
    [srun] = calls(tmp_path, "srun")
    assert srun["argv"][0] == "--kill-on-bad-exit=1"
    tasks = calls(tmp_path, "apptainer")
    assert sorted(t["env"]["SLURM_PROCID"] for t in tasks) == ["0", "1"]
    for task in tasks:
        assert command(task["argv"]) == [
            "python",
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--nnodes=2",
            "--rdzv_backend=c10d",
            "--rdzv_endpoint=gpu-node-1:29999",
            "--rdzv_id=77",
            ENTRY_SCRIPT,
            "--distributed",
            *ARGS,
        ]
        flags = task["argv"]
        assert flags[:3] == ["exec", "--workdir", flags[2]] and "--containall" in flags
        assert flags.count("--workdir") == 1 and flags[2].startswith(f"{tmp_path}/node-tmp/")
    # each node's private folder is gone, as is the job's
    assert not list((tmp_path / "node-tmp").iterdir())


def test_several_pbs_nodes_one_pbsdsh_per_node_entry(tmp_path):
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("n1\nn2\nn2\n")  # one entry per chunk; a host listed twice counts once
    cluster = config("pbs", launch={"launcher": "torchrun"}, nodes=2)
    done = run(tmp_path, render(cluster), PBS_JOBID="8.server", PBS_NODEFILE=str(nodefile))
    assert done.returncode == 0, done.stderr
    assert sorted(c["argv"][:3] for c in calls(tmp_path, "pbsdsh")) == [
        ["-n", "0", "--"],
        ["-n", "1", "--"],
    ]
    for task in calls(tmp_path, "apptainer"):
        assert "--rdzv_endpoint=n1:29500" in task["argv"] and "--nnodes=2" in task["argv"]
        assert command(task["argv"])[-len(ARGS) :] == list(ARGS)


def start(tmp_path: Path, text: str, **env: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["bash", "-c", text],
        env={**tools(tmp_path), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not (tmp_path / "calls.jsonl.started").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    (tmp_path / "calls.jsonl.started").unlink()
    return proc


def test_slurms_warning_reaches_the_training_then_the_job_is_requeued_and_resumes(tmp_path):
    cluster = config(launch={"signal": 120, "attempts": 2})
    text = render(cluster)
    tree = tmp_path / "home" / "logs" / "ext_template"
    run1 = tree / "rsl_rl" / "ext_template" / "2026-11-24_06-00-00_a+b (1)"
    neighbour = tree / "rsl_rl" / "ext_template" / "2026-11-24_06-00-01"  # newer, not ours
    env = {
        "SLURM_JOB_ID": "4242",
        "FAKE_WAIT_SIGNAL": "1",
        "FAKE_RUN": str(run1),
        "FAKE_NEIGHBOUR": str(neighbour),
    }
    proc = start(tmp_path, text, **env)
    proc.send_signal(signal.SIGUSR1)  # --signal=B:USR1@120: the batch shell only
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 138, out  # the training's: stopped by SIGUSR1
    assert calls(tmp_path, "signal")[0]["argv"] == ["SIGUSR1"]
    assert calls(tmp_path, "scontrol")[-1]["argv"] == ["requeue", "4242"]
    book = tmp_path / BOOK
    both = sorted(f"{run.relative_to(tree)}\n" for run in (run1, neighbour))
    assert (book / "runs-4242.txt").read_text() == "".join(both)  # it cannot tell
    assert (book / "resume-from.txt").read_text() == f"{run1.relative_to(tree)}\n"  # it can
    lines = [parse_attempt(line) for line in (book / "attempts-4242.txt").read_text().splitlines()]
    assert [(a.number, a.event) for a in lines] == [(1, "started"), (1, "requeued")]
    # Slurm starts the script again under the same id
    again = run(tmp_path, text, SLURM_JOB_ID="4242", SLURM_RESTART_COUNT="1")
    assert again.returncode == 0, again.stderr
    assert "attempt 2 of 2 resumes from logs/rsl_rl/ext_template/2026-11-24_06-00-00_a+b (1)" in (
        again.stdout
    )
    argv = calls(tmp_path, "apptainer")[-1]["argv"]
    assert argv[-3:] == ["--resume", "--load_run", r"^2026-11-24_06-00-00_a\+b \(1\)$"]
    assert re.match(argv[-1], run1.name) and not re.match(argv[-1], run1.name + "x")
    lines = (book / "attempts-4242.txt").read_text().splitlines()
    assert [" ".join(line.split()[::3]) for line in lines[2:]] == ["2 started", "2 ended"]
    assert (book / "runs-4242.txt").read_text() == "".join(both)  # kept


def test_the_last_attempt_is_not_requeued(tmp_path):
    text = render(config(launch={"signal": 120, "attempts": 2}))
    env = {
        "SLURM_JOB_ID": "9",
        "SLURM_RESTART_COUNT": "1",
        "FAKE_WAIT_SIGNAL": "1",
        "FAKE_RUN": str(tmp_path / "home/logs/ext_template/rsl_rl/e/r"),
    }
    proc = start(tmp_path, text, **env)
    proc.send_signal(signal.SIGUSR1)
    proc.communicate(timeout=30)
    assert not [c for c in calls(tmp_path, "scontrol") if c["argv"][:1] == ["requeue"]]
    last = (tmp_path / BOOK / "attempts-9.txt").read_text().splitlines()[-1]
    assert last.endswith("stopped (the last of 2 attempts)")


def test_torchrun_gets_sigterm_which_it_passes_on_to_its_workers(tmp_path):
    text = render(config(launch={"launcher": "torchrun", "signal": 60, "attempts": 3}))
    env = {"SLURM_JOB_ID": "3", "FAKE_WAIT_SIGNAL": "1", "FAKE_RUN": str(tmp_path / "r")}
    proc = start(tmp_path, text, **env)
    proc.send_signal(signal.SIGUSR1)
    proc.communicate(timeout=30)
    assert calls(tmp_path, "signal")[0]["argv"] == ["SIGTERM"]


def test_pbs_warns_itself_and_leaves_the_next_attempt_to_the_roll_out(tmp_path):
    text = render(config("pbs", launch={"signal": 2, "attempts": 3}, walltime="00:00:03"))
    env = {
        "PBS_JOBID": "12.labpbs",
        "FAKE_WAIT_SIGNAL": "1",
        "FAKE_RUN": str(tmp_path / "home/logs/ext_template/rsl_rl/e/r"),
    }
    done = subprocess.run(
        ["bash", "-c", text],
        env={**tools(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 138, done.stdout + done.stderr
    assert calls(tmp_path, "signal")[0]["argv"] == ["SIGUSR1"]  # from its own timer
    assert not calls(tmp_path, "scontrol")
    last = (tmp_path / BOOK / "attempts-12.labpbs.txt").read_text().splitlines()[-1]
    assert parse_attempt(last).event == "checkpointed"
    assert "the next roll-out of run 2026-11-24_run-1 resubmits it for attempt 2 of 3" in (
        done.stdout
    )


def test_a_resubmitted_attempt_resumes_from_the_run_its_predecessor_checkpointed(tmp_path):
    tree = tmp_path / "home" / "logs" / "ext_template"
    book = tmp_path / BOOK
    book.mkdir(parents=True)
    for name in ("2026-01-01_00-00-00", "2026-01-02_00-00-00", "2026-01-03_00-00-00"):
        (tree / "rsl_rl" / "exp" / name).mkdir(parents=True)
        (tree / "rsl_rl" / "exp" / name / "model_3.pt").write_text("{}")
    (book / "resume-from.txt").write_text("rsl_rl/exp/2026-01-02_00-00-00\n")
    text = render(config("pbs", launch={"signal": 60, "attempts": 3}), attempt=3)
    done = run(tmp_path, text, PBS_JOBID="3.labpbs")
    assert done.returncode == 0, done.stderr
    argv = calls(tmp_path, "apptainer")[-1]["argv"]
    assert argv[-3:] == ["--resume", "--load_run", "^2026-01-02_00-00-00$"]
    assert "attempt 3 of 3 resumes from logs/rsl_rl/exp/2026-01-02_00-00-00" in done.stdout
    (book / "resume-from.txt").write_text("rsl_rl/exp/gone\n")
    anew = run(tmp_path, text, PBS_JOBID="4.labpbs")
    assert "left no checkpoint, starting anew" in anew.stdout
    assert calls(tmp_path, "apptainer")[-1]["argv"][-len(ARGS) :] == list(ARGS)


# ------------------------------------------------------------------ continuation and listing


def attempt(number: int, event: str) -> Attempt:
    return Attempt(number, "2026-11-24T06:00:00Z", "node1", event)


def test_a_continuation_is_due_only_after_an_ended_checkpointed_job_with_attempts_left():
    entries = (Entry("r", "12.s", "pbs"),)
    ended = {"12.s": JobState("12.s", "FAILED", 138)}
    checkpointed = {"12.s": (attempt(1, "started"), attempt(1, "checkpointed"))}
    assert continuation(entries, "r", ended, checkpointed, 3) == Continuation("12.s", 2)
    assert continuation(entries, "r", ended, checkpointed, 1) is None  # no attempt left
    running = {"12.s": JobState("12.s", "RUNNING")}
    assert continuation(entries, "r", running, checkpointed, 3) is None
    assert continuation(entries, "r", {}, checkpointed, 3) is None  # unknown: not now
    finished = {"12.s": (attempt(1, "started"), attempt(1, "ended (0)"))}
    assert continuation(entries, "r", ended, finished, 3) is None
    assert continuation((), "r", ended, checkpointed, 3) is None
    requeued = {
        "7": (
            attempt(1, "started"),
            attempt(1, "requeued"),
            attempt(2, "started"),
            attempt(2, "checkpointed"),
        )
    }
    state = {"7": JobState("7", "FAILED", 138)}
    assert continuation((Entry("r", "7", "slurm"),), "r", state, requeued, 3) == Continuation(
        "7", 3
    )


def test_the_attempts_fact_and_listing():
    output = [
        "@@isaac:run-1/attempts-7.txt",
        "1 2026-11-24T06:00:00Z node1 started",
        "1 2026-11-24T06:01:00Z node1 requeued",
        "2 2026-11-24T06:03:00Z node2 started",
        "@@isaac:run-1/notes.txt",
        "x",
        "@@isaac:run-2/attempts-8.txt",
        "garbage",
    ]
    found = Attempts().process(output)
    assert list(found) == ["run-1"] and len(found["run-1"]["7"]) == 3
    lines = attempt_lines([Entry("run-1", "7", "slurm")], found)
    assert lines[0].startswith("ATTEMPTS")
    assert lines[2].split()[:6] == ["run-1", "7", "1", "2026-11-24T06:00:00Z", "node1", "requeued"]
    assert lines[3].split()[2:6] == ["2", "2026-11-24T06:03:00Z", "node2", "running"]
    assert attempt_lines([Entry("run-9", "1", "slurm")], found) == []
    assert (
        "cd /logs/ext/isaac-deploy 2>/dev/null" in Attempts().command("/logs/ext/").get_raw_value()
    )


def test_a_continuation_is_submitted_once_under_the_lock(tmp_path):
    """The ledger's latest job of the run decides on the login node: a second roll-out that
    planned the same continuation submits nothing."""
    fake = tmp_path / "fake"
    (fake / "bin").mkdir(parents=True)
    (fake / "jobs").write_text("")
    for tool in ("qsub", "qselect"):
        (fake / "bin" / tool).write_text(FAKE_SCHEDULER)
        (fake / "bin" / tool).chmod(0o755)
    ledger = tmp_path / ".isaac-deploy" / "ledger.jsonl"
    ledger.parent.mkdir()
    first = Entry(**{**ENTRY.__dict__, "job_id": "12.labpbs", "scheduler": "pbs"})
    ledger.write_text(first.to_json() + "\n")
    entry = Entry(
        **{
            **ENTRY.__dict__,
            "scheduler": "pbs",
            "snapshot": str(tmp_path / "snap"),
            "extra": {"attempt": 2, "continues": "12.labpbs"},
        }
    )
    env = {"PATH": f"{fake / 'bin'}:/usr/bin:/bin", "FAKE": str(fake)}

    def submit() -> subprocess.CompletedProcess:
        commands, _ = submit_op(str(ledger), (first,), entry=entry, continues="12.labpbs")
        assert "after:12.labpbs" in commands[1]
        return subprocess.run(
            ["sh", "-c", " && ".join(commands)], env=env, capture_output=True, text=True
        )

    assert submit().stdout == "submitted job 4242.labpbs\n"
    again = submit()
    assert again.stdout == "run run-1 was continued already (job 4242.labpbs): nothing submitted\n"
    records = [e for e in parse_ledger(ledger.read_text().splitlines()).entries if e.job_id]
    assert [(e.job_id, e.extra) for e in records] == [
        ("12.labpbs", {}),
        ("4242.labpbs", {"attempt": 2, "continues": "12.labpbs"}),
    ]
    _, host = submit_op(str(ledger), (first, records[1]), entry=entry, continues="12.labpbs")
    assert host.noops == ["run run-1 was continued already (job 4242.labpbs)"]


# ------------------------------------------------------------------ the example's train.py


def test_the_example_training_saves_a_checkpoint_on_the_warning_and_resumes_from_it(tmp_path):
    from tests.unit.test_example_training import EXPERIMENT, ROOT, runs

    env = {**os.environ, "PYTHONPATH": str(ROOT / "source" / "ext_template")}
    argv = [
        sys.executable,
        str(ROOT / "scripts" / "rsl_rl" / "train.py"),
        "--task",
        "Template-Reach-v0",
        "--max_iterations",
        "500",
        "agent.step_seconds=0.02",
    ]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    assert "Learning iteration 3/" in "".join(proc.stdout.readline() for _ in range(4))
    proc.send_signal(signal.SIGUSR1)
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 128 + signal.SIGUSR1, out
    [run1] = runs(tmp_path)
    [saved] = run1.glob("model_*.pt")  # the iteration under way, though save_interval is 10
    stopped = json.loads(saved.read_text())["iteration"]
    assert f"SIGUSR1: stopped at iteration {stopped}" in out and 3 <= stopped < 500
    resumed = subprocess.run(
        [
            *argv[:-3],
            "--max_iterations",
            "2",
            "--run_name",
            "on",
            "--resume",
            "--load_run",
            f"^{re.escape(run1.name)}$",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"Learning iteration {stopped + 2}/{stopped + 2}" in resumed.stdout
    assert len(list(tmp_path.joinpath(*EXPERIMENT).iterdir())) == 2


def test_the_example_training_under_torchrun_writes_from_the_first_process_only(tmp_path):
    from tests.unit.test_example_training import ROOT, runs

    env = {**os.environ, "PYTHONPATH": str(ROOT / "source" / "ext_template")}
    script = str(ROOT / "scripts" / "rsl_rl" / "train.py")
    for rank in (1, 0):
        done = subprocess.run(
            [sys.executable, script, "--task", "Template-Reach-v0", "--distributed"],
            cwd=tmp_path,
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert f"rank {rank} of 2, cuda:{rank}" in done.stdout
        assert (tmp_path / "logs").exists() == (rank == 0)
    [run1] = runs(tmp_path)
    assert '"cuda:0"' in (run1 / "params" / "agent.yaml").read_text()


def test_cluster_submit_takes_the_launcher_and_nodes(tmp_path):
    from isaac_deploy.cli.cluster_commands import pyinfra_argv
    from isaac_deploy.cli.main import parser
    from tests.unit.test_cli_units import find_layout, inventories, make_root

    root = make_root(tmp_path)
    (inventories(root) / "cluster.py").write_text("")
    args = ["cluster", "submit", "--launcher", "torchrun", "--nodes", "2", "--", "--task", "X"]
    argv = pyinfra_argv(parser().parse_args(args), find_layout(root))
    data = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--data")
    assert json.loads(data["isaac_job_resources"]) == {"nodes": "2", "launcher": "torchrun"}
    with pytest.raises(SystemExit):
        parser().parse_args(["cluster", "submit", "--launcher", "mpirun"])
    with pytest.raises(ConfigError, match=r"isaac_job_resources\[nodes\]: must be at least 1"):
        pyinfra_argv(parser().parse_args(["cluster", "submit", "--nodes", "0"]), find_layout(root))


def test_a_training_done_when_warned_is_not_started_again(tmp_path):
    text = render(config(launch={"signal": 120, "attempts": 3}))
    env = {
        "SLURM_JOB_ID": "11",
        "FAKE_WAIT_SIGNAL": "1",
        "FAKE_DONE": "1",
        "FAKE_RUN": str(tmp_path / "home/logs/ext_template/rsl_rl/e/r"),
    }
    proc = start(tmp_path, text, **env)
    proc.send_signal(signal.SIGUSR1)
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert not calls(tmp_path, "scontrol")
    assert (tmp_path / BOOK / "attempts-11.txt").read_text().splitlines()[-1].endswith("ended (0)")
