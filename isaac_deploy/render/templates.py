"""Jinja2 rendering of isaac-deploy's templates with safe quoting filters.

The templates are the top-level ``templates/`` folder of the checkout, shipped inside the package
as ``isaac_deploy/data/templates`` (a link in the checkout, files in an installed wheel)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import jinja2

from isaac_deploy.model.cluster import split_cluster_path
from isaac_deploy.model.errors import ConfigError

TEMPLATES = Path(__file__).resolve().parent.parent / "data" / "templates"
"""The templates shipped with isaac-deploy: env files, job scripts (``jobs/``)."""


def env_quote(value: Any, name: str = "value") -> str:
    """Quote ``value`` so that bash ``source`` and ``docker compose --env-file`` read it alike.

    Single quotes are literal in both; a value holding a single quote is double-quoted with
    ``\\``, ``"`` and ``$`` escaped (both parsers agree on those). A value holding both a single
    quote and a backtick, a newline or a NUL cannot be written for both and is refused.
    """
    text = "" if value is None else str(value)
    if "\n" in text or "\r" in text or "\x00" in text:
        raise ConfigError(name, "must not contain newlines or NUL bytes")
    if "'" not in text:
        return f"'{text}'"
    if "`" in text:
        raise ConfigError(name, "cannot hold both a single quote and a backtick in an env file")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def shell_path(value: Any) -> str:
    """Quote a cluster path for bash: a leading ``~`` or ``$VAR`` expands on the cluster, the
    rest stays literal (``$SCRATCH/a b`` -> ``"${SCRATCH}"'/a b'``)."""
    text = "" if value is None else str(value)
    if "\n" in text or "\x00" in text:
        raise ConfigError("path", "must not contain newlines or NUL bytes")
    name, rest = split_cluster_path(text)
    if name is None:
        return shlex.quote(text)
    head = '"$HOME"' if text.startswith("~") else f'"${{{name}}}"'
    return head + (shlex.quote(rest) if rest else "")


def yaml_quote(value: Any) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    import json

    return json.dumps("" if value is None else str(value), ensure_ascii=False)


def python_literal(value: Any) -> str:
    """``value`` (str, int, bool, None, dict, list, tuple of those) as Python source, strings in
    double quotes as ruff formats them (a JSON string is a valid Python string literal)."""
    import json

    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, (bool, int)):
        return repr(value)
    if isinstance(value, dict):
        items = (f"{python_literal(k)}: {python_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(python_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    raise TypeError(f"no Python literal for {type(value).__name__}")


def environment(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - shell/env/YAML output, quoted by the filters below
    )
    env.filters["envq"] = env_quote
    env.filters["shq"] = lambda value: shlex.quote("" if value is None else str(value))
    env.filters["yamlq"] = yaml_quote
    env.filters["shpath"] = shell_path
    env.filters["py"] = python_literal
    return env


def render(templates: Path, name: str, **context: Any) -> str:
    return environment(templates).get_template(name).render(**context)
