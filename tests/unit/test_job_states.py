"""JobStates: Slurm (captured from the lab's slurmctld) and PBS Pro / OpenPBS (qstat -f -F json,
one job per call: tests/fixtures/jobs/pbs/README.md says where each answer comes from)."""

from __future__ import annotations

import json
import subprocess

import pytest

from isaac_deploy.facts.scheduler import ActiveJobs, JobState, JobStates, parse_qstat, parse_slurm
from isaac_deploy.model.ledger import Entry
from isaac_deploy.policy.retention import keep_reason, unrecorded_reason
from tests.helpers import FIXTURES, fixture_lines


def test_slurm_scontrol_captured_in_the_lab():
    states = parse_slurm([], fixture_lines("jobs/scontrol-lab.txt"))
    assert {j: (s.state, s.exit_code, s.active) for j, s in states.items()} == {
        "6": ("CANCELLED", 128 + 15, False),  # scancel: signal 15
        "8": ("COMPLETED", 0, False),
        "9": ("FAILED", 5, False),
        "10": ("RUNNING", 0, True),
    }


def test_slurm_sacct_for_older_jobs_and_signals():
    states = parse_slurm(
        [
            "41|COMPLETED|0:0",
            "42|CANCELLED by 1000|0:15",
            "43|TIMEOUT|0:1",
            "44|OUT_OF_MEMORY|0:125",
            "garbage",
            "45|PENDING|0:0",
        ],
        [],
    )
    assert states["41"].state == "COMPLETED" and states["42"].state == "CANCELLED"
    assert states["42"].exit_code == 128 + 15 and states["43"].state == "TIMEOUT"
    assert states["44"].state == "FAILED" and states["45"].active


PBS = FIXTURES / "jobs" / "pbs"


def qstat_answer(name: str) -> str:
    return (PBS / name).read_text()


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("qstat-x-running.json", ("1201.pbs01", "RUNNING", None)),  # no Exit_status yet
        ("qstat-x-queued.json", ("1202.pbs01", "PENDING", None)),
        ("qstat-x-held.json", ("1206.pbs01", "PENDING", None)),
        ("qstat-x-finished-0.json", ("1203.pbs01", "COMPLETED", 0)),
        ("qstat-x-finished-3.json", ("1204.pbs01", "FAILED", 3)),
        ("qstat-x-failed-to-start.json", ("1205.pbs01", "FAILED", -1)),  # JOB_EXEC_FAIL1
        ("qstat-x-walltime.json", ("1207.pbs01", "TIMEOUT", -29)),  # JOB_EXEC_KILL_WALLTIME
        ("qstat-x-mem.json", ("1208.pbs01", "CANCELLED", -27)),  # JOB_EXEC_KILL_MEM
        ("qstat-x-qdel-running.json", ("1209.pbs01", "CANCELLED", 128 + 15)),  # 271: SIGTERM
        ("qstat-x-qdel-queued.json", ("1210.pbs01", "CANCELLED", None)),  # never ran
        # older PBS Pro: the wall-time kill is a SIGTERM (271), its walltime over the limit
        ("qstat-x-walltime-signal-pbspro19.json", ("1211.pbs01", "TIMEOUT", 128 + 15)),
    ],
)
def test_pbs_states_from_qstat_json(fixture, expected):
    states = parse_qstat(qstat_answer(fixture))
    job = expected[0]
    assert set(states) == {job, job.split(".")[0]}  # the full id and the bare number
    state = states[job]
    assert (state.job_id, state.state, state.exit_code) == expected
    assert state.name == f"ext_template.run-{int(job[:4]) - 1200}.20261124T060000Z"
    assert state.active == (expected[1] in ("PENDING", "RUNNING"))


def test_pbs_errors_are_no_jobs():
    for name in ("qstat-unknown.txt", "qstat-finished-without-x.txt", "qstat-x-no-history.txt"):
        assert parse_qstat(qstat_answer(name)) == {}


def test_commands_quote_and_drop_bad_ids():
    slurm = JobStates().command("slurm", ("12", "13; rm -rf /")).get_raw_value()
    assert "-j 12 " in slurm and "rm -rf" not in slurm
    pbs = JobStates().command("pbs", ("1201.pbs01", "1202; rm -rf /")).get_raw_value()
    assert pbs.startswith("set -f; x=-x; for j in 1201.pbs01 ; do ")
    assert 'qstat $x -f -F json "$j"' in pbs and "rm -rf" not in pbs
    assert JobStates().command("pbs", ("$(reboot)",)).get_raw_value() == "true"


