"""Files the deploy renders but the user may edit: a checksum line tells the two apart."""

from __future__ import annotations

import hashlib
from typing import Literal

CHECKSUM_MARK = "isaac-deploy-checksum: sha256:"
State = Literal["absent", "pristine", "edited"]


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
