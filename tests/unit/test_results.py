"""Results back: the ssh command rsync uses, and which runs the remove option may delete."""

from __future__ import annotations

import shlex
from types import SimpleNamespace

from isaac_deploy.facts.scheduler import JobState
from isaac_deploy.model.ledger import Entry, Ledger
from isaac_deploy.model.ssh import ssh_options
from isaac_deploy.operations.results import pull, results_pulled
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


def test_remove_only_finished_runs_known_to_the_ledger():
    facts = {
        "LedgerEntries": {
            "path=/l": Ledger(
                (
                    Entry(run_key="done", job_id="1", scheduler="slurm"),
                    Entry(run_key="busy", job_id="2", scheduler="slurm"),
                    Entry(run_key="gone", job_id="3", scheduler="slurm"),
                    Entry(run_key="queued", job_id="4", scheduler="slurm"),
                )
            )
        },
        "Snapshots": {"folder=/logs": ["busy", "done", "gone", "mystery", "queued"]},
        "JobStates": {
            "job_ids=('1', '2', '3', '4'), scheduler=slurm": {
                "1": JobState("1", "COMPLETED", 0),
                "2": JobState("2", "RUNNING", 0),
            }
        },
        "ActiveJobs": {"scheduler=slurm": {"2": "x.busy", "4": "x.queued"}},
    }
    commands, host = run_op(
        results_pulled,
        facts,
        host_data={"ssh_user": "u", "ssh_hostname": "h"},
        logs_dir="/logs",
        local_dir="/local",
        ledger="/l",
        scheduler="slurm",
        remove=True,
    )
    assert "FunctionCommand(pull, ('/logs/', '/local/')" in commands[0]
    # job 3 is forgotten by scontrol (no accounting) and not in squeue: it has ended
    assert commands[-1] == "rm -rf -- /logs/done /logs/gone"
    assert "kept busy on the cluster: job 2 is RUNNING" in host.noops
    assert "kept queued on the cluster: job 4 is queued or running" in host.noops
    assert "kept mystery on the cluster: no job of it in the ledger" in host.noops


def test_remove_nothing_when_the_scheduler_cannot_be_asked():
    facts = {
        "LedgerEntries": {
            "path=/l": Ledger((Entry(run_key="done", job_id="1", scheduler="slurm"),))
        },
        "Snapshots": {"folder=/logs": ["done"]},
        "JobStates": {"job_ids=('1',), scheduler=slurm": {"1": JobState("1", "COMPLETED", 0)}},
        "ActiveJobs": {"scheduler=slurm": None},
    }
    commands, host = run_op(
        results_pulled,
        facts,
        host_data={},
        logs_dir="/logs",
        local_dir="/local",
        ledger="/l",
        scheduler="slurm",
        remove=True,
    )
    assert len(commands) == 1 and "FunctionCommand(pull" in commands[0]
    assert any("could not be asked" in noop for noop in host.noops)


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
