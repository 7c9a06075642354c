"""Sweeps (issue #16): the grid and list of runs as each element's exact arguments, the job array
directives (Slurm ``--array``, PBS ``-J``) and each element's arguments run for real by bash with
the recording `apptainer` stand-in; the submission (once, then a ledger line per element) as
commands; the per-element and per-sweep states; the CLI's sweep, logs and shell forms."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace

import pytest

from isaac_deploy.cli import cluster_commands, cluster_session
from isaac_deploy.cli.main import parser
from isaac_deploy.facts.scheduler import JobState, parse_slurm, slurm_ids
from isaac_deploy.model.cluster import ClusterConfig
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.ledger import Entry, parse_ledger
from isaac_deploy.model.sweep import element_ids, parse_grid_option, parse_sweep
from isaac_deploy.operations import sweep as sweep_ops
from isaac_deploy.render.job_script import SWEEP_LOG, render_job
from isaac_deploy.render.ledger_table import table
from tests.helpers import ROOT, run_op
from tests.unit.test_envfiles import HOSTILE
from tests.unit.test_job_scripts import CLUSTER, job, run_with_standin

EVIL = ['it\'s "quoted"', "$(touch /tmp/pwned-sweep)", "semi;colon && x", "two  spaces", "*"]


def test_a_grid_is_every_combination_in_order_with_a_run_name_each():
    sweep = parse_sweep(
        "s",
        {"args": ["--headless"], "grid": {"seed": [1, 2], "agent.lr": ["1e-3", 0.0003]}},
        "lr",
        ("--task", "Reach"),
    )
    assert sweep.elements == (
        ("--task", "Reach", "--headless", "--seed", "1", "agent.lr=1e-3", "--run_name", "lr.0"),
        ("--task", "Reach", "--headless", "--seed", "1", "agent.lr=0.0003", "--run_name", "lr.1"),
        ("--task", "Reach", "--headless", "--seed", "2", "agent.lr=1e-3", "--run_name", "lr.2"),
        ("--task", "Reach", "--headless", "--seed", "2", "agent.lr=0.0003", "--run_name", "lr.3"),
    )
    assert sweep.array_range == "0-3" and sweep.throttle is None
    assert [sweep.element_key(i) for i in range(2)] == ["lr.0", "lr.1"]


def test_runs_are_taken_word_for_word_and_hostile_values_stay_whole():
    sweep = parse_sweep("s", {"runs": [[v] for v in EVIL], "throttle": 2}, "evil")
    assert [e[0] for e in sweep.elements] == EVIL
    assert sweep.array_range == "0-4%2"
    grid = parse_sweep("s", {"grid": {"--task": EVIL[:2]}, "run_name_option": None}, "g")
    assert grid.elements == (("--task", EVIL[0]), ("--task", EVIL[1]))


def test_grid_and_runs_multiply_and_a_given_run_name_is_kept():
    sweep = parse_sweep(
        "s", {"grid": {"seed": [1, 2]}, "runs": [["--run_name", "mine"], ["--video"]]}, "m"
    )
    assert sweep.elements == (
        ("--seed", "1", "--run_name", "mine"),
        ("--seed", "1", "--video", "--run_name", "m.1"),
        ("--seed", "2", "--run_name", "mine"),
        ("--seed", "2", "--video", "--run_name", "m.3"),
    )


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({}, "grid of values or a list of runs"),
        ({"grid": {"seed": [1]}}, "makes 1 runs"),
        ({"grid": {"seed": []}}, "non-empty list"),
        ({"grid": {"seed": [True, 2]}}, "text or a number"),
        ({"grid": {"a b": [1, 2]}}, "an option or a Hydra key"),
        ({"runs": [["a"], "b"]}, "list of arguments"),
        ({"runs": [["a"], ["b"]], "throttle": 0}, "at least 1"),
        ({"runs": [["a"], ["b"]], "speed": 1}, "unknown setting"),
        ({"runs": [["a\nb"], ["b"]]}, "newlines"),
        ({"grid": {"seed": list(range(1001))}}, "2 to 1000"),
        ("{not json", "JSON object"),
    ],
)
def test_bad_sweeps_are_refused_naming_the_value(raw, words):
    with pytest.raises(ConfigError, match=words):
        parse_sweep("isaac_sweep", raw, "k")


def test_an_element_run_key_must_fit_the_ledger():
    with pytest.raises(ConfigError, match="run key"):
        parse_sweep("s", {"grid": {"seed": [1, 2]}}, "k" * 63)


def test_grid_option_of_the_cli():
    assert parse_grid_option("seed=1,2,3") == ("seed", ["1", "2", "3"])
    assert parse_grid_option("agent.algorithm.lr=1e-3") == ("agent.algorithm.lr", ["1e-3"])
    for bad in ("seed", "=1,2", "a b=1"):
        with pytest.raises(ConfigError, match="NAME=VALUE1,VALUE2"):
            parse_grid_option(bad)


def sweep_script(scheduler: str, sweep) -> str:
    cluster = ClusterConfig.parse("c", {**CLUSTER, "scheduler": scheduler})
    output = f"/scratch/jdoe/logs/{SWEEP_LOG[scheduler]}"
    return render_job(ROOT / "templates", cluster, job(sweep=sweep, output=output))


def test_the_array_directives_and_logs_of_each_scheduler():
    sweep = parse_sweep("s", {"grid": {"seed": [1, 2, 3, 4]}, "throttle": 2}, "lr")
    slurm = sweep_script("slurm", sweep)
    assert "#SBATCH --array=0-3%2\n" in slurm
    assert "#SBATCH --output=/scratch/jdoe/logs/job-%A_%a.out\n" in slurm
    assert "JOB=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}" in slurm
    pbs = sweep_script("pbs", sweep)
    assert "#PBS -J 0-3%2\n" in pbs and "#PBS -o /scratch/jdoe/logs/job-^array_index^.out\n" in pbs
    assert "PBS_ARRAY_INDEX" in pbs and "SLURM" not in pbs
    for text in (slurm, pbs):
        assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
    # a job that is not a sweep has none of it
    plain = render_job(
        ROOT / "templates", ClusterConfig.parse("c", {**CLUSTER, "scheduler": "slurm"}), job()
    )
    assert "--array" not in plain and "INDEX" not in plain


@pytest.mark.parametrize(("scheduler", "variable"), [("slurm", "SLURM"), ("pbs", "PBS")])
def test_each_element_gets_exactly_its_own_arguments(tmp_path, scheduler, variable):
    runs = [["--hostile", value] for value in [*EVIL, *(h for h in HOSTILE if h)]]
    sweep = parse_sweep("s", {"runs": runs, "throttle": 2}, "evil", ("--task", "Reach"))
    text = sweep_script(scheduler, sweep)
    for index in (0, 2, len(runs) - 1):
        env = (
            {"SLURM_ARRAY_TASK_ID": str(index), "SLURM_ARRAY_JOB_ID": "77", "SLURM_JOB_ID": "90"}
            if variable == "SLURM"
            else {"PBS_ARRAY_INDEX": str(index), "PBS_JOBID": f"12[{index}].server"}
        )
        folder = tmp_path / f"{scheduler}-{index}"
        folder.mkdir()
        code, argv, out = run_with_standin(folder, text, env=env)
        assert code == 0, out
        expected = ["--task", "Reach", *runs[index], "--run_name", f"evil.{index}"]
        assert argv[-len(expected) :] == expected
        assert f"element {index} (run evil.{index})" in out
    assert not os.path.exists("/tmp/pwned-sweep")


def test_an_index_outside_the_sweep_fails_before_the_container(tmp_path):
    sweep = parse_sweep("s", {"grid": {"seed": [1, 2]}}, "two")
    text = sweep_script("slurm", sweep)
    code, argv, out = run_with_standin(
        tmp_path, text, env={"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_JOB_ID": "3"}
    )
    assert code == 2 and argv == [] and "no element 5" in out
    code, argv, out = run_with_standin(tmp_path, text)  # not started as an array element
    assert code != 0 and argv == [] and "SLURM_ARRAY_TASK_ID" in out


def test_element_ids_of_each_scheduler():
    assert element_ids("1234", "slurm", 3) == ["1234_0", "1234_1", "1234_2"]
    assert element_ids("12[].labpbs", "pbs", 2) == ["12[0].labpbs", "12[1].labpbs"]


# ------------------------------------------------------------------ states of array elements
# `sacct -n -X -P -o JobID,State,ExitCode` and `scontrol show job -o` of Slurm 22.05 for an
# array job 40 of four elements with a throttle of 2 (element 0 done, 1 running, 2-3 pending;
# the form of the lab's Slurm)
SACCT = ["40_0|COMPLETED|0:0", "40_1|RUNNING|0:0", "40_[2-3%2]|PENDING|0:0"]
SCONTROL = [
    "JobId=41 ArrayJobId=40 ArrayTaskId=0 JobName=x JobState=COMPLETED ExitCode=0:0",
    "JobId=42 ArrayJobId=40 ArrayTaskId=1 JobName=x JobState=FAILED ExitCode=3:0",
    "JobId=40 ArrayJobId=40 ArrayTaskId=2-3 ArrayTaskThrottle=2 JobState=PENDING ExitCode=0:0",
]


def test_slurm_array_elements_are_found_under_the_ids_the_ledger_records():
    assert slurm_ids("40_[2-3%2]") == ["40_2", "40_3"]
    assert slurm_ids("40_[1,4-8:2]") == ["40_1", "40_4", "40_6", "40_8"]
    assert slurm_ids("40_7") == ["40_7"] and slurm_ids("40") == ["40"] and slurm_ids("x") == []
    states = parse_slurm(SACCT, [])
    assert {k: s.state for k, s in states.items()} == {
        "40_0": "COMPLETED",
        "40_1": "RUNNING",
        "40_2": "PENDING",
        "40_3": "PENDING",
    }
    states = parse_slurm(SACCT, SCONTROL)  # scontrol's answer wins
    assert states["40_1"] == JobState("40_1", "FAILED", 3)
    assert states["40_3"].state == "PENDING" and states["41"].state == "COMPLETED"


def test_the_jobs_table_shows_each_element_and_the_sweep_as_counts():
    sweep = Entry("lr", "40", "slurm", extra={"sweep": {"elements": 4, "array": "0-3%2"}})
    elements = [
        Entry(f"lr.{i}", f"40_{i}", "slurm", args=("--seed", str(i)), extra={"sweep": {"of": "lr"}})
        for i in range(4)
    ]
    lines = table([sweep, *elements], parse_slurm(SACCT, SCONTROL), {"40": "x"})
    assert "1 COMPLETED, 1 FAILED, 2 PENDING" in lines[1]
    assert "FAILED (3)" in lines[3] and "PENDING" in lines[4] and "--seed 3" in lines[5]


# ------------------------------------------------------------- the submission, as commands
def entries(count: int = 2, scheduler: str = "slurm") -> tuple[Entry, tuple[Entry, ...]]:
    sweep = Entry(
        "lr",
        "",
        scheduler,
        snapshot="/s/lr",
        job_name="ext.lr.20261130T2000Z",
        time="2026-11-30T20:00:00Z",
        extra={"sweep": {"elements": count}},
    )
    return sweep, tuple(
        replace(
            sweep,
            run_key=f"lr.{i}",
            args=("--seed", str(i), "it's $(x)"),
            extra={"sweep": {"of": "lr", "index": i}},
        )
        for i in range(count)
    )


def submit(ledger: str, lines: list[dict] | None = None) -> list:
    """The operation's commands for a ledger holding ``lines``."""
    sweep, elements = entries()
    found = parse_ledger([json.dumps(line) for line in lines or []])
    facts = {"LedgerEntries": {f"path={ledger}": found}}
    values = {"entry": sweep, "elements": elements, "script": "#!/bin/bash\n", "ledger": ledger}
    return run_op(sweep_ops.sweep_submitted, facts, **values)[0]


