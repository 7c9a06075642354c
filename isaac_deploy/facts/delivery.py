"""Fact: what a login node holds of a large file (an image): the file, its verified checksum,
a partial upload, and the free space where it goes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from pyinfra.api import FactBase, QuoteString, StringCommand

INCOMING = ".incoming"
PARTIAL = ".partial"  # rsync's --partial-dir inside .incoming: what an interrupted delta kept
SCRIPT = (
    'd=$1; n=$2; p=$d; while [ ! -d "$p" ] && [ "$p" != / ]; do p=$(dirname "$p"); done; '
    '[ -f "$d/$n" ] && echo present=1 && echo "sha=$(cat "$d/$n.sha256" 2>/dev/null)"; '
    'echo "partial=$(stat -c %s "$d/.incoming/$n" 2>/dev/null || echo 0)"; '
    'echo "kept=$(stat -c %s "$d/.incoming/.partial/$n" 2>/dev/null || echo 0)"; '
    'echo "free=$(df -Pk "$p" | tail -n 1 | awk \'{print $4}\')"; '
    # the newest complete file of the same kind (its checksum sidecar written): the delta basis
    'cd "$d" 2>/dev/null && for f in $(ls -t -- *."${n##*.}" 2>/dev/null); do '
    '[ "$f" != "$n" ] && [ -f "$f" ] && [ -s "$f.sha256" ] && '
    'echo "basis=$f" && echo "basis_size=$(stat -c %s "$f")" && break; done; true'
)


@dataclass(frozen=True)
class Delivery:
    present: bool = False
    sha256: str | None = None  # from the sidecar written after verification
    partial_bytes: int = 0  # .incoming/<name>: an earlier upload's file (or the basis' link)
    free_kib: int | None = None
    basis: str | None = None  # the newest complete file of the same kind in the folder
    basis_bytes: int = 0
    kept_bytes: int = 0  # .incoming/.partial/<name>: what an interrupted delta transfer kept


class DeliveredFile(FactBase[Delivery]):
    """``folder/name``, its ``.sha256`` sidecar, ``folder/.incoming/name``, what an interrupted
    delta transfer kept (``.incoming/.partial/name``), free space, and the newest other complete
    file with the same suffix (listed by modification time; its sidecar exists): the basis a
    changed file is sent against."""

    def command(self, folder: str, filename: str) -> StringCommand:
        return StringCommand(
            "sh -c", QuoteString(SCRIPT), "sh", QuoteString(folder), QuoteString(filename)
        )

    @staticmethod
    def default() -> Delivery:
        return Delivery()

    def process(self, output: list[str]) -> Delivery:
        values = dict(line.split("=", 1) for line in output if "=" in line)
        sha = values.get("sha", "").split()
        free = values.get("free", "").strip()

        def number(key: str) -> int:
            value = values.get(key, "0").strip()
            return int(value) if value.isdigit() else 0

        return Delivery(
            present=values.get("present") == "1",
            sha256=sha[0] if sha and len(sha[0]) == 64 else None,
            partial_bytes=number("partial"),
            free_kib=int(free) if free.isdigit() else None,
            basis=values.get("basis") or None,
            basis_bytes=number("basis_size"),
            kept_bytes=number("kept"),
        )


STORED_SCRIPT = (
    'cd "$1" 2>/dev/null || exit 0; for f in *"$2"; do [ -f "$f" ] && '
    'printf \'%s %s\\n\' "$(stat -c \'%Y %h\' "$f")" "$f"; done; '
    # what uploads left in .incoming/ (rsync's temporary and kept partial files too), by when
    # they were last written; a delivery's basis link (the image's own time) by when it was made
    "for f in " + INCOMING + "/* " + INCOMING + "/.[!.]* " + INCOMING + "/" + PARTIAL + "/*; do "
    '[ -f "$f" ] && set -- $(stat -c \'%Y %Z %h\' "$f") && '
    'if [ "$3" -gt 1 ]; then t=$2; else t=$1; fi && printf \'%s 1 %s\\n\' "$t" "$f"; done; true'
)


class Stored(NamedTuple):
    name: str  # relative to the folder; partial uploads start with .incoming/
    stamp: int  # modification time (a basis link in .incoming/: when it was made)
    links: int = 1  # hard links: more than one while a delivery uses the file as its basis


class StoredFiles(FactBase[list]):
    """The files ending in ``suffix`` in ``folder`` and, as ``.incoming/NAME``, what uploads
    left there, oldest first."""

    def command(self, folder: str, suffix: str) -> StringCommand:
        return StringCommand(
            "sh -c", QuoteString(STORED_SCRIPT), "sh", QuoteString(folder), QuoteString(suffix)
        )

    @staticmethod
    def default() -> list:
        return []

    def process(self, output: list[str]) -> list[Stored]:
        rows = []
        for line in output:
            stamp, _, rest = line.partition(" ")
            links, _, name = rest.partition(" ")
            if stamp.isdigit() and links.isdigit() and name:
                rows.append(Stored(name, int(stamp), int(links)))
        return sorted(rows, key=lambda row: (row.stamp, row.name))
