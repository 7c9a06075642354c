"""The submission ledger (records, unreadable lines, pending submissions) and the submission
operation: its commands, and those commands run by the shell against stand-ins for the
scheduler's tools (sbatch/squeue/sacct, qsub/qselect) and a real ledger file under flock."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from isaac_deploy.facts.scheduler import JobState
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.ledger import (
    Entry,
    Ledger,
    check_run_key,
    listing,
    parse_ledger,
    search_start,
    submitted,
    unresolved,
)
from isaac_deploy.operations import scheduler
from isaac_deploy.operations.scheduler import job_cancelled, job_submitted
from isaac_deploy.render.job_script import job_name
from isaac_deploy.render.ledger_table import table
from tests.helpers import run_op
from tests.unit.test_envfiles import HOSTILE

USER = pwd.getpwuid(os.getuid()).pw_name  # what `id -un` answers
# arguments that look like ledger fields must stay arguments
ARGS = (*HOSTILE, "%s %d %%", "100%", '"run_key": "run-1", "job_id": "666"', 'x\\"y')
ENTRY = Entry(
    run_key="run-1",
    job_id="",
    scheduler="slurm",
    commit="abc",
    snapshot="/s/run-1",
    args=ARGS,
    time="2026-11-24T06:00:00Z",
    job_name="ext.run-1.20261124T060000Z",
)
PLANNED = "2026-11-24T06:00:{:02d}Z"  # the plan time of the n-th roll-out in a test


def name(n: int, run: str = "run-1") -> str:
    """The job name of the n-th roll-out of ``run``."""
    return job_name("ext", run, PLANNED.format(n))


def entry(run: str, job: str, status: str = "submitted", **more) -> Entry:
    return Entry(run_key=run, job_id=job, scheduler="slurm", status=status, **more)


# ------------------------------------------------------------------ the ledger's lines


def break_ledger(fake: Path, ledger: Path) -> None:
    """After the next submission the ledger cannot be written (a folder stands in its place)."""
    (fake / "after").write_text(f"mv {ledger} {ledger}.saved && mkdir {ledger}\n")


def mend_ledger(fake: Path, ledger: Path) -> None:
    """The ledger as it was before :func:`break_ledger`, writable again."""
    (fake / "after").unlink()
    ledger.rmdir()
    Path(f"{ledger}.saved").rename(ledger)


def test_old_lines_parse_as_submitted_records_and_unknown_keys_are_kept():
    old = '{"args": ["a"], "commit": "c", "extra": {}, "image": null, "job_id": "7", "run_key": "r", "scheduler": "slurm", "snapshot": "/s/r", "time": "t"}'
    newer = '{"run_key": "n", "job_id": "8", "scheduler": "pbs", "array": [1, 2]}'
    ledger = parse_ledger([old, newer])
    assert ledger.unreadable == ()
    assert ledger.entries[0] == Entry("r", "7", "slurm", "c", None, "/s/r", ("a",), "t")
    assert ledger.entries[0].status == "submitted" and ledger.entries[1].extra == {"array": [1, 2]}


def test_unreadable_lines_are_reported_with_their_numbers_never_dropped():
    good = entry("r", "1").to_json()
    lines = [
        good,
        '{"run_key": "x", "job_',  # a torn write
        "garbage",
        "",
        '["a list"]',
        '{"run_key": "../up", "job_id": "3", "scheduler": "slurm"}',
        '{"run_key": "r", "job_id": 4, "scheduler": "slurm"}',
        '{"run_key": "r", "job_id": "5", "scheduler": "slurm", "status": "maybe"}',
        good.replace('"1"', '"2"'),
    ]
    ledger = parse_ledger(lines)
    assert [e.job_id for e in submitted(ledger.entries, "r")] == ["1", "2"]
    assert [number for number, _ in ledger.unreadable] == [2, 3, 5, 6, 7, 8]
    assert ledger.unreadable[1] == (3, "garbage")


def test_entry_json_round_trip():
    pending = Entry(**{**ENTRY.__dict__, "status": "pending"})
    assert parse_ledger([json.dumps(json.loads(pending.to_json()))]).entries == (pending,)


def test_a_submission_is_settled_by_its_next_record():
    a_pending = entry("a", "", "pending", job_name="e.a")
    b_pending = entry("b", "", "pending", job_name="e.b")
    records = (
        a_pending,
        entry("a", "1"),
        b_pending,
        entry("c", "", "pending"),
        entry("c", "", "refused"),
        entry("d", "", "pending"),
        entry("d", "", "pending", time="later"),
    )
    assert unresolved(records, "a") is None and submitted(records, "a") == [entry("a", "1")]
    assert unresolved(records, "b") == b_pending and submitted(records, "b") == []
    assert unresolved(records, "c") is None  # refused: the scheduler took no job
    assert unresolved(records, "d").time == "later"
    assert unresolved(records, "nothing") is None
    assert listing(records) == [
        entry("a", "1"),
        b_pending,
        entry("c", "", "refused"),
        entry("d", "", "pending", time="later"),
    ]


def test_the_scheduler_history_is_searched_from_the_day_before():
    assert search_start(["2026-11-24T06:00:00Z", "2026-11-20T23:59:00Z", "x"]) == "2026-11-19"
    now = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)
    assert search_start(["", "garbage"], now) == "2026-11-23"


@pytest.mark.parametrize("bad", ["", "has space", "../up", "a" * 65, "-leading"])
def test_run_keys(bad):
    with pytest.raises(ConfigError, match="run key"):
        check_run_key(bad)
    assert check_run_key("2026-11-24_lr-3e-4") == "2026-11-24_lr-3e-4"


# ------------------------------------------------------------------ the operation's commands


def submit_op(ledger: str, records: tuple = (), **kwargs) -> tuple[list, object]:
    values = {"entry": ENTRY, "script": "#!/bin/bash\n", "ledger": ledger, **kwargs}
    return run_op(job_submitted, {"LedgerEntries": {f"path={ledger}": Ledger(records)}}, **values)


def test_submission_is_one_command_under_the_ledgers_lock():
    commands, _ = submit_op("/h/.isaac-deploy/ledger.jsonl", directories=("/logs/run 1",))
    mkdir, submit = commands
    assert mkdir == "mkdir -p /s/run-1 /h/.isaac-deploy '/logs/run 1'"
    assert submit.startswith(
        "flock -E 75 -w 300 /h/.isaac-deploy/ledger.jsonl.lock sh -c 'id_ok='\"'\"'[0-9]+'"
    )
    assert "sbatch --parsable" in submit and "qsub" not in submit
    assert (
        " /h/.isaac-deploy/ledger.jsonl run-1 ext.run-1.20261124T060000Z /s/run-1 '#!/bin/bash\n' 0 "
        in submit
    )
    assert '\'"\'"\'"status": "pending"' not in submit  # the record is one quoted word
    assert submit.endswith(
        " 2026-11-23 || { rc=$?; [ $rc != 75 ] || echo 'error: another roll-out held "
        "/h/.isaac-deploy/ledger.jsonl.lock for 300 s: nothing submitted, run again' >&2; "
        "exit $rc; }"
    )
    pbs, _ = submit_op("/l", entry=Entry(**{**ENTRY.__dict__, "scheduler": "pbs"}))
    assert "qsub" in pbs[1] and "qselect -x" in pbs[1] and "sbatch" not in pbs[1]


def test_the_same_run_key_submits_nothing_unless_told():
    commands, host = submit_op("/l", (entry("run-1", "77"),))
    assert commands == [] and host.noops == ["run run-1 was submitted already (job 77)"]
    commands, _ = submit_op("/l", (entry("run-1", "77"),), resubmit=True)
    assert len(commands) == 2 and ' 1 \'{"args": ' in commands[1]


def test_a_pending_submission_is_settled_on_the_login_node_and_said_with_the_plan(caplog):
    pending = Entry(**{**ENTRY.__dict__, "status": "pending", "time": "2026-11-01T00:00:00Z"})
    with caplog.at_level("INFO", logger="pyinfra"):
        submit_op("/l", (pending,), executing=False)
        commands, _ = submit_op("/l", (pending,))  # executing: said with the plan already
        submit_op("/l", (pending,), checking=False)  # -y: no plan, said when it executes
    said = (
        "[test] run run-1 has a submission without a job id: the job named "
        "ext.run-1.20261124T060000Z is recorded if the scheduler has it, before anything is "
        "submitted"
    )
    assert [r.getMessage() for r in caplog.records] == [said, said]
    # the scheduler's history is searched from the day before the pending record
    assert len(commands) == 2 and commands[1].endswith(
        "2026-10-31 || { rc=$?; [ $rc != 75 ] "
        "|| echo 'error: another roll-out held /l.lock for 300 s: nothing submitted, run "
        "again' >&2; exit $rc; }"
    )


def test_unreadable_lines_are_reported_once(caplog):
    garbage = parse_ledger([entry("run-1", "77").to_json(), "garbage \x1b[31m"])
    facts = {"LedgerEntries": {"path=/l": garbage}}
    with caplog.at_level("WARNING", logger="pyinfra"):
        commands, host = run_op(
            job_submitted, facts, executing=False, entry=ENTRY, script="", ledger="/l"
        )
        run_op(job_submitted, facts, entry=ENTRY, script="", ledger="/l")  # executing
    assert commands == [] and host.noops == ["run run-1 was submitted already (job 77)"]
    assert [r.getMessage() for r in caplog.records] == [
        "[test] /l line 2 is not a ledger entry (left out): garbage \\x1b[31m"
    ]


def test_an_entry_without_a_job_name_is_refused():
    with pytest.raises(ConfigError, match="job name: the ledger entry of run run-1 names no job"):
        submit_op("/l", entry=Entry(**{**ENTRY.__dict__, "job_name": None}))


# ------------------------------------------------------------------ run by the shell

FAKE_SCHEDULER = r"""#!/bin/sh
# a scheduler stand-in: jobs are lines "<id> <name>" in $FAKE/jobs; every call is logged
tool=$(basename "$0")
echo "$tool $*" >> "$FAKE/calls"
case $tool in
  sbatch|qsub)
    [ -f "$FAKE/sleep" ] && sleep "$(cat "$FAKE/sleep")"
    if [ -f "$FAKE/answer" ]; then cat "$FAKE/answer"; exit 0; fi
    file=$(for a in "$@"; do :; done; echo "$a")
    name=$(sed -n -e 's/^#SBATCH --job-name=//p' -e 's/^#PBS -N //p' "$file")
    id=$(( $(wc -l < "$FAKE/jobs") + 4242 ))
    echo "$id $name" >> "$FAKE/jobs"
    [ -f "$FAKE/after" ] && sh "$FAKE/after"
    if [ "$tool" = qsub ]; then echo "$id.labpbs"; else echo "$id"; fi ;;
  squeue|sacct|qselect)
    [ -f "$FAKE/down" ] && { echo "$tool: error: cannot reach the controller" >&2; exit 1; }
    if [ -f "$FAKE/nohistory" ] && [ "$1" = -x ]; then
      echo "qselect: PBS is not configured to maintain job history" >&2; exit 36
    fi
    name=$(printf '%s\n' "$@" | grep -A1 -x -e -n -e --name -e -N | tail -n 1)
    suffix=$([ "$tool" = qselect ] && echo .labpbs)
    awk -v name="$name" -v s="$suffix" '$2 == name { print $1 s }' "$FAKE/jobs" ;;
