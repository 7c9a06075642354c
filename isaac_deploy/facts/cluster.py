"""Facts on a login node: the variables cluster paths start with, and the code snapshots."""

from __future__ import annotations

import re

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


class Snapshots(FactBase[list]):
    """Code snapshot folders under ``folder``, oldest first (by modification time)."""

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

    def process(self, output: list[str]) -> list[str]:
        rows = []
        for line in output:
            stamp, _, name = line.partition(" ")
            if stamp.isdigit() and name and name != "*":
                rows.append((int(stamp), name))
        return [name for _, name in sorted(rows)]
