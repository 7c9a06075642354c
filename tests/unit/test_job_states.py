"""JobStates: Slurm (captured from the lab's slurmctld) and PBS Pro (qstat -F json) outputs."""

from __future__ import annotations

import subprocess

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


def test_pbs_qstat_json():
    states = parse_qstat("\n".join(fixture_lines("jobs/qstat-pbspro.json")))
    summary = {j: (s.state, s.exit_code) for j, s in states.items() if "." in j}
    assert summary == {
        "1201.pbs01": ("RUNNING", None),
        "1202.pbs01": ("PENDING", None),
        "1203.pbs01": ("COMPLETED", 0),
        "1204.pbs01": ("FAILED", 3),
        "1205.pbs01": ("FAILED", -11),
        "1206.pbs01": ("PENDING", None),  # -11: PBS could not run it
        "1207.pbs01": ("CANCELLED", 128 + 15),  # 271 = 256 + SIGTERM: qdel
    }
    assert states["1204"].state == "FAILED"  # the short id works too
    assert parse_qstat("qstat: Unknown Job Id 9.pbs01") == {}


def test_commands_quote_and_drop_bad_ids():
    slurm = JobStates().command("slurm", ("12", "13; rm -rf /")).get_raw_value()
    assert "-j 12 " in slurm and "rm -rf" not in slurm
    pbs = JobStates().command("pbs", ("1201.pbs01",)).get_raw_value()
    assert pbs.startswith("echo @@isaac:qstat; qstat -x -f -F json 1201.pbs01")


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


def test_active_jobs_slurm_and_pbs_listings_with_their_names():
    fact = ActiveJobs()
    slurm = ["@@isaac:squeue", "12|ext.run-a", "13_4|array job", "14_[5-9]|x|y", "@@isaac:ok"]
    assert fact.process(slurm) == {"12": "ext.run-a", "13": "array job", "14": "x|y"}
    pbs = ["@@isaac:qstat", *fixture_lines("jobs/qstat-pbspro.json"), "@@isaac:ok"]
    assert fact.process(pbs) == {"1201": "run-1", "1202": "run-2", "1206": "run-6"}
    assert fact.process(["@@isaac:squeue", "@@isaac:ok"]) == {}
    assert fact.process(["@@isaac:qstat", "@@isaac:ok"]) == {}  # qselect: no job
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


def test_active_pbs_jobs_are_the_users_queued_ones_from_qselect(tmp_path):
    """qselect lists the user's unfinished jobs, qstat gives their names; no job: no qstat."""
    for tool, text in (
        ("qselect", '#!/bin/sh\necho "$*" >> %(log)s; cat %(dir)s/ids\n'),
        ("qstat", '#!/bin/sh\necho "$*" >> %(log)s; cat %(json)s\n'),
    ):
        path = tmp_path / tool
        path.write_text(
            text
            % {
                "log": tmp_path / "log",
                "dir": tmp_path,
                "json": FIXTURES / "jobs/qstat-pbspro.json",
            }
        )
        path.chmod(0o755)
    command = ActiveJobs().command("pbs").get_raw_value()
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    (tmp_path / "ids").write_text("")
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, env=env)
    assert ActiveJobs().process(out.stdout.splitlines()) == {}
    (tmp_path / "ids").write_text("1201.pbs01\n1202.pbs01\n1206[].pbs01\n")
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, env=env)
    assert ActiveJobs().process(out.stdout.splitlines())["1202"] == "run-2"
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    assert (tmp_path / "log").read_text().splitlines() == [
        f"-u {user}",
        f"-u {user}",
        "-x -f -F json 1201.pbs01 1202.pbs01 1206[].pbs01",
    ]


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