esac
"""


@pytest.fixture()
def login(tmp_path):
    """A login node's shell: the scheduler stand-ins on PATH, a ledger, a snapshot folder."""
    fake = tmp_path / "fake"
    (fake / "bin").mkdir(parents=True)
    (fake / "jobs").write_text("")
    for tool in ("sbatch", "squeue", "sacct", "qsub", "qselect"):
        (fake / "bin" / tool).write_text(FAKE_SCHEDULER)
        (fake / "bin" / tool).chmod(0o755)
    ledger = tmp_path / "home" / ".isaac-deploy" / "ledger.jsonl"
    rollouts = iter(range(1, 60))

    def run(scheduler: str = "slurm", resubmit: bool = False, background: bool = False, **change):
        """The n-th roll-out (its plan time, so its job's name: ``name(n)``)."""
        planned = PLANNED.format(next(rollouts))
        job = Entry(
            **{
                **ENTRY.__dict__,
                "scheduler": scheduler,
                "snapshot": str(tmp_path / "snap"),
                "time": planned,
                "job_name": job_name("ext", change.get("run_key", "run-1"), planned),
                **change,
            }
        )
        directive = "#SBATCH --job-name=" if scheduler == "slurm" else "#PBS -N "
        script = f"#!/bin/sh\n{directive}{job.job_name}\n"
        commands, _ = submit_op(str(ledger), entry=job, script=script, resubmit=resubmit)
        env = {"PATH": f"{fake / 'bin'}:/usr/bin:/bin", "FAKE": str(fake)}
        shell = ["sh", "-c", " && ".join(commands)]
        if background:
            return subprocess.Popen(shell, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return subprocess.run(shell, env=env, capture_output=True, text=True)

    def records() -> Ledger:
        return parse_ledger(ledger.read_text().splitlines() if ledger.is_file() else [])

    def calls(tool: str) -> list[str]:
        path = fake / "calls"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line for line in lines if line.split()[0] == tool]

    return run, records, calls, fake, ledger


