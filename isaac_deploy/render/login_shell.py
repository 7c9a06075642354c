"""Commands for a login node's login environment: what a user's terminal there has (the site's
profile: ``$SCRATCH``, the module system, ``PATH``), with the cluster's modules loaded.

Commands pyinfra runs over SSH get a non-login shell, which on many clusters has neither
``module`` nor the site's ``PATH``; the commands that need them (Apptainer builds and unpacks,
the check that Apptainer is there) run through ``bash -lc`` instead.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence


def login_shell(
    command: str, modules: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> str:
    """``bash -lc '<script>'``: ``command`` (shell text) in a login shell, after ``module load``
    of each of ``modules`` and with ``env`` exported (values quoted; the script stops at the
    first step that fails)."""
    lines = ["set -e"]
    lines += [f"module load {shlex.quote(module)}" for module in modules]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in (env or {}).items()]
    lines.append(command)
    return "bash -lc " + shlex.quote("\n".join(lines))


def apptainer_dirs(cache_dir: str) -> dict[str, str]:
    """Apptainer's cache and temporary folders for builds on a login node, under the cluster's
    cache dir (absolute): never the home quota's ``~/.apptainer`` nor the node's ``/tmp``."""
    base = cache_dir.rstrip("/") + "/apptainer"
    return {"APPTAINER_CACHEDIR": base, "APPTAINER_TMPDIR": base + "/tmp"}