def test_a_new_sweep_is_submitted_then_its_elements_recorded_under_the_lock():
    commands = submit("/h/ledger.jsonl")
    assert commands[-2].startswith("flock -E 75 -w 300 /h/ledger.jsonl.lock sh -c")
    assert "sbatch --parsable" in commands[-2]
    last = commands[-1]
    assert last.startswith("flock -E 75 -w 300 /h/ledger.jsonl.lock sh -c")
    assert '"run_key": "lr.1"' in last and "recorded element" in last


def test_a_sweep_with_every_element_recorded_submits_nothing():
    lines = [
        {"run_key": "lr", "job_id": "40", "scheduler": "slurm"},
        {"run_key": "lr.0", "job_id": "40_0", "scheduler": "slurm"},
        {"run_key": "lr.1", "job_id": "40_1", "scheduler": "slurm"},
    ]
    assert submit("/h/ledger.jsonl", lines) == []
    # one element line missing (a roll-out cut off): only the elements step, nothing submitted
    commands = submit("/h/ledger.jsonl", lines[:2])
    assert len(commands) == 1 and "sbatch" not in commands[0] and "recorded element" in commands[0]


@pytest.mark.parametrize(
    ("scheduler", "answer", "ids"),
    [
        ("slurm", "4711", ["4711_0", "4711_1", "4711_2"]),
        ("pbs", "12[].labpbs", ["12[0].labpbs", "12[1].labpbs", "12[2].labpbs"]),
    ],
)
def test_submitted_once_with_a_line_per_element(tmp_path, monkeypatch, scheduler, answer, ids):
    """The operation's commands run here, with a `sbatch`/`qsub` that counts its calls: the
    second roll-out submits nothing and writes no line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = {"slurm": "sbatch", "pbs": "qsub"}[scheduler]
    (bin_dir / tool).write_text(f"#!/bin/sh\necho x >> {tmp_path}/calls\necho '{answer}'\n")
    (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    ledger = str(tmp_path / "ledger.jsonl")
    snapshot = tmp_path / "s" / "lr"
    sweep, elements = entries(3, scheduler)
    for _ in range(2):
        facts = {
            "LedgerEntries": {
                f"path={ledger}": parse_ledger(
                    open(ledger).read().splitlines() if os.path.exists(ledger) else []
                )
            }
        }
        commands, _ = run_op(
            sweep_ops.sweep_submitted,
            facts,
            entry=replace(sweep, snapshot=str(snapshot)),
            elements=tuple(replace(e, snapshot=str(snapshot)) for e in elements),
            script="#!/bin/bash\n",
            ledger=ledger,
        )
        for command in commands:  # as the connector runs them
            done = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "calls").read_text().count("x") == 1
    records = [json.loads(line) for line in open(ledger).read().splitlines()]
    submitted = [r for r in records if r["job_id"]]
    assert [r["job_id"] for r in submitted] == [answer, *ids]
    assert [r["run_key"] for r in submitted] == ["lr", "lr.0", "lr.1", "lr.2"]
    assert submitted[2]["args"] == ["--seed", "1", "it's $(x)"]
    assert submitted[0]["extra"] == {"sweep": {"elements": 3}}


def test_the_elements_step_writes_each_missing_line_once(tmp_path):
    """The login node's elements program, run by sh on a ledger with the array job recorded."""
    ledger = tmp_path / "ledger.jsonl"
    _, elements = entries(3, "pbs")
    ledger.write_text(
        json.dumps({"run_key": "lr", "job_id": "12[].labpbs", "status": "submitted"}) + "\n"
    )
    lines = [e.to_json() for e in elements]

    def run() -> str:
        argv = ["sh", "-c", sweep_ops.ELEMENTS, "sh", str(ledger), "lr", "pbs", *lines]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    assert run().count("recorded element") == 3
    assert run() == ""  # a second time: nothing
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [r["job_id"] for r in records[1:]] == ["12[0].labpbs", "12[1].labpbs", "12[2].labpbs"]
    assert records[2]["args"] == ["--seed", "1", "it's $(x)"] and records[2]["run_key"] == "lr.1"


