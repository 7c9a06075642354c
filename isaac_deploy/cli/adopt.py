"""``isaac-deploy init``: adopt an existing extension project (made from the Isaac Lab extension
template, or one that used the seed's bash tooling).

It adds isaac-deploy's folder (``.isaac-deploy/``: inventories, deploy files, a README) and
nothing else: no file outside it is created, moved or edited, and a file inside it that exists
already is kept as it is. Where the seed's files are, their settings go into the inventories,
and a W&B key found in clear goes to a 0600 file, never an inventory. Everything is read and
checked before the first file is written; ``--dry`` only shows what would be added.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isaac_deploy.cli.project import ProjectError, checkout
from isaac_deploy.facts.toolkit import local_user
from isaac_deploy.model import paths
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.mounts import MountConfig
from isaac_deploy.model.seed import (
    CLUSTER_ENV,
    SeedCluster,
    cluster_settings,
    env_values,
    workstation_settings,
)
from isaac_deploy.model.workstation import HostUser, WorkstationConfig
from isaac_deploy.probes.extensions import extension_names
from isaac_deploy.probes.local import create_new, private_folder
from isaac_deploy.render.adoption import adoption_files
from isaac_deploy.render.templates import TEMPLATES


@dataclass
class Adoption:
    """What ``init`` found and will do in ``root``."""

    root: Path
    name: str
    files: dict[str, str]
    sources: tuple[str, ...] = ()
    wandb_key: str | None = field(default=None, repr=False)
    key_file: str | None = None
    notes: list[str] = field(default_factory=list)


def project_root(start: Path) -> Path:
    """The extension project at or above ``start`` (a folder whose ``source/`` holds an
    extension); a checkout of isaac-deploy itself needs no adoption."""
    for folder in [start, *start.parents]:
        if checkout(folder):
            raise ProjectError(
                f"{folder} is a checkout of isaac-deploy: it needs no init (its inventories/ and "
                "deploy/ are used as they are)"
            )
        if extension_names(str(folder)):
            return folder
    raise ProjectError(
        f"no extension project at or above {start}: none has source/<name>/config/extension.toml "
        "(run isaac-deploy init inside an Isaac Lab extension project)"
    )


def choose_name(names: list[str], wanted: str | None, ask: Callable[[str], str] | None) -> str:
    """``wanted`` (must be one of ``names``), the only name, or the user's choice."""
    if wanted:
        if wanted not in names:
            raise ProjectError(f"--name {wanted}: source/ holds {', '.join(names)}")
        return wanted
    if len(names) == 1:
        return names[0]
    if ask is None:
        raise ProjectError(
            f"source/ holds several extensions ({', '.join(names)}): choose one with --name NAME"
        )
    menu = "\n".join(f"  {i}) {n}" for i, n in enumerate(names, 1))
    answer = ask(f"source/ holds several extensions:\n{menu}\nwhich one? [1-{len(names)}] ")
    choice = answer.strip()
    if choice.isdigit() and 1 <= int(choice) <= len(names):
        return names[int(choice) - 1]
    if choice in names:
        return choice
    raise ProjectError(f"{choice!r} is none of {', '.join(names)}: choose one with --name NAME")


def read(root: Path, relative: str) -> str | None:
    path = root / relative
    return path.read_text(errors="replace") if path.is_file() else None


def key_file_path(user: HostUser, name: str) -> str:
    """Where the workstation deploy keeps a W&B key (``deploys.workstation``'s stored key)."""
    return os.path.join(user.home, ".config", "isaac-deploy", name, "wandb_api_key")


def plan(root: Path, name: str, user: HostUser) -> Adoption:
    """Read the project (and the seed's files in it) and decide every file to add; checks all
    of it, so a bad value stops ``init`` before anything is written."""
    env = {}
    for suffix in ("", "-dev"):
        relative = f"docker/.env.{name}{suffix}"
        text = read(root, relative)
        if text is not None:
            env[relative] = env_values(text)
    local, notes = workstation_settings(env, name, user)
    sources = list(env)
    mounts_text = read(root, paths.MOUNT_CONFIG)
    if mounts_text is not None:
        try:
            mounts = MountConfig.loads(mounts_text)
        except ConfigError as exc:
            raise ProjectError(f"{paths.MOUNT_CONFIG}: {exc}") from exc
        notes.append(
            f"{paths.MOUNT_CONFIG} is read as it is ({len(mounts.mounts)} mounts, "
            f"{len(mounts.enabled())} enabled): isaac-deploy mount-show"
        )
    cluster: SeedCluster | None = None
    wandb_key = None
    cluster_text = read(root, CLUSTER_ENV)
    key_file = key_file_path(user, name)
    if cluster_text is not None:
        values = env_values(cluster_text)
        try:
            cluster = cluster_settings(values)
        except ConfigError as exc:
            raise ProjectError(str(exc)) from exc
        sources.append(CLUSTER_ENV)
        wandb_key = values.get("WANDB_API_KEY", "").strip() or None
        if wandb_key or Path(key_file).is_file():
            cluster.settings["wandb_api_key_file"] = f"~/.config/isaac-deploy/{name}/wandb_api_key"
        if cluster.wandb_username:
            local["isaac_wandb"] = {"username": cluster.wandb_username}
    data: dict[str, Any] = {"isaac_extension_name": name, **local}
    # the whole model checks the values now, as the deploy will
    config = WorkstationConfig.from_host_data(data, user, str(root), (name,))
    config_images = tuple(config.image_name(profile) for profile in paths.PROFILES)
    files = adoption_files(
        TEMPLATES,
        data,
        tuple(sources),
        cluster,
        config_images,
        key_file if wandb_key else None,
    )
    return Adoption(root, name, files, tuple(sources), wandb_key, key_file, notes)


