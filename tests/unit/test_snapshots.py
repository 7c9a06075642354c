"""Code snapshots: sync commands and pruning by retention (never a snapshot of an active job)."""

from __future__ import annotations

from isaac_deploy.facts.scheduler import JobState
from isaac_deploy.model.ledger import Entry, Ledger
from isaac_deploy.operations.code import snapshot_synced, snapshots_pruned
from tests.helpers import run_op

S = "/c/ext"
PRUNE = dict(snapshots=S, ledger="/l", scheduler="slurm", extension="ext")


def entry(run: str, job: str) -> Entry:
    return Entry(run_key=run, job_id=job, scheduler="slurm", snapshot=f"{S}/{run}")


def test_sync_links_against_the_newest_previous_snapshot(tmp_path):
    (tmp_path / "a.py").write_text("x")
    commands, host = run_op(
        snapshot_synced,
        {"Snapshots": {"folder=/c/my ext": ["old", "newer"]}},
        folder=str(tmp_path),
        snapshots="/c/my ext",
        snapshot="run-1",
    )
    mkdir, rsync = commands
    assert mkdir == "mkdir -p '/c/my ext/run-1/'" and "--mkpath" not in rsync  # old rsyncs
    assert "--link-dest='/c/my ext/newer'" in rsync and "'/c/my ext/run-1/'" in rsync
    commands, host = run_op(
        snapshot_synced,
        {"Snapshots": {"folder=/c/ext": ["run-1"]}},
        folder=str(tmp_path),
        snapshots=S,
        snapshot="run-1",
    )
    assert commands == [] and "exists" in host.noops[0]


def test_prune_keeps_retention_and_every_snapshot_of_an_active_job():
    facts = {
        "Snapshots": {"folder=/c/ext": ["r1", "r2", "r3", "r4", "r5", "r6"]},  # oldest first
        "LedgerEntries": {
            "path=/l": Ledger(
                (
                    entry("r1", "1"),
                    entry("r2", "2"),
                    entry("r3", "3"),
                    entry("r3", "30"),
                    entry("r5", "5"),
                )
            )
        },
        "JobStates": {
            "job_ids=('1', '2', '3', '30'), scheduler=slurm": {
                "1": JobState("1", "COMPLETED", 0),
                "2": JobState("2", "PENDING"),
                "3": JobState("3", "FAILED", 1),
            }
        },
        "ActiveJobs": {"scheduler=slurm": {"2": "ext.r2", "30": "ext.r3"}},
    }
    commands, host = run_op(snapshots_pruned, facts, **PRUNE, keep=3, current="r7")
    # r7 (current) + r6 + r5 kept by retention; r2 and r3 have a queued/running job
    assert commands == ["rm -rf -- /c/ext/r1 /c/ext/r4"]
    assert "kept snapshot r2: job 2 is PENDING" in host.noops
    assert "kept snapshot r3: job 30 is queued or running" in host.noops
    assert dict(host.fact_calls)["JobStates"]["job_ids"] == ("1", "2", "3", "30")


def test_prune_never_removes_the_current_snapshot_and_fails_closed():
    facts = {
        "Snapshots": {"folder=/c/ext": ["now", "a", "b"]},
        "LedgerEntries": {"path=/l": Ledger((entry("a", "1"), entry("b", "2")))},
        "JobStates": {"job_ids=('1', '2'), scheduler=slurm": {}},
        "ActiveJobs": {"scheduler=slurm": None},
    }
    commands, host = run_op(snapshots_pruned, facts, **PRUNE, keep=1, current="now")
    assert commands == [] and len(host.noops) == 2
    assert all("could not be asked" in noop for noop in host.noops)
    facts["Snapshots"] = {"folder=/c/ext": ["a", "b"]}
    commands, host = run_op(snapshots_pruned, facts, **PRUNE, keep=3, current="now")
    assert commands == [] and host.noops == ["3 snapshot(s), retention 3"]


def test_prune_keeps_the_snapshot_of_a_queued_job_the_ledger_does_not_know():
    """Ledger or not: a job whose name is one of a snapshot's run (``<extension>.<run key>.``)
    keeps it; a pending record's job is found by its name."""
    pending = Entry(
        run_key="p",
        job_id="",
        scheduler="slurm",
        snapshot=f"{S}/p",
        job_name="ext.p.20261124T060000Z",
        status="pending",
    )
    facts = {
        "Snapshots": {"folder=/c/ext": ["lost", "old", "p", "lost-2", "done"]},
        "LedgerEntries": {"path=/l": Ledger((entry("done", "4"), pending))},
        "JobStates": {"job_ids=('4',), scheduler=slurm": {"4": JobState("4", "COMPLETED", 0)}},
        "ActiveJobs": {
            "scheduler=slurm": {
                "7": "ext.lost.20261124T050000Z",
                "9": "ext.p.20261124T060000Z",
                "10": "other.old.20261124T060000Z",
                "11": "old",
            }
        },
    }
    commands, host = run_op(snapshots_pruned, facts, **PRUNE, keep=1, current="now")
    assert commands == ["rm -rf -- /c/ext/old /c/ext/lost-2 /c/ext/done"]
    assert sorted(host.noops) == [
        "kept snapshot lost: job 7 (ext.lost.20261124T050000Z) is queued or running",
        "kept snapshot p: job 9 (ext.p.20261124T060000Z) is queued or running",
    ]