# ------------------------------------------------------------------------------- the CLI
def cli(*argv: str):
    return parser().parse_args(["cluster", *argv])


def test_cluster_sweep_passes_the_sweep_as_data(tmp_path):
    spec = tmp_path / "sweep.json"
    spec.write_text(json.dumps({"grid": {"seed": [1, 2]}, "runs": [[EVIL[1]]], "throttle": 3}))
    args = cli(
        "sweep",
        "--file",
        str(spec),
        "--grid",
        "agent.lr=1e-3,3e-4",
        "--throttle",
        "2",
        "--run-key",
        "lr",
        "--",
        "--task",
        "it's",
    )
    data = cluster_commands.sweep_data(args, ["--task", "it's"])
    assert data == {
        "grid": {"seed": [1, 2], "agent.lr": ["1e-3", "3e-4"]},
        "runs": [[EVIL[1]]],
        "throttle": 2,
    }
    with pytest.raises(ConfigError, match="grid of values"):
        cluster_commands.sweep_data(cli("sweep", "--run-key", "x"), [])


def test_logs_and_shell_arguments():
    args = cli("logs", "lr.2", "-f", "--limit", "lab")
    assert (args.run_key, args.follow, args.limit) == ("lr.2", True, "lab")
    args = cli("shell", "--gpus", "1", "--time", "00:30:00")
    assert (args.run_key, args.gpus, args.time) == (None, "1", "00:30:00")


