"""Inventory data for the CLI, read by pyinfra's own loader: each host's data merged exactly as
for a deploy run (``--data`` overrides, the host's data, its groups' data with the
``group_data/`` folders, the ``all`` group's).

The loader runs in a child Python (:data:`CHILD`, then :func:`main`): importing
``pyinfra_cli`` monkey-patches the standard library for gevent (``pyinfra_cli/__init__.py``),
which must reach neither the CLI's process nor a test process that reads an inventory. The
child answers with the data pickled (values that cannot be pickled, such as functions, are
left out: the CLI only reads data).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from isaac_deploy.model.errors import IsaacDeployError

SOURCE = str(Path(__file__).resolve().parents[2])  # the child imports this copy of the package
CHILD = """\
import sys
source = sys.argv.pop(1)
if sys.path[:1] == [""]:  # the current folder: the loader appends it, as pyinfra's CLI does
    del sys.path[0]
if source not in sys.path:
    sys.path.insert(0, source)
from isaac_deploy.cli.inventory import main
sys.exit(main(sys.argv[1:]))
"""


class InventoryError(IsaacDeployError):
    """The inventory did not load; the message is its error."""


def hosts_data(inventory: str, cwd: Path, data: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """``{host name: data}`` for every host of ``inventory`` (an inventory file, or hosts as on
    pyinfra's command line, e.g. ``@local``), merged by pyinfra as for ``pyinfra INVENTORY ...``
    run in ``cwd`` with ``--data`` ``data`` (``KEY=VALUE`` strings, values read by pyinfra's
    rules: true/false, integers, JSON, else the text)."""
    argv = [sys.executable, "-c", CHILD, SOURCE, str(inventory), *data]
    result = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE)
    try:
        kind, answer = pickle.loads(result.stdout)  # noqa: S301 - our own child's answer
    except Exception:  # noqa: BLE001 - no answer: the child died before it could give one
        raise InventoryError(
            f"{inventory}: pyinfra's inventory loader stopped (exit code {result.returncode})"
        ) from None
    if kind == "error":
        raise InventoryError(answer)
    return answer


def _load(inventory: str, data: Sequence[str]) -> dict[str, dict[str, Any]]:
    """In the child: pyinfra's CLI steps up to the loaded inventory (``_setup_state``,
    ``_set_override_data``, ``make_inventory``), then each host's ``host.data.dict()``."""
    from pyinfra.api.state import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory
    from pyinfra_cli.util import parse_cli_arg

    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    overrides: dict[str, Any] = {}
    for item in data:
        key, value = item.split("=", 1)
        overrides[key] = value
    overrides = {key: parse_cli_arg(value) for key, value in overrides.items()}
    state = State()
    state.cwd = cwd
    with ctx_state.use(state):
        loaded = make_inventory(inventory, override_data=overrides, cwd=cwd)
        return {host.name: _picklable(host.data.dict()) for host in loaded}


def _picklable(data: dict[str, Any]) -> dict[str, Any]:
    kept = {}
    for key, value in data.items():
        try:
            pickle.dumps(value)
        except Exception:  # noqa: BLE001, S112 - a function or module in group data: not data
            continue
        kept[key] = value
    return kept


def _message(exc: Exception, inventory: str) -> str:
    """pyinfra's (and so isaac-deploy's) errors as they are; anything else with its type and
    the inventory or group data file's line that raised it."""
    from pyinfra.api.exceptions import PyinfraError

    inner = getattr(exc, "exception", None)  # pyinfra_cli wraps errors of the files it runs
    exc = inner if isinstance(inner, Exception) else exc
    if isinstance(exc, PyinfraError):
        return str(exc)
    where = inventory
    own = {inventory, os.path.abspath(inventory)}
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in own or "group_data" in Path(frame.filename).parts:
            where = f"{frame.filename}, line {frame.lineno}"
    return f"{where}: {type(exc).__name__}: {exc}"


def main(argv: list[str]) -> int:
    """The child: ``INVENTORY [KEY=VALUE ...]``; the answer, pickled, on its standard output."""
    answer_to = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever the inventory prints goes to stderr, never into the answer
    try:
        answer: tuple[str, Any] = ("hosts", _load(argv[0], argv[1:]))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as the error's message
        answer = ("error", _message(exc, argv[0]))
    with answer_to:
        pickle.dump(answer, answer_to)
    return 0 if answer[0] == "hosts" else 1
