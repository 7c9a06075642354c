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
    if missing and outcome.group_added:
        lines.append(
            "  next:      log in again (you are in the docker group from your next login), then "
            f"what the missing line says, then `{outcome.next_command}`"
        )
    elif missing:
        lines.append(f"  next:      what the missing line says, then `{outcome.next_command}`")
    elif outcome.group_added:
        lines.append(
            f"  next:      log in again (you are in the docker group from your next login; "
            f"or `newgrp docker`), then `{outcome.next_command}`"
        )
    else:
        lines.append(f"  next:      `{outcome.next_command}`")
    return lines


@dataclass(frozen=True)
class ClusterOutcome:
    """What a roll-out left on one cluster: the image (``sent``: it travelled or was built
    there in this run), the job (``job_id`` of this run's submission, else the jobs submitted
    before, ``None`` when the roll-out submits nothing)."""

    cluster: str
    image: str
    sent: bool
    how: str  # "sent from this workstation", "built on the login node from <registry>"
    run_key: str | None = None
    job_id: str | None = None
    earlier_jobs: tuple[str, ...] = ()
    follow: str = "isaac-deploy cluster jobs"


def cluster_lines(outcome: ClusterOutcome) -> list[str]:
    """The summary of a roll-out on one cluster."""
    state = outcome.how if outcome.sent else "current (nothing sent)"
    lines = [f"Summary ({outcome.cluster}):", f"  image:     {outcome.image}: {state}"]
    if outcome.run_key is None:
        lines.append("  job:       none submitted (isaac_submit=0)")
        return lines
    if outcome.job_id:
        lines.append(f"  job:       {outcome.job_id} (run {outcome.run_key}) submitted")
    elif outcome.earlier_jobs:
        jobs = ", ".join(outcome.earlier_jobs)
        lines.append(f"  job:       run {outcome.run_key} was submitted before (job {jobs})")
    else:
        lines.append(f"  job:       run {outcome.run_key}: see the job step above")
    lines.append(f"  follow:    `{outcome.follow}`")
    return lines
