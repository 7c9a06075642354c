"""Fact: a file's mode, owner and contents in one command."""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra.api import FactBase, QuoteString, StringCommand

ABSENT = "@@isaac:absent"


@dataclass(frozen=True)
class FileSnapshot:
    mode: int
    uid: int
    lines: list[str]


class FileWithMode(FactBase["FileSnapshot | None"]):
    """``FileSnapshot(mode=0o600, uid=1000, lines=[...])`` or ``None`` when the file is absent."""

    def command(self, path: str) -> StringCommand:
        p = QuoteString(path)
        return StringCommand(
            "if [ -f", p, "]; then stat -c '%a %u'", p, "&& cat", p, "; else echo", ABSENT, "; fi"
        )

    @staticmethod
    def default() -> None:
        return None

    def process(self, output: list[str]) -> FileSnapshot | None:
        if not output or output[0] == ABSENT:
            return None
        mode, _, uid = output[0].partition(" ")
        return FileSnapshot(mode=int(mode, 8), uid=int(uid), lines=list(output[1:]))


@dataclass(frozen=True)
class FileDigest:
    mode: int
    uid: int
    sha256: str


class FileSha256WithMode(FactBase["FileDigest | None"]):
    """Mode, owner and SHA-256 of a file, never its contents (for secrets)."""

    def command(self, path: str) -> StringCommand:
        p = QuoteString(path)
        return StringCommand(
            "if [ -f",
            p,
            "]; then stat -c '%a %u'",
            p,
            "&& sha256sum <",
            p,
            "; else echo",
            ABSENT,
            "; fi",
        )

    @staticmethod
    def default() -> None:
        return None

    def process(self, output: list[str]) -> FileDigest | None:
        if len(output) < 2 or output[0] == ABSENT:
            return None
        mode, _, uid = output[0].partition(" ")
        return FileDigest(mode=int(mode, 8), uid=int(uid), sha256=output[1].split()[0])


class PathKinds(FactBase[dict]):
    """``{path: "dir" | "file" | "missing"}`` for many paths in one command."""

    def command(self, paths: list[str]) -> StringCommand:
        parts: list = ["for p in"]
        parts += [QuoteString(p) for p in paths] or ["''"]
        parts += [
            '; do if [ -d "$p" ]; then echo "dir $p"; elif [ -e "$p" ]; then echo "file $p";',
            'else echo "missing $p"; fi; done',
        ]
        return StringCommand(*parts)

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict:
        kinds = {}
        for line in output:
            kind, _, path = line.partition(" ")
            if kind in ("dir", "file", "missing"):
                kinds[path] = kind
        return kinds
