"""The last lines of a deploy: what it installed and started, what is ready, what is missing
with the one thing that fixes it, and the command to type next."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Image:
    """An image the deploy was to leave in the engine: ``how`` it got there (``pulled``,
    ``built``, ``there already``), and what to do when it is missing."""

    ref: str
    what: str  # "base image", "image"
    how: str
    fix: str


@dataclass(frozen=True)
class Outcome:
    """What the workstation deploy did (known when it was planned), for its summary."""

    installed: tuple[str, ...] = ()
    started: str | None = None
    group_added: str | None = None
    images: tuple[Image, ...] = field(default_factory=tuple)
    next_command: str = "isaac-deploy run"


def summary_lines(outcome: Outcome, present: Mapping[str, bool] | None) -> list[str]:
    """The summary; ``present``: which images the engine has now (``None``: not asked, the
    images are listed as the deploy made them)."""
    lines = ["Summary:"]
    if outcome.installed:
        lines.append(f"  installed: {', '.join(outcome.installed)}")
    if outcome.started:
        lines.append(f"  started:   {outcome.started}")
    ready = [i for i in outcome.images if present is None or present.get(i.ref)]
    missing = [i for i in outcome.images if present is not None and not present.get(i.ref)]
    if ready:
        listed = ", ".join(f"{i.what} {i.ref} ({i.how})" for i in ready)
        lines.append(f"  ready:     {listed}")
    for image in missing:
        lines.append(f"  missing:   {image.what} {image.ref}: {image.fix}")
    if missing:
        lines.append(f"  next:      what the missing line says, then `{outcome.next_command}`")
    elif outcome.group_added:
        lines.append(
            f"  next:      log in again (you are in the docker group from your next login; "
            f"or `newgrp docker`), then `{outcome.next_command}`"
        )
    else:
        lines.append(f"  next:      `{outcome.next_command}`")
    return lines
