"""Small validators for the configuration models: each returns the clean value or raises a
ConfigError naming the field (plain functions: importing them costs nothing)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from isaac_deploy.model.errors import ConfigError

TRUE = {"true", "yes", "on", "1"}
FALSE = {"false", "no", "off", "0"}


def integer(field: str, value: Any, minimum: int | None = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(field, f"must be an integer, got {value!r}")
    if isinstance(value, str):
        if not re.fullmatch(r"\s*-?\d+\s*", value):
            raise ConfigError(field, f"must be an integer, got {value!r}")
        value = int(value)
    if minimum is not None and value < minimum:
        raise ConfigError(field, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(field, f"must be at most {maximum}, got {value}")
    return value


def boolean(field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ConfigError(field, f"must be true or false, got {value!r}")


def text(field: str, value: Any, pattern: str | None = None, hint: str = "") -> str:
    if not isinstance(value, str):
        raise ConfigError(field, f"must be a string, got {value!r}")
    if "\n" in value or "\x00" in value:
        raise ConfigError(field, "must not contain newlines or NUL bytes")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise ConfigError(field, hint or f"{value!r} does not match {pattern}")
    return value


def optional_text(field: str, value: Any) -> str | None:
    return None if value is None or value == "" else text(field, value)


def choice(field: str, value: Any, choices: Iterable[str]) -> str:
    options = tuple(choices)
    if value not in options:
        listed = ", ".join(repr(option) for option in options)
        raise ConfigError(field, f"must be one of {listed}, got {value!r}")
    return value


def absolute_path(field: str, value: Any, also: tuple[str, ...] = ()) -> str:
    value = text(field, value)
    if not value.startswith(("/", *also)):
        extra = f" (or start with {' or '.join(also)})" if also else ""
        raise ConfigError(field, f"{value!r} must be an absolute path{extra}")
    return value.rstrip("/") or "/"


def json_value(field: str, value: Any) -> Any:
    """``value``, or what its JSON text says (as pyinfra's ``--data`` passes a mapping)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ConfigError(field, f"must be a JSON object, got {value!r}") from None


def mapping(field: str, value: Any, known: Iterable[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(field, f"must be a mapping, got {value!r}")
    allowed = set(known)
    for key in value:
        if key not in allowed:
            listed = ", ".join(sorted(allowed))
            raise ConfigError(f"{field}[{key}]", f"unknown setting; known: {listed}")
    return value
