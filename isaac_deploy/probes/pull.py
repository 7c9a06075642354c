"""The workstation's side of ``cluster sync``: a cluster's logs tree pulled into the project's
``logs/`` without deleting or overwriting a local file silently.

rsync first lists (``--dry-run --itemize-changes``) what a pull would change; a file that exists
here and differs from the cluster's is updated only when it is exactly what an earlier pull
from that cluster wrote (its size and modification time recorded in a manifest after each
pull). Any other (a run of this workstation, another cluster's, a file edited here) is left as
it is and reported; nothing is ever deleted here (no ``--delete``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

ESCAPE = re.compile(r"\\#([0-7]{3})")  # how rsync prints characters it cannot show
PARTIAL_DIR = ".isaac-deploy-partial"  # rsync keeps interrupted files here, never under their name


@dataclass(frozen=True)
class Change:
    """One line of rsync's itemized list: what it would do to ``path`` (relative)."""

    flags: str  # e.g. ">f+++++++++" (a new file), ">f.st......" (a file that differs)
    path: str

    @property
    def is_dir(self) -> bool:
        return self.flags[1:2] == "d"

    @property
    def is_new(self) -> bool:
        return self.flags[2:].strip("+") == ""


@dataclass(frozen=True)
class PullReport:
    ok: bool
    error: str = ""
    pulled: int = 0  # files (and new folders) transferred
    conflicts: tuple[str, ...] = ()  # local files left as they are (relative paths)


def parse_changes(output: str) -> list[Change]:
    """rsync's ``--out-format='%i %n'`` lines as changes (escaped characters decoded)."""
    changes = []
    for line in output.splitlines():
        flags, sep, name = line.partition(" ")
        if sep and len(flags) == 11 and name:
            name = ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), name)
            changes.append(Change(flags, name.rstrip("/") if flags[1] == "d" else name))
    return changes


def rsync(rsh: str, *args: str, progress: bool = False) -> subprocess.CompletedProcess:
    """``rsync -a`` over ``rsh`` with ``args``; with ``progress`` its output goes to the
    terminal (stderr), else it is captured."""
    argv = ["rsync", "-a", "-e", rsh, *args]
    if progress:
        return subprocess.run(argv, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    return subprocess.run(argv, capture_output=True, text=True)


def changes(rsh: str, source: str, destination: str, excludes: tuple[str, ...] = ()) -> tuple:
    """``(ok, error, changes)``: what pulling ``source`` (``host:path/``) into ``destination``
    would change, asked with a dry run."""
    flags = ["--dry-run", "--out-format=%i %n", *(f"--exclude={e}" for e in excludes)]
    result = rsync(rsh, *flags, source, destination)
    if result.returncode != 0:
        return False, result.stderr.strip(), []
    return True, "", parse_changes(result.stdout)


def load_manifest(path: str) -> dict[str, list[int]]:
    """``{relative path: [size, mtime_ns]}`` of the files earlier pulls wrote."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_manifest(path: str, manifest: dict[str, list[int]]) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".pulled.", dir=folder)
    with os.fdopen(fd, "w") as handle:
        json.dump(manifest, handle, sort_keys=True)
    os.replace(tmp, path)


def stamp(path: str) -> list[int] | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def pull_tree(
    rsh: str, source: str, destination: str, manifest_path: str, excludes: tuple[str, ...] = ()
) -> PullReport:
    """Pull ``source`` (``host:tree/``) into ``destination``: new files, and files this pull
    wrote before and nobody changed since; every other differing local file is kept and
    reported. The manifest at ``manifest_path`` records what was written."""
    os.makedirs(destination, exist_ok=True)
    ok, error, planned = changes(rsh, source, destination, excludes)
    if not ok:
        return PullReport(False, error)
    manifest = load_manifest(manifest_path)
    wanted, conflicts = [], []
    for change in planned:
        if change.is_dir:
            if change.is_new:
                wanted.append(change.path)
            continue
        local = os.path.join(destination, change.path)
        if change.is_new or (
            not os.path.isdir(local) and stamp(local) == manifest.get(change.path)
        ):
            wanted.append(change.path)
        else:
            conflicts.append(change.path)
    if not wanted:
        return PullReport(True, conflicts=tuple(conflicts))
    fd, listing = tempfile.mkstemp(prefix="isaac-deploy-pull-", suffix=".list")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(f"{path}\0" for path in wanted))
        result = rsync(
            rsh,
            f"--files-from={listing}",
            "--from0",
            f"--partial-dir={PARTIAL_DIR}",
            "--info=progress2,stats1",
            source,
            destination,
            progress=True,
        )
    finally:
        os.unlink(listing)
    for path in wanted:  # what is now the cluster's copy (also after a partly failed pull)
        local = os.path.join(destination, path)
        if not os.path.isdir(local) and stamp(local) is not None:
            manifest[path] = stamp(local)  # type: ignore[assignment]
    save_manifest(manifest_path, manifest)
    if result.returncode != 0:
        return PullReport(False, result.stderr.strip(), len(wanted), tuple(conflicts))
    return PullReport(True, "", len(wanted), tuple(conflicts))


def unpulled(rsh: str, source: str, destination: str) -> tuple[bool, str, list[str]]:
    """``(ok, error, files)``: the files under ``source`` (``host:folder/``) whose copy in
    ``destination`` is missing or differs (what a removal on the cluster would lose)."""
    ok, error, planned = changes(rsh, source, destination)
    return ok, error, [change.path for change in planned if not change.is_dir]