def test_the_log_of_a_job_and_of_a_sweep_element():
    slurm = ClusterConfig.parse("c", {**CLUSTER, "scheduler": "slurm"})
    pbs = ClusterConfig.parse("c", {**CLUSTER, "scheduler": "pbs"})
    tree = "/logs/ext"
    one = Entry("run-1", "55", "slurm")
    element = Entry("lr.2", "40_2", "slurm", extra={"sweep": {"of": "lr", "index": 2}})
    assert cluster_session.job_log(slurm, tree, one) == "/logs/ext/isaac-deploy/run-1/job-55.out"
    assert cluster_session.job_log(slurm, tree, element) == "/logs/ext/isaac-deploy/lr/job-40_2.out"
    pbs_element = replace(element, job_id="12[2].labpbs")
    assert cluster_session.job_log(pbs, tree, pbs_element) == "/logs/ext/isaac-deploy/lr/job-2.out"
    assert cluster_session.job_log(pbs, tree, one) == "/logs/ext/isaac-deploy/run-1/job.out"


def test_exit_codes_of_ended_jobs():
    assert cluster_session.exit_code(JobState("1", "COMPLETED", 0)) == 0
    assert cluster_session.exit_code(JobState("1", "FAILED", 3)) == 3
    assert cluster_session.exit_code(JobState("1", "CANCELLED", None)) == 1
    assert cluster_session.exit_code(JobState("1", "FAILED", -29)) == 1  # PBS's own codes
    assert cluster_session.exit_code(None) == 1


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_the_session_asks_for_the_jobs_resources_and_runs_the_shell(tmp_path, scheduler):
    cluster = ClusterConfig.parse("c", {**CLUSTER, "scheduler": scheduler})
    script = render_job(ROOT / "templates", cluster, job(interactive=True, args=()))
    options = cluster_session.session_options(cluster, script)
    command = cluster_session.session_command(cluster, options, "/h/.isaac-deploy/shell.x/s.sh")
    if scheduler == "slurm":
        assert command.startswith("srun --pty --job-name=ext_template.2026-11-24_run-1.")
        assert "--gpus=2 --cpus-per-task=16 --mem=64G --time=1-12:00:00" in command
        assert "--output" not in command
    else:
        assert command.startswith("qsub -I -N ext_template.2026-11-24_run-1.")
        assert "-l select=1:ncpus=16:ngpus=2:mem=64gb -l walltime=36:00:00" in command
        assert " -o " not in command and " -j " not in command
        assert command.endswith("-- /bin/bash /h/.isaac-deploy/shell.x/s.sh")
    # bash through the image's entrypoint, with the job's binds and no training script
    code, argv, out = run_with_standin(tmp_path, script)
    assert code == 0, out
    assert argv[0] == "exec" and argv[-2:] == ["/opt/isaac-deploy/entrypoint.sh", "bash"]
    assert "/run/secrets/wandb_api_key" in " ".join(argv) and "train.py" not in " ".join(argv)