def fake_pbs(tmp_path, history: bool = True) -> dict[str, str]:
    """qstat and qselect stand-ins answering from the fixtures: as the affected OpenPBS builds,
    qstat answers the first of several ids only; without job history, -x is refused (both);
    every call is logged. Returns the environment to run a command with."""
    log, answers = tmp_path / "calls", tmp_path / "answers"
    answers.mkdir()
    for fixture in PBS.glob("qstat-x-*.json"):
        job = next(iter(json.loads(fixture.read_text())["Jobs"]))
        (answers / job).write_text(fixture.read_text())
    no_history = (
        ""
        if history
        else (
            '[ "$1" = -x ] && { echo "$tool: PBS is not configured to maintain job history" >&2;'
            " exit 36; }\n"
        )
    )
    script = f"""#!/bin/sh
tool=$(basename "$0")
echo "$tool $*" >> {log}
{no_history}case $tool in
  qselect) cat {tmp_path}/ids ;;
  qstat)
    for a in "$@"; do case $a in -*|json) ;; *) job=$a; break ;; esac; done
    if [ ! -f "{answers}/$job" ]; then echo "qstat: Unknown Job Id $job" >&2; exit 153; fi
    if [ "$1" != -x ] && grep -q '"job_state":.*"F"' "{answers}/$job"; then
      echo "qstat: $job Job has finished, use -x or -H to obtain historical job information" >&2
      exit 35
    fi
    cat "{answers}/$job" ;;
esac
"""
    for tool in ("qstat", "qselect"):
        (tmp_path / tool).write_text(script)
        (tmp_path / tool).chmod(0o755)
    (tmp_path / "ids").write_text("")
    return {"PATH": f"{tmp_path}:/usr/bin:/bin"}


def run_fact(fact, env: dict, **kwargs):
    command = fact.command(**kwargs).get_raw_value()
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return fact.process(out.stdout.splitlines())


SIX = ("1201.pbs01", "1202.pbs01", "1203.pbs01", "1204.pbs01", "1207.pbs01", "1209.pbs01")


def test_six_pbs_jobs_each_get_their_own_state(tmp_path):
    """One qstat per job: a server that answers the first of several ids only cannot hide
    the others (openpbs/openpbs#2672)."""
    env = fake_pbs(tmp_path)
    states = run_fact(JobStates(), env, scheduler="pbs", job_ids=(*SIX, "1299.pbs01"))
    assert {job: states[job].state for job in SIX} == {
        "1201.pbs01": "RUNNING",
        "1202.pbs01": "PENDING",
        "1203.pbs01": "COMPLETED",
        "1204.pbs01": "FAILED",
        "1207.pbs01": "TIMEOUT",
        "1209.pbs01": "CANCELLED",
    }
    assert "1299.pbs01" not in states  # unknown to the server: absent (the ledger says ENDED)
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [f"qstat -x -f -F json {job}" for job in (*SIX, "1299.pbs01")]


def test_without_job_history_the_jobs_are_asked_without_x(tmp_path):
    """-x is refused once; the rest are asked without it; finished jobs are then unknown."""
    env = fake_pbs(tmp_path, history=False)
    states = run_fact(JobStates(), env, scheduler="pbs", job_ids=SIX[:4])
    assert {job: s.state for job, s in states.items() if "." in job} == {
        "1201.pbs01": "RUNNING",
        "1202.pbs01": "PENDING",
    }
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [
        "qstat -x -f -F json 1201.pbs01",
        "qstat -f -F json 1201.pbs01",
        *(f"qstat -f -F json {job}" for job in SIX[1:4]),
    ]


def test_slurm_command_runs_here_without_slurm():
    """No scheduler on this host: the command still succeeds and the fact is empty."""
    out = subprocess.run(
        ["/bin/sh", "-c", JobStates().command("slurm", ("1",)).get_raw_value()],
        capture_output=True,
        text=True,
        env={"PATH": "/nonexistent"},
    )
    assert out.returncode == 0  # a forgotten or unknown job must not fail the fact
    assert JobStates().process(out.stdout.splitlines()) == {}


def test_active_jobs_slurm_listing_with_their_names():
    fact = ActiveJobs()
    slurm = ["@@isaac:squeue", "12|ext.run-a", "13_4|array job", "14_[5-9]|x|y", "@@isaac:ok"]
    assert fact.process(slurm) == {"12": "ext.run-a", "13": "array job", "14": "x|y"}
    assert fact.process(["@@isaac:squeue", "@@isaac:ok"]) == {}
    assert fact.process(["@@isaac:squeue", "squeue: error: slurm_load_jobs error"]) is None


