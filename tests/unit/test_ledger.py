"""The submission ledger and the submission operation's commands."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from isaac_deploy.facts.scheduler import JobState
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.ledger import (
    Entry,
    Ledger,
    check_run_key,
    entry_line_parts,
    listing,
    parse_ledger,
    submitted,
)
from isaac_deploy.operations.scheduler import job_cancelled, job_submitted
from isaac_deploy.render.ledger_table import table
from tests.helpers import run_op
from tests.unit.test_envfiles import HOSTILE

ENTRY = Entry(
    run_key="run-1",
    job_id="",
    scheduler="slurm",
    commit="abc",
    snapshot="/s/run-1",
    args=tuple(HOSTILE) + ("%s %d %%", "100%"),
)


def test_the_shell_writes_a_valid_line_whatever_the_arguments():
    prefix, suffix = entry_line_parts(ENTRY)
    line = subprocess.run(
        ["bash", "-c", 'id=4242; printf "%s%s%s\\n" "$1" "$id" "$2"', "bash", prefix, suffix],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    [entry] = parse_ledger(line.splitlines()).entries
    assert entry.job_id == "4242" and entry.args == ENTRY.args and entry.commit == "abc"


def test_old_lines_parse_as_submitted_records_and_unknown_keys_are_kept():
    old = '{"args": ["a"], "commit": "c", "extra": {}, "image": null, "job_id": "7", "run_key": "r", "scheduler": "slurm", "snapshot": "/s/r", "time": "t"}'
    newer = '{"run_key": "n", "job_id": "8", "scheduler": "pbs", "array": [1, 2]}'
    ledger = parse_ledger([old, newer])
    assert ledger.unreadable == ()
    assert ledger.entries[0] == Entry("r", "7", "slurm", "c", None, "/s/r", ("a",), "t")
    assert ledger.entries[0].status == "submitted" and ledger.entries[1].extra == {"array": [1, 2]}


def test_unreadable_lines_are_reported_with_their_numbers_never_dropped():
    good = Entry(run_key="r", job_id="1", scheduler="slurm").to_json()
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


def test_the_listing_shows_each_submission_once():
    def entry(run: str, job: str, status: str = "submitted") -> Entry:
        return Entry(run_key=run, job_id=job, scheduler="slurm", status=status)

    records = (
        entry("a", "", "pending"),
        entry("a", "1"),
        entry("b", "", "pending"),
        entry("c", "", "pending"),
        entry("c", "", "refused"),
    )
    assert listing(records) == [
        entry("a", "1"),
        entry("b", "", "pending"),
        entry("c", "", "refused"),
    ]


@pytest.mark.parametrize("bad", ["", "has space", "../up", "a" * 65, "-leading"])
def test_run_keys(bad):
    with pytest.raises(ConfigError, match="run key"):
        check_run_key(bad)
    assert check_run_key("2026-11-24_lr-3e-4") == "2026-11-24_lr-3e-4"


def test_submission_commands():
    commands, _ = run_op(
        job_submitted,
        {"LedgerEntries": {"path=/h/.isaac-deploy/ledger.jsonl": Ledger()}},
        entry=ENTRY,
        script="#!/bin/bash\n",
        ledger="/h/.isaac-deploy/ledger.jsonl",
    )
    assert commands[0] == "mkdir -p /s/run-1 /h/.isaac-deploy"
    assert commands[1] == ("upload", "/s/run-1/job-run-1.sh", "#!/bin/bash\n")
    assert commands[2].startswith(
        "cd /s/run-1 && chmod 700 /s/run-1/job-run-1.sh && out=$( sbatch --parsable /s/run-1/job-run-1.sh )"
    )
    assert commands[2].endswith('>> /h/.isaac-deploy/ledger.jsonl && echo "submitted job $id"')
    pbs = Entry(**{**ENTRY.__dict__, "scheduler": "pbs"})
    commands, _ = run_op(
        job_submitted, {"LedgerEntries": {"path=/l": Ledger()}}, entry=pbs, script="", ledger="/l"
    )
    assert "out=$( qsub /s/run-1/job-run-1.sh )" in commands[2]


def test_same_run_key_submits_nothing_unless_told():
    done = Ledger((Entry(run_key="run-1", job_id="77", scheduler="slurm"),))
    commands, host = run_op(
        job_submitted, {"LedgerEntries": {"path=/l": done}}, entry=ENTRY, script="", ledger="/l"
    )
    assert commands == [] and host.noops == ["run run-1 was submitted already (job 77)"]
    commands, _ = run_op(
        job_submitted,
        {"LedgerEntries": {"path=/l": done}},
        entry=ENTRY,
        script="",
        ledger="/l",
        resubmit=True,
    )
    assert len(commands) == 3


def test_unreadable_lines_are_reported_once(caplog):
    done = Entry(run_key="run-1", job_id="77", scheduler="slurm")
    garbage = parse_ledger([done.to_json(), "garbage \x1b[31m"])
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


def test_entry_json_round_trip():
    assert parse_ledger([json.dumps(json.loads(ENTRY.to_json()))]).entries == (ENTRY,)


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


def test_cancel_only_active_jobs_of_the_run():
    entries = [
        Entry(run_key="r", job_id="1", scheduler="slurm"),
        Entry(run_key="r", job_id="2", scheduler="slurm"),
        Entry(run_key="r", job_id="3", scheduler="slurm"),
    ]
    states = {"1": JobState("1", "COMPLETED", 0)}
    facts = {
        "LedgerEntries": {"path=/l": Ledger(tuple(entries))},
        "JobStates": {
            "job_ids=('1', '2', '3'), scheduler=slurm": states,
            "job_ids=('1', '2', '3'), scheduler=pbs": states,
        },
        "ActiveJobs": {"scheduler=slurm": {"2", "3"}, "scheduler=pbs": {"2", "3"}},
    }
    commands, _ = run_op(job_cancelled, facts, run_key="r", ledger="/l", scheduler="slurm")
    assert commands == ["scancel 2 3"]
    commands, _ = run_op(job_cancelled, facts, run_key="r", ledger="/l", scheduler="pbs")
    assert commands == ["qdel 2 3"]
    facts["ActiveJobs"] = {"scheduler=slurm": set()}
    commands, host = run_op(job_cancelled, facts, run_key="r", ledger="/l", scheduler="slurm")
    assert commands == [] and "no job of run r is queued or running" in host.noops[0]
    commands, _ = run_op(job_cancelled, facts, run_key="other", ledger="/l", scheduler="slurm")
    assert commands == ["echo 'error: no run other in the ledger /l' >&2; exit 1"]
    facts["ActiveJobs"] = {"scheduler=slurm": None}
    commands, _ = run_op(job_cancelled, facts, run_key="r", ledger="/l", scheduler="slurm")
    assert "could not be asked" in commands[0]


def test_long_or_multiline_arguments_stay_on_one_short_row():
    from isaac_deploy.render.ledger_table import ARGS_WIDTH, table

    entry = Entry(
        run_key="r1",
        job_id="7",
        scheduler="slurm",
        args=("--note", "line one\nline two\ttab", "--blob", "x" * 10_000),
    )
    lines = table([entry], {}, {})
    assert len(lines) == 2 and "\n" not in lines[1]
    cell = lines[1][lines[0].index("ARGUMENTS") :]
    assert cell.startswith("--note 'line one\\nline two\\ttab' --blob xxx")
    assert cell.endswith("...") and len(cell) == ARGS_WIDTH
    assert entry.args[3] == "x" * 10_000  # the ledger keeps them whole


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
    tmp_path, scheduler, answer, job_id
):
    """The submission command run in bash against a scheduler that prints ``answer``: the
    ledger gets the id from its last line, or nothing and an error quoting the answer."""

    bin_dir, snapshot = tmp_path / "bin", tmp_path / "snap"
    bin_dir.mkdir()
    snapshot.mkdir()
    for tool in ("sbatch", "qsub"):
        (bin_dir / tool).write_text(f"#!/bin/sh\nprintf '%s\\n' {shlex.quote(answer)}\n")
        (bin_dir / tool).chmod(0o755)
    ledger = tmp_path / "ledger.jsonl"
    entry = Entry(**{**ENTRY.__dict__, "scheduler": scheduler, "snapshot": str(snapshot)})
    commands, _ = run_op(
        job_submitted,
        {"LedgerEntries": {f"path={ledger}": Ledger()}},
        entry=entry,
        script="",
        ledger=str(ledger),
    )
    (snapshot / "job-run-1.sh").write_text("#!/bin/sh\n")
    result = subprocess.run(
        ["bash", "-c", commands[2]],
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
    )
    if job_id is None:
        assert result.returncode == 1 and not ledger.exists()
        tool = "sbatch" if scheduler == "slurm" else "qsub"
        assert result.stderr == f"error: {tool} answered no job id: {answer}\n"
    else:
        assert result.returncode == 0, result.stderr
        assert json.loads(ledger.read_text())["job_id"] == job_id
