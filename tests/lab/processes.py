"""The lab's daemons: is one alive, and stop one the lab started (never anybody else's)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def alive(pid: int, name: str) -> bool:
    """``pid`` runs and is ``name`` (a zombie, which PID 1 reaps slowly here, counts as gone)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return False
    return comm.startswith(name[:15]) and state != "Z"


def stop_process(pid: int, name: str, timeout: float = 20) -> None:
    """TERM, then KILL after ``timeout``; only when ``pid`` still is ``name``."""
    if not alive(pid, name):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid, name) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid, name):
        os.kill(pid, signal.SIGKILL)
