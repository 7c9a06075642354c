"""Example Isaac Lab extension: a task registry and a tiny trainer that runs anywhere."""

__version__ = "0.1.0"
