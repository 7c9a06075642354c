"""Fact: the submission ledger on a login node."""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand

from isaac_deploy.model.ledger import Ledger, parse_ledger


class LedgerEntries(FactBase[Ledger]):
    """The entries of the ledger at ``path`` and its unreadable lines (empty when there is no
    ledger yet)."""

    def command(self, path: str) -> StringCommand:
        return StringCommand("cat", QuoteString(path), "2>/dev/null || true")

    @staticmethod
    def default() -> Ledger:
        return Ledger()

    def process(self, output: list[str]) -> Ledger:
        return parse_ledger(list(output))