def test_a_submission_writes_a_pending_record_then_the_job_id(login, tmp_path):
    run, records, calls, fake, ledger = login
    result = run()
    assert result.returncode == 0 and result.stdout == "submitted job 4242\n", result.stderr
    pending, done = records().entries
    assert (pending.status, pending.job_id) == ("pending", "")
    assert (done.status, done.job_id, done.job_name) == ("submitted", "4242", name(1))
    assert done.args == ARGS and done.commit == "abc" and records().unreadable == ()
    job = tmp_path / "snap" / "job-run-1.sh"
    assert job.read_text() == f"#!/bin/sh\n#SBATCH --job-name={name(1)}\n"
    assert oct(job.stat().st_mode & 0o777) == "0o700" and not list(job.parent.glob("*.tmp"))
    assert calls("sbatch") == [f"sbatch --parsable {job}"] and calls("squeue") == []
    assert (ledger.parent / "ledger.jsonl.lock").exists()


def test_the_decision_is_made_again_under_the_lock(login):
    """The plan saw no record (another terminal submitted since): nothing is submitted."""
    run, records, calls, fake, ledger = login
    assert run().returncode == 0
    again = run()  # its plan-time ledger is empty, as in a terminal that planned before
    assert again.returncode == 0, again.stderr
    assert again.stdout == "run run-1 was submitted already (job 4242): nothing submitted\n"
    assert len(calls("sbatch")) == 1 and len(records().entries) == 2
    assert run(resubmit=True).stdout == "submitted job 4243\n"
    assert [e.job_id for e in submitted(records().entries, "run-1")] == ["4242", "4243"]