def test_active_jobs_commands_fail_closed_without_a_scheduler():
    for scheduler in ("slurm", "pbs"):
        command = ActiveJobs().command(scheduler).get_raw_value()
        out = subprocess.run(
            ["/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        assert out.returncode == 0 and ActiveJobs().process(out.stdout.splitlines()) is None


@pytest.mark.parametrize("history", [True, False])
def test_active_pbs_jobs_are_the_users_from_qselect_each_named_by_qstat(tmp_path, history):
    """qselect lists the user's unfinished jobs (no -x: also without job history), qstat gives
    each one's name, one job per call; a job that ended in between is left out; no job, no
    qstat."""
    env = fake_pbs(tmp_path, history=history)
    assert run_fact(ActiveJobs(), env, scheduler="pbs") == {}
    (tmp_path / "ids").write_text("1201.pbs01\n1202.pbs01\n1206.pbs01\n1203.pbs01\n")
    assert run_fact(ActiveJobs(), env, scheduler="pbs") == {
        "1201": "ext_template.run-1.20261124T060000Z",
        "1202": "ext_template.run-2.20261124T060000Z",
        "1206": "ext_template.run-6.20261124T060000Z",
    }
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    assert (tmp_path / "calls").read_text().splitlines() == [
        f"qselect -u {user}",
        f"qselect -u {user}",
        *(f"qstat -f -F json {job}" for job in ("1201.pbs01", "1202.pbs01", "1206.pbs01")),
        "qstat -f -F json 1203.pbs01",
    ]


def test_an_active_pbs_job_qstat_cannot_describe_means_the_scheduler_could_not_be_asked():
    """qselect listed it; qstat failed for another reason than "unknown" or "finished": its name
    is unknown, so nothing may be decided by names."""
    lines = ["@@isaac:qstat 12.pbs01", "qstat: cannot connect to server pbs01 (errno=111)"]
    assert ActiveJobs().process([*lines, "@@isaac:ok"]) is None
    gone = ["@@isaac:qstat 12.pbs01", "qstat: Unknown Job Id 12.pbs01", "@@isaac:ok"]
    assert ActiveJobs().process(gone) == {}


def test_keep_reason():
    states = {"1": JobState("1", "COMPLETED", 0), "2": JobState("2", "PENDING")}

    def entry(job: str, name: str | None = None, status: str = "submitted") -> Entry:
        return Entry(run_key="r", job_id=job, scheduler="slurm", job_name=name, status=status)

    assert keep_reason([], {}, None) is None  # no jobs: nothing to wait for
    assert keep_reason([entry("1")], states, {}) is None
    assert keep_reason([entry("9")], states, {}) is None  # forgotten by the scheduler: ended
    assert keep_reason([entry("1"), entry("2")], states, {}) == "job 2 is PENDING"
    assert keep_reason([entry("9")], states, {"9": "x"}) == "job 9 is queued or running"
    assert keep_reason([entry("1.pbs01")], {}, {"1": ""}) == "job 1.pbs01 is queued or running"
    assert "could not be asked" in keep_reason([entry("1")], states, None)
    # a submission whose job id was never recorded: its job is found by its name
    pending = entry("", "ext.r", "pending")
    assert keep_reason([pending], {}, {"5": "ext.r"}) == "job 5 (ext.r) is queued or running"
    assert keep_reason([pending], {}, {"5": "ext.other"}) is None
    # ledger or not: active jobs whose names start with the prefix keep the files
    assert keep_reason([], {}, {"6": "ext.s.1"}, "ext.s.") == "job 6 (ext.s.1) is queued or running"
    assert keep_reason([], {}, {"6": "ext.s-2.1"}, "ext.s.") is None
    assert "could not be asked" in keep_reason([], {}, None, "ext.s.")


def test_unrecorded_jobs_of_the_extension_keep_everything():
    known = [
        Entry(run_key="a", job_id="", scheduler="slurm", job_name="ext.a", status="pending"),
        Entry(run_key="c", job_id="4.pbs01", scheduler="pbs"),  # recorded before job names
    ]
    assert unrecorded_reason({"1": "ext.a", "2": "other.b", "4": "ext.c"}, "ext.", known) is None
    assert unrecorded_reason({"3": "ext.b"}, "ext.", known) == (
        "job 3 (ext.b) is queued or running and not in the ledger"
    )
    assert "could not be asked" in unrecorded_reason(None, "ext.", known)


def test_qstat_json_that_does_not_parse_is_an_error_with_the_raw_text():
    import pytest
    from pyinfra.api.exceptions import FactProcessError

    broken = '{"Jobs": {"12.pbs01": {"job_state": "R", "Variable_List": "A=\\x"}'
    with pytest.raises(
        FactProcessError, match=r"qstat answered JSON that does not parse .*12\.pbs01"
    ):
        parse_qstat(broken)
