"""Facts: the attempts jobs recorded in an extension's logs tree (``launch[attempts]``): each
start of a job and how it ended, ``isaac-deploy/<run key>/attempts-<job id>.txt``."""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand

from isaac_deploy.facts.scheduler import MARK, split_sections
from isaac_deploy.model.launch import Attempt, parse_attempt
from isaac_deploy.model.runs import BOOKKEEPING

PREFIX, SUFFIX = "attempts-", ".txt"


class Attempts(FactBase[dict]):
    """``{run key: {job id: (Attempt, ...)}}`` from the logs tree ``tree`` (none: ``{}``)."""

    def command(self, tree: str) -> StringCommand:
        return StringCommand(
            "cd",
            QuoteString(f"{tree.rstrip('/')}/{BOOKKEEPING}"),
            f"2>/dev/null && for f in */{PREFIX}*{SUFFIX}; do",
            f'[ -f "$f" ] && echo "{MARK}$f" && cat "$f"; done; true',
        )

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, dict[str, tuple[Attempt, ...]]]:
        found: dict[str, dict[str, tuple[Attempt, ...]]] = {}
        for path, lines in split_sections(list(output)).items():
            key, _, name = path.partition("/")
            if not (name.startswith(PREFIX) and name.endswith(SUFFIX)) or "/" in name:
                continue
            job = name[len(PREFIX) : -len(SUFFIX)]
            records = tuple(a for a in map(parse_attempt, lines) if a is not None)
            if job and records:
                found.setdefault(key, {})[job] = records
        return found