def test_two_concurrent_submissions_of_one_run_key_make_one_job(login):
    run, records, calls, fake, ledger = login
    (fake / "sleep").write_text("1")
    first, second = run(background=True), run(background=True)
    outputs = sorted(p.communicate()[0].decode() for p in (first, second))
    assert first.returncode == 0 and second.returncode == 0
    assert outputs == [
        "run run-1 was submitted already (job 4242): nothing submitted\n",
        "submitted job 4242\n",
    ]
    assert (fake / "jobs").read_text() in (f"4242 {name(1)}\n", f"4242 {name(2)}\n")
    assert [e.job_id for e in submitted(records().entries, "run-1")] == ["4242"]


def test_a_lost_record_is_settled_from_the_scheduler_by_the_job_name(login):
    """The ledger cannot be written after sbatch: the job stays unrecorded; the next roll-out
    submits nothing and records the job the scheduler knows by the run's name."""
    run, records, calls, fake, ledger = login
    run(run_key="other")  # another run's job is not this run's
    break_ledger(fake, ledger)
    lost = run()
    assert lost.returncode == 1 and lost.stderr.endswith(
        f"error: job 4243 was submitted but the ledger {ledger} cannot be written: the next "
        f"roll-out records it (it finds the job by its name {name(2)})\n"
    )
    mend_ledger(fake, ledger)
    assert unresolved(records().entries, "run-1") is not None
    settled = run(args=("other", "arguments"))  # the record is the pending one's, not these
    assert settled.returncode == 0, settled.stderr
    assert settled.stdout == (
        f"recorded job 4243 of run run-1, found by its name {name(2)}: nothing submitted\n"
    )
    [job] = submitted(records().entries, "run-1")
    assert (job.job_id, job.args, job.status) == ("4243", ARGS, "submitted")
    assert unresolved(records().entries, "run-1") is None
    assert len(calls("sbatch")) == 2 and calls("squeue") == [
        f"squeue -h -t all -u {USER} -n {name(2)} -o %i"
    ]
    assert calls("sacct")[0].endswith(f"--name {name(2)} -S 2026-11-23 -o JobID")
    assert run().stdout == "run run-1 was submitted already (job 4243): nothing submitted\n"


