"""Files the deploy renders but the user may edit: a checksum line tells the two apart."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

CHECKSUM_MARK = "isaac-deploy-checksum: sha256:"
State = Literal["absent", "pristine", "edited"]
Action = Literal["up-to-date", "write", "keep-edited", "replace-edited"]


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def stamp(content: str, comment: str = "#") -> str:
    """Append the checksum line (over every other line) to rendered ``content``."""
    lines = content.rstrip("\n").split("\n")
    return "\n".join([*lines, f"{comment} {CHECKSUM_MARK}{_digest(lines)}"]) + "\n"


def file_state(lines: list[str] | None) -> State:
    """``pristine`` when the file is exactly what the deploy last wrote, else ``edited``."""
    if lines is None:
        return "absent"
    body = [line for line in lines if CHECKSUM_MARK not in line]
    marks = [line for line in lines if CHECKSUM_MARK in line]
    if len(marks) != 1:
        return "edited"
    while body and body[-1] == "":
        body.pop()
    return "pristine" if marks[0].split(CHECKSUM_MARK, 1)[1].strip() == _digest(body) else "edited"


@dataclass(frozen=True)
class Decision:
    """What to do with a managed file: ``desired`` is the stamped text the deploy wants there.

    ``up-to-date``: the file is already ``desired``; ``write``: absent or pristine, write
    ``desired``; ``keep-edited``: edited by hand, leave it; ``replace-edited``: edited by hand,
    keep a copy and write ``desired``. ``state`` is the current file's (see :func:`file_state`).
    """

    action: Action
    desired: str
    state: State


def decide(
    current: list[str] | None, content: str, overwrite_edited: bool = False, comment: str = "#"
) -> Decision:
    """The decision for a file whose lines are ``current`` (``None``: absent) that should hold
    the rendered ``content`` (its checksum line starts with ``comment``); an edited file is
    replaced only with ``overwrite_edited``."""
    desired = stamp(content, comment)
    state = file_state(current)
    if current is not None and "\n".join(current) == desired.rstrip("\n"):
        return Decision("up-to-date", desired, state)
    if state == "edited":
        return Decision("replace-edited" if overwrite_edited else "keep-edited", desired, state)
    return Decision("write", desired, state)
