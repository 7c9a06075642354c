"""Fact: whether sudo works without a password for this user (asked only when it matters)."""

from __future__ import annotations

from pyinfra.api import FactBase


class SudoWithoutPassword(FactBase[bool]):
    """``True`` when ``sudo -n true`` succeeds (NOPASSWD, or a cached sudo timestamp)."""

    def command(self) -> str:
        return "sudo -n true >/dev/null 2>&1 && echo yes || echo no"

    @staticmethod
    def default() -> bool:
        return False

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[-1].strip() == "yes"