def test_a_lost_resubmission_is_settled_without_taking_the_earlier_job(login):
    run, records, calls, fake, ledger = login
    run()
    break_ledger(fake, ledger)
    assert run(resubmit=True).returncode == 1
    mend_ledger(fake, ledger)
    settled = run(resubmit=True)  # the same command again: no third job
    assert settled.stdout == (
        f"recorded job 4243 of run run-1, found by its name {name(2)}: nothing submitted\n"
    )
    assert len(calls("sbatch")) == 2  # job 4242 has the name of the first roll-out
    assert [e.job_id for e in submitted(records().entries, "run-1")] == ["4242", "4243"]


def test_a_pending_submission_the_scheduler_does_not_know_stops_with_the_fix(login):
    run, records, calls, fake, ledger = login
    ledger.parent.mkdir(parents=True)
    pending = Entry(**{**ENTRY.__dict__, "status": "pending"})
    ledger.write_text(pending.to_json() + "\n")
    result = run()
    assert result.returncode == 1 and result.stderr == (
        "error: run run-1 has a submission without a job id and sbatch knows no job named "
        "ext.run-1.20261124T060000Z: if none ran, submit it again with --data "
        "isaac_resubmit=1\n"
    )
    assert calls("sbatch") == [] and len(records().entries) == 1
    (fake / "down").write_text("")
    down = run(resubmit=True)
    assert down.returncode == 1 and calls("sbatch") == []
    assert down.stderr.endswith(
        "error: sbatch could not be asked for the jobs named ext.run-1.20261124T060000Z: "
        "nothing submitted\n"
    )
    (fake / "down").unlink()
    assert run(resubmit=True).stdout == "submitted job 4242\n"


def test_torn_lines_are_left_out_by_the_shell_and_reported(login):
    """A torn pending line (the disk filled while it was written) is no submission."""
    run, records, calls, fake, ledger = login
    ledger.parent.mkdir(parents=True)
    torn = Entry(**{**ENTRY.__dict__, "status": "pending"}).to_json()[:-40]
    ledger.write_text(torn + "\n")
    assert run().stdout == "submitted job 4242\n"
    assert records().unreadable == ((1, torn),)


@pytest.mark.parametrize(
    ("scheduler", "answer", "job_id"),
    [
        ("slurm", "4242", "4242"),
        ("slurm", "4242;cluster-a", "4242"),
        ("slurm", "sbatch: warning: memory not set, using default\n4243", "4243"),
        ("pbs", "1201.pbs-server", "1201.pbs-server"),
        ("slurm", "sbatch: error: Batch job submission failed", None),
        ("slurm", "", None),
        ("pbs", "qsub: would block", None),
    ],
)
def test_the_scheduler_answer_is_a_job_id_or_an_error_with_its_text(
    login, scheduler, answer, job_id
):
    """The ledger gets the id from the answer's last line; an answer without one is an error
    quoting it, and, the scheduler knowing no job of the name, the submission is refused."""
    run, records, calls, fake, ledger = login
    (fake / "answer").write_text(answer + "\n")
    result = run(scheduler)
    *_, last = records().entries
    if job_id is None:
        tool = "sbatch" if scheduler == "slurm" else "qsub"
        assert result.returncode == 1
        assert result.stderr == f"error: {tool} answered no job id: {answer}\n"
        assert (last.status, last.job_id) == ("refused", "")
        assert unresolved(records().entries, "run-1") is None
    else:
        assert result.returncode == 0, result.stderr
        assert (last.status, last.job_id) == ("submitted", job_id)


