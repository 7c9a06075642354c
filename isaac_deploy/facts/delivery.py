"""Fact: what a login node holds of a large file (an image): the file, its verified checksum,
a partial upload, and the free space where it goes."""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra.api import FactBase, QuoteString, StringCommand

INCOMING = ".incoming"
SCRIPT = (
    'd=$1; n=$2; p=$d; while [ ! -d "$p" ] && [ "$p" != / ]; do p=$(dirname "$p"); done; '
    '[ -f "$d/$n" ] && echo present=1 && echo "sha=$(cat "$d/$n.sha256" 2>/dev/null)"; '
    'echo "partial=$(stat -c %s "$d/.incoming/$n" 2>/dev/null || echo 0)"; '
    'echo "free=$(df -Pk "$p" | tail -n 1 | awk \'{print $4}\')"'
)


@dataclass(frozen=True)
class Delivery:
    present: bool = False
    sha256: str | None = None  # from the sidecar written after verification
    partial_bytes: int = 0
    free_kib: int | None = None


class DeliveredFile(FactBase[Delivery]):
    """``folder/name``, its ``.sha256`` sidecar, ``folder/.incoming/name`` and free space."""

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
        partial, free = values.get("partial", "0").strip(), values.get("free", "").strip()
        return Delivery(
            present=values.get("present") == "1",
            sha256=sha[0] if sha and len(sha[0]) == 64 else None,
            partial_bytes=int(partial) if partial.isdigit() else 0,
            free_kib=int(free) if free.isdigit() else None,
        )


STORED_SCRIPT = (
    'cd "$1" 2>/dev/null || exit 0; for f in *"$2" ' + INCOMING + '/*; do [ -f "$f" ] && '
    'printf \'%s %s\\n\' "$(stat -c %Y "$f")" "$f"; done; true'
)


class StoredFiles(FactBase[list]):
    """``(name, mtime)`` of the files ending in ``suffix`` in ``folder`` (and, as
    ``.incoming/NAME``, of the partial uploads there), oldest first."""

    def command(self, folder: str, suffix: str) -> StringCommand:
        return StringCommand(
            "sh -c", QuoteString(STORED_SCRIPT), "sh", QuoteString(folder), QuoteString(suffix)
        )

    @staticmethod
    def default() -> list:
        return []

    def process(self, output: list[str]) -> list[tuple[str, int]]:
        rows = []
        for line in output:
            stamp, _, name = line.partition(" ")
            if stamp.isdigit() and name:
                rows.append((int(stamp), name))
        return [(name, stamp) for stamp, name in sorted(rows)]
