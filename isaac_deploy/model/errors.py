"""Errors that reach the user as one actionable line."""

from __future__ import annotations

from pyinfra.api.exceptions import PyinfraError


class IsaacDeployError(PyinfraError):
    """Base class: the message is a complete, actionable sentence."""


class ConfigError(IsaacDeployError):
    """Invalid configuration value; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class ToolkitError(IsaacDeployError):
    """A required tool is missing and may not be installed in this mode."""
