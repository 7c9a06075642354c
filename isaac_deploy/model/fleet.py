"""A room of lab PCs (``deploy/lab_pcs.py``): who uses the PCs, what each of them gets, and the
outcome of a run on each PC.

Settings (inventory data of the PCs, next to the workstation's ``isaac_*`` keys, which apply to
every member's project):

- ``isaac_members``: the lab members who use the PCs (accounts that exist there, e.g. from the
  lab's directory service), each put into the ``docker`` group and given the project;
- ``isaac_project``: the extension project each member gets, ``{"git": URL, "branch": NAME,
  "folder": PATH}``: cloned from the lab's git remote into ``~/PATH`` of each member, as that
  member (default folder: the repository's name);
- ``isaac_pull_base_images``: pull the base images of ``isaac_profiles`` once per PC (shared by
  all members), from their registries in ``isaac_registries`` (CA, credentials).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from isaac_deploy.model import validate as v
from isaac_deploy.model.errors import ConfigError

MEMBERS = "isaac_members"
PROJECT = "isaac_project"
PULL = "isaac_pull_base_images"
KEYS = (MEMBERS, PROJECT, PULL)
USER_RE = r"[a-z_][a-z0-9_-]{0,31}"
"""User names as Debian's ``adduser`` takes them by default (``NAME_REGEX``), at most 32."""
CREDENTIALS_RE = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@]*:[^/@]*@", re.I)


@dataclass(frozen=True)
class ProjectSource:
    """Where each member's checkout comes from and where it goes in their home."""

    git: str
    folder: str
    branch: str | None = None

    def path(self, home: str) -> str:
        """The member's checkout: ``folder`` in ``home``."""
        return posixpath.join(home, self.folder)

    @classmethod
    def parse(cls, raw: Any) -> ProjectSource:
        raw = v.mapping(PROJECT, raw, ("git", "branch", "folder"))
        if not raw.get("git"):
            raise ConfigError(
                f"{PROJECT}[git]", "is required: the URL the PCs clone the project from"
            )
        url = v.text(f"{PROJECT}[git]", raw["git"], r"\S+", "must be a URL without spaces")
        if CREDENTIALS_RE.match(url):
            raise ConfigError(
                f"{PROJECT}[git]",
                "holds a password: secrets never go in the inventory (use a remote the PCs "
                "read without one, or the members' own keys)",
            )
        name = posixpath.basename(url.rstrip("/").removesuffix(".git").rstrip("/"))
        folder = v.text(f"{PROJECT}[folder]", raw.get("folder") or name or "project")
        parts = folder.split("/")
        if folder.startswith(("/", "~")) or ".." in parts or not all(parts):
            raise ConfigError(
                f"{PROJECT}[folder]",
                f"{folder!r} must be a path inside each member's home, e.g. 'ext_template'",
            )
        branch = v.optional_text(f"{PROJECT}[branch]", raw.get("branch"))
        if branch is not None:
            v.text(f"{PROJECT}[branch]", branch, r"[A-Za-z0-9._/-]+", "must be a branch name")
        return cls(git=url, folder=folder, branch=branch)


@dataclass(frozen=True)
class FleetConfig:
    """The fleet's settings of one PC (group data, per-host overrides)."""

    members: tuple[str, ...] = ()
    project: ProjectSource | None = None
    pull_base_images: bool = False

    @classmethod
    def from_host_data(cls, data: Mapping[str, Any]) -> FleetConfig:
        raw = data.get(MEMBERS) or ()
        if isinstance(raw, str):
            raw = [name for name in re.split(r"[,\s]+", raw) if name]
        if not isinstance(raw, (list, tuple)):
            raise ConfigError(MEMBERS, f"must list user names, e.g. ['alice', 'bob'], got {raw!r}")
        members = tuple(
            dict.fromkeys(
                v.text(f"{MEMBERS}[{i}]", name, USER_RE, f"{name!r} is not a user name")
                for i, name in enumerate(raw)
            )
        )
        project = None if data.get(PROJECT) is None else ProjectSource.parse(data[PROJECT])
        if project is not None and data.get("isaac_extension_folder"):
            raise ConfigError(
                "isaac_extension_folder",
                f"each member's project is {PROJECT}[folder] in their home: remove "
                "isaac_extension_folder from the lab PCs' data",
            )
        return cls(members, project, v.boolean(PULL, data.get(PULL, False)))


def declared_extension(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The extension a PC's members work on, as the inventory names it: the PC has no checkout
    yet when the admin's part runs (the member's part clones it), so its ``source/`` cannot tell;
    without the name, one line says to set it."""
    name = data.get("isaac_extension_name")
    if not name:
        raise ConfigError(
            "isaac_extension_name",
            "set it for the lab PCs: their members' checkouts are cloned by the deploy, so the "
            "extension cannot be found in one beforehand",
        )
    return (str(name),)


GROUP_FILE = "/etc/group"
GIT = "/usr/bin/git"  # where the distributions' git package puts it


def group_members(text: str | None, group: str) -> tuple[str, ...] | None:
    """The (supplementary) members of ``group`` in the text of ``/etc/group``; ``None`` when the
    group is not there."""
    for line in (text or "").splitlines():
        fields = line.split(":")
        if len(fields) == 4 and fields[0] == group:
            return tuple(name for name in fields[3].split(",") if name)
    return None


Status = Literal["ready", "failed", "unreachable"]


@dataclass(frozen=True)
class PcOutcome:
    """What a run did on one PC: ``ready``, or what failed (the step, its error) and the fix."""

    host: str
    status: Status
    step: str = ""
    error: str = ""
    fix: str = ""
    changes: int = 0