def test_a_job_taken_although_the_submission_failed_is_recorded(login):
    """sbatch timed out talking to the controller, which queued the job all the same."""
    run, records, calls, fake, ledger = login
    (fake / "answer").write_text("sbatch: error: Socket timed out on send/recv operation\n")
    (fake / "jobs").write_text(f"777 {name(1)}\n")
    result = run()
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "sbatch answered no job id (sbatch: error: Socket timed out on send/recv operation) "
        f"but job 777 has the name {name(1)}: recorded\n"
    )
    assert [e.job_id for e in submitted(records().entries, "run-1")] == ["777"]


def test_pbs_jobs_are_found_by_name_with_qselect(login):
    run, records, calls, fake, ledger = login
    break_ledger(fake, ledger)
    assert run("pbs").returncode == 1
    mend_ledger(fake, ledger)
    settled = run("pbs")
    assert "recorded job 4242.labpbs of run run-1" in settled.stdout, settled.stderr
    assert calls("qselect") == [f"qselect -x -u {USER} -N {name(1)}"]
    assert [e.job_id for e in submitted(records().entries, "run-1")] == ["4242.labpbs"]


def test_a_pbs_server_without_job_history_is_asked_for_its_active_jobs(login):
    """qselect -x is refused where the server keeps no job history (PBSE_JOBHISTNOTSET): the job
    is looked up among the active ones; any other failure still means "could not be asked"."""
    run, records, calls, fake, ledger = login
    (fake / "nohistory").write_text("")
    break_ledger(fake, ledger)
    assert run("pbs").returncode == 1
    mend_ledger(fake, ledger)
    settled = run("pbs")
    assert "recorded job 4242.labpbs of run run-1" in settled.stdout, settled.stderr
    assert calls("qselect") == [
        f"qselect -x -u {USER} -N {name(1)}",
        f"qselect -u {USER} -N {name(1)}",
    ]
    (fake / "down").write_text("")
    break_ledger(fake, ledger)
    assert run("pbs", run_key="run-2").returncode == 1
    mend_ledger(fake, ledger)
    refused = run("pbs", run_key="run-2")
    assert refused.returncode == 1 and "qsub could not be asked" in refused.stderr


def test_a_roll_out_waits_for_the_lock_then_says_who_holds_it(login, monkeypatch):
    run, records, calls, fake, ledger = login
    ledger.parent.mkdir(parents=True)
    monkeypatch.setattr(scheduler, "LOCK_WAIT", 1)
    holder = subprocess.Popen(["flock", f"{ledger}.lock", "sleep", "5"])
    try:
        time.sleep(0.2)
        result = run()
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 75 and result.stderr == (
        f"error: another roll-out held {ledger}.lock for 1 s: nothing submitted, run again\n"
    )
    assert calls("sbatch") == [] and records().entries == ()


# ------------------------------------------------------------------ listing and cancel


def test_table_shows_states_pending_and_refused_submissions_and_quoted_arguments():
    entries = [
        Entry(
            run_key="a",
            job_id="1",
            scheduler="slurm",
            commit="c1",
            args=("--x", "a b"),
            time="2026-11-24T06:00:00Z",
        ),
        Entry(run_key="b", job_id="2", scheduler="slurm"),
        Entry(run_key="c", job_id="3", scheduler="slurm"),
        Entry(run_key="d", job_id="4", scheduler="slurm"),
        Entry(run_key="e", job_id="", scheduler="slurm", status="pending", job_name="x.e"),
        Entry(run_key="f", job_id="", scheduler="slurm", status="refused"),
    ]
    states = {"1": JobState("1", "FAILED", 2), "2": JobState("2", "RUNNING", 0)}
    lines = table(entries, states, {"2": "x.b", "3": "x.c"})
    assert lines[0].split() == ["RUN", "KEY", "JOB", "STATE", "SUBMITTED", "COMMIT", "ARGUMENTS"]
    assert lines[1].split() == [
        "a",
        "1",
        "FAILED",
        "(2)",
        "2026-11-24T06:00:00Z",
        "c1",
        "--x",
        "'a",
        "b'",
    ]
    assert [line.split()[1:3] for line in lines[2:]] == [
        ["2", "RUNNING"],
        ["3", "ACTIVE"],
        ["4", "ENDED"],
        ["-", "UNRECORDED"],
        ["-", "REFUSED"],
    ]
    assert table(entries[3:4], {}, None)[1].split()[2] == "UNKNOWN"
    assert len({line.index(" 2026") if " 2026" in line else -1 for line in lines}) <= 2  # aligned


