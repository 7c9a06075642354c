"""Facts on a login node: the variables cluster paths start with, the code snapshots (and the
digest of the code each holds), the folders external mounts are synced to, and the run folders
jobs recorded in an extension's logs tree."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pyinfra.api import FactBase, QuoteString, StringCommand

from isaac_deploy.model.runs import BOOKKEEPING, record_job

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


ENV_MARK = "isaac-deploy-env:"  # starts the fact's lines (a login profile may print others)


class ClusterEnv(FactBase[dict]):
    """``{NAME: value}`` for HOME and ``names`` in the cluster user's login environment: asked
    in a login shell (``bash -l``), where sites set ``$SCRATCH`` and the like."""

    def command(self, names: tuple[str, ...] = ()) -> StringCommand:
        wanted = ["HOME", *(n for n in names if NAME_RE.match(n) and n != "HOME")]
        script = (
            f"for n in {' '.join(wanted)}; do "
            f'eval "v=\\${{$n-}}"; printf \'{ENV_MARK}%s=%s\\n\' "$n" "$v"; done'
        )
        return StringCommand("bash -lc", QuoteString(script), "</dev/null")

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict:
        values = {}
        for line in output:
            name, sep, value = line.removeprefix(ENV_MARK).partition("=")
            if line.startswith(ENV_MARK) and sep and NAME_RE.match(name):
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


TREE_SCRIPT = (
    'cd "$1" 2>/dev/null || exit 0; echo tree=1; '
    'for f in "$2"/*/runs-*.txt; do [ -f "$f" ] || continue; '
    "printf 'record=%s\\n' \"$f\"; sed 's/^/run=/' \"$f\"; done; true"
)


@dataclass(frozen=True)
class TreeState:
    present: bool = False
    # run key -> job id -> the run folders (relative to the tree) the job recorded it made
    records: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)


class LogsTree(FactBase[TreeState]):
    """Whether an extension's logs tree exists on the login node, and the run folders each job
    recorded in isaac-deploy's bookkeeping there (``isaac-deploy/<run key>/runs-<job>.txt``)."""

    def command(self, tree: str) -> StringCommand:
        return StringCommand(
            "sh -c", QuoteString(TREE_SCRIPT), "sh", QuoteString(tree), BOOKKEEPING
        )

    @staticmethod
    def default() -> TreeState:
        return TreeState()

    def process(self, output: list[str]) -> TreeState:
        records: dict[str, dict[str, list[str]]] = {}
        current: list[str] | None = None
        for line in output:
            kind, _, value = line.partition("=")
            if kind == "record":
                parts = value.split("/")
                job = record_job(parts[-1]) if len(parts) == 3 else None
                if job is None:
                    current = None
                    continue
                current = []
                records.setdefault(parts[1], {})[job] = current
            elif kind == "run" and current is not None and value:
                current.append(value)
        frozen = {
            key: {job: tuple(runs) for job, runs in jobs.items()} for key, jobs in records.items()
        }
        return TreeState(present="tree=1" in output, records=frozen)
