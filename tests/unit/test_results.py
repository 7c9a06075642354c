"""Results back: what a sync pulls where, the ssh command rsync uses, which runs the remove
option may delete; the pull itself run here on real folders (rsync between local paths)."""

from __future__ import annotations

import shlex
from types import SimpleNamespace

import pytest
from pyinfra.api import FunctionCommand

from isaac_deploy.facts.cluster import TreeState
from isaac_deploy.model.ledger import Entry, Ledger
from isaac_deploy.model.ssh import ssh_options
from isaac_deploy.operations.results import pull, remove_pulled, results_pulled
from isaac_deploy.probes import local
from tests.helpers import run_op


def test_ssh_command_checks_host_keys():
    command = shlex.join(
        [
            "ssh",
            *ssh_options(
                {"ssh_port": 2222, "ssh_key": "/k/id", "ssh_known_hosts_file": "/k/known hosts"}
            ),
        ]
    )
    assert command == (
        "ssh -o BatchMode=yes -o ServerAliveInterval=30 -o 'UserKnownHostsFile=/k/known hosts' "
        "-o StrictHostKeyChecking=yes -p 2222 -i /k/id"
    )


TREE = "/scratch/u/logs/ext"
RESULTS = dict(
    tree=TREE,
    local_dir="/p/logs",
    book_dir="/p/logs/isaac-deploy/lab",
    ledger="/l",
    scheduler="slurm",
    extension="ext",
)
RECORDS = {
    "done": {"1": ("rsl_rl/e/2026-11-24_a",), "2": ("rsl_rl/e/2026-11-24_b", "skrl/e/c")},
    "mystery": {"9": ("rsl_rl/e/2026-11-24_m",)},
}


def facts(active, records=RECORDS, present=True) -> dict:
    return {
        "LogsTree": {f"tree={TREE}": TreeState(present, records)},
        "LedgerEntries": {
            "path=/l": Ledger(
                (
                    Entry(run_key="done", job_id="1", scheduler="slurm"),
                    Entry(run_key="done", job_id="2", scheduler="slurm"),
                    Entry(run_key="old", job_id="5.server", scheduler="slurm"),
                )
            )
        },
        "ActiveJobs": {"scheduler=slurm": active},
    }


def test_sync_pulls_the_runs_into_logs_and_the_bookkeeping_beside_them():
    commands, host = run_op(results_pulled, facts({}), **RESULTS)
    assert commands == [
        f"FunctionCommand(pull_runs, ('{TREE}', '/p/logs', '/p/logs/isaac-deploy/lab/.pulled.json'), {{}})",
        f"FunctionCommand(pull, ('{TREE}/isaac-deploy/', '/p/logs/isaac-deploy/lab/'), {{}})",
    ]
    nothing, host = run_op(results_pulled, facts({}, present=False), **RESULTS)
    assert nothing == [] and host.noops == [f"no runs on the cluster yet ({TREE} does not exist)"]


def test_remove_takes_the_recorded_runs_of_the_ledgers_run_keys_when_nothing_runs():
    commands, host = run_op(
        results_pulled, facts({"3": "other_ext.x.2026"}), **RESULTS, remove=True
    )
    assert commands[-1] == str(
        FunctionCommand(
            remove_pulled,
            (
                TREE,
                [
                    (
                        "done",
                        [
                            ("isaac-deploy/done", "/p/logs/isaac-deploy/lab/done"),
                            ("rsl_rl/e/2026-11-24_a", "/p/logs/rsl_rl/e/2026-11-24_a"),
                            ("rsl_rl/e/2026-11-24_b", "/p/logs/rsl_rl/e/2026-11-24_b"),
                            ("skrl/e/c", "/p/logs/skrl/e/c"),
                        ],
                    )
                ],
            ),
            {},
        )
    )
    assert host.noops == ["kept the runs of mystery on the cluster: the ledger does not know it"]


@pytest.mark.parametrize(
    ("active", "why"),
    [
        ({"7": "ext.done.20261124T060000Z"}, "job 7 of ext is queued or running"),
        ({"5": "renamed"}, "job 5 of ext is queued or running"),  # the ledger's, by its id
        (None, "the scheduler could not be asked"),
    ],
)
def test_remove_takes_nothing_while_a_job_of_the_extension_is_queued_or_running(active, why):
    commands, host = run_op(results_pulled, facts(active), **RESULTS, remove=True)
    assert len(commands) == 2 and "remove_pulled" not in " ".join(commands)
    [noop] = host.noops
    assert noop.startswith("kept every run on the cluster: ") and why in noop


