"""Facts on a login node: the variables cluster paths start with, the code snapshots (and the
digest of the code each holds), and the folders external mounts are synced to."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyinfra.api import FactBase, QuoteString, StringCommand

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ClusterEnv(FactBase[dict]):
    """``{NAME: value}`` for HOME and ``names`` in the cluster user's login environment."""

    def command(self, names: tuple[str, ...] = ()) -> StringCommand:
        wanted = ["HOME", *(n for n in names if NAME_RE.match(n) and n != "HOME")]
        return StringCommand(
            "for n in", *wanted, '; do eval "v=\\${$n-}"; printf \'%s=%s\\n\' "$n" "$v"; done'
        )

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict:
        values = {}
        for line in output:
            name, sep, value = line.partition("=")
            if sep and NAME_RE.match(name):
                values[name] = value
        return values


class FoldersBase(FactBase[list]):
    """The folders in ``folder`` with their modification times (what both facts below ask)."""

    def command(self, folder: str) -> StringCommand:
        return StringCommand(
            "cd",
            QuoteString(folder),
            '2>/dev/null && for d in */; do [ -d "$d" ] &&',
            'printf \'%s %s\\n\' "$(stat -c %Y "$d")" "${d%/}"; done; true',
        )

    @staticmethod
    def default() -> list:
        return []

    @staticmethod
    def oldest_first(output: list[str]) -> list[tuple[str, int]]:
        rows = []
        for line in output:
            stamp, _, name = line.partition(" ")
            if stamp.isdigit() and name and name != "*":
                rows.append((int(stamp), name))
        return [(name, stamp) for stamp, name in sorted(rows)]


class Folders(FoldersBase):
    """``(name, mtime)`` of the folders in ``folder``, oldest first (by modification time)."""

    def process(self, output: list[str]) -> list[tuple[str, int]]:
        return self.oldest_first(output)


class Snapshots(FoldersBase):
    """Code snapshot folders under ``folder``, oldest first (by modification time)."""

    def process(self, output: list[str]) -> list[str]:
        return [name for name, _ in self.oldest_first(output)]


SNAPSHOT_DIGEST = ".isaac-deploy-snapshot"  # in a snapshot: the digest of the code it holds
SNAPSHOT_SUMS = ".isaac-deploy-sha256sums"  # in a snapshot: its files' checksums, as checked

SNAPSHOT_SCRIPT = (
    'cd "$1" 2>/dev/null && [ -d "$2" ] && echo present=1 && '
    'echo "digest=$(head -n 1 "$2/$3" 2>/dev/null)"; true'
)


@dataclass(frozen=True)
class SnapshotState:
    present: bool = False
    digest: str | None = None  # recorded once its files were checked (None: made before that)


class SnapshotDigest(FactBase[SnapshotState]):
    """Whether the snapshot ``folder/snapshot`` exists and the digest of the code it holds."""

    def command(self, folder: str, snapshot: str) -> StringCommand:
        return StringCommand(
            "sh -c",
            QuoteString(SNAPSHOT_SCRIPT),
            "sh",
            QuoteString(folder),
            QuoteString(snapshot),
            SNAPSHOT_DIGEST,
        )

    @staticmethod
    def default() -> SnapshotState:
        return SnapshotState()

    def process(self, output: list[str]) -> SnapshotState:
        values = dict(line.split("=", 1) for line in output if "=" in line)
        digest = values.get("digest", "").strip()
        return SnapshotState(
            present=values.get("present") == "1",
            digest=digest if digest.startswith("sha256:") else None,
        )


@dataclass(frozen=True)
class MirrorState:
    kind: str = "missing"  # "dir", "file" or "missing"
    empty: bool = False
    marker: str | None = None  # the digest isaac-deploy wrote after the last sync


MIRROR_SCRIPT = (
    'p=$1; if [ -d "$p" ]; then echo kind=dir; [ -z "$(ls -A "$p")" ] && echo empty=1; '
    '[ -f "$p/$2" ] && echo "marker=$(head -n 1 "$p/$2")"; '
    'elif [ -e "$p" ]; then echo kind=file; else echo kind=missing; fi; true'
)


class Mirror(FactBase[MirrorState]):
    """A folder on the login node that a mount is synced to (or expected at): its kind, whether
    it is empty, and the ``marker`` file isaac-deploy leaves in folders it syncs."""

    def command(self, path: str, marker: str) -> StringCommand:
        return StringCommand(
            "sh -c", QuoteString(MIRROR_SCRIPT), "sh", QuoteString(path), QuoteString(marker)
        )

    @staticmethod
    def default() -> MirrorState:
        return MirrorState()

    def process(self, output: list[str]) -> MirrorState:
        values = dict(line.split("=", 1) for line in output if "=" in line)
        return MirrorState(
            kind=values.get("kind", "missing"),
            empty=values.get("empty") == "1",
            marker=values.get("marker") or None,
        )