def test_a_sweep_refuses_a_launch_that_starts_warned_jobs_again():
    from isaac_deploy.model.launch import Launch
    from isaac_deploy.model.sweep import check_launch

    check_launch("c", Launch(signal=50))  # warned once: each element checkpoints, that is all
    with pytest.raises(ConfigError, match=r"c\[attempts\]: a sweep's elements are not started"):
        check_launch("c", Launch(signal=50, attempts=2))


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_a_session_of_a_cluster_whose_jobs_are_warned_and_span_nodes_is_one_plain_node(scheduler):
    launch = {"launcher": "torchrun", "signal": 50, "attempts": 3}
    raw = {**CLUSTER, "scheduler": scheduler, "launch": launch}
    raw["resources"] = {**CLUSTER["resources"], "nodes": 2}
    cluster = cluster_session.session_cluster(ClusterConfig.parse("c", raw), "00:30:00", 1)
    script = render_job(ROOT / "templates", cluster, job(interactive=True, args=()))
    options = " ".join(cluster_session.session_options(cluster, script))
    for word in ("--signal", "--requeue", "--nodes", "--ntasks-per-node", "place=scatter"):
        assert word not in options
    assert "trap warned" not in script and "scontrol requeue" not in script
    assert ("--time=00:30:00" if scheduler == "slurm" else "walltime=00:30:00") in options


