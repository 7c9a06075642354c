"""Fact: the submission ledger on a login node."""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand

from isaac_deploy.model.ledger import Entry, parse_ledger


class LedgerEntries(FactBase[list]):
    """The entries of the ledger at ``path`` (empty when there is none yet)."""

    def command(self, path: str) -> StringCommand:
        return StringCommand("cat", QuoteString(path), "2>/dev/null || true")

    @staticmethod
    def default() -> list:
        return []

    def process(self, output: list[str]) -> list[Entry]:
        return parse_ledger(list(output))
