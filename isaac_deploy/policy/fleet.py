"""What to do about a lab PC that is not ready, by what failed there."""

from __future__ import annotations

UNREACHABLE_FIX = (
    "check that the PC is on, its address and ssh port in the inventory, and that its host key "
    "is in your known_hosts (log in once with ssh and compare the fingerprint)"
)
RETRY = "then re-run it with --limit"
FIXES = (
    (
        ("packages", "NVIDIA Container Toolkit", "apt", "git ("),
        "repair the PC's package manager: `sudo apt-get update` must work there (its apt "
        "sources, its network, a held or broken package)",
    ),
    (
        ("Docker daemon", "nvidia runtime"),
        "see why dockerd does not start on the PC (/var/log/isaac-deploy-dockerd.log, or "
        "`systemctl status docker`)",
    ),
    (
        ("Base images", "CA for Docker"),
        "check the registry in isaac_registries (address, ca_file, password_env) and that the "
        "PC reaches it",
    ),
    (
        ("checkout of the project",),
        "check isaac_project: the PC must clone its git URL without a prompt, and nothing "
        "but a checkout may be at the member's folder",
    ),
    (
        ("docker group", "Compose"),
        "see the error above on the PC (the admin's part needs sudo there)",
    ),
)


def failure_fix(step: str) -> str:
    """How to make a PC ready whose step ``step`` failed (an operation's name, after the name
    of the deploy it is part of: ``DEPLOY | OPERATION``)."""
    operation = step.rsplit(" | ", 1)[-1]
    for words, fix in FIXES:
        if any(word in operation for word in words):
            return f"{fix}; {RETRY}"
    return f"fix what the error above names; {RETRY}"