def state_of(root: Path, relative: str, text: str) -> str:
    """``add``, ``same`` (already there as init writes it) or ``kept`` (there, different)."""
    current = read(root, relative)
    if current is None and not (root / relative).exists():
        return "add"
    return "same" if current == text else "kept"


def key_state(adoption: Adoption) -> str | None:
    """What happens to the W&B key found in clear: ``add``, ``same`` or ``kept``."""
    if adoption.wandb_key is None or adoption.key_file is None:
        return None
    path = Path(adoption.key_file)
    if not path.is_file():
        return "add"
    return "same" if path.read_text().strip() == adoption.wandb_key else "kept"


def states_of(adoption: Adoption) -> dict[str, str]:
    """Relative path -> ``add``, ``same`` or ``kept`` for each file, before anything is done."""
    return {rel: state_of(adoption.root, rel, text) for rel, text in adoption.files.items()}


def apply(adoption: Adoption, states: dict[str, str], key: str | None) -> None:
    """Write every file that is not there yet (``states``, updated when another program made
    one in the meantime) and the W&B key when ``key`` is ``add``."""
    for relative, text in adoption.files.items():
        if states[relative] != "add":
            continue
        path = adoption.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not create_new(str(path), text, 0o644):
            states[relative] = "kept"
    if key == "add" and adoption.key_file and adoption.wandb_key:
        private_folder(os.path.dirname(adoption.key_file))
        create_new(adoption.key_file, adoption.wandb_key + "\n", 0o600)


def report(adoption: Adoption, states: dict[str, str], key: str | None, dry: bool) -> list[str]:
    """The lines ``init`` prints: each file, the key, the notes, what to do next, the undo."""
    verb = {"add": "would add" if dry else "added", "same": "unchanged", "kept": "kept yours"}
    lines = [f"isaac-deploy init: extension {adoption.name} in {adoption.root}"]
    if adoption.sources:
        lines.append(f"  migrated from {', '.join(adoption.sources)}")
    for relative, state in states.items():
        extra = " (differs from what init writes; not changed)" if state == "kept" else ""
        lines.append(f"  {verb[state]:<11} {relative}{extra}")
    if key:
        extra = " (holds another key; not changed)" if key == "kept" else ""
        lines.append(f"  {verb[key]:<11} {adoption.key_file} (the W&B key, mode 0600){extra}")
        lines.append(
            f"  note: {CLUSTER_ENV} still holds the W&B key in clear: remove that line "
            "(isaac-deploy never reads it again)"
        )
    lines += [f"  note: {note}" for note in adoption.notes]
    if dry:
        lines.append("nothing was written (--dry)")
        return lines
    lines += [
        "ready: isaac-deploy knows this project. Next:",
        "  isaac-deploy setup          # Docker, env files, images (pyinfra "
        f"{paths.TOOL_DIR}/inventories/local.py {paths.TOOL_DIR}/deploy/dev.py)",
        "  isaac-deploy run python scripts/rsl_rl/train.py --task <task> --headless",
        f"  clusters: edit {paths.TOOL_DIR}/inventories/cluster.py, "
        "then isaac-deploy cluster submit -- --task <task>",
        f"undo: rm -r {paths.TOOL_DIR}"
        + (f" {adoption.key_file}" if key == "add" else "")
        + " (nothing else was changed)",
    ]
    return lines


def init(start: Path, name: str | None, dry: bool) -> int:
    root = project_root(start.resolve())
    ask = input if sys.stdin.isatty() else None
    chosen = choose_name(extension_names(str(root)), name, ask)
    adoption = plan(root, chosen, local_user())
    states, key = states_of(adoption), key_state(adoption)
    if not dry:
        apply(adoption, states, key)
    for line in report(adoption, states, key, dry):
        print(line)
    return 0