def test_pull_goes_through_the_master_connection_or_the_hosts_ssh_options(monkeypatch):
    calls = []
    monkeypatch.setattr(local, "rsync_pull", lambda *args: calls.append(args) or (True, ""))
    master = SimpleNamespace(rsh=lambda: "ssh -S /tmp/m", address="login1")
    assert pull(None, SimpleNamespace(connector=master), "/logs/", "/local/")
    data = {"ssh_user": "jdoe", "ssh_hostname": "login2", "ssh_port": 2222}
    host = SimpleNamespace(
        connector=object(), data=SimpleNamespace(dict=lambda: data), name="@ssh/x"
    )
    assert pull(None, host, "/logs/", "/local/")
    assert calls == [
        ("ssh -S /tmp/m", "login1:/logs/", "/local/"),
        (shlex.join(["ssh", *ssh_options(data)]), "jdoe@login2:/logs/", "/local/"),
    ]


def test_a_failed_pull_is_logged_in_one_line(monkeypatch, caplog):
    monkeypatch.setattr(local, "rsync_pull", lambda *args: (False, "connection refused"))
    master = SimpleNamespace(rsh=lambda: "ssh", address="login1")
    host = SimpleNamespace(connector=master, print_prefix="[login1] ")
    with caplog.at_level("ERROR", logger="pyinfra"):
        assert not pull(None, host, "/logs/", "/local/")
    assert "[login1] pulling login1:/logs/ failed: connection refused" in caplog.text


def test_a_pull_never_deletes_nor_silently_overwrites_a_local_file(tmp_path):
    """pull_tree with rsync between local folders (the 'cluster' is a folder here): new runs
    come, a file an earlier pull wrote is updated, a local file nobody pulled (a local run of the
    same name, an edit) is kept and reported, nothing local is deleted; the bookkeeping folder
    is left out; unpulled() names what a removal would lose."""
    import os
    import time

    from isaac_deploy.probes.pull import pull_tree, unpulled

    cluster, logs = tmp_path / "cluster", tmp_path / "logs"
    manifest = str(logs / "isaac-deploy" / "lab" / ".pulled.json")
    run = cluster / "rsl_rl" / "e" / "2026-11-24_06-00-00_it's a run"
    run.mkdir(parents=True)
    (run / "model_1.pt").write_text("1")
    (run / "params").mkdir()
    (run / "params" / "agent.yaml").write_text("a: 1\n")
    (cluster / "isaac-deploy" / "k").mkdir(parents=True)
    (cluster / "isaac-deploy" / "k" / "runs-1.txt").write_text("x\n")
    mine = logs / "rsl_rl" / "e" / "local_run"
    mine.mkdir(parents=True)
    (mine / "model_9.pt").write_text("local")

    def sync():
        return pull_tree("ssh", f"{cluster}/", str(logs), manifest, excludes=("/isaac-deploy/",))

    first = sync()
    assert first.ok and first.conflicts == (), first
    pulled = logs / run.relative_to(cluster)
    assert (pulled / "model_1.pt").read_text() == "1"
    assert (pulled / "params" / "agent.yaml").read_text() == "a: 1\n"
    assert not (logs / "isaac-deploy" / "k").exists()  # the bookkeeping is pulled elsewhere
    assert (mine / "model_9.pt").read_text() == "local"
    # the cluster's run goes on; a local run has the name of another cluster run
    time.sleep(0.01)
    (run / "model_1.pt").write_text("1 updated")
    os.utime(run / "model_1.pt", (time.time() + 5, time.time() + 5))
    (run / "model_2.pt").write_text("2")
    (cluster / "rsl_rl" / "e" / "local_run").mkdir()
    (cluster / "rsl_rl" / "e" / "local_run" / "model_9.pt").write_text("the cluster's")
    (pulled / "params" / "agent.yaml").write_text("edited here\n")
    (run / "params" / "agent.yaml").write_text("a: 2\n")
    os.utime(run / "params" / "agent.yaml", (time.time() + 9, time.time() + 9))
    second = sync()
    assert second.ok, second
    assert sorted(second.conflicts) == [
        "rsl_rl/e/2026-11-24_06-00-00_it's a run/params/agent.yaml",
        "rsl_rl/e/local_run/model_9.pt",
    ]
    assert (pulled / "model_1.pt").read_text() == "1 updated"  # written by the first pull
    assert (pulled / "model_2.pt").read_text() == "2"
    assert (pulled / "params" / "agent.yaml").read_text() == "edited here\n"
    assert (mine / "model_9.pt").read_text() == "local"
    ok, _, missing = unpulled("ssh", f"{run}/", str(pulled))
    assert ok and missing == ["params/agent.yaml"]
    ok, _, missing = unpulled("ssh", f"{cluster / 'rsl_rl' / 'e' / 'local_run'}/", str(mine))
    assert ok and missing == ["model_9.pt"]
    (run / "model_1.pt").unlink()  # gone on the cluster: stays here
    assert sync().ok and (pulled / "model_1.pt").exists()
