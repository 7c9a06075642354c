"""The X authority entries of this user's display, as the real ``xauth`` finds them (its own
host-name and display matching, ``$XAUTHORITY`` or ``~/.Xauthority``; an ``ssh -X`` session's
entry is the one sshd added there)."""

from __future__ import annotations

import shutil
import subprocess


class NoXauth(Exception):
    """``xauth`` is not installed or cannot read this user's authority file."""


def nlist(display: str) -> str:
    """``xauth -i nlist DISPLAY``: one hex-encoded entry a line, empty when the display has
    none."""
    xauth = shutil.which("xauth")
    if xauth is None:
        raise NoXauth("xauth is not installed (Debian/Ubuntu: apt install xauth)")
    # -i: reading takes no lock, so an authority file in a folder this user may not write to
    # (a session's, a sudo'ed shell's) is read as it is, without xauth's lock timeout
    result = subprocess.run(
        [xauth, "-i", "nlist", display], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise NoXauth(f"xauth nlist {display} failed: {result.stderr.strip()[:200]}")
    return result.stdout
