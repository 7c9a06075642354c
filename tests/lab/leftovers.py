"""What a test session may leave behind, and the check that fails the run when it did.

The session takes a snapshot when the lab is up (the lab has removed what earlier runs left by
then) and another at the end, after every fixture removed what it made: whatever is new is a
leftover (containers, volumes and images of the lab's engine, processes and /tmp entries of the
test users), as is a daemon the lab started that still runs after the lab stopped. Each
leftover is one line naming it, e.g. ``container lab-ext-isaacdev-ext-dev (7c7f...)``.
"""

from __future__ import annotations

import pwd
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from . import engine
from .processes import alive
from .registry import PROCESS as REGISTRY_PROCESS

TMP_FOLDERS = ("/tmp", "/var/tmp")
SETTLE_SECONDS = 10.0  # a job's or an SSH session's processes end a moment after the test


def daemon_names() -> dict[str, str]:
    """The daemons in the lab's record of what it started, by record key (the key is the
    process's name for the others)."""
    from . import fleet  # it needs the lab, which needs this module

    return {
        "registry": REGISTRY_PROCESS,
        "pcs_relay": fleet.RELAY,  # the lab PCs' way to the registry
        "git_daemon": fleet.GIT_DAEMON,  # the lab PCs' git remote
    }


class LeftBehind(AssertionError):
    """The session left something behind: the message names every leftover."""


def lab_users(info: dict) -> dict[int, str]:
    """The lab's test users that exist, uid -> name: the lab member, the sudo user and the
    cluster user (``info``: what ``lab.up()`` returned)."""
    cluster = info.get("cluster")
    names = [
        (info.get("user") or {}).get("name"),
        (info.get("sudo_user") or {}).get("name"),
        cluster["login"]["user"] if cluster else None,
    ]
    users = {}
    for name in filter(None, names):
        try:
            users[pwd.getpwnam(name).pw_uid] = name
        except KeyError:
            continue
    return users


def processes(users: dict[int, str]) -> set[str]:
    """The processes of ``users`` (zombies, which PID 1 reaps slowly here, do not count)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            uid = proc.stat().st_uid
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue  # ended meanwhile
        if uid in users and state != "Z":
            command = b" ".join(argv).decode(errors="replace").strip()
            found.add(f"process {proc.name} of {users[uid]}: {command}")
    return found


def tmp_paths(users: dict[int, str], folders: Iterable[str] = TMP_FOLDERS) -> dict[Path, int]:
    """The entries of ``folders`` that belong to ``users``, with their owner's uid."""
    found = {}
    for folder in folders:
        for entry in Path(folder).iterdir():
            try:
                uid = entry.lstat().st_uid
            except OSError:
                continue
            if uid in users:
                found[entry] = uid
    return found


def tmp_entries(users: dict[int, str], folders: Iterable[str] = TMP_FOLDERS) -> set[str]:
    """The entries of ``folders`` that belong to ``users``, each named with its owner."""
    return {f"{path} of {users[uid]}" for path, uid in tmp_paths(users, folders).items()}


def remove_tmp_entries(users: dict[int, str], folders: Iterable[str] = TMP_FOLDERS) -> list[str]:
    """Remove what ``users`` have in ``folders`` (links themselves, never what they point to)."""
    removed = []
    for path in tmp_paths(users, folders):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(str(path))
    return removed


OWN_CONFIG = Path.home() / ".config" / "isaac-deploy"
"""The suite's own user's isaac-deploy settings: root's deploys store their W&B key and registry
logins there, as they would for a user."""


def own_config(folder: Path = OWN_CONFIG) -> set[Path]:
    """Every file and folder below ``folder`` (with ``folder``), as it is now."""
    if not folder.exists():
        return set()
    return {folder, *folder.rglob("*")}


def restore_own_config(before: set[Path], folder: Path = OWN_CONFIG) -> list[str]:
    """Remove what the session added below ``folder`` (deepest first; never a link's target);
    returns what was removed."""
    removed = []
    for path in sorted(own_config(folder) - before, key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(str(path))
    return removed


def snapshot(users: dict[int, str]) -> set[str]:
    """What may be left behind, as it is now."""
    return engine.objects() | processes(users) | tmp_entries(users)


def daemons_running(started: dict) -> list[str]:
    """The daemons in the lab's record ``started`` (taken before ``lab.down()``) still running."""
    running, names = [], daemon_names()
    for key, record in started.items():
        pid = record.get("pid") if isinstance(record, dict) else record
        if isinstance(pid, int) and alive(pid, names.get(key, key)):
            running.append(f"daemon {key} (pid {pid})")
    return running


def left_behind(
    before: set[str], take: Callable[[], set[str]], seconds: float = SETTLE_SECONDS
) -> list[str]:
    """What ``take()`` finds that was not there ``before``, once it had ``seconds`` to go."""
    deadline = time.monotonic() + seconds
    while True:
        left = sorted(take() - before)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.5)


def check(left: list[str]) -> None:
    """Fail naming every leftover."""
    if left:
        lines = "".join(f"\n  {item}" for item in left)
        raise LeftBehind(f"the test session left {len(left)} thing(s) behind:{lines}")
