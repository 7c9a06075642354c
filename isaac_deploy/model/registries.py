"""Registries the images are pushed to: the model (from inventory data), skopeo's flags for each,
and one clear line for each way a registry can refuse.

skopeo moves the images: it reads straight from the Docker engine, compares and copies per
registry with per-user TLS and credential files (no ``docker login`` state, no root-owned
``/etc/docker/certs.d``), and retags inside the registry without sending layers again.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from isaac_deploy.model import validate as v
from isaac_deploy.model.errors import ConfigError

KEY = "isaac_registries"
ADDRESS_RE = r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?|\[[0-9a-fA-F:]+\](?::[0-9]{1,5})?"
PREFIX_RE = r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*)(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"


@dataclass(frozen=True)
class Registry:
    name: str
    address: str
    prefix: str = ""
    ca_file: str | None = None
    plain_http: bool = False
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    """A 0600 file on the machine the deploy runs on holding the password (read when
    ``password_env`` is not set)."""

    @property
    def has_login(self) -> bool:
        """The registry has a login of its own (else the user's Docker config is used)."""
        return bool(self.password_env or self.password_file)

    @property
    def loopback(self) -> bool:
        host = (
            self.address.rsplit(":", 1)[0]
            if not self.address.startswith("[")
            else (self.address[1:].split("]")[0])
        )
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def repository(self, image: str) -> str:
        return "/".join(part for part in (self.address, self.prefix, image) if part)


def parse_registries(raw: Any) -> list[Registry]:
    """``{name: {address, prefix, ca_file, plain_http, username, password_env, password_file}}``
    -> Registries."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(KEY, "must map registry names to their settings")
    registries = []
    for name, settings in raw.items():
        key = f"{KEY}[{name}]"
        v.text(key, name, r"[A-Za-z0-9_.-]+", "registry names use letters, digits, _ . -")
        settings = v.mapping(key, settings, (f.name for f in fields(Registry) if f.name != "name"))
        if "address" not in settings:
            raise ConfigError(f"{key}[address]", "is required, e.g. registry.example.org:5000")
        registry = Registry(
            name=name,
            address=v.text(
                f"{key}[address]",
                settings["address"],
                ADDRESS_RE,
                "must be host[:port] (no scheme, no path)",
            ),
            prefix=v.text(
                f"{key}[prefix]",
                settings.get("prefix", ""),
                f"(?:{PREFIX_RE})?",
                "must be lower-case repository path parts separated by /",
            ),
            ca_file=v.absolute_path(f"{key}[ca_file]", settings["ca_file"], also=("~",))
            if settings.get("ca_file")
            else None,
            plain_http=v.boolean(f"{key}[plain_http]", settings.get("plain_http", False)),
            username=v.optional_text(f"{key}[username]", settings.get("username")),
            password_env=v.text(
                f"{key}[password_env]",
                settings["password_env"],
                r"[A-Za-z_][A-Za-z0-9_]*",
                "must be an environment variable name",
            )
            if settings.get("password_env")
            else None,
            password_file=v.absolute_path(
                f"{key}[password_file]", settings["password_file"], also=("~",)
            )
            if settings.get("password_file")
            else None,
        )
        if "password" in settings:
            raise ConfigError(f"{key}[password]", "secrets never go in the inventory")
        if registry.plain_http and not registry.loopback:
            raise ConfigError(
                f"{key}[plain_http]",
                f"plain HTTP is only allowed for a loopback registry, not {registry.address}: "
                "give its CA in ca_file instead",
            )
        if bool(registry.username) != registry.has_login:
            raise ConfigError(
                f"{key}[username]",
                "give username and password_env or password_file together (or neither: "
                "then the credentials in your Docker config are used)",
            )
        registries.append(registry)
    return registries


def password_of(
    registry: Registry, environ: Mapping[str, str], required: bool = True
) -> str | None:
    """The registry's password: the variable ``password_env`` of ``environ`` (the shell the
    deploy runs in), else the file ``password_file`` (mode 0600, on this machine); ``None`` for a
    registry without a login of its own, or (not ``required``) when neither holds one. A file
    others may read is refused, and so (``required``) is a login found nowhere, naming both."""
    if not registry.has_login:
        return None
    field = f"{KEY}[{registry.name}]"
    if registry.password_env and environ.get(registry.password_env, ""):
        return environ[registry.password_env]
    if registry.password_file:
        path = os.path.expanduser(registry.password_file)
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None:
            if stat.S_IMODE(mode) & 0o077:
                raise ConfigError(
                    f"{field}[password_file]",
                    f"{path} may be read by others (mode {stat.S_IMODE(mode):o}): "
                    f"run `chmod 600 {path}`",
                )
            with open(path, encoding="utf-8") as handle:
                value = handle.read().strip()
            if value:
                return value
            if required:
                raise ConfigError(f"{field}[password_file]", f"{path} is empty")
    if not required:
        return None
    where = [f"${registry.password_env} is not set in this shell"] if registry.password_env else []
    if registry.password_file:
        where.append(f"{registry.password_file} does not exist")
    name = "password_env" if registry.password_env else "password_file"
    raise ConfigError(f"{field}[{name}]", " and ".join(where))


def auth_file_content(registry: Registry, password: str) -> str:
    """A containers auth file for ``registry`` (what ``docker login`` would store)."""
    token = base64.b64encode(f"{registry.username}:{password}".encode()).decode()
    return json.dumps({"auths": {registry.address: {"auth": token}}})


def skopeo_flags(
    registry: Registry, auth_file: str | None, cert_dir: str | None, side: str
) -> list[str]:
    """Flags for one side of a skopeo call: ``side`` is "" (inspect), "src" or "dest"."""
    prefix = f"--{side}-" if side else "--"
    flags = []
    if auth_file:
        flags += [f"{prefix}authfile" if side else "--authfile", auth_file]
    if registry.plain_http:
        flags.append(f"{prefix}tls-verify=false")
    elif cert_dir:
        flags += [f"{prefix}cert-dir", cert_dir]
    return tuple(flags)


ERRORS = (
    (r"unauthorized|authentication required|denied", "refused the credentials"),
    (r"x509|certificate|tls:", "failed TLS verification (give its CA in ca_file)"),
    (
        r"connection refused|no such host|i/o timeout|network is unreachable|no route",
        "is not reachable",
    ),
    (r"server gave HTTP response to HTTPS client|http: server gave", "speaks plain HTTP"),
    (r"manifest unknown|name unknown|not found", "has no such image or tag"),
)


def explain(registry: Registry, stderr: str) -> str:
    """One line for a skopeo failure against ``registry``."""
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no details"
    detail = re.sub(r'^time="[^"]*" level=\w+ msg="?', "", detail).rstrip('"')
    for pattern, what in ERRORS:
        if re.search(pattern, stderr, re.I):
            return f"registry {registry.name} ({registry.address}) {what}: {detail}"
    return f"registry {registry.name} ({registry.address}) failed: {detail}"
