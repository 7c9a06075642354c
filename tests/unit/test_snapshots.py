"""Code snapshots: filled under .incoming, checked and renamed; a run key whose snapshot holds
other code refused; pruning by retention (never a snapshot of an active job) and of stale partial
copies."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from isaac_deploy.facts.cluster import SNAPSHOT_DIGEST, SNAPSHOT_SUMS, SnapshotState
from isaac_deploy.facts.scheduler import JobState
from isaac_deploy.model.ledger import Entry, Ledger
from isaac_deploy.operations import code as code_ops
from isaac_deploy.operations.code import snapshot_synced, snapshots_pruned
from isaac_deploy.probes import local
from tests.helpers import run_here, run_op

S = "/c/ext"
PRUNE = dict(snapshots=S, ledger="/l", scheduler="slurm", extension="ext")


def entry(run: str, job: str) -> Entry:
    return Entry(run_key=run, job_id=job, scheduler="slurm", snapshot=f"{S}/{run}")


def test_a_new_snapshot_is_filled_under_incoming_checked_and_renamed(tmp_path, monkeypatch):
    monkeypatch.setattr(code_ops, "copy_token", lambda: "t0")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "a.py").write_text("x")
    digest = local.snapshot_files(str(tmp_path)).digest
    facts = {
        "SnapshotDigest": {"folder=/c/my ext, snapshot=run-1": SnapshotState()},
        "Snapshots": {"folder=/c/my ext": ["old", "newer"]},
    }
    for executing in (False, True):  # planned and run: the same commands
        commands, host = run_op(
            snapshot_synced,
            facts,
            executing=executing,
            folder=str(tmp_path),
            snapshots="/c/my ext",
            snapshot="run-1",
        )
        fresh, rsync, sums, finish = commands
        incoming = "'/c/my ext/.incoming/run-1.t0'"
        assert fresh == f"mkdir -p {incoming}"  # this roll-out's own: never another's half-way
        assert "--link-dest='/c/my ext/newer'" in rsync and f"{incoming[:-1]}/'" in rsync
        assert "--mkpath" not in rsync  # old rsyncs
        sha = hashlib.sha256(b"x").hexdigest()
        assert sums == (
            "upload",
            f"/c/my ext/.incoming/run-1.t0/{SNAPSHOT_SUMS}",
            f"{sha}  scripts/a.py\n",
        )
        assert finish.startswith(f"cd {incoming} && sha256sum -c --quiet --strict {SNAPSHOT_SUMS}")
        assert (
            f"echo {digest} > {SNAPSHOT_DIGEST} && {{ mv -T {incoming} '/c/my ext/run-1'" in finish
        )


def test_the_users_include_paths_are_in_the_snapshot_as_in_the_image(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "a.py").write_text("x")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "robot.yaml").write_text("arm: 1\n")
    facts = {
        "SnapshotDigest": {"folder=/c/ext, snapshot=run-1": SnapshotState()},
        "Snapshots": {"folder=/c/ext": []},
    }
    commands, _ = run_op(
        snapshot_synced,
        facts,
        folder=str(tmp_path),
        snapshots=S,
        snapshot="run-1",
        include=("config",),
    )
    sums = commands[2][2]
    assert [line.split("  ", 1)[1] for line in sums.splitlines()] == [
        "config/robot.yaml",
        "scripts/a.py",
    ]
    digest = local.snapshot_files(str(tmp_path), ("config",)).digest
    assert f"echo {digest} > {SNAPSHOT_DIGEST}" in commands[3]


def test_the_first_snapshot_links_to_nothing(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "a.py").write_text("x")
    facts = {
        "SnapshotDigest": {"folder=/c/ext, snapshot=run-1": SnapshotState()},
        "Snapshots": {"folder=/c/ext": []},
    }
    commands, host = run_op(
        snapshot_synced, facts, folder=str(tmp_path), snapshots=S, snapshot="run-1"
    )
    assert "--link-dest" not in commands[1]


def test_a_snapshot_of_this_code_is_kept_as_it_is(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "a.py").write_text("x")
    digest = local.snapshot_files(str(tmp_path)).digest
    facts = {"SnapshotDigest": {"folder=/c/ext, snapshot=run-1": SnapshotState(True, digest)}}
    commands, host = run_op(
        snapshot_synced, facts, folder=str(tmp_path), snapshots=S, snapshot="run-1"
    )
    assert commands == [] and host.noops == [f"snapshot run-1 holds this code ({digest[:19]})"]


@pytest.mark.parametrize(
    ("recorded", "words"),
    [
        ("sha256:" + "0" * 64, "holds other code (sha256:000000000000) than this tree (sha256:"),
        (None, "holds other code (no recorded digest) than this tree (sha256:"),  # older ones
    ],
)
def test_a_run_key_whose_snapshot_holds_other_code_is_refused(tmp_path, recorded, words):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "a.py").write_text("x")
    facts = {"SnapshotDigest": {"folder=/c/ext, snapshot=run-1": SnapshotState(True, recorded)}}
    [command], host = run_op(
        snapshot_synced, facts, folder=str(tmp_path), snapshots=S, snapshot="run-1"
    )
    assert command.startswith("echo 'error: run key run-1: its code snapshot on the login node ")
    assert words in command and command.endswith(">&2; exit 1")
    assert "choose a new run key, or commit and leave the run key unset" in command


def snapshot_here(tmp_path: Path) -> tuple[Path, Path, dict]:
    project, code = tmp_path / "ext", tmp_path / "code"
    (project / "source").mkdir(parents=True)
    (project / "source" / "a.py").write_text("print(1)\n")
    (project / "source" / "odd 'name'.py").write_text("print(2)\n")
    facts = {
        "SnapshotDigest": {f"folder={code}, snapshot=r1": SnapshotState()},
        "Snapshots": {f"folder={code}": []},
    }
    return project, code, facts


def test_the_snapshot_has_its_name_only_once_complete_and_checked(tmp_path):
    project, code, facts = snapshot_here(tmp_path)
    partial = code / ".incoming" / "r1"
    partial.mkdir(parents=True)
    (partial / "left-over.py").write_text("from an interrupted copy")
    rc, out = run_here(
        snapshot_synced, facts, folder=str(project), snapshots=str(code), snapshot="r1"
    )
    assert rc == 0, out
    files = sorted(str(p.relative_to(code / "r1")) for p in (code / "r1").rglob("*"))
    assert files == sorted(
        [SNAPSHOT_DIGEST, SNAPSHOT_SUMS, "source", "source/a.py", "source/odd 'name'.py"]
    )
    digest = local.snapshot_files(str(project)).digest
    assert (code / "r1" / SNAPSHOT_DIGEST).read_text() == f"{digest}\n"
    # a partial copy of an interrupted roll-out is never used (pruning removes it after a day)
    assert (partial / "left-over.py").exists() and not (code / "r1" / "left-over.py").exists()
    assert [p.name for p in (code / ".incoming").iterdir()] == ["r1"]


def test_a_concurrent_rollout_that_made_the_snapshot_first_is_taken_when_the_code_is_the_same(
    tmp_path,
):
    project, code, facts = snapshot_here(tmp_path)
    for _ in range(2):  # the second roll-out planned before the first one renamed its copy
        rc, out = run_here(
            snapshot_synced, facts, folder=str(project), snapshots=str(code), snapshot="r1"
        )
        assert rc == 0, out
    digest = local.snapshot_files(str(project)).digest
    assert (code / "r1" / SNAPSHOT_DIGEST).read_text() == f"{digest}\n"
    assert not list((code / ".incoming").iterdir()) and not (code / "r1" / "r1.").exists()
    (project / "source" / "a.py").write_text("print(3)\n")  # other code, same run key
    rc, out = run_here(
        snapshot_synced, facts, folder=str(project), snapshots=str(code), snapshot="r1"
    )
    assert rc != 0 and "snapshot r1 was made meanwhile with other code" in out
    assert (code / "r1" / SNAPSHOT_DIGEST).read_text() == f"{digest}\n"


def test_files_edited_while_they_are_sent_leave_no_snapshot(tmp_path, monkeypatch):
    project, code, facts = snapshot_here(tmp_path)
    hashed = local.snapshot_files(str(project))
    monkeypatch.setattr(local, "snapshot_files", lambda folder, include: hashed)
    (project / "source" / "a.py").write_text("print('edited')\n")  # after hashing, before rsync
    rc, out = run_here(
        snapshot_synced, facts, folder=str(project), snapshots=str(code), snapshot="r1"
    )
    assert rc != 0 and not (code / "r1").exists()
    assert out.splitlines()[-1] == (
        "error: snapshot r1 arrived different from the files here (edited while it was sent?): "
        "run the roll-out again"
    )


def test_prune_keeps_retention_and_every_snapshot_of_an_active_job():
    facts = {
        "Snapshots": {"folder=/c/ext": ["r1", "r2", "r3", "r4", "r5", "r6"]},  # oldest first
        "Folders": {"folder=/c/ext/.incoming": []},
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
        "Folders": {"folder=/c/ext/.incoming": []},
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


def test_prune_removes_partial_copies_older_than_a_day_but_not_this_runs():
    now = time.time()
    facts = {
        "Snapshots": {"folder=/c/ext": ["a"]},
        "Folders": {
            "folder=/c/ext/.incoming": [
                ("now", now - 3 * 86400),  # this run's, never
                ("stale", now - 2 * 86400),
                ("recent", now - 60),  # maybe still being sent
            ]
        },
        "LedgerEntries": {"path=/l": Ledger(())},
    }
    commands, host = run_op(snapshots_pruned, facts, **PRUNE, keep=3, current="now")
    assert commands == ["rm -rf -- /c/ext/.incoming/stale"]


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
        "Folders": {"folder=/c/ext/.incoming": []},
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
