"""The session-end check of the test lab (tests/lab/leftovers.py): it fails naming every
leftover, and it finds real ones (a user's process and /tmp entries, a daemon still running)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.lab import leftovers

BEFORE = {
    "image isaac-deploy-lab/isaac-lab-base:standin (sha256:86af4bb6c0e1)",
    "volume someone-elses-volume",
}


def sleeper() -> subprocess.Popen:
    """``sleep 30``, once it shows as such (a new process keeps its parent's name a moment)."""
    proc = subprocess.Popen(["sleep", "30"])
    deadline = time.monotonic() + 5
    while Path(f"/proc/{proc.pid}/comm").read_text().strip() != "sleep":
        assert time.monotonic() < deadline, "sleep 30 did not start"
        time.sleep(0.01)
    return proc


def test_the_check_fails_naming_every_leftover_and_only_those():
    fake = {
        "container lab-ext-isaacdev-ext-dev (7c7f9f98fc57)",
        "/tmp/home-2347 of labuser",
    }
    gone = BEFORE - {"volume someone-elses-volume"}  # what went away is no leftover
    left = leftovers.left_behind(BEFORE, lambda: gone | fake, seconds=0)
    assert left == sorted(fake)
    with pytest.raises(leftovers.LeftBehind) as failed:
        leftovers.check([*left, "daemon sshd (pid 482)"])
    message = str(failed.value)
    assert "left 3 thing(s) behind" in message
    for item in (*fake, "daemon sshd (pid 482)"):
        assert f"\n  {item}" in message


def test_what_ends_a_moment_later_is_waited_for_what_stays_is_not():
    ending = {"process 7 of labuser: sshd: labuser"}
    takes = iter([ending, set()])
    assert leftovers.left_behind(set(), lambda: next(takes), seconds=5) == []
    started = time.monotonic()
    assert leftovers.left_behind(set(), lambda: ending, seconds=1) == sorted(ending)
    assert 1 <= time.monotonic() - started < 3


def test_a_users_processes_are_found_until_they_end():
    me = {os.getuid(): "me"}
    proc = sleeper()
    try:
        assert f"process {proc.pid} of me: sleep 30" in leftovers.processes(me)
        assert f"process {proc.pid} of other: sleep 30" not in leftovers.processes(
            {os.getuid() + 1: "other"}
        )
    finally:
        proc.kill()
        proc.wait()
    assert f"process {proc.pid} of me: sleep 30" not in leftovers.processes(me)


def test_a_users_tmp_entries_are_found_and_removed_without_following_links(tmp_path):
    me = {os.getuid(): "me"}
    tmp, outside = tmp_path / "tmp", tmp_path / "outside"
    (tmp / "home-2347" / "cache").mkdir(parents=True)
    outside.mkdir()
    (outside / "kept").write_text("not the user's to lose\n")
    (tmp / "link").symlink_to(outside)
    assert leftovers.tmp_entries(me, [str(tmp)]) == {
        f"{tmp}/home-2347 of me",
        f"{tmp}/link of me",
    }
    assert leftovers.tmp_entries({os.getuid() + 1: "other"}, [str(tmp)]) == set()
    removed = leftovers.remove_tmp_entries(me, [str(tmp)])
    assert sorted(removed) == [f"{tmp}/home-2347", f"{tmp}/link"]
    assert list(tmp.iterdir()) == [] and (outside / "kept").exists()


def test_a_daemon_the_lab_started_is_named_while_it_runs():
    daemon = sleeper()
    started = {
        "sleep": daemon.pid,
        "registry": {"pid": daemon.pid},  # recorded as the registry: not that process
        "user": "isaacdev",
    }
    try:
        assert leftovers.daemons_running(started) == [f"daemon sleep (pid {daemon.pid})"]
    finally:
        daemon.kill()
        daemon.wait()
    assert leftovers.daemons_running(started) == []


def test_what_the_session_added_to_its_own_settings_is_removed_and_nothing_else(tmp_path):
    folder = tmp_path / "isaac-deploy"
    (folder / "old").mkdir(parents=True)
    (folder / "old" / "kept").write_text("x")
    before = leftovers.own_config(folder)
    (folder / "old" / "added").write_text("y")
    (folder / "lab_ext").mkdir()
    (folder / "lab_ext" / "wandb_api_key").write_text("secret")
    removed = leftovers.restore_own_config(before, folder)
    assert sorted(removed) == sorted(
        str(p)
        for p in (
            folder / "old" / "added",
            folder / "lab_ext" / "wandb_api_key",
            folder / "lab_ext",
        )
    )
    assert leftovers.own_config(folder) == before
    empty = tmp_path / "none"
    nothing = leftovers.own_config(empty)
    (empty / "registries").mkdir(parents=True)
    leftovers.restore_own_config(nothing, empty)
    assert not empty.exists() or not any(empty.iterdir())