def test_cancel_only_active_jobs_of_the_run_and_those_found_by_its_name():
    entries = (
        entry("r", "1"),
        entry("r", "2"),
        entry("r", "3"),
        entry("r", "", "pending", job_name="e.r"),
    )
    states = {"1": JobState("1", "COMPLETED", 0)}
    facts = {
        "LedgerEntries": {"path=/l": Ledger(entries)},
        "JobStates": {
            "job_ids=('1', '2', '3'), scheduler=slurm": states,
            "job_ids=('1', '2', '3'), scheduler=pbs": states,
        },
        "ActiveJobs": {
            "scheduler=slurm": {"2": "e.r", "3": "e.r", "9": "e.other"},
            "scheduler=pbs": {"2": "e.r", "3": "e.r"},
        },
    }
    commands, _ = run_op(job_cancelled, facts, run_key="r", ledger="/l", scheduler="slurm")
    assert commands == ["scancel 2 3"]
    commands, _ = run_op(job_cancelled, facts, run_key="r", ledger="/l", scheduler="pbs")
    assert commands == ["qdel 2 3"]
    facts["ActiveJobs"] = {"scheduler=slurm": {"5": "e.r"}}  # its id never recorded
    commands, _ = run_op(job_cancelled, facts, run_key="r", ledger="/l", scheduler="slurm")
    assert commands == ["scancel 5"]
    facts["ActiveJobs"] = {"scheduler=slurm": {}}
    commands, host = run_op(job_cancelled, facts, run_key="r", ledger="/l", scheduler="slurm")
    assert commands == [] and "no job of run r is queued or running" in host.noops[0]
    commands, _ = run_op(job_cancelled, facts, run_key="other", ledger="/l", scheduler="slurm")
    assert commands == ["echo 'error: no run other in the ledger /l' >&2; exit 1"]
    facts["ActiveJobs"] = {"scheduler=slurm": None}
    commands, _ = run_op(job_cancelled, facts, run_key="r", ledger="/l", scheduler="slurm")
    assert "could not be asked" in commands[0]


def test_long_or_multiline_arguments_stay_on_one_short_row():
    from isaac_deploy.render.ledger_table import ARGS_WIDTH

    long = Entry(
        run_key="r1",
        job_id="7",
        scheduler="slurm",
        args=("--note", "line one\nline two\ttab", "--blob", "x" * 10_000),
    )
    lines = table([long], {}, {})
    assert len(lines) == 2 and "\n" not in lines[1]
    cell = lines[1][lines[0].index("ARGUMENTS") :]
    assert cell.startswith("--note 'line one\\nline two\\ttab' --blo")
    assert " ... " in cell and cell.endswith("xxx") and len(cell) == ARGS_WIDTH
    assert long.args[3] == "x" * 10_000  # the ledger keeps them whole


def test_table_names_the_run_folders_each_job_made():
    entries = [
        Entry(run_key="a", job_id="1", scheduler="slurm"),
        Entry(run_key="a", job_id="2.server", scheduler="pbs"),
        Entry(run_key="b", job_id="3", scheduler="slurm"),
    ]
    records = {
        "a": {"1": ("rsl_rl/e/2026-11-24_06-00-00_one",), "2": ("rsl_rl/e/x\ty", "skrl/e/z")},
        "c": {"3": ("rsl_rl/e/not-b",)},  # another run key's record with the same job id
    }
    lines = table(entries, {}, {}, records)
    assert [line.strip() for line in lines if line.strip().startswith("->")] == [
        "-> logs/rsl_rl/e/2026-11-24_06-00-00_one",
        "-> logs/rsl_rl/e/x\\ty",
        "-> logs/skrl/e/z",
    ]
    assert lines[2].strip() == "-> logs/rsl_rl/e/2026-11-24_06-00-00_one"  # under its job
    assert lines[-1].split()[:2] == ["b", "3"]  # nothing of another run key's record
