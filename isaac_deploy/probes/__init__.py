"""Standalone scripts that run on the target (stdlib only, Python >= 3.8); importable for tests.

A fact sends them as one ``python3 -c`` program: :func:`program` joins the modules it needs
(helpers first), so the target needs Python but not isaac-deploy.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def program(*modules: str) -> str:
    """The source of ``modules`` (names in this package), joined in order."""
    folder = resources.files(__name__)
    return "\n\n".join(folder.joinpath(f"{name}.py").read_text() for name in modules)


PYTHON = "py=/usr/bin/python3; [ -x $py ] || py=python3;"
"""Shell prefix choosing the system interpreter: it starts fast (version-manager shims do not)."""
