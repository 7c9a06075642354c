"""Fact of the lab PCs: the members' accounts, as the name service answers (local files or a
directory service), never from the password hashes' files."""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand

from isaac_deploy.model.workstation import HostUser


class Accounts(FactBase[dict]):
    """``{name: HostUser}`` of those of ``names`` that have an account (``getent passwd``);
    a name without one is left out.

    .. code:: python

        accounts = host.get_fact(Accounts, names=("alice", "bob"))
        accounts["alice"].home, accounts["alice"].uid
    """

    def command(self, names: tuple[str, ...]) -> StringCommand:
        return StringCommand("getent passwd", *(QuoteString(n) for n in names), "|| true")

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, HostUser]:
        accounts = {}
        for line in output:
            fields = line.split(":")
            if len(fields) != 7 or not fields[2].isdigit() or not fields[3].isdigit():
                continue
            name, _, uid, gid, _, home, shell = fields
            accounts[name] = HostUser(name, int(uid), int(gid), home or "/", shell or "/bin/sh")
        return accounts
