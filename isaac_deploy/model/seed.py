"""What a project that used the seed's bash tooling already says, as isaac-deploy settings.

The seed (``container.sh``, ``run_dev.sh``, ``cluster/``) keeps its configuration in
``docker/.env.<extension>``, ``docker/.env.<extension>-dev`` and ``docker/cluster/.env.cluster``
(Isaac Lab's keys, plus the W&B key in clear) and ``.mount.config``, which isaac-deploy reads as
it is. This module only parses text into values: ``isaac-deploy init`` reads the files and
writes the inventories.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from isaac_deploy.model.base_images import DEFAULTS as BASE_DEFAULTS
from isaac_deploy.model.base_images import SOURCE_KEY, registry_host
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.workstation import HostUser

ENV_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)")
CLUSTER_ENV = "docker/cluster/.env.cluster"
SCHEDULERS = {"SLURM": "slurm", "PBS": "pbs"}
RESERVED = ("cluster", "workstation", "local", "all")
"""Names a migrated cluster's group may not take in the cluster inventory: its function, its
other group, pyinfra's."""
DEFAULT_PATHS = {
    "DOCKER_ISAACSIM_ROOT_PATH": "/isaac-sim",
    "DOCKER_ISAACLAB_PATH": "/workspace/isaaclab",
}


def env_values(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines as bash's ``source`` of a plain env file gives them: comments and
    blank lines skipped, one level of quotes removed, ``$VAR``/``${VAR}`` of earlier keys
    expanded (others kept as written), a trailing ``# comment`` after a value dropped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = ENV_LINE.fullmatch(line)
        if not match:
            continue
        key, raw = match.group(1), match.group(2).strip()
        if raw[:1] in ("'", '"') and raw[:1] in raw[1:]:
            quote = raw[0]
            value = raw[1 : raw.index(quote, 1)]
            if quote == "'":
                values[key] = value
                continue
        else:
            value = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
        values[key] = re.sub(
            r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
            lambda m: values.get(m.group(1), m.group(0)),
            value,
        )
    return values


@dataclass(frozen=True)
class SeedCluster:
    """``docker/cluster/.env.cluster`` as one ``cluster(...)`` of the cluster inventory."""

    name: str
    host: str
    settings: dict[str, Any]
    wandb_username: str | None = None


def workstation_settings(
    env: Mapping[str, Mapping[str, str]], extension: str, user: HostUser
) -> tuple[dict[str, Any], list[str]]:
    """Inventory data from the seed's env files (``env``: file name -> values) that differs
    from what isaac-deploy would detect or default to, and notes about the rest."""
    data: dict[str, Any] = {}
    notes: list[str] = []
    for name, values in env.items():
        if values.get("EXTENSION_NAME", extension) != extension:
            notes.append(
                f"{name} names the extension {values['EXTENSION_NAME']!r}, the project holds "
                f"{extension!r}: {extension!r} is used"
            )
    dev = env.get(f"docker/.env.{extension}-dev") or {}
    uid, gid = dev.get("HOST_UID"), dev.get("HOST_GID")
    if (
        uid
        and gid
        and uid.isdigit()
        and gid.isdigit()
        and (int(uid), int(gid)) != (user.uid, user.gid)
    ):
        data["isaac_uid"], data["isaac_gid"] = int(uid), int(gid)
    for key, setting in (
        ("DOCKER_ISAACSIM_ROOT_PATH", "isaac_isaacsim_root"),
        ("DOCKER_ISAACLAB_PATH", "isaac_isaaclab_path"),
    ):
        value = next((v[key] for v in env.values() if v.get(key)), None)
        if value and value != DEFAULT_PATHS[key]:
            data[setting] = value
    found = {}
    for profile, suffix in (("ext", ""), ("ext-dev", "-dev")):
        base = (env.get(f"docker/.env.{extension}{suffix}") or {}).get("ISAACLAB_BASE_IMAGE")
        if base:
            found[profile] = base
    # the seed's base images were built by the user: given, unless each names its registry
    given = any(registry_host(base) is None for base in found.values())
    bases = {p: b for p, b in found.items() if not given or b != BASE_DEFAULTS["given"][p]}
    if given:
        data[SOURCE_KEY] = "given"
    if bases:
        data["isaac_base_images"] = bases
    return data, notes


def cluster_settings(values: Mapping[str, str]) -> SeedCluster:
    """``.env.cluster``'s keys (Isaac Lab's ``docker/cluster/.env.cluster``) as a cluster:
    ``CLUSTER_LOGIN`` (``user@host``), ``CLUSTER_JOB_SCHEDULER``, ``CLUSTER_SIF_PATH``
    (images), ``CLUSTER_ISAAC_SIM_CACHE_DIR`` (caches), ``CLUSTER_PYTHON_EXECUTABLE`` (the
    training script) and ``REMOVE_CODE_COPY_AFTER_JOB``. Code snapshots and logs go to folders
    of isaac-deploy's own beside ``CLUSTER_ISAACLAB_DIR`` (the seed's code copy there is left
    alone). A missing or odd value is refused naming the key."""

    def need(key: str) -> str:
        value = values.get(key, "").strip()
        if not value:
            raise ConfigError(f"{CLUSTER_ENV}: {key}", "is missing: fill it in or remove the file")
        return value

    login = need("CLUSTER_LOGIN")
    user, at, host = login.rpartition("@")
    if not at or not user or not host:
        raise ConfigError(f"{CLUSTER_ENV}: CLUSTER_LOGIN", f"{login!r} is not user@host")
    scheduler = SCHEDULERS.get(need("CLUSTER_JOB_SCHEDULER").upper())
    if scheduler is None:
        raise ConfigError(
            f"{CLUSTER_ENV}: CLUSTER_JOB_SCHEDULER",
            f"{values['CLUSTER_JOB_SCHEDULER']!r} is neither SLURM nor PBS",
        )

    def cluster_path(key: str) -> str:
        path = need(key).replace("${USER}", user).replace("$USER", user).rstrip("/")
        inner = re.search(r"(?<!^)\$\{?[A-Za-z_]", path)
        if inner or not path.startswith(("/", "~", "$")):
            raise ConfigError(
                f"{CLUSTER_ENV}: {key}",
                f"{path!r} must be absolute, or start with ~ or one $VARIABLE the cluster sets",
            )
        return path

    base = posixpath.dirname(cluster_path("CLUSTER_ISAACLAB_DIR")) or "~"
    settings: dict[str, Any] = {
        "user": user,
        "scheduler": scheduler,
        "image_dir": cluster_path("CLUSTER_SIF_PATH"),
        "code_dir": f"{base}/isaac-deploy/code",
        "cache_dir": cluster_path("CLUSTER_ISAAC_SIM_CACHE_DIR"),
        "logs_dir": f"{base}/isaac-deploy/logs",
    }
    script = values.get("CLUSTER_PYTHON_EXECUTABLE", "").strip()
    if script:
        settings["entry_script"] = script
    if values.get("REMOVE_CODE_COPY_AFTER_JOB", "").strip().lower() == "true":
        settings["snapshot_retention"] = 1
    labels = [label for label in host.split(".") if not label.startswith("login")]
    name = re.sub(r"[^A-Za-z0-9_]", "_", labels[0] if labels else host)
    if name in RESERVED or not re.match(r"[A-Za-z_]", name):
        name = f"hpc_{name}"
    return SeedCluster(name, host, settings, values.get("WANDB_USERNAME") or None)
