"""The extension packages of a project, as the Isaac Lab extension template lays them out.

Stdlib only: the toolkit probe runs it on the deploy's target, the CLI and ``isaac-deploy init``
on this machine. An extension is a folder ``source/<name>/`` holding ``config/extension.toml``
(the template's metadata, which its ``setup.py`` reads); a project without any such file (an
older layout) counts the folders of ``source/`` that hold a ``setup.py`` or ``pyproject.toml``.
"""

import os
import re

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def extension_names(folder):
    """Sorted names of the extensions in ``folder`` (a project root), by the rule above."""
    source = os.path.join(folder, "source")
    try:
        entries = sorted(os.listdir(source))
    except OSError:
        return []
    packages = [e for e in entries if NAME.match(e) and os.path.isdir(os.path.join(source, e))]
    marked = [
        e for e in packages if os.path.isfile(os.path.join(source, e, "config", "extension.toml"))
    ]
    if marked:
        return marked
    return [
        e
        for e in packages
        if any(os.path.isfile(os.path.join(source, e, f)) for f in ("setup.py", "pyproject.toml"))
    ]