def test_cancelling_an_element_cancels_only_it_and_the_sweep_its_array():
    from isaac_deploy.model.ledger import Ledger
    from isaac_deploy.operations.scheduler import job_cancelled

    name = "ext.lr.20261130T2000Z"
    records = (
        Entry("lr", "", "slurm", job_name=name, status="pending"),
        Entry("lr", "40", "slurm", job_name=name),
        *(Entry(f"lr.{i}", f"40_{i}", "slurm", job_name=name) for i in range(2)),
    )
    pending = {f"40_{i}": JobState(f"40_{i}", "PENDING") for i in range(2)}
    facts = {
        "LedgerEntries": {"path=/l": Ledger(records)},
        "JobStates": {
            "job_ids=('40_1',), scheduler=slurm": pending,
            "job_ids=('40',), scheduler=slurm": {"40": JobState("40", "PENDING")},
        },
        "ActiveJobs": {"scheduler=slurm": {"40": name}},
    }
    commands, _ = run_op(job_cancelled, facts, run_key="lr.1", ledger="/l", scheduler="slurm")
    assert commands == ["scancel 40_1"]
    commands, _ = run_op(job_cancelled, facts, run_key="lr", ledger="/l", scheduler="slurm")
    assert commands == ["scancel 40"]


def test_array_elements_are_asked_through_their_array_too():
    from isaac_deploy.facts.scheduler import JobStates

    command = JobStates().command("slurm", ("40_1", "40_3", "7")).get_raw_value()
    assert "-j 40_1,40_3,7,40 " in command and "for j in 40_1 40_3 7 40 ;" in command
    assert "40," not in JobStates().command("slurm", ("40",)).get_raw_value()


def test_the_sweep_reaches_pyinfra_as_one_json_data_item(tmp_path):
    from isaac_deploy.cli.project import Layout

    (tmp_path / "inventories").mkdir()
    (tmp_path / "inventories" / "cluster.py").write_text("")
    args = cli("sweep", "--grid", "seed=1,2", "--run-key", "lr", "--", "--task", "$(x) y")
    argv = cluster_commands.pyinfra_argv(args, Layout(tmp_path, tmp_path))
    data = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--data")
    assert json.loads(data["isaac_sweep"]) == {"grid": {"seed": ["1", "2"]}}
    assert json.loads(data["isaac_job_args"]) == ["--task", "$(x) y"]
    assert json.loads(data["isaac_run_key"]) == "lr" and argv[-1].endswith("deploy/cluster.py")
